//! `kakeru`: one binary, a subcommand per role.

use anyhow::Context;
use clap::{Parser, Subcommand};

/// The embedded default: a SQLite file beside the working directory, nothing to install.
const DEFAULT_DATABASE_URL: &str = "sqlite:kakeru.db";

#[derive(Parser)]
#[command(name = "kakeru", version, about = "kakeru outbound contact center")]
struct Cli {
    /// postgres://... (production) or sqlite:FILE (embedded default).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    database_url: String,
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// The admin API (configuration, lead import, records, OpenAPI at /openapi.json, docs at /docs).
    Api {
        /// Address to listen on.
        #[arg(long, env = "KAKERU_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Create (or refresh the password of) the demo tenant and print its login. Always on for SQLite.
        #[arg(long)]
        seed_demo: bool,
    },
    /// Apply the database migrations and exit.
    Migrate,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.role {
        Role::Migrate => {
            store::migrate(&cli.database_url).await.context("migrating")?;
            println!("migrations applied to {}", redact(&cli.database_url));
        }
        Role::Tenant { code, name, time_zone, admin_login } => {
            let db = store::Db::connect(&cli.database_url).await.context("opening the database")?;
            let now = store::now_ms();
            let tenant_id = store::tenancy::create_tenant(&db, &code, &name, &time_zone, now)
                .await
                .context("creating the tenant")?;
            let password = store::accounts::random_secret(8);
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
        Role::Api { listen, seed_demo } => {
            eprintln!("kakeru api: opening {} ...", redact(&cli.database_url));
            let db = store::Db::connect(&cli.database_url).await.context("opening the database")?;
            let demo = if seed_demo || db.backend == store::Backend::Sqlite {
                Some(store::seed::ensure_demo_tenant(&db, store::now_ms()).await.context("seeding the demo tenant")?)
            } else {
                None
            };
            let listener =
                tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("listening on {listen}"))?;
            let addr = listener.local_addr()?;
            let app = api::build(db.clone(), api::Config::default());
            tokio::spawn(purge_sessions(db));
            println!("kakeru api listening on http://{addr}  (API docs: http://{addr}/docs, OpenAPI: http://{addr}/openapi.json)");
            if let Some(d) = demo {
                println!(
                    "login: POST http://{addr}/auth/login {{\"tenant\":\"{}\",\"login\":\"{}\",\"password\":\"{}\"}}",
                    d.tenant, d.login, d.password
                );
            }
            api::serve(listener, app, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        }
    }
    Ok(())
}

/// Deletes expired bearer sessions every 10 minutes.
async fn purge_sessions(db: store::Db) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        match store::accounts::purge_expired_sessions(&db, store::now_ms()).await {
            Ok(n) if n > 0 => tracing::info!(sessions = n, "expired sessions deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not delete expired sessions"),
        }
    }
}

/// A database URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
