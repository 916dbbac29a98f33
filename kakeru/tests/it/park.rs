//! パーク保留 in the agent desktop: two agents' pages in a real headless Chromium
//! (`api/tests/browser/park.test.js`) against the whole floor in one process (API, control, dialer
//! engine, the built-in carrier, both agents' simulated phones). The first parks its customer with
//! the desktop's button, both see it listed under the phone, the second picks it up with コールバック
//! and talks with the same customer; afterwards the park and the call record are checked in SQL.

use std::time::Duration;

use serde_json::json;
use sim::carrier::{Behaviour, CarrierConfig};
use store::sqlx::{self, Row};
use tokio::sync::watch;

use crate::desktop::{
    browser_test, campaign, fresh_node, insert, join_group, phone_account, require_browser, run_browser, Floor,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_parks_a_call_and_a_colleague_picks_it_up_from_the_desktop() {
    require_browser();
    let (_dir, node, t) = fresh_node("park", "パーク株式会社").await;
    let db = node.db().clone();
    let now = store::now_ms();
    use store::accounts::Role;
    let user = |login: &'static str, name: &'static str| store::accounts::NewUser {
        tenant_id: t,
        login,
        display_name: name,
        role: Role::Op,
        password: "park-password-1",
    };
    let tanaka = store::accounts::create_user(&db, &user("tanaka", "田中 太郎"), now).await.expect("op");
    let sato = store::accounts::create_user(&db, &user("sato", "佐藤 花子"), now).await.expect("op 2");
    let group = insert(
        &db,
        "INSERT INTO dialing_groups (tenant_id, name, created_at) VALUES ($1, '第一班', 0) RETURNING id",
        &[json!(t)],
    )
    .await;
    for (u, login) in [(tanaka, "tanaka"), (sato, "sato")] {
        phone_account(&db, t, u, login, "park", &format!("sip-{login}")).await;
        join_group(&db, t, group, u).await;
    }
    insert(
        &db,
        "INSERT INTO pause_reasons (tenant_id, name, color, created_at) VALUES ($1, '休憩', '#f2c94c', 0) RETURNING id",
        &[json!(t)],
    )
    .await;
    let (job, _, _) = campaign(&db, t, group, "パーク発信", "progressive", &[("山田 花子", "0311110001")]).await;

    let (sim_stop, sim_rx) = watch::channel(false);
    let loopback = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    let rules = [Behaviour::Answer { after_ms: 400, talk_ms: None }; 10];
    let carrier = sim::carrier::start(
        loopback,
        CarrierConfig { by_last_digit: Some(rules), ..CarrierConfig::default() },
        sim_rx.clone(),
    )
    .await
    .expect("carrier");
    let floor = Floor::start(node, t, carrier.sip_addr, "park", None).await;
    let phones = sim::phone::start(
        ["tanaka", "sato"]
            .into_iter()
            .map(|u| sim::phone::PhoneAccount {
                username: u.into(),
                password: format!("sip-{u}"),
                domain: "park".into(),
            })
            .collect(),
        sim::phone::PhoneConfig {
            registrar: floor.info.sip_addrs[0],
            bind_ip: loopback,
            expires_s: 300,
            answer_after: Duration::from_millis(300),
            tone_hz: None,
        },
        sim_rx.clone(),
    )
    .await
    .expect("phones");

    let fixture = json!({
        "tenant": "park", "password": "park-password-1", "agents": ["tanaka", "sato"],
        "job": job.name, "tel": "0311110001", "name": "山田 花子",
    });
    run_browser(browser_test("park.test.js", "park", &floor.base, &fixture), Duration::from_secs(240)).await;
    // The park is written down: parked by 田中, picked up by 佐藤; the call record is 佐藤's now.
    let row =
        sqlx::query("SELECT dialer_call_id, parked_by, picked_by, outcome FROM parked_calls WHERE tenant_id = $1")
            .bind(t)
            .fetch_one(&db.pool)
            .await
            .expect("the park");
    let call: i64 = row.get("dialer_call_id");
    assert_eq!(
        (
            row.get::<i64, _>("parked_by"),
            row.get::<Option<i64>, _>("picked_by"),
            row.get::<Option<String>, _>("outcome")
        ),
        (tanaka, Some(sato), Some("picked_up".to_string()))
    );
    let agent: Option<i64> =
        sqlx::query("SELECT agent_user_id FROM call_records WHERE tenant_id = $1 AND dialer_call_id = $2")
            .bind(t)
            .bind(call)
            .fetch_one(&db.pool)
            .await
            .expect("the call record")
            .get(0);
    assert_eq!(agent, Some(sato), "the record follows the call");
    assert_eq!(carrier.log().len(), 1, "one customer call");
    floor.stop().await;
    let _ = sim_stop.send(true);
    drop(phones);
}
