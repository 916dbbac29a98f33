//! Helpers for tests against a real Redis (feature `testing`): the bus's contract suite and the
//! suites of the crates over it use the same ones.

use crate::{BusConfig, RedisBus, RedisBusConfig};

/// `REDIS_URL`, default redis://127.0.0.1:6379.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A Redis bus; a missing Redis fails the test (it never skips).
pub async fn redis_bus(bus: BusConfig) -> RedisBus {
    let mut cfg = RedisBusConfig::new(redis_url());
    cfg.bus = bus;
    cfg.retry_max_attempts = 2;
    match RedisBus::connect(cfg).await {
        Ok(b) => b,
        Err(e) => panic!("no Redis at {} (scripts/services.sh starts one): {e}", redis_url()),
    }
}

/// Deletes a test's stream and its dead letters.
pub async fn cleanup(stream: &str) {
    if let Ok(client) = ::redis::Client::open(redis_url()) {
        if let Ok(mut c) = client.get_multiplexed_async_connection().await {
            let _: Result<(), _> =
                ::redis::cmd("DEL").arg(stream).arg(format!("{stream}:dead")).query_async(&mut c).await;
        }
    }
}
