//! A whole floor on loopback for the engine's integration tests: a database with one tenant, its
//! agents with SIP accounts, a campaign, a list of leads and a running call job; the control
//! service and the dialer engine over one in-process bus; agents' phones registering with digest.
//! The carrier is the test's (the built-in simulator, or sipp).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::{AnyBus, Bus, BusConfig, Envelope, MemoryBus, RedisBus, RedisBusConfig};
use control::service::ServiceConfig;
use dialer::engine::{self, EngineConfig, EngineInfo, EngineStats};
use store::sqlx::{self, Row};
use store::{Backend, Db};
use tokio::sync::watch;
use wallboard::Feed;
use wire::agent::{AgentConfig, AgentId};
use wire::{streams, ApiCommand, CallJobId, CampaignId, DialerNotice};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// What the floor is made of.
pub struct FloorSpec {
    pub agents: usize,
    pub leads: Vec<String>,
    pub dnc: Vec<String>,
    pub mode: &'static str,
    pub max_channels: i64,
    pub ring_timeout_s: i64,
    pub agent_wait_timeout_s: i64,
    /// ACW seconds (0: none).
    pub acw_s: i64,
    pub dtmf_result_entry: bool,
    pub caller_id: Option<(&'static str, i64)>,
    pub result_codes: Vec<(i64, &'static str)>,
    /// The bus: Redis at this URL, else the in-process bus.
    pub redis_url: Option<String>,
    /// The engine reads its nonce secrets from this file (else a random secret of its own).
    pub nonce_key_file: Option<std::path::PathBuf>,
    /// The engine holds its campaigns on leases (more hosts may join: [`Floor::spawn_host`]).
    pub placement: bool,
}

impl Default for FloorSpec {
    fn default() -> Self {
        FloorSpec {
            agents: 2,
            leads: Vec::new(),
            dnc: Vec::new(),
            mode: "progressive",
            max_channels: 30,
            ring_timeout_s: 20,
            agent_wait_timeout_s: 20,
            acw_s: 0,
            dtmf_result_entry: false,
            caller_id: None,
            result_codes: Vec::new(),
            redis_url: None,
            nonce_key_file: None,
            placement: false,
        }
    }
}

pub struct Floor {
    pub db: Db,
    pub bus: AnyBus,
    pub tenant: u64,
    pub campaign: i64,
    pub job: i64,
    pub agents: Vec<i64>,
    pub realm: String,
    pub info: EngineInfo,
    pub stop: watch::Sender<bool>,
    /// The engine's instance (its member name on leases).
    pub instance: String,
    /// Where the engine records calls.
    pub recordings: tempfile::TempDir,
    engine: Option<tokio::task::JoinHandle<Result<EngineStats, engine::EngineError>>>,
    control: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

pub fn backends() -> Vec<Backend> {
    store::testing::backends()
}

async fn database(backend: Backend) -> (Db, Option<tempfile::TempDir>) {
    store::testing::fresh_db(backend).await
}

async fn insert(db: &Db, sql: &str, binds: &[i64]) -> i64 {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    q.fetch_one(&db.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}")).try_get("id").expect("id")
}

async fn exec(db: &Db, sql: &str) {
    sqlx::query(sql).execute(&db.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

impl Floor {
    /// Builds the floor; the engine sends customer calls to `carrier`.
    pub async fn start(backend: Backend, spec: &FloorSpec, carrier: SocketAddr) -> Floor {
        let (db, dir) = database(backend).await;
        let now = store::now_ms();
        let code = format!("f{}{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let tenant = store::tenancy::create_tenant(&db, &code, "floor", "Asia/Tokyo", now).await.expect("tenant");
        // Tests run on any day: a national holiday must not close their floors.
        store::tenancy::set_national_holidays(&db, tenant, false).await.expect("holidays");
        let realm = format!("{code}.kakeru");
        let t = tenant;
        let group = insert(
            &db,
            "INSERT INTO dialing_groups (tenant_id, name, created_at) VALUES ($1, 'g', 0) RETURNING id",
            &[t],
        )
        .await;
        let campaign = insert(
            &db,
            &format!(
                "INSERT INTO campaigns (tenant_id, name, mode, max_channels, ring_timeout_s, agent_wait_timeout_s, acw_enabled,
                    acw_seconds, dtmf_result_entry, business_start, business_end, caller_id, created_at, updated_at)
                 VALUES ($1, 'c', '{}', $2, $3, $4, $5, $6, $7, '00:00', '23:59', {}, 0, 0) RETURNING id",
                spec.mode,
                spec.caller_id.map(|(n, _)| format!("'{n}'")).unwrap_or_else(|| "NULL".into())
            ),
            &[t, spec.max_channels, spec.ring_timeout_s, spec.agent_wait_timeout_s, i64::from(spec.acw_s > 0), spec.acw_s.max(1), i64::from(spec.dtmf_result_entry)],
        )
        .await;
        if let Some((number, max)) = spec.caller_id {
            sqlx::query("INSERT INTO caller_ids (tenant_id, number, max_channels, created_at) VALUES ($1, $2, $3, 0)")
                .bind(t)
                .bind(number)
                .bind(max)
                .execute(&db.pool)
                .await
                .expect("caller id");
        }
        for (n, label) in &spec.result_codes {
            sqlx::query("INSERT INTO result_codes (tenant_id, campaign_id, number, label, created_at) VALUES ($1, $2, $3, $4, 0)")
                .bind(t)
                .bind(campaign)
                .bind(*n)
                .bind(*label)
                .execute(&db.pool)
                .await
                .expect("result code");
        }
        let batch = insert(
            &db,
            "INSERT INTO batches (tenant_id, campaign_id, name, start_date, end_date, created_at) VALUES ($1, $2, 'b', '2026-01-01', '2027-12-31', 0) RETURNING id",
            &[t, campaign],
        )
        .await;
        let list = insert(
            &db,
            "INSERT INTO customer_lists (tenant_id, batch_id, name, created_at) VALUES ($1, $2, 'l', 0) RETURNING id",
            &[t, batch],
        )
        .await;
        let mut tx = db.pool.begin().await.expect("tx");
        for (i, tel) in spec.leads.iter().enumerate() {
            sqlx::query(
                "INSERT INTO leads (tenant_id, list_id, batch_id, name, kana, tel, phone_type, created_at) VALUES ($1, $2, $3, $4, 'カナ', $5, $6, 0)",
            )
            .bind(t)
            .bind(list)
            .bind(batch)
            .bind(format!("顧客{i}"))
            .bind(tel)
            .bind(store::leads::PhoneType::of(tel).as_str())
            .execute(&mut *tx)
            .await
            .expect("lead");
        }
        for n in &spec.dnc {
            sqlx::query("INSERT INTO dnc_numbers (tenant_id, number, created_at) VALUES ($1, $2, 0)")
                .bind(t)
                .bind(n)
                .execute(&mut *tx)
                .await
                .expect("dnc");
        }
        tx.commit().await.expect("commit");
        let mut agents = Vec::new();
        for i in 0..spec.agents {
            let user = store::accounts::create_user(
                &db,
                &store::accounts::NewUser {
                    tenant_id: t,
                    login: &format!("agent{i}"),
                    display_name: &format!("agent{i}"),
                    role: store::accounts::Role::Op,
                    password: "pw",
                },
                now,
            )
            .await
            .expect("agent");
            let (md5, sha) = store::accounts::digest_ha1(&format!("agent{i}"), &realm, &format!("sip{i}"));
            sqlx::query(
                "INSERT INTO phones (tenant_id, user_id, sip_username, realm, ha1_md5, ha1_sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, 0)",
            )
            .bind(t)
            .bind(user)
            .bind(format!("agent{i}"))
            .bind(&realm)
            .bind(md5)
            .bind(sha)
            .execute(&db.pool)
            .await
            .expect("phone");
            sqlx::query("INSERT INTO dialing_group_agents (tenant_id, group_id, user_id) VALUES ($1, $2, $3)")
                .bind(t)
                .bind(group)
                .bind(user)
                .execute(&db.pool)
                .await
                .expect("member");
            agents.push(user);
        }
        let job = insert(
            &db,
            "INSERT INTO call_jobs (tenant_id, campaign_id, dialing_group_id, name, status, created_at) VALUES ($1, $2, $3, 'j', 'stopped', 0) RETURNING id",
            &[t, campaign, group],
        )
        .await;
        sqlx::query("INSERT INTO call_job_lists (tenant_id, job_id, list_id) VALUES ($1, $2, $3)")
            .bind(t)
            .bind(job)
            .bind(list)
            .execute(&db.pool)
            .await
            .expect("job list");
        let _ = exec;
        // The bus, the control service and the engine.
        let bus: AnyBus = match &spec.redis_url {
            Some(url) => {
                let mut cfg = RedisBusConfig::new(url.clone());
                cfg.prefix = format!("{code}:");
                RedisBus::connect(cfg).await.expect("Redis at the floor's URL").into()
            }
            None => MemoryBus::new(BusConfig::default()).into(),
        };
        let (stop, stop_rx) = watch::channel(false);
        let control = tokio::spawn(control::service::supervise_on(
            bus.clone(),
            db.clone(),
            ServiceConfig::new(t as u64, "control-test"),
            Arc::new(Feed::default()),
            stop_rx.clone(),
        ));
        let mut cfg = EngineConfig::new(carrier);
        cfg.instance = format!("test-{code}:{}", store::now_ms());
        cfg.instance_prefix = format!("test-{code}:");
        cfg.tenants = Some(vec![t as u64]);
        cfg.nonce_key_file = spec.nonce_key_file.clone();
        if spec.placement {
            cfg.placement = Some(engine::PlacementConfig::new(""));
        }
        let instance = cfg.instance.clone();
        let recordings = tempfile::tempdir().expect("recordings directory");
        cfg.recordings_dir = Some(recordings.path().to_path_buf());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let r = bus.clone();
        let readers: engine::ReaderFactory<AnyBus> = Arc::new(move || {
            let r = r.clone();
            Box::pin(async move { r.another().await })
        });
        let engine =
            tokio::spawn(engine::run_with_readers(db.clone(), bus.clone(), readers, cfg, stop_rx, Some(ready_tx)));
        let info = ready_rx.await.expect("the engine starts its shards");
        Floor {
            db,
            bus,
            tenant: t as u64,
            campaign,
            job,
            agents,
            realm,
            info,
            stop,
            instance,
            recordings,
            engine: Some(engine),
            control: Some(control),
            _dir: dir,
        }
    }

    /// Another dialer host on leases, on the floor's database and bus (its own shards and SIP
    /// socket), named `name`; it runs until `stop` turns true or its task is aborted (a host that
    /// dies: nothing given up, nothing written).
    pub async fn spawn_host(
        &self,
        name: &str,
        carrier: SocketAddr,
        stop: watch::Receiver<bool>,
    ) -> (tokio::task::JoinHandle<Result<EngineStats, engine::EngineError>>, EngineInfo, String) {
        self.spawn_host_with(name, carrier, stop, |_| {}).await
    }

    /// [`Floor::spawn_host`] with its configuration changed by `tweak` last.
    pub async fn spawn_host_with(
        &self,
        name: &str,
        carrier: SocketAddr,
        stop: watch::Receiver<bool>,
        tweak: impl FnOnce(&mut EngineConfig),
    ) -> (tokio::task::JoinHandle<Result<EngineStats, engine::EngineError>>, EngineInfo, String) {
        let mut cfg = EngineConfig::new(carrier);
        cfg.instance = format!("{name}:{}", store::now_ms());
        cfg.instance_prefix = format!("{name}:");
        cfg.tenants = Some(vec![self.tenant]);
        cfg.placement = Some(engine::PlacementConfig::new(""));
        tweak(&mut cfg);
        let instance = cfg.instance.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let r = self.bus.clone();
        let readers: engine::ReaderFactory<AnyBus> = Arc::new(move || {
            let r = r.clone();
            Box::pin(async move { r.another().await })
        });
        let h = tokio::spawn(engine::run_with_readers(
            self.db.clone(),
            self.bus.clone(),
            readers,
            cfg,
            stop,
            Some(ready_tx),
        ));
        (h, ready_rx.await.expect("the host starts its shards"), instance)
    }

    /// The floor's own engine dies (kill -9: its task and shards end, nothing is given up).
    pub fn kill_engine(&mut self) {
        if let Some(h) = self.engine.take() {
            h.abort();
        }
    }

    /// The agents' phone accounts (username agentN, password sipN, the tenant's realm).
    pub fn phone_accounts(&self) -> Vec<sim::phone::PhoneAccount> {
        (0..self.agents.len())
            .map(|i| sim::phone::PhoneAccount {
                username: format!("agent{i}"),
                password: format!("sip{i}"),
                domain: self.realm.clone(),
            })
            .collect()
    }

    /// Starts the call job (as `POST /call-jobs/{id}/start` does).
    pub async fn start_job(&self) {
        sqlx::query("UPDATE call_jobs SET status = 'running', started_at = $1 WHERE id = $2")
            .bind(store::now_ms())
            .bind(self.job)
            .execute(&self.db.pool)
            .await
            .expect("start the job");
        self.notify(DialerNotice::JobsChanged).await;
    }

    /// Tells the dialer hosts what changed, as the API does.
    pub async fn notify(&self, n: DialerNotice) {
        let env = Envelope::new(self.tenant, store::now_ms() as u64, &n).expect("encode");
        self.bus.publish(&streams::dialer_notices(), &env).await.expect("publish");
    }

    /// Every agent starts working the job (発信開始), as the API publishes it.
    pub async fn log_in_agents(&self, acw_ms: Option<u64>) {
        for a in &self.agents {
            let c = ApiCommand::StartCallJob {
                agent_id: AgentId(*a as u64),
                campaign_id: CampaignId(self.campaign as u64),
                config: AgentConfig { acw_ms, leg_setup_timeout_ms: 20_000, ..AgentConfig::default() },
                call_job_id: Some(CallJobId(self.job as u64)),
                dialing_group_id: None,
            };
            self.command(c).await;
        }
    }

    pub async fn command(&self, c: ApiCommand) {
        let env = Envelope::new(self.tenant, store::now_ms() as u64, &c).expect("encode");
        self.bus.publish(&streams::control_commands(self.tenant), &env).await.expect("publish");
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        scalar(&self.db, self.tenant, sql).await
    }

    /// Agent `a` dials the lead held for it in the preview job (none held: a test's mistake).
    pub async fn preview_dial(&self, a: i64) {
        let (t, now) = (self.tenant as i64, store::now_ms());
        let lead = store::preview::reserve(&self.db, t, self.job, a, now, store::preview::HOLD_MS)
            .await
            .expect("reserve")
            .expect("a lead for the agent");
        self.command(ApiCommand::PreviewDial {
            agent_id: wire::AgentId(a as u64),
            campaign_id: CampaignId(self.campaign as u64),
            call_job_id: CallJobId(self.job as u64),
            lead_id: wire::LeadId(lead.lead_id as u64),
            caller_id: None,
        })
        .await;
    }

    /// (tel, attempts, last_result) of every lead.
    pub async fn leads(&self) -> Vec<(String, i64, Option<String>)> {
        sqlx::query("SELECT tel, attempts, last_result FROM leads WHERE tenant_id = $1 ORDER BY id")
            .bind(self.tenant as i64)
            .fetch_all(&self.db.pool)
            .await
            .expect("leads")
            .into_iter()
            .map(|r| {
                (
                    r.try_get("tel").expect("tel"),
                    r.try_get("attempts").expect("attempts"),
                    r.try_get("last_result").expect("r"),
                )
            })
            .collect()
    }

    /// One agent's view as the control service committed it (`None`: never logged in).
    pub async fn agent_view(&self, agent: i64) -> Option<wire::agent::AgentView> {
        let r = sqlx::query("SELECT view FROM control_agents WHERE tenant_id = $1 AND agent_user_id = $2")
            .bind(self.tenant as i64)
            .bind(agent)
            .fetch_optional(&self.db.pool)
            .await
            .expect("agent view")?;
        serde_json::from_str(&r.try_get::<String, _>("view").expect("view")).ok()
    }

    pub async fn job_status(&self) -> String {
        sqlx::query("SELECT status FROM call_jobs WHERE id = $1")
            .bind(self.job)
            .fetch_one(&self.db.pool)
            .await
            .expect("job")
            .try_get("status")
            .expect("status")
    }

    /// Agents in `state` per the control service's table.
    pub async fn agents_in(&self, state: &str) -> usize {
        let rows = sqlx::query("SELECT view FROM control_agents WHERE tenant_id = $1")
            .bind(self.tenant as i64)
            .fetch_all(&self.db.pool)
            .await
            .expect("agents");
        rows.iter()
            .filter(|r| r.try_get::<String, _>("view").is_ok_and(|v| v.contains(&format!("\"state\":\"{state}\""))))
            .count()
    }

    pub async fn stop(mut self) -> EngineStats {
        let _ = self.stop.send(true);
        let stats = match self.engine.take() {
            Some(h) => h.await.expect("engine task").expect("engine ran"),
            None => EngineStats::default(),
        };
        if let Some(c) = self.control.take() {
            let _ = c.await;
        }
        stats
    }
}

/// One integer from `sql`, with `$1` the tenant (usable after [`Floor::stop`] took the floor).
pub async fn scalar(db: &Db, tenant: u64, sql: &str) -> i64 {
    sqlx::query(sql).bind(tenant as i64).fetch_one(&db.pool).await.expect(sql).try_get(0).expect("column")
}

/// Polls `f` until it holds, at most `limit`.
pub async fn until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A carrier whose every customer answers after 300 ms, says `voice` (PCMU; `None`: silence), talks
/// three seconds and hangs up.
pub async fn talking_carrier(voice: Option<Arc<[u8]>>, stop: watch::Receiver<bool>) -> sim::carrier::Carrier {
    let answer = sim::carrier::Behaviour::Answer { after_ms: 300, talk_ms: Some(3_000) };
    let cfg = sim::carrier::CarrierConfig { by_last_digit: Some([answer; 10]), voice, ..Default::default() };
    sim::carrier::start(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), cfg, stop).await.expect("carrier")
}

/// One agent, one lead, DTMF result entry with results 1 and 2, 120 s of ACW.
pub fn result_entry_spec() -> FloorSpec {
    FloorSpec {
        agents: 1,
        leads: vec!["0310000001".into()],
        dtmf_result_entry: true,
        acw_s: 120,
        result_codes: vec![(1, "見込みなし"), (2, "成約")],
        ..FloorSpec::default()
    }
}

impl Floor {
    /// The tenant's one recording, read (customer and agent channels decoded to linear).
    pub async fn the_recording(&self) -> (Vec<i16>, Vec<i16>) {
        until("the recording indexed", Duration::from_secs(10), || async {
            self.scalar("SELECT COUNT(*) FROM recordings WHERE tenant_id = $1").await == 1
        })
        .await;
        let path: String = sqlx::query_scalar("SELECT path FROM recordings WHERE tenant_id = $1")
            .bind(self.tenant as i64)
            .fetch_one(&self.db.pool)
            .await
            .expect("the recording's path");
        let rec = media::recording::read_recording(&std::fs::read(&path).expect("the recording")).expect("readable");
        let (mut customer, mut agent) = (Vec::new(), Vec::new());
        rec.codec.decode_into(&rec.customer, &mut customer);
        rec.codec.decode_into(&rec.agent, &mut agent);
        (customer, agent)
    }
}
