//! The control service's commit of one batch (`store::control::commit`) on both backends: rows in
//! the batch's order, values that need escaping intact, agent rows replaced, and a deleted tenant's
//! control rows gone with it (on PostgreSQL by a trigger, where the foreign keys were dropped).

use store::control::{AgentRow, Batch, Committed, TransitionRow};
use store::sqlx::{self, Row};

use crate::service::{backends, count, fixture};

fn transition<'a>(agent: i64, from: &'a str, to: &'a str, at_ms: i64, message_id: &'a str) -> TransitionRow<'a> {
    TransitionRow {
        agent_user_id: agent,
        from_state: from,
        to_state: to,
        from_reason_id: None,
        to_reason_id: (to == "paused").then_some(7),
        cause: "command",
        supervisor_id: (agent == 2).then_some(99),
        dialer_call_id: None,
        at_ms,
        message_id,
    }
}

fn agent(id: i64, view: &str) -> AgentRow {
    AgentRow {
        agent_user_id: id,
        campaign_id: Some(5),
        call_job_id: None,
        dialing_group_id: (id == 2).then_some(3),
        view: view.into(),
        config: r#"{"acw_ms":null,"note":"quote \" backslash \\ 改行\n"}"#.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_written_in_order_and_goes_with_its_tenant() {
    for backend in backends() {
        let (_url, db, tenant, _reason, _dir) = fixture(backend).await;
        let t = tenant as i64;
        // Ids that need escaping in JSON (the PostgreSQL path sends the batch as JSON text).
        let ids: Vec<String> = vec!["01JA\"quoted\"".into(), "timer:1\\2".into(), "待機".into()];
        // Agent 1 twice at the same millisecond: only the ids keep their order.
        let transitions = [
            transition(1, "ready", "paused", 1_000, &ids[0]),
            transition(1, "paused", "ready", 1_000, &ids[1]),
            transition(2, "ready", "paused", 900, &ids[2]),
        ];
        let agents = [agent(1, r#"{"state":"ready"}"#), agent(2, r#"{"state":"paused"}"#)];
        let batch = Batch { applied: &ids, transitions: &transitions, calls: &[], agents: &agents };
        let r = store::control::commit(&db, t, 5_000, batch, None).await.expect("commit");
        assert_eq!(r, Committed::Done, "{backend:?}");

        let rows = sqlx::query(
            "SELECT agent_user_id, from_state, to_state, from_reason_id, to_reason_id, supervisor_id, at, message_id
             FROM agent_transitions WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(t)
        .fetch_all(&db.pool)
        .await
        .expect("transitions");
        let got: Vec<(i64, String, String, Option<i64>, Option<i64>, Option<i64>, i64, String)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7)))
            .collect();
        let want: Vec<_> = transitions
            .iter()
            .map(|x| {
                (
                    x.agent_user_id,
                    x.from_state.to_string(),
                    x.to_state.to_string(),
                    x.from_reason_id,
                    x.to_reason_id,
                    x.supervisor_id,
                    x.at_ms,
                    x.message_id.to_string(),
                )
            })
            .collect();
        assert_eq!(got, want, "{backend:?}: transitions in the batch's order, values intact");
        let applied: Vec<String> =
            sqlx::query("SELECT message_id FROM control_applied WHERE tenant_id = $1 ORDER BY id")
                .bind(t)
                .fetch_all(&db.pool)
                .await
                .expect("applied")
                .iter()
                .map(|r| r.get(0))
                .collect();
        assert_eq!(applied, ids, "{backend:?}");
        assert_eq!(store::control::agents(&db, t, 10).await.expect("agents"), agents.to_vec(), "{backend:?}");

        // A later batch replaces agent 2's row and leaves agent 1's.
        let later = [agent(2, r#"{"state":"ready"}"#)];
        let ids2 = vec!["second".to_string()];
        let batch = Batch { applied: &ids2, transitions: &[], calls: &[], agents: &later };
        store::control::commit(&db, t, 6_000, batch, None).await.expect("commit");
        let rows = store::control::agents(&db, t, 10).await.expect("agents");
        assert_eq!(rows, vec![agents[0].clone(), later[0].clone()], "{backend:?}");

        // The tenant deleted: its control rows go with it.
        sqlx::query("DELETE FROM tenants WHERE id = $1").bind(t).execute(&db.pool).await.expect("delete tenant");
        for table in ["agent_transitions", "control_applied", "control_agents"] {
            let n = count(&db, &format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = $1"), tenant).await;
            assert_eq!(n, 0, "{backend:?}: {table} after the tenant was deleted");
        }
    }
}
