//! kakeru's media shard as the relay under test: one shard, N bridged calls, two sockets each.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ::media::{CallConfig, Codec, LegConfig, RecordingId, SocketId};
use anyhow::{bail, Context};
use media_driver::shard::{CallId, Control, Report, ShardStats};
use media_driver::{self as driver, DriverChoice, DriverKind, ShardConfig, ShardHandle};

use super::generator::{CallPorts, Sides};

/// A running shard with its calls.
pub struct Relay {
    shard: ShardHandle,
    recordings: Option<tempfile::TempDir>,
}

/// A PCMU leg of call `i` (the customer's, or the agent's) with its own SSRC, sequence and timestamp.
pub(crate) fn leg(socket: SocketId, remote: SocketAddr, i: usize, customer: bool) -> Box<LegConfig> {
    let salt = if customer { 0xC000_0000 } else { 0xA000_0000 };
    Box::new(LegConfig {
        rtp_socket: socket,
        rtcp_socket: None,
        remote_rtp: remote,
        remote_rtcp: None,
        codec: Codec::Pcmu,
        telephone_event_pt: Some(101),
        ssrc: salt | i as u32,
        initial_seq: (i as u16).wrapping_mul(7919),
        initial_timestamp: (i as u32).wrapping_mul(104_729),
        inband_dtmf: false,
    })
}

pub(crate) fn send(shard: &ShardHandle, control: Control) -> anyhow::Result<()> {
    // The control queue is bounded: wait for the shard to catch up rather than fail set-up.
    shard.send_timeout(control, Duration::from_secs(30)).map_err(|e| anyhow::anyhow!("shard refused set-up: {e}"))
}

fn send_all(shard: &ShardHandle, controls: Vec<Control>) -> anyhow::Result<()> {
    for c in controls {
        send(shard, c)?;
    }
    Ok(())
}

impl Relay {
    /// Start a shard on `core`, bind two sockets per call and bridge each call between the
    /// generator's A and B addresses; with `record`, every call records to a temporary file.
    pub fn start(
        sides: &Sides,
        calls: usize,
        driver: DriverChoice,
        core: Option<usize>,
        record: bool,
    ) -> anyhow::Result<(Relay, Vec<CallPorts>)> {
        let shard =
            driver::spawn(ShardConfig { index: 0, core, driver, webrtc_tcp: None }).context("start media shard")?;
        let recordings = if record { Some(tempfile::tempdir().context("recording dir")?) } else { None };
        let mut ports = Vec::with_capacity(calls);
        let now = Instant::now();
        for i in 0..calls {
            let a = UdpSocket::bind("127.0.0.1:0").context("bind relay socket")?;
            let b = UdpSocket::bind("127.0.0.1:0").context("bind relay socket")?;
            ports.push(CallPorts { a: a.local_addr()?, b: b.local_addr()? });
            let (sa, sb) = (SocketId(2 * i as u32), SocketId(2 * i as u32 + 1));
            let call = CallId(i as u64);
            let mut msgs = vec![
                Control::AddSocket { id: sa, socket: a },
                Control::AddSocket { id: sb, socket: b },
                Control::AddCall { call, config: Box::new(CallConfig::new(now, 0)) },
                Control::SetAgent { call, leg: leg(sb, sides.b_addr(i), i, false) },
                Control::SetCustomer { call, leg: leg(sa, sides.a_addr(i), i, true) },
            ];
            if let Some(dir) = &recordings {
                let path: PathBuf = dir.path().join(format!("{i}.wav"));
                msgs.push(Control::StartRecording { call, id: RecordingId(i as u64), path, codec: Codec::Pcmu });
            }
            // Keep the queue from filling: wait for the shard every 500 calls.
            send_all(&shard, msgs)?;
            if i % 500 == 499 {
                barrier(&shard, i as u64)?;
            }
        }
        barrier(&shard, u64::MAX - 1)?;
        Ok((Relay { shard, recordings }, ports))
    }

    pub fn driver(&self) -> DriverKind {
        self.shard.driver()
    }

    /// CPU time the shard's thread has used so far.
    pub fn cpu(&self) -> std::time::Duration {
        shard_cpu()
    }

    /// Stop the shard; returns its counters and the bytes recorded.
    pub fn stop(self) -> anyhow::Result<(ShardStats, u64)> {
        let stats = self.shard.shutdown().context("stop shard")?;
        let bytes = match &self.recordings {
            Some(dir) => std::fs::read_dir(dir.path())?.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum(),
            None => 0,
        };
        Ok((stats, bytes))
    }
}

/// Waits until the shard has applied every control sent before (a set-up refused fails).
pub(crate) fn barrier(shard: &ShardHandle, token: u64) -> anyhow::Result<()> {
    send(shard, Control::Ping { token })?;
    loop {
        match shard.reports().recv_timeout(Duration::from_secs(30)) {
            Ok(Report::Pong { token: t }) if t == token => return Ok(()),
            Ok(Report::Refused { call, reason }) => bail!("shard refused set-up of {call:?}: {reason}"),
            Ok(Report::SocketError { id, error }) => bail!("shard socket {id:?}: {error}"),
            Ok(_) => {}
            Err(_) => bail!("shard did not answer within 30 s"),
        }
    }
}

/// CPU time the thread of shard 0 of this process has used so far.
pub(crate) fn shard_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Duration::ZERO };
    tasks
        .filter_map(|t| t.ok())
        .find(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "media-shard-0"))
        .map_or(Duration::ZERO, |t| super::cpu_of(&t.path().join("stat")))
}
