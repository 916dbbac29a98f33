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

/// The monitoring records (`call_monitors`) on both backends: the API's request, the writer's start
/// and end; a second end never overwrites the first; the call's list names the supervisor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_records_start_and_end_once() {
    for backend in backends() {
        let (db, _dir) = store::testing::fresh_db(backend).await;
        let now = store::now_ms();
        let tenant = store::tenancy::create_tenant(&db, "m", "monitor", "Asia/Tokyo", now).await.expect("tenant");
        let sv = store::accounts::create_user(
            &db,
            &store::accounts::NewUser {
                tenant_id: tenant,
                login: "sv1",
                display_name: "鈴木 SV",
                role: store::accounts::Role::Sv,
                password: "Monitor-pass-1",
            },
            now,
        )
        .await
        .expect("sv");
        sqlx::query("INSERT INTO call_records (tenant_id, dialer_call_id, tel, started_at, result) VALUES ($1, 7, '0312345678', $2, 'pending')")
            .bind(tenant)
            .bind(now)
            .execute(&db.pool)
            .await
            .expect("call record");
        let call = scalar(&db, tenant as u64, "SELECT id FROM call_records WHERE tenant_id = $1").await;
        let mut ids = Vec::new();
        for mode in ["listen", "barge"] {
            let r = store::monitoring::Request {
                tenant_id: tenant,
                call_record_id: call,
                agent_user_id: 99,
                supervisor_user_id: sv,
                mode,
                at_ms: now,
            };
            ids.push(store::monitoring::requested(&db, &r).await.expect("requested"));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let stats = Arc::new(Mutex::new(WriterStats::default()));
        let task = tokio::spawn(writer::run(db.clone(), rx, stats.clone()));
        let t = tenant as u64;
        for write in [
            Write::MonitorStarted { monitor: ids[0], at_ms: now + 300 },
            Write::MonitorEnded { monitor: ids[0], at_ms: now + 5_000, reason: "mode_changed" },
            Write::MonitorEnded { monitor: ids[0], at_ms: now + 9_000, reason: "call_ended" },
            // Never started (the phone did not answer): ended, no start.
            Write::MonitorEnded { monitor: ids[1], at_ms: now + 6_000, reason: "unreachable" },
            Write::MonitorStarted { monitor: ids[1], at_ms: now + 7_000 },
        ] {
            tx.send(Job { tenant: t, write }).await.expect("send");
        }
        drop(tx);
        task.await.expect("the writer ends");
        let got = store::monitoring::of_call(&db, tenant, call, 10).await.expect("list");
        assert_eq!(got.len(), 2, "{backend:?}");
        assert_eq!(
            (got[0].mode.as_str(), got[0].started_at, got[0].ended_at, got[0].end_reason.as_deref()),
            ("listen", Some(now + 300), Some(now + 5_000), Some("mode_changed")),
            "{backend:?}: the first end counts"
        );
        assert_eq!(
            (got[1].mode.as_str(), got[1].started_at, got[1].ended_at, got[1].end_reason.as_deref()),
            ("barge", None, Some(now + 6_000), Some("unreachable")),
            "{backend:?}: an ended record never starts"
        );
        assert_eq!(got[0].supervisor, "鈴木 SV");
        // Another tenant's list is empty.
        assert!(store::monitoring::of_call(&db, tenant + 1, call, 10).await.expect("list").is_empty());
        assert_eq!(stats.lock().expect("stats").dead_lettered, 0);
    }
}
