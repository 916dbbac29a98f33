//! Runs a browser test script of `api/tests/browser/` (playwright-core driving Debian's Chromium)
//! and talks to it: the script prints `STEP name` when it wants the test to make something happen
//! and waits for `GO name [json]`. Shared by the API's tests and the whole-system tests of `kakeru`
//! (included there with `#[path]`), which run the same scripts against their own servers.
//!
//! Screenshots are written under `target/tmp/browser/` and their paths printed.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../api/tests/browser")
}

/// Where the scripts write screenshots (and tests lay down files for them).
pub fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&d).expect("screenshot directory");
    d
}

/// The browser script, talking `STEP name` / `GO name [json]` over its stdout / stdin.
pub struct Browser {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub output: Vec<String>,
}

impl Browser {
    /// Runs one of the scripts of `api/tests/browser/` in `mode`.
    pub fn script(script: &str, mode: &str, base: &str, fixture: &Value) -> Browser {
        assert!(
            std::path::Path::new("/usr/bin/chromium").exists()
                && browser_dir().join("node_modules/playwright-core").exists(),
            "Chromium and playwright-core are missing: run `bash scripts/services.sh`"
        );
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .current_dir(browser_dir())
            .env("KAKERU_MODE", mode)
            .env("KAKERU_BASE", base)
            .env("KAKERU_OUT", out_dir())
            .env("KAKERU_FIXTURE", fixture.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node (installed by scripts/services.sh)");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Browser { child, stdin, lines, output: Vec::new() }
    }

    /// The next step the browser asks for (`None` once it has finished), echoing everything else.
    pub async fn next_step(&mut self) -> Option<String> {
        let deadline = Duration::from_secs(240);
        loop {
            let line = tokio::time::timeout(deadline, self.lines.next_line())
                .await
                .expect("the browser went silent")
                .expect("browser output")?;
            println!("browser: {line}");
            if let Some(step) = line.strip_prefix("STEP ") {
                return Some(step.to_owned());
            }
            self.output.push(line);
        }
    }

    pub async fn go(&mut self, step: &str, reply: Option<Value>) {
        let line = match reply {
            Some(v) => format!("GO {step} {v}\n"),
            None => format!("GO {step}\n"),
        };
        self.stdin.write_all(line.as_bytes()).await.expect("to the browser");
    }

    /// Waits for the script to end; panics unless it passed.
    pub async fn finish(mut self) -> Vec<String> {
        if let Some(step) = self.next_step().await {
            panic!("the browser asked for a step nobody handles: {step}");
        }
        let status = self.child.wait().await.expect("browser exit");
        assert!(
            status.success() && self.output.iter().any(|l| l == "BROWSER OK"),
            "the browser test failed:\n{}",
            self.output.join("\n")
        );
        for l in self.output.iter().filter(|l| l.starts_with("SCREENSHOT ")) {
            println!("screenshot: {}", &l["SCREENSHOT ".len()..]);
        }
        self.output
    }
}
