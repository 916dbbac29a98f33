//! Simulated agents (模擬オペレーター): each works a call job through the same endpoints and push
//! channel as the agent desktop (`/ui/agent`), never polling: it logs in (`POST /auth/login`),
//! starts the job (`POST /agent/session`), follows `GET /agent/stream`, and acts on what arrives:
//! a customer talks for a drawn time and is hung up (`POST /agent/calls/{id}/hang-up`), the
//! wrap-up record is saved after a drawn time (`POST /wrapup-records/{id}/save`), and an agent a
//! supervisor paused comes back after a minute's break (`POST /agent/ready`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::sse::AgentStream;

/// One simulated agent. Its `Debug` hides the password and the manager's token.
#[derive(Clone)]
pub struct AgentConfig {
    /// `http://host:port` of the API.
    pub base: String,
    pub tenant: String,
    pub login: String,
    pub password: String,
    pub user_id: i64,
    pub call_job_id: i64,
    /// The campaign's result numbers; number 4 asks for a recall tomorrow.
    pub result_codes: Vec<i64>,
    pub talk_mean_ms: f64,
    pub wrapup_mean_ms: f64,
    /// A floor manager's bearer token, to log off a session an earlier run left open.
    pub manager_token: Option<String>,
    /// `false`: the agent never saves its records, as if its browser had closed; its calls stay in
    /// 応対記録(未保存) until someone else saves them.
    pub saves_records: bool,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("base", &self.base)
            .field("tenant", &self.tenant)
            .field("login", &self.login)
            .field("password", &"***")
            .field("user_id", &self.user_id)
            .field("call_job_id", &self.call_job_id)
            .field("result_codes", &self.result_codes)
            .field("talk_mean_ms", &self.talk_mean_ms)
            .field("wrapup_mean_ms", &self.wrapup_mean_ms)
            .field("manager_token", &self.manager_token.as_ref().map(|_| "***"))
            .field("saves_records", &self.saves_records)
            .finish()
    }
}

/// Live counts of a floor of simulated agents (for a status line).
#[derive(Debug, Default)]
pub struct Counts {
    pub logged_in: AtomicU64,
    pub ready: AtomicU64,
    pub talking: AtomicU64,
    pub wrap_up: AtomicU64,
    pub paused: AtomicU64,
    pub saved: AtomicU64,
    pub hang_ups: AtomicU64,
    pub api_errors: AtomicU64,
    /// Push channel (re)connections beyond each agent's first.
    pub reconnects: AtomicU64,
}

/// Why an agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{what}: {detail}")]
    Api { what: String, detail: String },
    #[error("push channel: {0}")]
    Stream(#[from] crate::sse::SseError),
}

/// A logged-in client of the API.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// `POST /auth/login`.
    pub async fn login(
        http: &reqwest::Client,
        base: &str,
        tenant: &str,
        login: &str,
        password: &str,
    ) -> Result<Api, AgentError> {
        // A floor logging in at once may find the API's password checks busy (503) for a moment:
        // try again after its Retry-After, a few times, as a person would.
        let mut tries = 0;
        let r = loop {
            let r = http
                .post(format!("{base}/auth/login"))
                .json(&json!({"tenant": tenant, "login": login, "password": password}))
                .send()
                .await
                .map_err(|e| AgentError::Api { what: format!("POST /auth/login as {login}"), detail: e.to_string() })?;
            if r.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE || tries >= 20 {
                break r;
            }
            tries += 1;
            let after = r
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 5);
            tokio::time::sleep(Duration::from_secs(after)).await;
        };
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        match body["token"].as_str() {
            Some(t) if status.is_success() => {
                Ok(Api { http: http.clone(), base: base.to_owned(), token: t.to_owned() })
            }
            _ => Err(AgentError::Api {
                what: format!("POST /auth/login as {login}"),
                detail: format!("{status} {body}"),
            }),
        }
    }

    /// A client with a token already issued.
    pub fn with_token(http: &reqwest::Client, base: &str, token: &str) -> Api {
        Api { http: http.clone(), base: base.to_owned(), token: token.to_owned() }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: String) -> Result<Value, AgentError> {
        let r = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| AgentError::Api { what: what.clone(), detail: e.to_string() })?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(AgentError::Api { what, detail: format!("{status} {body}") });
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str) -> Result<Value, AgentError> {
        self.send(self.http.get(format!("{}{path}", self.base)), format!("GET {path}")).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, AgentError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body), format!("POST {path}")).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, AgentError> {
        self.send(self.http.delete(format!("{}{path}", self.base)), format!("DELETE {path}")).await
    }
}

/// The agent's state as its push channel last told, for the floor's counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    None,
    Ready,
    Talking,
    WrapUp,
    Paused,
}

fn seen_of(state: &str) -> Seen {
    match state {
        "ready" => Seen::Ready,
        "talking" | "hold" => Seen::Talking,
        "wrap_up" => Seen::WrapUp,
        "paused" => Seen::Paused,
        _ => Seen::None,
    }
}

struct Agent<R: Rng> {
    cfg: AgentConfig,
    counts: Arc<Counts>,
    rng: R,
    seen: Seen,
    call: Option<u64>,
    hang_up_at: Option<Instant>,
    save_at: Option<Instant>,
    back_at: Option<Instant>,
}

impl<R: Rng> Agent<R> {
    fn count(&self, s: Seen) -> Option<&AtomicU64> {
        let c = &self.counts;
        match s {
            Seen::None => None,
            Seen::Ready => Some(&c.ready),
            Seen::Talking => Some(&c.talking),
            Seen::WrapUp => Some(&c.wrap_up),
            Seen::Paused => Some(&c.paused),
        }
    }

    fn draw(&mut self, mean_ms: f64, cv: f64) -> Duration {
        Duration::from_millis(crate::lognormal_ms(&mut self.rng, mean_ms, cv).min(3_600_000))
    }

    /// The agent is now in `state` (with `call`): plan what it does next.
    fn entered(&mut self, state: &str, call: Option<u64>) {
        let next = seen_of(state);
        if next != self.seen {
            if let Some(c) = self.count(self.seen) {
                c.fetch_sub(1, Ordering::Relaxed);
            }
            if let Some(c) = self.count(next) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        let now = Instant::now();
        match next {
            Seen::Talking => {
                if call != self.call || self.hang_up_at.is_none() {
                    self.hang_up_at = Some(now + self.draw(self.cfg.talk_mean_ms, 1.0));
                }
                self.save_at = None;
            }
            Seen::WrapUp => {
                self.hang_up_at = None;
                if self.save_at.is_none() && self.cfg.saves_records {
                    self.save_at = Some(now + self.draw(self.cfg.wrapup_mean_ms, 0.5));
                }
            }
            Seen::Paused => {
                // Paused by a supervisor (from the wallboard): back after a minute's break.
                if self.back_at.is_none() {
                    self.back_at = Some(now + Duration::from_secs(60));
                }
            }
            Seen::Ready | Seen::None => {
                self.hang_up_at = None;
                self.save_at = None;
                self.back_at = None;
            }
        }
        self.seen = next;
        self.call = call;
    }

    fn next_action(&self) -> Option<Instant> {
        [self.hang_up_at, self.save_at, self.back_at].into_iter().flatten().min()
    }

    /// Saves the agent's unsaved wrap-up records (応対記録) with a drawn result and next action.
    async fn save_records(&mut self, me: &Api) {
        let path = format!("/wrapup-records?agent_user_id={}&saved=false", self.cfg.user_id);
        let Ok(list) = me.get(&path).await else {
            self.counts.api_errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        for r in list["items"].as_array().cloned().unwrap_or_default() {
            let Some(id) = r["id"].as_i64() else { continue };
            let codes = &self.cfg.result_codes;
            let result = if codes.is_empty() { 0 } else { codes[self.rng.gen_range(0..codes.len())] };
            let roll: f64 = self.rng.gen();
            let mut body = json!({
                "result": if result == 0 { "no_entry".to_string() } else { result.to_string() },
                "interlocutor": "self",
                "memo": "",
                "state_after": "continue",
                "next_action": if roll < 0.7 { "continue" } else { "complete" },
            });
            if result == 4 {
                // 再架電: a recall tomorrow at the same time.
                let at = chrono::Utc::now() + chrono::Duration::days(1);
                body["next_action"] = json!("recall");
                body["recall_at"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
            match me.post(&format!("/wrapup-records/{id}/save"), &body).await {
                Ok(_) => {
                    self.counts.saved.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.counts.api_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(agent = %self.cfg.login, error = %e, "saving a wrap-up record");
                }
            }
        }
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Runs one simulated agent until `stop` turns true, then ends its session and logs out.
pub async fn run<R: Rng>(
    cfg: AgentConfig,
    counts: Arc<Counts>,
    mut rng: R,
    http: reqwest::Client,
    mut stop: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    // Spread the logins over the first seconds, as a floor arriving would.
    tokio::time::sleep(Duration::from_millis(rng.gen_range(0..2_000))).await;
    let me = Api::login(&http, &cfg.base, &cfg.tenant, &cfg.login, &cfg.password).await?;
    let session = json!({"call_job_id": cfg.call_job_id});
    let mut tries = 0;
    loop {
        match me.post("/agent/session", &session).await {
            Ok(_) => break,
            Err(e) if tries < 10 => {
                // Still in a session of an earlier run: the floor manager logs them off first.
                tries += 1;
                tracing::debug!(agent = %cfg.login, error = %e, "starting the session");
                if let Some(t) = &cfg.manager_token {
                    let manager = Api::with_token(&http, &cfg.base, t);
                    let _ = manager.post(&format!("/agents/{}/state", cfg.user_id), &json!({"to": "offline"})).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
    counts.logged_in.fetch_add(1, Ordering::Relaxed);
    let mut stream = AgentStream::new(http.clone(), &cfg.base, me.token());
    let mut a = Agent {
        cfg,
        counts: counts.clone(),
        rng,
        seen: Seen::None,
        call: None,
        hang_up_at: None,
        save_at: None,
        back_at: None,
    };
    // Idle log-off comes after 60 minutes without activity in ready, ACW or paused.
    let mut keep_alive = tokio::time::interval(Duration::from_secs(600));
    keep_alive.tick().await;
    let mut connects = 0;
    loop {
        let action = a.next_action();
        let due = async {
            match action {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stopped(&mut stop) => break,
            ev = stream.next(Duration::from_millis(500)) => {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        a.counts.api_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(agent = %a.cfg.login, error = %e, "push channel");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if stream.connects > connects {
                    if connects > 0 {
                        a.counts.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    connects = stream.connects;
                }
                let v: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
                match ev.event.as_str() {
                    "desk" => {
                        let state = v["state"]["state"].as_str().unwrap_or("offline").to_owned();
                        a.entered(&state, v["call_id"].as_u64());
                    }
                    "state" => {
                        let state = v["to"]["state"].as_str().unwrap_or("offline").to_owned();
                        a.entered(&state, v["call_id"].as_u64());
                    }
                    _ => {}
                }
            }
            () = due => {
                let now = Instant::now();
                if a.hang_up_at.is_some_and(|t| t <= now) {
                    a.hang_up_at = None;
                    if let Some(call) = a.call {
                        match me.post(&format!("/agent/calls/{call}/hang-up"), &json!({})).await {
                            Ok(_) => { a.counts.hang_ups.fetch_add(1, Ordering::Relaxed); }
                            Err(_) => { a.counts.api_errors.fetch_add(1, Ordering::Relaxed); }
                        }
                    }
                }
                if a.save_at.is_some_and(|t| t <= now) {
                    a.save_at = None;
                    a.save_records(&me).await;
                }
                if a.back_at.is_some_and(|t| t <= now) {
                    a.back_at = None;
                    if me.post("/agent/ready", &json!({})).await.is_err() {
                        a.counts.api_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = keep_alive.tick() => {
                let _ = me.post("/agent/activity", &json!({})).await;
            }
        }
    }
    if let Some(c) = a.count(a.seen) {
        c.fetch_sub(1, Ordering::Relaxed);
    }
    counts.logged_in.fetch_sub(1, Ordering::Relaxed);
    let _ = me.delete("/agent/session").await;
    let _ = me.post("/auth/logout", &json!({})).await;
    Ok(())
}
