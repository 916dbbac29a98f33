//! Debian's rtpengine as the comparison relay, driven over its NG control protocol.
//!
//! The daemon is started here on loopback with userspace forwarding only (`--table=-1`: no
//! kernel module), one worker thread, pinned to the shard's core with `taskset`, and killed
//! at the end. Each call is an `offer` (A's SDP, `ICE=remove`) and an `answer` (B's SDP); the
//! ports rtpengine puts in the returned SDPs are where each side sends.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use super::generator::{CallPorts, Sides};

/// A bencode value (the NG protocol's encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bencode {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Bencode>),
    Dict(BTreeMap<Vec<u8>, Bencode>),
}

impl Bencode {
    pub fn str(s: &str) -> Bencode {
        Bencode::Bytes(s.as_bytes().to_vec())
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Bencode::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Bencode::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Bencode::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.encode(out));
                out.push(b'e');
            }
            Bencode::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Bencode::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decode one value from the front of `input`; returns it and the rest.
    pub fn decode(input: &[u8]) -> anyhow::Result<(Bencode, &[u8])> {
        let first = *input.first().ok_or_else(|| anyhow!("bencode: empty input"))?;
        match first {
            b'i' => {
                let end = input.iter().position(|&c| c == b'e').ok_or_else(|| anyhow!("bencode: open int"))?;
                let i = std::str::from_utf8(&input[1..end])?.parse()?;
                Ok((Bencode::Int(i), &input[end + 1..]))
            }
            b'l' => {
                let mut rest = &input[1..];
                let mut items = Vec::new();
                while rest.first() != Some(&b'e') {
                    let (v, r) = Bencode::decode(rest)?;
                    items.push(v);
                    rest = r;
                }
                Ok((Bencode::List(items), &rest[1..]))
            }
            b'd' => {
                let mut rest = &input[1..];
                let mut map = BTreeMap::new();
                while rest.first() != Some(&b'e') {
                    let (k, r) = Bencode::decode(rest)?;
                    let Bencode::Bytes(k) = k else { bail!("bencode: dict key is not a string") };
                    let (v, r) = Bencode::decode(r)?;
                    map.insert(k, v);
                    rest = r;
                }
                Ok((Bencode::Dict(map), &rest[1..]))
            }
            b'0'..=b'9' => {
                let colon = input.iter().position(|&c| c == b':').ok_or_else(|| anyhow!("bencode: no colon"))?;
                let len: usize = std::str::from_utf8(&input[..colon])?.parse()?;
                let body = input.get(colon + 1..colon + 1 + len).ok_or_else(|| anyhow!("bencode: short string"))?;
                Ok((Bencode::Bytes(body.to_vec()), &input[colon + 1 + len..]))
            }
            c => bail!("bencode: unexpected byte {c:#x}"),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Bencode> {
        match self {
            Bencode::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Bencode::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

fn dict(pairs: &[(&str, Bencode)]) -> Bencode {
    Bencode::Dict(pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.clone())).collect())
}

/// An NG client over UDP.
pub struct Ng {
    socket: UdpSocket,
    server: SocketAddr,
    cookie: u64,
}

impl Ng {
    pub fn new(server: SocketAddr) -> anyhow::Result<Ng> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(Ng { socket, server, cookie: 0 })
    }

    /// Send one command and wait for its reply (3 tries); `result` must be `ok`.
    pub fn command(&mut self, msg: &Bencode) -> anyhow::Result<Bencode> {
        self.cookie += 1;
        let cookie = format!("kk{}", self.cookie);
        let mut out = format!("{cookie} ").into_bytes();
        msg.encode(&mut out);
        let mut buf = vec![0u8; 65536];
        for _ in 0..3 {
            self.socket.send_to(&out, self.server)?;
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                let Ok((n, _)) = self.socket.recv_from(&mut buf) else { break };
                let reply = &buf[..n];
                let Some(space) = reply.iter().position(|&c| c == b' ') else { continue };
                if &reply[..space] != cookie.as_bytes() {
                    continue;
                }
                let (v, _) = Bencode::decode(&reply[space + 1..])?;
                return match v.get("result").and_then(Bencode::as_str) {
                    Some("ok") | Some("pong") => Ok(v),
                    other => bail!("rtpengine: {other:?}: {:?}", v.get("error-reason").and_then(Bencode::as_str)),
                };
            }
        }
        bail!("rtpengine did not answer the NG command")
    }
}

fn sdp(port: u16, session: usize) -> String {
    format!(
        "v=0\r\no=- {session} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
}

/// The address an SDP body puts its first audio stream at.
pub fn sdp_audio(sdp: &str) -> anyhow::Result<SocketAddr> {
    let ip =
        sdp.lines().find_map(|l| l.trim().strip_prefix("c=IN IP4 ")).ok_or_else(|| anyhow!("SDP without c= line"))?;
    let port: u16 = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .and_then(|r| r.split_whitespace().next())
        .ok_or_else(|| anyhow!("SDP without m=audio"))?
        .parse()?;
    Ok(SocketAddr::new(ip.trim().parse()?, port))
}

/// A running rtpengine with N calls.
pub struct Relay {
    child: Child,
    ng: Ng,
    calls: usize,
}

impl Relay {
    /// CPU time the daemon (all its threads) has used so far.
    pub fn cpu(&self) -> std::time::Duration {
        super::cpu_of(std::path::Path::new(&format!("/proc/{}/stat", self.child.id())))
    }

    pub fn start(
        sides: &Sides,
        calls: usize,
        core: Option<usize>,
        bin: &str,
    ) -> anyhow::Result<(Relay, Vec<CallPorts>)> {
        let ng_port = {
            let probe = UdpSocket::bind("127.0.0.1:0")?;
            probe.local_addr()?.port()
        };
        let mut cmd = match core {
            Some(c) => {
                let mut t = Command::new("taskset");
                t.args(["-c", &c.to_string(), bin]);
                t
            }
            None => Command::new(bin),
        };
        cmd.args([
            "--foreground",
            "--log-stderr",
            "--log-level=3",
            "--interface=127.0.0.1",
            &format!("--listen-ng=127.0.0.1:{ng_port}"),
            "--port-min=20000",
            "--port-max=59999",
            "--table=-1",
            "--num-threads=1",
            "--media-num-threads=1",
            "--timeout=120",
            "--delete-delay=0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        let child = cmd.spawn().with_context(|| format!("start {bin} (apt-get install rtpengine-daemon)"))?;
        let mut relay = Relay { child, ng: Ng::new(SocketAddr::from(([127, 0, 0, 1], ng_port)))?, calls: 0 };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match relay.ng.command(&dict(&[("command", Bencode::str("ping"))])) {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => return Err(e.context("rtpengine did not come up")),
                Err(_) => {
                    if let Some(status) = relay.child.try_wait()? {
                        bail!("rtpengine exited at start-up: {status}");
                    }
                }
            }
        }
        let mut ports = Vec::with_capacity(calls);
        for i in 0..calls {
            let call_id = Bencode::str(&format!("bench-{i}"));
            let offer = relay.ng.command(&dict(&[
                ("command", Bencode::str("offer")),
                ("call-id", call_id.clone()),
                ("from-tag", Bencode::str(&format!("a{i}"))),
                ("sdp", Bencode::str(&sdp(sides.a_addr(i).port(), i))),
                ("ICE", Bencode::str("remove")),
                ("direction", Bencode::List(vec![Bencode::str("internal"), Bencode::str("internal")])),
            ]))?;
            let b = sdp_audio(offer.get("sdp").and_then(Bencode::as_str).ok_or_else(|| anyhow!("offer: no sdp"))?)?;
            let answer = relay.ng.command(&dict(&[
                ("command", Bencode::str("answer")),
                ("call-id", call_id),
                ("from-tag", Bencode::str(&format!("a{i}"))),
                ("to-tag", Bencode::str(&format!("b{i}"))),
                ("sdp", Bencode::str(&sdp(sides.b_addr(i).port(), i))),
                ("ICE", Bencode::str("remove")),
            ]))?;
            let a = sdp_audio(answer.get("sdp").and_then(Bencode::as_str).ok_or_else(|| anyhow!("answer: no sdp"))?)?;
            ports.push(CallPorts { a, b });
            relay.calls += 1;
        }
        Ok((relay, ports))
    }

    /// Delete the calls (best effort) and stop the daemon.
    pub fn stop(mut self) -> anyhow::Result<()> {
        for i in 0..self.calls.min(50) {
            let _ = self.ng.command(&dict(&[
                ("command", Bencode::str("delete")),
                ("call-id", Bencode::str(&format!("bench-{i}"))),
            ]));
        }
        Ok(())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bencode_round_trips_an_ng_reply() {
        let v = dict(&[("result", Bencode::str("ok")), ("n", Bencode::Int(-3)), ("l", Bencode::List(vec![]))]);
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, b"d1:lle1:ni-3e6:result2:oke");
        let (back, rest) = Bencode::decode(&out).expect("decodes");
        assert_eq!((back, rest.len()), (v, 0));
    }

    #[test]
    fn sdp_audio_reads_c_and_m_lines() {
        let a = sdp_audio(&sdp(30000, 1)).expect("parses");
        assert_eq!(a, "127.0.0.1:30000".parse().expect("literal"));
    }
}
