//! The media plane's shards and their I/O drivers: a [`shard::Shard`] holds the calls of the
//! sans-IO core (`media`) placed on it, and a driver runs it on one OS thread per shard, pinned to
//! its core, owning the shard's sockets, recording files and clock.
//!
//! Three drivers run the same [`shard::Shard`]:
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
//! A shard given [`ShardConfig::webrtc_tcp`] also listens on TCP for the browser phones' TCP
//! candidate: a small thread of the driver's (`tcp`) owns the listener and its connections and
//! trades RFC 4571 frames with the shard's loop over bounded channels.
//!
//! The control plane reaches a shard only through its [`ShardHandle`]: bounded crossbeam
//! channels of [`Input`]s in (a [`Control`] for the calls, or a message of the hosted app's own
//! type) and [`Report`]s out, plus a wake-up of the driver's event loop.

mod compio;
mod epoll;
pub mod meter;
pub mod ring;
pub mod shard;
pub mod tcp;
mod uring;
pub mod webrtc;

use std::io;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::shard::{Control, Input, NoApp, Report, ShardApp, ShardStats, MAX_CONTROLS, MAX_REPORTS};

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
    /// Where the browser phones' TCP listener binds (port 0: any free port): each WebRTC leg then
    /// offers a passive TCP host candidate on its port (`tcp`). `None`: UDP candidates only. The
    /// compio driver has none.
    pub webrtc_tcp: Option<std::net::SocketAddr>,
}

/// Wakes a driver's event loop from another thread.
pub(crate) type Wake = Arc<dyn Fn() + Send + Sync>;

/// The control plane's end of a running shard; `M` is its app's message type
/// ([`ShardApp::Message`]).
pub struct ShardHandle<M: Send + 'static = std::convert::Infallible> {
    input: Sender<Input<M>>,
    reports: Receiver<Report>,
    wake: Wake,
    driver: DriverKind,
    thread: Option<JoinHandle<io::Result<ShardStats>>>,
}

/// Why an input was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the shard's control queue is full")]
    Full,
    #[error("the shard has stopped")]
    Stopped,
}

impl<M: Send + 'static> ShardHandle<M> {
    /// Queue an input (a [`Control`], or `Input::App(message)`) and wake the shard. Never blocks:
    /// a full queue is an error, and the input is dropped.
    pub fn try_send(&self, input: impl Into<Input<M>>) -> Result<(), SendError> {
        let r = match self.input.try_send(input.into()) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(SendError::Full),
            Err(TrySendError::Disconnected(_)) => Err(SendError::Stopped),
        };
        (self.wake)();
        r
    }

    /// Queue an input, waiting up to `timeout` for room: for synchronous set-up of many calls
    /// (the benches' threads). Blocks the calling thread: never from async code or a shard.
    pub fn send_timeout(&self, input: impl Into<Input<M>>, timeout: std::time::Duration) -> Result<(), SendError> {
        use crossbeam_channel::SendTimeoutError;
        (self.wake)();
        let r = match self.input.send_timeout(input.into(), timeout) {
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
        let _ = self.try_send(Control::Shutdown);
        self.join()
    }

    fn join(&mut self) -> io::Result<ShardStats> {
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| io::Error::other("shard thread panicked"))?,
            None => Ok(ShardStats::default()),
        }
    }
}

impl<M: Send + 'static> Drop for ShardHandle<M> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.input.try_send(Input::Control(Control::Shutdown));
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
    let kind = resolve(config.driver);
    let tcp = config.webrtc_tcp;
    if tcp.is_some() && kind == DriverKind::Compio {
        tracing::warn!("the compio driver has no TCP listener: the browser phones get UDP candidates only");
    }
    spawn_thread(config, kind, move |index, input, reports, wake| match kind {
        DriverKind::Epoll => epoll::run(index, input, reports, wake, tcp, None::<NoApp>),
        DriverKind::Uring => uring::run(index, input, reports, wake, tcp, None::<NoApp>),
        DriverKind::Compio => compio::run(index, input, reports, wake),
    })
}

/// Start a shard hosting `app` (see [`crate::shard::ShardApp`]). compio's driver hosts no app:
/// asked for, the app runs on the [`DriverChoice::Auto`] driver.
pub fn spawn_with_app<A: ShardApp>(config: ShardConfig, app: A) -> io::Result<ShardHandle<A::Message>> {
    let kind = match resolve(config.driver) {
        DriverKind::Compio => resolve(DriverChoice::Auto),
        k => k,
    };
    let tcp = config.webrtc_tcp;
    spawn_thread(config, kind, move |index, input, reports, wake| match kind {
        DriverKind::Uring => uring::run(index, input, reports, wake, tcp, Some(app)),
        DriverKind::Epoll | DriverKind::Compio => epoll::run(index, input, reports, wake, tcp, Some(app)),
    })
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

/// Runs `run` (a driver's loop: its index, its input and report channels, and where to say that it
/// started, with its wake-up, or failed) on the shard's thread, pinned to its core.
fn spawn_thread<M: Send + 'static>(
    config: ShardConfig,
    kind: DriverKind,
    run: impl FnOnce(usize, Receiver<Input<M>>, Sender<Report>, SyncSender<io::Result<Wake>>) -> io::Result<ShardStats>
        + Send
        + 'static,
) -> io::Result<ShardHandle<M>> {
    let (input_tx, input_rx) = crossbeam_channel::bounded(MAX_CONTROLS);
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
        run(index, input_rx, report_tx, wake_tx)
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
    Ok(ShardHandle { input: input_tx, reports: report_rx, wake, driver: kind, thread: Some(thread) })
}
