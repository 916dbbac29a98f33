//! A real softphone as the agent's phone: Debian's baresip (installed by scripts/services.sh), with
//! a configuration written into a temporary directory (nothing in $HOME), a WAV tone as its
//! microphone and auto-answer, driven through its ctrl_tcp interface (JSON in netstrings).
//!
//! End to end with no shim, on SQLite and PostgreSQL: digest REGISTER (MD5, the account's default), the dialer's nailed-up
//! INVITE auto-answered, a customer of the sim carrier bridged to it, RTP both ways, the recording
//! holding baresip's tone on the agent channel, the result keyed on baresip (RFC 4733), baresip
//! hanging up, a restart (killed, then started on another port: one binding, the new one called),
//! and quitting (an un-register that really removes the binding).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::floor::{backends, result_entry_spec, talking_carrier, Floor};

/// The tone baresip sends as its microphone.
const TONE_HZ: f64 = 1_000.0;

/// A SIP port for baresip: free on loopback for UDP and TCP, and the next one for TCP (baresip
/// listens on all three: UDP, TCP, and TLS one port up; 1.0 has no setting to leave them out).
fn free_sip_port() -> u16 {
    loop {
        let udp = StdUdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if port < 65_000
            && std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
            && std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok()
        {
            return port;
        }
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind").local_addr().expect("addr").port()
}

/// A 16-bit 8 kHz mono WAV of `seconds` of a sine at `hz`.
fn write_tone(path: &Path, hz: f64, seconds: u32) {
    let n = 8_000 * seconds;
    let mut b = Vec::with_capacity(44 + 2 * n as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&8_000u32.to_le_bytes());
    b.extend_from_slice(&16_000u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(2 * n).to_le_bytes());
    for i in 0..n {
        let s = (8_000.0 * (2.0 * std::f64::consts::PI * hz * f64::from(i) / 8_000.0).sin()) as i16;
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).expect("write the tone");
}

/// Relative power of `hz` in `samples` (Goertzel), per sample.
fn power_at(samples: &[i16], hz: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * hz / 8_000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - k * s1 * s2) / (samples.len().max(1) as f64).powi(2)
}

/// One baresip process with its own configuration directory.
struct Baresip {
    child: Child,
    ctrl: TcpStream,
    buf: Vec<u8>,
    /// Events seen (type, whole JSON), in order.
    events: Vec<(String, Value)>,
    sip_port: u16,
    log: PathBuf,
}

impl Baresip {
    /// Writes `dir/config` and `dir/accounts` for an agent's account and starts baresip on a free
    /// SIP port. The uuid file (the +sip.instance) stays in `dir` across restarts.
    async fn start(dir: &Path, account: &sim::phone::PhoneAccount, registrar: SocketAddr, run: u32) -> Baresip {
        let tone = dir.join("tone.wav");
        if !tone.exists() {
            write_tone(&tone, TONE_HZ, 120);
        }
        // sipnat=outbound: RFC 5626 +sip.instance and reg-id on the Contact.
        let accounts = format!(
            "<sip:{}@{}>;auth_pass={};outbound=\"sip:{registrar}\";sipnat=outbound;answermode=auto;regint=60;audio_codecs=PCMU,PCMA\n",
            account.username, account.domain, account.password
        );
        std::fs::write(dir.join("accounts"), accounts).expect("baresip accounts");
        let log = dir.join(format!("baresip-{run}.log"));
        // A port found free may be taken before baresip binds it (by another test): then again.
        for _ in 0..3 {
            let sip_port = free_sip_port();
            let ctrl_port = free_tcp_port();
            let rtp = free_sip_port().min(60_000);
            let config = format!(
                "poll_method epoll\n\
                 net_interface 127.0.0.1\n\
                 sip_listen 127.0.0.1:{sip_port}\n\
                 sip_trans_def udp\n\
                 audio_player aubridge,none\n\
                 audio_source aufile,{tone}\n\
                 audio_alert aubridge,none\n\
                 rtp_ports {rtp}-{}\n\
                 module_path /usr/lib/baresip/modules\n\
                 module g711.so\n\
                 module aufile.so\n\
                 module aubridge.so\n\
                 module uuid.so\n\
                 module sndfile.so\n\
                 snd_path {snd}\n\
                 module_app account.so\n\
                 module_app menu.so\n\
                 module_app ctrl_tcp.so\n\
                 ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n",
                rtp + 40,
                tone = tone.display(),
                snd = dir.display()
            );
            std::fs::write(dir.join("config"), config).expect("baresip config");
            let out = std::fs::File::create(&log).expect("log file");
            let mut child = Command::new("baresip")
                .args(["-f", &dir.display().to_string()])
                .env("HOME", dir)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log handle"))
                .stderr(out)
                .spawn()
                .expect("baresip is installed (scripts/services.sh installs Debian's baresip)");
            for _ in 0..100 {
                if let Ok(ctrl) = TcpStream::connect((Ipv4Addr::LOCALHOST, ctrl_port)).await {
                    return Baresip { child, ctrl, buf: Vec::new(), events: Vec::new(), sip_port, log };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = child.kill();
            let _ = child.wait();
            assert!(said.contains("Address already in use"), "baresip did not start: {said}");
        }
        panic!("baresip found no free port three times: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The next netstring's JSON, waiting at most `limit`.
    async fn read(&mut self, limit: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(colon) = self.buf.iter().position(|b| *b == b':') {
                let len: usize = std::str::from_utf8(&self.buf[..colon]).ok()?.parse().ok()?;
                if self.buf.len() > colon + len {
                    let body = self.buf[colon + 1..colon + 1 + len].to_vec();
                    self.buf.drain(..colon + 2 + len);
                    return serde_json::from_slice(&body).ok();
                }
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.ctrl.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Runs a command; its response's data.
    async fn command(&mut self, command: &str, params: Option<&str>) -> String {
        let mut m = serde_json::json!({"command": command, "token": command});
        if let Some(p) = params {
            m["params"] = Value::from(p);
        }
        let body = m.to_string();
        let framed = format!("{}:{body},", body.len());
        self.ctrl.write_all(framed.as_bytes()).await.expect("ctrl_tcp write");
        loop {
            let v = self
                .read(Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("no answer to {command}: {}", self.log()));
            if v["response"] == Value::Bool(true) {
                return v["data"].as_str().unwrap_or_default().to_string();
            }
            self.keep(v);
        }
    }

    fn keep(&mut self, v: Value) {
        if v["event"] == Value::Bool(true) {
            let t = v["type"].as_str().unwrap_or_default().to_string();
            self.events.push((t, v));
        }
    }

    /// Waits for an event of type `kind` (seen before or arriving within `limit`).
    async fn event(&mut self, kind: &str, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(i) = self.events.iter().position(|(t, _)| t == kind) {
                return self.events.remove(i).1;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Some(v) => self.keep(v),
                None => panic!("no {kind} from baresip within {limit:?}: {:?}\n{}", self.events, self.log()),
            }
        }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Quits (un-registering first) and waits for the process to end.
    async fn quit(mut self) -> String {
        let _ = self.command("quit", None).await;
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return self.log();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = self.log();
        self.kill();
        panic!("baresip did not quit: {log}");
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// [`until`], saying what baresip logged when it times out.
async fn wait<F, Fut>(log: &Path, what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !f().await {
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "timed out after {limit:?} waiting for {what}; baresip said:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The samples of a 16-bit WAV file (its `data` chunk).
fn wav_samples(path: &Path) -> Vec<i16> {
    let b = std::fs::read(path).expect("a WAV file");
    let at = b.windows(4).position(|w| w == b"data").expect("a data chunk") + 8;
    b[at..].chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect()
}

/// The bindings our registrar lists for `account` (an authenticated REGISTER without a Contact).
async fn bindings(registrar: SocketAddr, account: &sim::phone::PhoneAccount) -> Vec<String> {
    let sock = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
    let call_id = format!("query-{}", sock.local_addr().expect("addr").port());
    let mut query = crate::digest::register_request(account, &sock, &call_id, 1);
    query.headers.remove("Contact");
    let challenge = crate::digest::exchange(&sock, registrar, &query).await;
    let creds = sip::auth::Credentials { username: account.username.clone(), password: account.password.clone() };
    let again = sip::auth::authorize(&query, &challenge, &creds, "c0ffee").expect("usable");
    let r = crate::digest::exchange(&sock, registrar, &again).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.headers.get_list("Contact").into_iter().map(str::to_string).collect()
}

async fn registration(floor: &Floor) -> Option<(String, i64)> {
    store::sqlx::query("SELECT contact, expires_at FROM sip_registrations WHERE tenant_id = $1")
        .bind(floor.tenant as i64)
        .fetch_optional(&floor.db.pool)
        .await
        .expect("registrations")
        .map(|r| {
            use store::sqlx::Row;
            (r.try_get("contact").expect("contact"), r.try_get("expires_at").expect("expires_at"))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_as_the_agents_phone_end_to_end() {
    if Command::new("baresip").arg("-h").output().is_err() {
        panic!("baresip is not installed: run scripts/services.sh (it installs Debian's baresip)");
    }
    for backend in backends() {
        let (stop_tx, stop) = watch::channel(false);
        // The customer answers, talks three seconds and hangs up.
        let carrier = talking_carrier(None, stop.clone()).await;
        let spec = result_entry_spec();
        let floor = Floor::start(backend, &spec, carrier.sip_addr).await;
        let registrar = floor.info.sip_addrs[0];
        let account = floor.phone_accounts().remove(0);
        let dir = tempfile::tempdir().expect("baresip's directory");

        // baresip waits long after a refused REGISTER: start it once the shard knows the accounts.
        let probe = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        crate::digest::until_challenged(&probe, registrar, &account).await;
        // Registers with digest (MD5, the account's default); its own 60 s, the Contact's URI alone.
        let mut phone = Baresip::start(dir.path(), &account, registrar, 1).await;
        let first_port = phone.sip_port;
        wait(&phone.log, "baresip registered", Duration::from_secs(10), || async {
            registration(&floor).await.is_some()
        })
        .await;
        let (contact, expires_at) = registration(&floor).await.expect("registered");
        assert!(
            contact.starts_with(&format!("sip:{}-", account.username))
                && contact.ends_with(&format!("@127.0.0.1:{first_port}")),
            "the Contact's URI, without its parameters: {contact}"
        );
        let left = expires_at - store::now_ms();
        assert!((50_000..=60_000).contains(&left), "baresip's 60 s, not an hour: {left} ms");

        // The nailed-up leg: auto-answered; a customer bridged; the result keyed on the phone.
        floor.log_in_agents(Some(120_000)).await;
        phone.event("CALL_ESTABLISHED", Duration::from_secs(10)).await;
        wait(&phone.log, "the agent ready", Duration::from_secs(10), || async { floor.agents_in("ready").await == 1 })
            .await;
        floor.start_job().await;
        let mut in_acw = false;
        for _ in 0..400 {
            if floor.agents_in("wrap_up").await == 1 {
                in_acw = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !in_acw {
            let calls: Vec<(i64, Option<String>)> =
                store::sqlx::query_as("SELECT id, result FROM call_records WHERE tenant_id = $1")
                    .bind(floor.tenant as i64)
                    .fetch_all(&floor.db.pool)
                    .await
                    .expect("call records");
            panic!(
                "the customer's call did not end in ACW within 20 s on {backend:?}: agent {:?}, job {}, calls {calls:?}, carrier {:?}\n{}",
                floor.agent_view(floor.agents[0]).await,
                floor.job_status().await,
                carrier.stats(),
                phone.log()
            );
        }
        // One digit a command: baresip ends each with its key release (RFC 4733 end packets).
        for key in ["2", "#"] {
            phone.command("sndcode", Some(key)).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        wait(&phone.log, "the keyed result saved", Duration::from_secs(10), || async {
            floor.scalar("SELECT COUNT(*) FROM wrapup_records WHERE tenant_id = $1 AND saved = 1").await == 1
        })
        .await;
        assert_eq!(floor.leads().await[0].2.as_deref(), Some("2"), "the lead has result 2");

        // The recording holds baresip's tone on the agent channel.
        let (customer, agent) = floor.the_recording().await;
        assert!(agent.len() >= 2 * 8_000, "two seconds and more: {}", agent.len());
        let (tone, off) = (power_at(&agent, TONE_HZ), power_at(&agent, 1_700.0));
        eprintln!(
            "agent channel: {TONE_HZ} Hz {tone:.0}, 1,700 Hz {off:.0}; customer {:.0}",
            power_at(&customer, TONE_HZ)
        );
        assert!(
            tone > 1e5 && tone > 100.0 * off,
            "the agent channel holds the {TONE_HZ} Hz tone: {tone:.0} vs {off:.0}"
        );
        assert!(power_at(&customer, TONE_HZ) < tone / 100.0, "and the customer channel does not");

        // baresip hangs up: the agent's leg is down.
        phone.command("hangup", None).await;
        phone.event("CALL_CLOSED", Duration::from_secs(5)).await;
        wait(&phone.log, "the agent unknown (no phone)", Duration::from_secs(10), || async {
            floor.agents_in("unknown").await == 1
        })
        .await;

        // What baresip heard: kakeru's hold audio (392 Hz) before the customer, the beep (880 Hz).
        let heard = std::fs::read_dir(dir.path())
            .expect("baresip's directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .expect("baresip's dump of what it decoded");
        let heard = wav_samples(&heard);
        let (hold, beep, none) = (power_at(&heard, 392.0), power_at(&heard, 880.0), power_at(&heard, 1_700.0));
        eprintln!("baresip heard: 392 Hz {hold:.0}, 880 Hz {beep:.0}, 1,700 Hz {none:.0}");
        assert!(
            hold > 1e3 && beep > 1e3 && hold > 100.0 * none && beep > 100.0 * none,
            "RTP reached baresip: 392 Hz {hold:.0}, 880 Hz {beep:.0}, 1,700 Hz {none:.0}"
        );

        // Killed (no un-register) and started again on another port with the same instance id: one
        // binding, the new one, which the next nailed-up leg goes to.
        phone.kill();
        let mut phone = Baresip::start(dir.path(), &account, registrar, 2).await;
        let second_port = phone.sip_port;
        assert_ne!(second_port, first_port);
        wait(&phone.log, "the restarted baresip registered", Duration::from_secs(10), || async {
            registration(&floor).await.is_some_and(|(c, _)| c.ends_with(&format!(":{second_port}")))
        })
        .await;
        let listed = bindings(registrar, &account).await;
        assert_eq!(listed.len(), 1, "one binding after the restart, not two: {listed:?}");
        assert!(listed[0].contains(&format!("@127.0.0.1:{second_port}>")), "{listed:?}");
        floor.log_in_agents(Some(120_000)).await;
        phone.event("CALL_ESTABLISHED", Duration::from_secs(10)).await;
        wait(&phone.log, "the agent ready on the restarted phone", Duration::from_secs(10), || async {
            floor.agents_in("ready").await == 1
        })
        .await;

        // Quitting un-registers: the binding is really gone.
        let log_path = phone.log.clone();
        let log = phone.quit().await;
        wait(&log_path, "the registration removed", Duration::from_secs(10), || async {
            registration(&floor).await.is_none()
        })
        .await;
        assert!(bindings(registrar, &account).await.is_empty(), "no binding left: {log}");
        wait(&log_path, "the agent unknown again", Duration::from_secs(10), || async {
            floor.agents_in("unknown").await == 1
        })
        .await;
        floor.stop().await;
        let _ = stop_tx.send(true);
    }
}
