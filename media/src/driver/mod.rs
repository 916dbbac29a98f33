//! I/O drivers around a [`Shard`]: one OS thread per shard, pinned to its core, owning the
//! shard's sockets and clock.
//!
//! Three drivers run the same [`Shard`]:
//! - [`DriverKind::Uring`]: one io_uring driven by hand (the `io-uring` crate): multishot
//!   receive into a provided buffer ring, a turn's sends submitted together with the wait.
//! - [`DriverKind::Epoll`]: a mio (epoll) readiness loop with non-blocking std sockets; the
//!   fallback where io_uring is unavailable (a container whose seccomp blocks `io_uring_setup`,
//!   `kernel.io_uring_disabled`, a kernel before 6.0), chosen with a warning rather than failing.
//! - [`DriverKind::Compio`]: compio's runtime on io_uring (one task per socket, one receive in
//!   flight, each send awaited), kept for the relay bench's comparison.
//!
//! [`DriverChoice::Auto`] runs the relay bench's winner (bench/RESULTS.md).
//!
//! The control plane reaches a shard only through its [`ShardHandle`]: bounded crossbeam
//! channels of [`Control`] in and [`Report`] out, plus a wake-up of the driver's event loop.

mod compio;
mod epoll;
pub mod meter;
pub mod ring;
mod uring;

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::shard::{Control, Report, ShardApp, ShardStats, MAX_CONTROLS, MAX_REPORTS};

/// Which I/O driver runs a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriverKind {
    /// io_uring, driven by hand (multishot receive, batched sends).
    Uring,
    /// epoll (mio).
    Epoll,
    /// io_uring through compio's runtime.
    Compio,
}

impl DriverKind {
    pub fn label(self) -> &'static str {
        match self {
            DriverKind::Uring => "io_uring (io-uring, multishot)",
            DriverKind::Epoll => "epoll (mio)",
            DriverKind::Compio => "io_uring (compio)",
        }
    }
}

/// Which driver to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriverChoice {
    /// The driver that won the relay bench (bench/RESULTS.md): io_uring, epoll where the
    /// kernel refuses it.
    #[default]
    Auto,
    /// io_uring; where the kernel refuses it, epoll with a warning (never a failure).
    Uring,
    Epoll,
    /// compio on io_uring (epoll with a warning where io_uring is refused).
    Compio,
}

/// How to start a shard.
#[derive(Debug, Clone, Default)]
pub struct ShardConfig {
    /// Index, for thread names and logs.
    pub index: usize,
    /// Core to pin the shard's thread to (`None`: not pinned).
    pub core: Option<usize>,
    pub driver: DriverChoice,
}

/// Wakes a driver's event loop from another thread.
pub(crate) type Wake = Arc<dyn Fn() + Send + Sync>;

/// The control plane's end of a running shard.
pub struct ShardHandle {
    control: Sender<Control>,
    reports: Receiver<Report>,
    wake: Wake,
    driver: DriverKind,
    thread: Option<JoinHandle<io::Result<ShardStats>>>,
}

/// The shard is gone (its driver stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the shard's control queue is full")]
    Full,
    #[error("the shard has stopped")]
    Stopped,
}

impl ShardHandle {
    /// Queue a control message and wake the shard. Never blocks: a full queue is an error.
    pub fn send(&self, control: Control) -> Result<(), SendError> {
        let r = match self.control.try_send(control) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(SendError::Full),
            Err(TrySendError::Disconnected(_)) => Err(SendError::Stopped),
        };
        (self.wake)();
        r
    }

    /// Queue a control message, waiting up to `timeout` for room (set-up of many calls).
    pub fn send_timeout(&self, control: Control, timeout: std::time::Duration) -> Result<(), SendError> {
        use crossbeam_channel::SendTimeoutError;
        (self.wake)();
        let r = match self.control.send_timeout(control, timeout) {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(SendError::Full),
            Err(SendTimeoutError::Disconnected(_)) => Err(SendError::Stopped),
        };
        (self.wake)();
        r
    }

    /// A function that wakes the shard's loop (after sending on a channel the app polls).
    pub fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        self.wake.clone()
    }

    /// The shard's reports (events, ended calls, closed recordings, refusals).
    pub fn reports(&self) -> &Receiver<Report> {
        &self.reports
    }

    /// The driver actually running.
    pub fn driver(&self) -> DriverKind {
        self.driver
    }

    /// Send [`Control::Shutdown`] and wait for the driver thread; returns the shard's counters.
    pub fn shutdown(mut self) -> io::Result<ShardStats> {
        let _ = self.send(Control::Shutdown);
        self.join()
    }

    fn join(&mut self) -> io::Result<ShardStats> {
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| io::Error::other("shard thread panicked"))?,
            None => Ok(ShardStats::default()),
        }
    }
}

impl Drop for ShardHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.control.try_send(Control::Shutdown);
            (self.wake)();
            let _ = self.join();
        }
    }
}

/// Whether io_uring can be set up here with what the io_uring driver uses (a ring is created
/// and dropped).
pub fn io_uring_available() -> bool {
    uring::probe().is_ok()
}

/// Whether compio runs on io_uring here.
pub fn compio_available() -> bool {
    compio::probe().is_ok()
}

/// Start a shard on its own thread with the chosen driver.
pub fn spawn(config: ShardConfig) -> io::Result<ShardHandle> {
    spawn_inner(config, None)
}

/// Start a shard hosting `app` (see [`crate::shard::ShardApp`]). compio's driver hosts no app:
/// asked for, the app runs on the [`DriverChoice::Auto`] driver.
pub fn spawn_with_app(config: ShardConfig, app: Box<dyn ShardApp>) -> io::Result<ShardHandle> {
    let driver = match config.driver {
        DriverChoice::Compio => DriverChoice::Auto,
        d => d,
    };
    spawn_inner(ShardConfig { driver, ..config }, Some(app))
}

/// The driver a choice runs here: io_uring where the kernel gives it, epoll otherwise.
pub fn resolve(choice: DriverChoice) -> DriverKind {
    let fallback = |e: io::Error| {
        tracing::warn!(error = %e, "io_uring unavailable; media shard falls back to epoll");
        DriverKind::Epoll
    };
    match choice {
        DriverChoice::Epoll => DriverKind::Epoll,
        DriverChoice::Uring | DriverChoice::Auto => uring::probe().map_or_else(fallback, |()| DriverKind::Uring),
        DriverChoice::Compio => compio::probe().map_or_else(fallback, |()| DriverKind::Compio),
    }
}

fn spawn_inner(config: ShardConfig, app: Option<Box<dyn ShardApp>>) -> io::Result<ShardHandle> {
    let kind = resolve(config.driver);
    let (control_tx, control_rx) = crossbeam_channel::bounded(MAX_CONTROLS);
    let (report_tx, report_rx) = crossbeam_channel::bounded(MAX_REPORTS);
    let (wake_tx, wake_rx) = std::sync::mpsc::sync_channel::<io::Result<Wake>>(1);
    let name = format!("media-shard-{}", config.index);
    let core = config.core;
    let index = config.index;
    let thread = std::thread::Builder::new().name(name).spawn(move || {
        if let Some(core) = core {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                tracing::warn!(core, "could not pin media shard");
            }
        }
        match kind {
            DriverKind::Epoll => epoll::run(index, control_rx, report_tx, wake_tx, app),
            DriverKind::Uring => uring::run(index, control_rx, report_tx, wake_tx, app),
            DriverKind::Compio => compio::run(index, control_rx, report_tx, wake_tx, app),
        }
    })?;
    let wake = match wake_rx.recv() {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            let _ = thread.join();
            return Err(io::Error::other("shard thread exited during start-up"));
        }
    };
    Ok(ShardHandle { control: control_tx, reports: report_rx, wake, driver: kind, thread: Some(thread) })
}
