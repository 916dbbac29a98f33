//! The dialer's writer against a real database: one poisoned write among 10,000 is kept aside as a
//! dead letter and holds nothing up; the other 9,999 are written.

use std::sync::{Arc, Mutex};

use dialer::engine::core::Write;
use dialer::engine::writer::{self, Job, WriterStats};
use store::dialing::CallResult;
use store::sqlx;

use crate::floor::{backends, scalar};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_poisoned_write_among_10000_is_a_dead_letter_and_the_rest_are_written() {
    for backend in backends() {
        let (db, _dir) = store::testing::fresh_db(backend).await;
        let now = store::now_ms();
        let tenant = store::tenancy::create_tenant(&db, "w", "writer", "Asia/Tokyo", now).await.expect("tenant");
        // 10,000 calls placed (as the prepare step writes them), in multi-row INSERTs.
        for chunk in (0..10_000i64).collect::<Vec<_>>().chunks(1_000) {
            let sql = format!(
                "INSERT INTO call_records (tenant_id, dialer_call_id, tel, started_at, result) VALUES {}",
                store::placeholders(db.backend, chunk.len(), 5)
            );
            let mut q = sqlx::query(&sql);
            for c in chunk {
                q = q.bind(tenant).bind(c + 1).bind("0312345678").bind(now).bind("pending");
            }
            q.execute(&db.pool).await.expect("call records");
        }
        let (tx, rx) = tokio::sync::mpsc::channel(writer::WRITE_QUEUE);
        let stats = Arc::new(Mutex::new(WriterStats::default()));
        let task = tokio::spawn(writer::run(db.clone(), rx, stats.clone()));
        // The 5,000th write is a result for a call record that does not exist (deleted meanwhile).
        for i in 1..=10_000i64 {
            let call_id = if i == 5_000 { 99_999_999 } else { i };
            let r = CallResult { call_id, result: "busy", sip_status: 486, answered_at: None, ended_at: now };
            tx.send(Job { tenant: tenant as u64, write: Write::Results(vec![r]) }).await.expect("send");
        }
        drop(tx);
        task.await.expect("the writer ends when its queue closes");
        let busy =
            scalar(&db, tenant as u64, "SELECT COUNT(*) FROM call_records WHERE tenant_id = $1 AND result = 'busy'")
                .await;
        assert_eq!(busy, 9_999, "{backend:?}");
        let dead = store::dialing::dead_letters(&db, tenant, 10).await.expect("dead letters");
        assert_eq!(dead.len(), 1, "{backend:?}");
        assert_eq!(dead[0].kind, "results");
        assert!(dead[0].payload.contains("99999999"), "{}", dead[0].payload);
        let s = *stats.lock().expect("stats");
        assert_eq!((s.dead_lettered, s.lost), (1, 0), "{backend:?}");
    }
}

#[test]
fn errors_are_told_apart() {
    use dialer::engine::writer::{classify, Class};
    use store::StoreError;
    assert_eq!(classify(&StoreError::NotFound), Class::Permanent);
    assert_eq!(classify(&StoreError::Constraint("fk".into())), Class::Permanent);
    assert_eq!(classify(&StoreError::Db(sqlx::Error::PoolTimedOut)), Class::Transient);
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
    assert_eq!(classify(&StoreError::Db(sqlx::Error::Io(io))), Class::Transient);
    assert_eq!(classify(&StoreError::Db(sqlx::Error::RowNotFound)), Class::Permanent);
}
