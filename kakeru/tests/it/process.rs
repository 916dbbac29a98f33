//! A `kakeru` role process started for a test, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running role. Its stdout and stderr lines are collected; `wait_line` waits for one.
pub struct Role {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    database_url: String,
    _dir: tempfile::TempDir,
    /// Printed with the last lines of output when the test fails.
    label: Option<String>,
}

impl Role {
    /// `kakeru ARGS` with `DATABASE_URL` on a fresh SQLite file in a temporary directory.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Role {
        Role::start_in(None, args, env)
    }

    /// [`Role::start`] inside the network namespace `netns` (`ip netns exec`, which execs the
    /// binary: the child's pid is the role's).
    pub fn start_in(netns: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Role {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_kakeru")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_kakeru")),
        };
        let database_url = env
            .iter()
            .find(|(k, _)| *k == "DATABASE_URL")
            .map(|(_, v)| (*v).to_owned())
            .unwrap_or_else(|| format!("sqlite:{}/kakeru.db", dir.path().display()));
        cmd.args(args)
            .current_dir(dir.path())
            .env("DATABASE_URL", &database_url)
            .env("RUST_LOG", "warn")
            // The embedded default unless a test passes a bus: REDIS_URL of the test runner does not leak in.
            .env_remove("REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn kakeru");
        let (tx, lines) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Role { child, lines, seen: Vec::new(), database_url, _dir: dir, label: None }
    }

    /// The database the role runs on.
    pub fn database_url(&self) -> String {
        self.database_url.clone()
    }

    /// The first line (already seen or still to come, within 120 s) containing `needle`. (60 s
    /// once ran out for a `kakeru control` in the fault test's network namespace that had printed
    /// nothing yet, under the whole suite's load; alone it serves in a few seconds.)
    pub fn wait_line(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; output so far:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The `http://host:port` that follows `needle` in the first line containing it.
    pub fn url_after(&mut self, needle: &str) -> String {
        let line = self.wait_line(needle);
        let rest = &line[line.find(needle).expect("needle") + needle.len()..];
        let start = rest.find("http://").unwrap_or_else(|| panic!("no URL in {line:?}"));
        let url: String = rest[start..].chars().take_while(|c| !c.is_whitespace()).collect();
        url.trim_end_matches("/metrics").trim_end_matches('/').to_string()
    }
}

impl Role {
    /// The process id (for signals).
    pub fn child_id(&self) -> u32 {
        self.child.id()
    }

    /// Ctrl-C: SIGINT to the process.
    pub fn interrupt(&mut self) {
        let (ok, out) = run("kill", &["-INT", &self.child.id().to_string()], None);
        assert!(ok, "kill -INT: {out}");
    }

    /// Waits up to `limit` for the process to exit by itself; its exit success and every line it
    /// printed.
    pub fn wait_exit(&mut self, limit: Duration) -> (bool, Vec<String>) {
        let deadline = std::time::Instant::now() + limit;
        loop {
            while let Ok(l) = self.lines.try_recv() {
                self.seen.push(l);
            }
            if let Some(status) = self.child.try_wait().expect("wait") {
                // The output threads end with the process.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(500)) {
                    self.seen.push(l);
                }
                return (status.success(), self.seen.clone());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running after {limit:?}; output so far:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Names the role: a failing test prints its last lines of output under this name.
    pub fn labelled(mut self, label: &str) -> Role {
        self.label = Some(label.to_string());
        self
    }

    /// The lines printed so far (without waiting).
    pub fn drain(&mut self) -> &[String] {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        &self.seen
    }

    /// The directory the process runs in.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Some(label) = self.label.take().filter(|_| std::thread::panicking()) {
            let seen = self.drain();
            let tail = &seen[seen.len().saturating_sub(40)..];
            eprintln!("--- {label}: the last {} lines\n{}", tail.len(), tail.join("\n"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kakeru api` on port 0: (process, base URL, demo password).
pub fn api(extra: &[&str]) -> (Role, String, String) {
    let mut args = vec!["api", "--listen", "127.0.0.1:0", "--seed-demo"];
    args.extend_from_slice(extra);
    let mut p = Role::start(&args, &[]);
    let base = p.url_after("listening on");
    let login = p.wait_line("\"password\":\"");
    let password = login.split("\"password\":\"").nth(1).and_then(|s| s.split('"').next()).expect("password");
    (p, base, password.to_string())
}

/// Runs a command to the end; (exit success, stdout + stderr).
pub fn run(program: &str, args: &[&str], stdin: Option<&[u8]>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} (installed by scripts/services.sh): {e}"));
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}
