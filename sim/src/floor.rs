//! A floor of simulated agents: their phones registered, then one [`agent`](crate::agent) each
//! working a call job through the API, as `kakeru demo`, `kakeru sim` and the tests start them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use tokio::sync::watch;

use crate::agent::{AgentError, Counts};
use crate::phone::Phone;

/// One agent's accounts: the API login and the SIP password of the phone (its user name is the
/// login).
#[derive(Clone)]
pub struct AgentAccount {
    pub user_id: i64,
    pub login: String,
    pub password: String,
    pub sip_password: String,
}

impl std::fmt::Debug for AgentAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentAccount")
            .field("user_id", &self.user_id)
            .field("login", &self.login)
            .field("password", &"***")
            .field("sip_password", &"***")
            .finish()
    }
}

/// How the simulated agents work.
#[derive(Clone, Debug)]
pub struct AgentWork {
    /// The campaign's result numbers they save.
    pub result_codes: Vec<i64>,
    /// Mean talk time (lognormal, cv 1), ms.
    pub talk_mean_ms: f64,
    /// Mean time to save the wrap-up record, ms.
    pub wrapup_mean_ms: f64,
    /// Agents (the last ones) who never save their records, as if their browser had closed: their
    /// calls stay in 応対記録(未保存) until someone saves them.
    pub forgetful: usize,
    pub seed: u64,
}

/// Simulated agents working a call job through the API ([`start_agents`]).
pub struct SimAgents {
    pub counts: Arc<Counts>,
    tasks: tokio::task::JoinSet<Result<(), AgentError>>,
    stop: watch::Sender<bool>,
}

impl SimAgents {
    /// The next agent that stopped, with how (while they run, only one that failed stops).
    pub async fn join_next(&mut self) -> Option<Result<Result<(), AgentError>, tokio::task::JoinError>> {
        self.tasks.join_next().await
    }

    /// Each agent ends its session and logs out.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts one simulated agent per account on `job`, each working through the API at `base` and
/// its push channel as an agent's own screen does. `manager_token` (a logged-in MGR or SV) logs off
/// an agent still in a session of an earlier run. Each agent draws from its own seeded generator.
pub fn start_agents(
    http: &reqwest::Client,
    base: &str,
    tenant: &str,
    agents: &[AgentAccount],
    job: i64,
    work: &AgentWork,
    manager_token: Option<String>,
) -> SimAgents {
    let counts = Arc::new(Counts::default());
    let (stop, rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, a) in agents.iter().enumerate() {
        let acfg = crate::agent::AgentConfig {
            base: base.to_owned(),
            tenant: tenant.to_owned(),
            login: a.login.clone(),
            password: a.password.clone(),
            user_id: a.user_id,
            call_job_id: job,
            result_codes: work.result_codes.clone(),
            talk_mean_ms: work.talk_mean_ms,
            wrapup_mean_ms: work.wrapup_mean_ms,
            manager_token: manager_token.clone(),
            saves_records: i + work.forgetful < agents.len(),
        };
        let rng = rand_chacha::ChaCha8Rng::seed_from_u64(work.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9));
        tasks.spawn(crate::agent::run(acfg, counts.clone(), rng, http.clone(), rx.clone()));
    }
    SimAgents { counts, tasks, stop }
}

/// Why the agents' phones did not come up.
#[derive(Debug, thiserror::Error)]
pub enum PhonesError {
    #[error("starting the agents' phones: {0}")]
    Start(#[from] std::io::Error),
    #[error("only {registered} of {all} phones registered within 30 s")]
    NotRegistered { registered: usize, all: usize },
}

/// Starts the agents' simulated phones on loopback and waits until all have registered at
/// `registrar` (at most 30 s); `progress(registered, all)` is called as they do.
pub async fn start_phones(
    agents: &[AgentAccount],
    realm: &str,
    registrar: SocketAddr,
    shutdown: watch::Receiver<bool>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Phone>, PhonesError> {
    let accounts = agents
        .iter()
        .map(|a| crate::phone::PhoneAccount {
            username: a.login.clone(),
            password: a.sip_password.clone(),
            domain: realm.to_owned(),
        })
        .collect();
    let phones = crate::phone::start(
        accounts,
        crate::phone::PhoneConfig {
            registrar,
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            expires_s: 300,
            answer_after: Duration::from_millis(300),
            tone_hz: None,
        },
        shutdown,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = phones.iter().filter(|p| p.stats().registered).count();
        progress(n, phones.len());
        if n == phones.len() {
            return Ok(phones);
        }
        if Instant::now() > deadline {
            return Err(PhonesError::NotRegistered { registered: n, all: phones.len() });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
