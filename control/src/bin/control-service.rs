//! One tenant's control service over Redis, for the crash tests (`tests/it/service_crash.rs`): the
//! same `supervise` loop `kakeru control` runs, without the rest of the binary. Configured by the
//! environment: `DATABASE_URL`, `REDIS_URL`, `KAKERU_TENANT`, `KAKERU_CONTROL_CONSUMER`.

use std::sync::Arc;

use bus::{BusError, RedisBus, RedisBusConfig};
use control::service::{supervise, ServiceConfig};
use wallboard::Feed;

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let db_url = var("DATABASE_URL")?;
    let redis_url = var("REDIS_URL")?;
    let tenant: u64 = var("KAKERU_TENANT")?.parse().map_err(|e| format!("KAKERU_TENANT: {e}"))?;
    let consumer = var("KAKERU_CONTROL_CONSUMER")?;
    let db = store::Db::connect(&db_url).await.map_err(|e| format!("database: {e}"))?;
    let buses = move || {
        let url = redis_url.clone();
        async move {
            let c = RedisBusConfig::new(url);
            Ok::<_, BusError>([
                RedisBus::connect(c.clone()).await?,
                RedisBus::connect(c.clone()).await?,
                RedisBus::connect(c).await?,
            ])
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut cfg = ServiceConfig::new(tenant, consumer);
    cfg.batch = 200;
    let task = tokio::spawn(supervise(buses, db, cfg, Arc::new(Feed::default()), stop_rx));
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = stop_tx.send(true);
    let _ = task.await;
    Ok(())
}
