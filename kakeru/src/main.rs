//! `kakeru`: one binary, a subcommand per role.

use anyhow::Context;
use clap::{Parser, Subcommand};
use kakeru::node::{Node, NodeConfig};

/// mimalloc instead of glibc's malloc: under the control bench, glibc's malloc and free were 19 %
/// of all CPU samples, mimalloc's 7 % (bench/RESULTS.md, "Control service throughput").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The embedded default: a SQLite file beside the working directory, nothing to install.
const DEFAULT_DATABASE_URL: &str = "sqlite:kakeru.db";

#[derive(Parser)]
#[command(name = "kakeru", version, about = "kakeru outbound contact center")]
struct Cli {
    /// postgres://... (production) or sqlite:FILE (embedded default).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    database_url: String,
    /// Database connections the process keeps open at most (default 8 on PostgreSQL; about twice
    /// the database server's cores for a busy api): keep the sum over every api, control and
    /// dialer process under PostgreSQL's `max_connections`.
    #[arg(long, env = "KAKERU_DATABASE_POOL", global = true, value_parser = clap::value_parser!(u32).range(1..=1000))]
    database_pool: Option<u32>,
    /// Serve Prometheus metrics at http://ADDR/metrics (the API also serves them on its own listener).
    #[arg(long, env = "KAKERU_METRICS_LISTEN", global = true)]
    metrics_listen: Option<String>,
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// The admin API (configuration, lead import, records, OpenAPI at /openapi.json, docs at /docs).
    /// Without --redis-url (the embedded default) it also runs the control service of every tenant,
    /// over the in-process bus; with it, the API publishes commands on Redis for `kakeru control`.
    Api {
        /// Address to listen on.
        #[arg(long, env = "KAKERU_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Create the demo tenant (or give its MGR a fresh password) and print its login. Never
        /// implied: a production start creates and resets no account (`kakeru demo` seeds its own).
        #[arg(long)]
        seed_demo: bool,
        /// redis://host:port: the bus is Redis and the control service runs elsewhere (`kakeru control`).
        #[arg(long, env = "REDIS_URL")]
        redis_url: Option<String>,
        /// Put before every Redis stream and key name (several installations sharing one Redis).
        #[arg(long, env = "KAKERU_REDIS_PREFIX", default_value = "")]
        redis_prefix: String,
        /// Connections one client address may hold open at once (a floor behind one NAT address
        /// needs about 4 per agent).
        #[arg(long, env = "KAKERU_MAX_CONNECTIONS_PER_SOURCE", default_value_t = 512)]
        max_connections_per_source: usize,
        /// Seconds a request head may take to arrive (also how long an idle kept-alive connection stays).
        #[arg(long, env = "KAKERU_HEADER_TIMEOUT_S", default_value_t = 10)]
        header_timeout_s: u64,
        /// The load balancers in front (addresses or blocks, comma-separated): the client of a
        /// request from them is taken from X-Forwarded-For (the login limits and the audit trail
        /// count it). Without it, every request's client is its peer.
        #[arg(long, env = "KAKERU_TRUSTED_PROXIES", value_delimiter = ',')]
        trusted_proxies: Vec<api::serve::Cidr>,
        /// Failed logins one client address may make in 5 minutes (then 429 until the window ends).
        #[arg(long, env = "KAKERU_LOGIN_ATTEMPTS_PER_SOURCE", default_value_t = 30)]
        login_attempts_per_source: u32,
        /// Failed logins on one account in 5 minutes, from anywhere.
        #[arg(long, env = "KAKERU_LOGIN_ATTEMPTS_PER_ACCOUNT", default_value_t = 10)]
        login_attempts_per_account: u32,
        /// Wrong passwords in a row that lock an account (ログインロック) until a manager unlocks it.
        #[arg(long, env = "KAKERU_LOGIN_LOCKOUT_AFTER", default_value_t = 5)]
        login_lockout_after: i64,
    },
    /// A whole floor in one process on the embedded default: the API, the control service and the
    /// dialer, with a simulated carrier (real SIP and RTP on loopback) and simulated agents working
    /// a predictive campaign through the API. Prints the wallboard's URL and a login.
    Demo(kakeru::demo::DemoArgs),
    /// The simulated carrier and/or simulated agents with their phones, as a process of their own:
    /// to try a layout of hosts without a carrier or a floor of people.
    Sim(kakeru::sim::SimArgs),
    /// The dialer engine on this host's media shards: places the call jobs' calls to the carrier,
    /// keeps the agents' nailed-up legs, bridges and records. Over Redis, beside `kakeru control`.
    Dialer {
        /// redis://host:port (the bus).
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        /// Put before every Redis stream and key name.
        #[arg(long, env = "KAKERU_REDIS_PREFIX", default_value = "")]
        redis_prefix: String,
        /// The carrier trunk's SIP address (host:port).
        #[arg(long, env = "KAKERU_CARRIER")]
        carrier: String,
        /// The carrier's domain in request URIs (default: its address).
        #[arg(long, env = "KAKERU_CARRIER_DOMAIN")]
        carrier_domain: Option<String>,
        /// Digest user name towards a carrier that challenges.
        #[arg(long, env = "KAKERU_CARRIER_USER")]
        carrier_user: Option<String>,
        /// Digest password towards the carrier.
        #[arg(long, env = "KAKERU_CARRIER_PASSWORD", hide_env_values = true)]
        carrier_password: Option<String>,
        /// SIP address of shard 0; shard i listens on port + i.
        #[arg(long, env = "KAKERU_SIP_LISTEN", default_value = "0.0.0.0:5060")]
        sip_listen: std::net::SocketAddr,
        /// Address put in SIP and SDP (when listening on 0.0.0.0).
        #[arg(long, env = "KAKERU_ADVERTISE_IP")]
        advertise_ip: Option<std::net::IpAddr>,
        /// Where RTP ports are bound.
        #[arg(long, env = "KAKERU_MEDIA_IP", default_value = "0.0.0.0")]
        media_ip: std::net::IpAddr,
        /// The browser phones' TCP candidate (RFC 6544, for networks that let no UDP through):
        /// shard i listens on the media address, this port + i (default 0: any free port).
        #[arg(long, env = "KAKERU_WEBRTC_TCP_PORT", default_value_t = 0)]
        webrtc_tcp_port: u16,
        /// Media shards (default: one per core), each pinned to its core.
        #[arg(long, env = "KAKERU_SHARDS")]
        shards: Option<usize>,
        /// Where recordings are written (none: calls are not recorded).
        #[arg(long, env = "KAKERU_RECORDINGS_DIR")]
        recordings_dir: Option<std::path::PathBuf>,
        /// Serve only these tenants (default: every tenant).
        #[arg(long, value_delimiter = ',')]
        tenants: Vec<u64>,
        /// This host's name on call records (calls it left pending are failed on restart); default
        /// the host name.
        #[arg(long, env = "KAKERU_DIALER_INSTANCE")]
        instance: Option<String>,
        /// The agents' phones' digest nonce secrets: a file, one secret (16 bytes or more) a line,
        /// the current one first, read again every few seconds. To rotate, put the new secret first
        /// and drop the old one after 5 minutes: no phone is refused meanwhile.
        #[arg(long, env = "KAKERU_SIP_NONCE_SECRET_FILE")]
        sip_nonce_secret_file: Option<std::path::PathBuf>,
        /// The nonce secret itself, instead of a file (rotating it takes a restart). Prefer the
        /// environment or the file to the command line, which other users of the host can read.
        #[arg(long, env = "KAKERU_SIP_NONCE_SECRET", hide_env_values = true)]
        sip_nonce_secret: Option<String>,
        /// Phones' registrations shorter than this (seconds) are refused with 423 Interval Too Brief.
        #[arg(long, env = "KAKERU_SIP_MIN_EXPIRES", default_value_t = 30)]
        sip_min_expires: u32,
        /// Phones' registrations longer than this (seconds) are granted this long.
        #[arg(long, env = "KAKERU_SIP_MAX_EXPIRES", default_value_t = 3600)]
        sip_max_expires: u32,
    },
    /// Apply the database migrations and exit.
    Migrate,
    /// The reports' rollups: recount them from the facts, or compare them with a recount.
    Rollups {
        #[arg(value_enum)]
        action: RollupAction,
        /// Only this tenant (default: every tenant).
        #[arg(long)]
        tenant: Option<i64>,
    },
    /// The control service: owns agent state, matches answered customers to ready agents, feeds the
    /// wallboard. Consumes the API's commands and the shards' events from Redis Streams.
    Control {
        /// redis://host:port (the bus).
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        /// Serve only these tenants (default: every tenant in the database).
        #[arg(long, value_delimiter = ',')]
        tenants: Vec<u64>,
        /// Consumer name in the groups (default: host-pid); keep it stable across restarts of one
        /// instance so its pending entries are taken back at once.
        #[arg(long, env = "KAKERU_CONTROL_CONSUMER")]
        consumer: Option<String>,
        /// Put before every Redis stream and key name (several installations sharing one Redis).
        #[arg(long, env = "KAKERU_REDIS_PREFIX", default_value = "")]
        redis_prefix: String,
    },
    /// Create a tenant with its first MGR user; prints the generated password.
    Tenant {
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "Asia/Tokyo")]
        time_zone: String,
        #[arg(long, default_value = "admin")]
        admin_login: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RollupAction {
    /// Recount every day that has facts (days whose facts retention deleted are kept).
    Rebuild,
    /// Compare the stored rollups with a recount; exits non-zero when a day differs.
    Verify,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    start_metrics(&cli).await?;
    match cli.role {
        Role::Control { redis_url, tenants, consumer, redis_prefix } => {
            let mut cfg = NodeConfig::new(&cli.database_url);
            cfg.database_pool = cli.database_pool;
            cfg.redis_url = Some(redis_url);
            cfg.redis_prefix = redis_prefix;
            cfg.tenants = tenants;
            if let Some(c) = consumer {
                cfg.consumer = c;
            }
            let consumer = cfg.consumer.clone();
            let mut node = Node::open(cfg).await?;
            // Active/standby on leases: a second `kakeru control` waits and takes over.
            let member = format!("{consumer}:{}", store::now_ms());
            node.spawn_control_on_leases(dialer::placement::PlacementConfig::new(member));
            eprintln!("kakeru control: serving every tenant as consumer {consumer}");
            node.run(terminated()).await?;
        }
        Role::Sim(args) => {
            let (tx, rx) = tokio::sync::watch::channel(false);
            let stop = terminated();
            tokio::spawn(async move {
                stop.await;
                let _ = tx.send(true);
            });
            kakeru::sim::run(args, rx).await?;
        }
        Role::Demo(args) => {
            kakeru::demo::run(&cli.database_url, &args.listen, args.config(), terminated()).await?;
        }
        Role::Dialer {
            redis_url,
            redis_prefix,
            carrier,
            carrier_domain,
            carrier_user,
            carrier_password,
            sip_listen,
            advertise_ip,
            media_ip,
            webrtc_tcp_port,
            shards,
            recordings_dir,
            tenants,
            instance,
            sip_nonce_secret_file,
            sip_nonce_secret,
            sip_min_expires,
            sip_max_expires,
        } => {
            let carrier = resolve(&carrier).await.context("--carrier")?;
            let mut ecfg = dialer::engine::EngineConfig::new(carrier);
            let host = instance.unwrap_or_else(|| std::env::var("HOSTNAME").unwrap_or_else(|_| "dialer".into()));
            ecfg.instance = format!("{host}:{}:{}", std::process::id(), store::now_ms());
            ecfg.instance_prefix = format!("{host}:");
            ecfg.consumer = host.clone();
            ecfg.shards = shards.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
            ecfg.pin_cores = true;
            ecfg.sip_listen = sip_listen;
            ecfg.media_ip = media_ip;
            ecfg.webrtc_tcp_port = Some(webrtc_tcp_port);
            if let Some(ip) = advertise_ip {
                ecfg.advertise_ip = ip;
            } else if !sip_listen.ip().is_unspecified() {
                ecfg.advertise_ip = sip_listen.ip();
            }
            ecfg.carrier_domain = carrier_domain;
            ecfg.carrier_credentials = match (carrier_user, carrier_password) {
                (Some(username), Some(password)) => Some(sip::auth::Credentials { username, password }),
                (None, None) => None,
                _ => anyhow::bail!("--carrier-user and --carrier-password go together"),
            };
            ecfg.recordings_dir = recordings_dir;
            ecfg.tenants = (!tenants.is_empty()).then_some(tenants.clone());
            // Production runs several dialer hosts: each campaign on one of them, on leases.
            ecfg.placement = Some(dialer::engine::PlacementConfig::new(""));
            match (sip_nonce_secret_file, sip_nonce_secret) {
                (Some(path), None) => {
                    // Read here too, so that a missing or weak file stops the start with its reason.
                    dialer::secrets::load_nonce_keys(&path).await?;
                    ecfg.nonce_key_file = Some(path);
                }
                (None, Some(secret)) => {
                    ecfg.phones.nonce_keys =
                        sip::auth::NonceKeys::new(secret.as_bytes()).context("KAKERU_SIP_NONCE_SECRET")?;
                }
                (Some(_), Some(_)) => anyhow::bail!("give the SIP nonce secret as a file or as a value, not both"),
                (None, None) => anyhow::bail!(
                    "the phones' digest nonce secret is missing: set KAKERU_SIP_NONCE_SECRET_FILE (a file, one \
                     secret a line, the current first) or KAKERU_SIP_NONCE_SECRET"
                ),
            }
            if sip_min_expires == 0
                || sip_min_expires > sip_max_expires
                || sip_max_expires > sip::registrar::MAX_EXPIRES_S
            {
                anyhow::bail!(
                    "--sip-min-expires and --sip-max-expires: 1 <= min <= max <= {}",
                    sip::registrar::MAX_EXPIRES_S
                );
            }
            ecfg.phones.min_expires_s = sip_min_expires;
            ecfg.phones.max_expires_s = sip_max_expires;
            ecfg.phones.default_expires_s = sip_max_expires;
            tracing::info!(phones = ?ecfg.phones, nonce_key_file = ?ecfg.nonce_key_file, "the agents' phones' SIP settings");
            let mut cfg = NodeConfig::new(&cli.database_url);
            cfg.database_pool = cli.database_pool;
            cfg.redis_url = Some(redis_url);
            cfg.redis_prefix = redis_prefix;
            cfg.tenants = tenants;
            let shards = ecfg.shards;
            let mut node = Node::open(cfg).await?;
            node.spawn_dialer(ecfg);
            eprintln!("kakeru dialer: {shards} shard(s), SIP from {sip_listen}, carrier {carrier}");
            node.run(terminated()).await?;
        }
        Role::Rollups { action, tenant } => {
            let db = store::Db::connect(&cli.database_url).await.context("opening the database")?;
            let tenants = match tenant {
                Some(t) => vec![t],
                None => store::rollups::tenant_ids(&db).await.context("listing tenants")?,
            };
            let mut differ = 0;
            for t in tenants {
                let now = store::now_ms();
                match action {
                    RollupAction::Rebuild => {
                        let r = store::rollups::rebuild(&db, t, now).await.with_context(|| format!("tenant {t}"))?;
                        println!("tenant {t}: {} day(s) recounted from the facts", r.days.len());
                    }
                    RollupAction::Verify => {
                        let bad = store::rollups::verify(&db, t, now).await.with_context(|| format!("tenant {t}"))?;
                        if bad.is_empty() {
                            println!("tenant {t}: rollups equal a recount of the facts");
                        } else {
                            differ += bad.len();
                            let days: Vec<String> = bad.iter().map(ToString::to_string).collect();
                            println!("tenant {t}: {} day(s) differ from a recount: {}", bad.len(), days.join(" "));
                        }
                    }
                }
            }
            if differ > 0 {
                anyhow::bail!("{differ} day(s) differ; `kakeru rollups rebuild` recounts them");
            }
        }
        Role::Migrate => {
            store::migrate(&cli.database_url).await.context("migrating")?;
            println!("migrations applied to {}", redact(&cli.database_url));
        }
        Role::Tenant { code, name, time_zone, admin_login } => {
            if !store::accounts::login_id_ok(&admin_login) {
                anyhow::bail!("--admin-login: 3 to 15 half-width letters and digits");
            }
            let db = store::Db::connect(&cli.database_url).await.context("opening the database")?;
            let now = store::now_ms();
            let tenant_id = store::tenancy::create_tenant(&db, &code, &name, &time_zone, now)
                .await
                .context("creating the tenant")?;
            let password = store::accounts::random_password();
            let user = store::accounts::NewUser {
                tenant_id,
                login: &admin_login,
                display_name: &admin_login,
                role: store::accounts::Role::Mgr,
                password: &password,
            };
            store::accounts::create_user(&db, &user, now).await.context("creating the MGR user")?;
            println!("tenant {code} created; login: tenant={code} login={admin_login} password={password}");
        }
        Role::Api {
            listen,
            seed_demo,
            redis_url,
            redis_prefix,
            max_connections_per_source,
            header_timeout_s,
            trusted_proxies,
            login_attempts_per_source,
            login_attempts_per_account,
            login_lockout_after,
        } => {
            eprintln!("kakeru api: opening {} ...", redact(&cli.database_url));
            anyhow::ensure!(max_connections_per_source >= 1, "--max-connections-per-source: at least 1");
            anyhow::ensure!((1..=300).contains(&header_timeout_s), "--header-timeout-s: 1 to 300");
            let mut cfg = NodeConfig::new(&cli.database_url);
            cfg.database_pool = cli.database_pool;
            cfg.api_limits.max_connections_per_source = max_connections_per_source;
            cfg.api_limits.header_read_timeout = std::time::Duration::from_secs(header_timeout_s);
            cfg.api_limits.trusted_proxies = trusted_proxies;
            anyhow::ensure!(login_attempts_per_source >= 1, "--login-attempts-per-source: at least 1");
            anyhow::ensure!(login_attempts_per_account >= 1, "--login-attempts-per-account: at least 1");
            anyhow::ensure!((1..=1000).contains(&login_lockout_after), "--login-lockout-after: 1 to 1000");
            cfg.login_limits.per_source = login_attempts_per_source;
            cfg.login_limits.per_account = login_attempts_per_account;
            cfg.login_limits.lockout_after = login_lockout_after;
            cfg.redis_url = redis_url;
            cfg.redis_prefix = redis_prefix;
            let embedded = cfg.redis_url.is_none();
            let mut node = Node::open(cfg).await?;
            let demo = if seed_demo {
                Some(
                    store::seed::ensure_demo_tenant(node.db(), store::now_ms())
                        .await
                        .context("seeding the demo tenant")?,
                )
            } else {
                None
            };
            let listener =
                tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("listening on {listen}"))?;
            let addr = listener.local_addr()?;
            node.spawn_api(listener);
            if embedded {
                // The embedded default: the control services in this process, over the in-process bus.
                node.spawn_control();
            } else {
                node.spawn_wallboard_follower();
            }
            println!("kakeru api listening on http://{addr}  (API docs: http://{addr}/docs, OpenAPI: http://{addr}/openapi.json)");
            println!(
                "kakeru api: {}",
                if embedded {
                    "embedded: control service in this process, in-process bus"
                } else {
                    "bus on Redis: the control service runs as `kakeru control`"
                }
            );
            if let Some(d) = demo {
                println!(
                    "login: POST http://{addr}/auth/login {{\"tenant\":\"{}\",\"login\":\"{}\",\"password\":\"{}\"}}",
                    d.tenant, d.login, d.password
                );
            }
            node.run(terminated()).await?;
        }
    }
    Ok(())
}

/// Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the future is
/// first polled: a role prints that it is ready before it first awaits this (the sim role's task
/// may not have run yet), and a signal arriving in between would otherwise kill the process
/// without its orderly stop (seen in CI: `kill -INT` right after the carrier's first answer).
fn terminated() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (int, term) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()));
    async move {
        match (int, term) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// Installs the metrics recorder for this role and serves `--metrics-listen` when given.
async fn start_metrics(cli: &Cli) -> anyhow::Result<()> {
    let role = match &cli.role {
        Role::Api { .. } => "api",
        Role::Control { .. } => "control",
        Role::Dialer { .. } => "dialer",
        Role::Demo(_) => "demo",
        Role::Sim(_) => "sim",
        Role::Migrate | Role::Tenant { .. } | Role::Rollups { .. } => return Ok(()),
    };
    telemetry::install(role)?;
    if let Some(addr) = &cli.metrics_listen {
        let bound = telemetry::serve(addr).await?;
        eprintln!("kakeru {role}: metrics on http://{bound}/metrics");
    }
    Ok(())
}

/// `host:port` to one socket address (the first the resolver gives).
async fn resolve(addr: &str) -> anyhow::Result<std::net::SocketAddr> {
    tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr}: no address"))
}

/// A database URL without its password, for printing.
fn redact(url: &str) -> String {
    kakeru::node::redact_url(url)
}
