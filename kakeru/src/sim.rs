//! `kakeru sim`: the simulated carrier and simulated agents (with their phones) as a process of
//! their own, to try a layout of real hosts without a carrier or a floor of people (the layout
//! test and operators). The same peers as `kakeru demo` ([`sim::carrier`], [`sim::phone`],
//! [`sim::agent`]), over real SIP, RTP and HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

/// What `kakeru sim` runs.
#[derive(clap::Args, Clone, Debug)]
pub struct SimArgs {
    /// Run the simulated carrier with its SIP on this address (e.g. 127.0.0.1:5070).
    #[arg(long)]
    pub carrier_listen: Option<SocketAddr>,
    /// Share of calls the simulated customers answer.
    #[arg(long, default_value_t = 0.3)]
    pub answer_prob: f64,
    /// Mean talk time of an answered customer, seconds (lognormal).
    #[arg(long, default_value_t = 60.0)]
    pub talk_mean_s: f64,
    /// Mean time a customer who answers lets the phone ring first, seconds (lognormal).
    #[arg(long, default_value_t = 8.0)]
    pub answer_delay_mean_s: f64,
    /// On the way out, write the carrier's log here: one JSON object a line per call it was asked
    /// to place (`tel`, `caller`, `from`, `outcome`, `start_ms`, `end_ms` in Unix ms; `end_ms`
    /// null while the call still held its channel).
    #[arg(long)]
    pub carrier_log: Option<std::path::PathBuf>,
    /// The API the simulated agents work through (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    pub api: Option<String>,
    /// The agents' tenant (its code).
    #[arg(long, default_value = "demo")]
    pub tenant: String,
    /// The agents' logins (comma-separated); each logs in with --password and registers its phone
    /// (SIP user name = login) with --sip-password.
    #[arg(long, value_delimiter = ',')]
    pub agents: Vec<String>,
    #[arg(long, env = "KAKERU_SIM_PASSWORD", hide_env_values = true, default_value = "")]
    pub password: String,
    #[arg(long, env = "KAKERU_SIM_SIP_PASSWORD", hide_env_values = true, default_value = "")]
    pub sip_password: String,
    /// The SIP realm of the tenant's phones (its code followed by `.kakeru` unless set otherwise).
    #[arg(long)]
    pub realm: Option<String>,
    /// Where the phones register (a dialer host's SIP address).
    #[arg(long)]
    pub registrar: Option<SocketAddr>,
    /// The call job the agents work.
    #[arg(long)]
    pub call_job: Option<i64>,
    /// Mean time an agent keeps a customer, seconds.
    #[arg(long, default_value_t = 20.0)]
    pub agent_talk_mean_s: f64,
    /// The address the phones bind (their RTP too).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_ip: std::net::IpAddr,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs what `args` asks for until `shutdown` turns true; prints what it did on the way out.
pub async fn run(args: SimArgs, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    let carrier = match args.carrier_listen {
        Some(addr) => {
            let cfg = sim::carrier::CarrierConfig {
                answer_prob: args.answer_prob.clamp(0.0, 1.0),
                talk_mean_ms: args.talk_mean_s.max(0.1) * 1000.0,
                answer_delay_mean_ms: args.answer_delay_mean_s.max(0.0) * 1000.0,
                seed: args.seed,
                ..sim::carrier::CarrierConfig::default()
            };
            let c = sim::carrier::start_at(addr, cfg, stop.clone()).await.context("--carrier-listen")?;
            eprintln!("kakeru sim: carrier SIP on {}", c.sip_addr);
            Some(c)
        }
        None => None,
    };
    let mut agents = None;
    let mut phones = Vec::new();
    if let Some(api) = &args.api {
        let registrar = args.registrar.context("--registrar: where the agents' phones register")?;
        let job = args.call_job.context("--call-job: the job the agents work")?;
        anyhow::ensure!(!args.agents.is_empty(), "--agents: the agents' logins");
        let realm = args.realm.clone().unwrap_or_else(|| format!("{}.kakeru", args.tenant));
        let accounts = args
            .agents
            .iter()
            .map(|a| sim::phone::PhoneAccount {
                username: a.clone(),
                password: args.sip_password.clone(),
                domain: realm.clone(),
            })
            .collect();
        let pcfg = sim::phone::PhoneConfig {
            registrar,
            bind_ip: args.bind_ip,
            expires_s: 300,
            answer_after: Duration::from_millis(100),
            tone_hz: None,
        };
        phones = sim::phone::start(accounts, pcfg, stop.clone()).await.context("the agents' phones")?;
        eprintln!("kakeru sim: {} phone(s) registering at {registrar}", phones.len());
        // As people do, the agents log in once their phones are registered (a leg set up for an
        // agent whose phone is not registered yet finds the agent unreachable).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !phones.iter().all(|p| p.stats().registered) {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the phones did not register at {registrar} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let http = reqwest::Client::new();
        let mut accounts = Vec::with_capacity(args.agents.len());
        for login in &args.agents {
            let me = sim::agent::Api::login(&http, api, &args.tenant, login, &args.password).await?;
            let user_id = me.get("/me").await?["id"].as_i64().context("the agent's id")?;
            accounts.push(sim::floor::AgentAccount {
                user_id,
                login: login.clone(),
                password: args.password.clone(),
                sip_password: args.sip_password.clone(),
            });
        }
        let work = sim::floor::AgentWork {
            result_codes: Vec::new(),
            talk_mean_ms: args.agent_talk_mean_s.max(0.1) * 1000.0,
            wrapup_mean_ms: 3_000.0,
            forgetful: 0,
            seed: args.seed,
        };
        agents = Some(sim::floor::start_agents(&http, api, &args.tenant, &accounts, job, &work, None));
        eprintln!("kakeru sim: {} agent(s) working call job {job} through {api}", args.agents.len());
    }
    anyhow::ensure!(carrier.is_some() || agents.is_some(), "nothing to run: give --carrier-listen and/or --api");
    let _ = shutdown.wait_for(|s| *s).await;
    let _ = stop_tx.send(true);
    if let Some(agents) = agents {
        let counts = agents.counts.clone();
        agents.stop().await;
        eprintln!("kakeru sim: agents stopped ({counts:?})");
    }
    if let Some(c) = carrier {
        if let Some(path) = &args.carrier_log {
            write_carrier_log(&c, path).with_context(|| format!("--carrier-log {}", path.display()))?;
        }
        eprintln!("kakeru sim: carrier stopped ({:?})", c.stats());
    }
    drop(phones);
    Ok(())
}

/// The carrier's log as JSON lines, its instants in Unix ms.
fn write_carrier_log(c: &sim::carrier::Carrier, path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let now = std::time::Instant::now();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let ms = |at: std::time::Instant| now_ms - now.saturating_duration_since(at).as_millis() as i64;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for e in c.log() {
        let line = serde_json::json!({
            "tel": e.tel,
            "caller": e.caller,
            "from": e.from.to_string(),
            "outcome": e.outcome,
            "start_ms": ms(e.at),
            "end_ms": e.ended_at.map(ms),
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}
