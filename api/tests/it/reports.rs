//! The reports against figures computed by hand over a seeded floor (Asia/Tokyo, and New York on
//! the day its clocks go back), the rollups against a recount of the facts, the CSV in both
//! encodings read back, and tenant isolation.

use serde_json::{json, Value};
use store::accounts::{self, NewUser, Role};
use store::sqlx;

use crate::harness::{expect, scaffold, Tenant, TestApp};

/// Unix ms of a local wall-clock time in `tz`.
fn at(tz: &str, local: &str) -> i64 {
    use chrono::TimeZone;
    let tz = store::tenancy::parse_tz(tz).expect("zone");
    let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S").expect("time");
    tz.from_local_datetime(&naive).earliest().expect("local time").timestamp_millis()
}

struct Floor {
    campaign: i64,
    group: i64,
    job: i64,
    list: i64,
    leads: Vec<i64>,
    agent1: i64,
    agent2: i64,
    reason: i64,
}

async fn floor(app: &TestApp, t: &Tenant) -> Floor {
    let mgr = t.mgr();
    let (campaign, _, list) =
        scaffold(app, t, json!({"agent_wait_timeout_s": 20, "caller_id": "0312345678"}), false).await;
    for (n, label, connected) in [(1, "受注", true), (2, "不通", false)] {
        let body = json!({"campaign_id": campaign, "number": n, "label": label, "connected": connected});
        expect(app.call(mgr, "post", "/result-codes", Some(&body)).await, 201);
    }
    let group = expect(app.call(mgr, "post", "/dialing-groups", Some(&json!({"name": "G1"}))).await, 201)["id"]
        .as_i64()
        .unwrap();
    let mut leads = Vec::new();
    for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
        let body = json!({"list_id": list, "name": name, "kana": "カナ", "tel": format!("090000000{i}")});
        leads.push(expect(app.call(mgr, "post", "/leads", Some(&body)).await, 201)["id"].as_i64().unwrap());
    }
    let job = json!({"campaign_id": campaign, "dialing_group_id": group, "name": "J", "list_ids": [list]});
    let job = expect(app.call(mgr, "post", "/call-jobs", Some(&job)).await, 201)["id"].as_i64().unwrap();
    let agent1 = t.user(Role::Op);
    let agent2 = accounts::create_user(
        &app.db,
        &NewUser { tenant_id: t.id, login: "op2", display_name: "op2", role: Role::Op, password: "pw-op2-123" },
        store::now_ms(),
    )
    .await
    .unwrap();
    for a in [agent1, agent2] {
        sqlx::query("INSERT INTO campaign_agents (tenant_id, campaign_id, user_id) VALUES ($1, $2, $3)")
            .bind(t.id)
            .bind(campaign)
            .bind(a)
            .execute(&app.db.pool)
            .await
            .unwrap();
    }
    let reason = expect(app.call(mgr, "post", "/pause-reasons", Some(&json!({"name": "休憩"}))).await, 201)["id"]
        .as_i64()
        .unwrap();
    Floor { campaign, group, job, list, leads, agent1, agent2, reason }
}

/// A call record as the dialer and control write it (times Unix ms). Returns its id.
#[allow(clippy::too_many_arguments)]
async fn call(
    app: &TestApp,
    t: &Tenant,
    f: &Floor,
    lead: usize,
    started: i64,
    answered: Option<i64>,
    bridged: Option<(i64, i64)>,
    ended: i64,
    result: &str,
) -> i64 {
    let r = sqlx::query(
        "INSERT INTO call_records (tenant_id, campaign_id, call_job_id, lead_id, tel, caller_id, direction, started_at,
            answered_at, bridged_at, agent_user_id, ended_at, result, list_id)
         VALUES ($1, $2, $3, $4, $5, '0312345678', 'outbound', $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(t.id)
    .bind(f.campaign)
    .bind(f.job)
    .bind(f.leads[lead])
    .bind(format!("090000000{lead}"))
    .bind(started)
    .bind(answered)
    .bind(bridged.map(|b| b.0))
    .bind(bridged.map(|b| b.1))
    .bind(ended)
    .bind(result)
    .bind(f.list)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let id: i64 = sqlx::Row::try_get(&r, "id").unwrap();
    sqlx::query("UPDATE call_records SET dialer_call_id = id WHERE id = $1")
        .bind(id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    if let Some((_, agent)) = bridged {
        sqlx::query(
            "INSERT INTO wrapup_records (tenant_id, call_record_id, lead_id, agent_user_id, result, saved, created_at, dialer_call_id)
             VALUES ($1, $2, $3, $4, 'no_entry', 0, $5, $2)",
        )
        .bind(t.id)
        .bind(id)
        .bind(f.leads[lead])
        .bind(agent)
        .bind(ended)
        .execute(&app.db.pool)
        .await
        .unwrap();
    }
    id
}

async fn save(app: &TestApp, t: &Tenant, call_id: i64, result: &str, reported: bool, at_ms: i64) {
    sqlx::query(
        "UPDATE wrapup_records SET result = $1, saved = 1, saved_at = $2, reported = $3, reported_at = $4
         WHERE tenant_id = $5 AND call_record_id = $6",
    )
    .bind(result)
    .bind(at_ms)
    .bind(i64::from(reported))
    .bind(reported.then_some(at_ms))
    .bind(t.id)
    .bind(call_id)
    .execute(&app.db.pool)
    .await
    .unwrap();
}

async fn transition(app: &TestApp, t: &Tenant, agent: i64, from: &str, to: &str, reason: Option<i64>, at_ms: i64) {
    sqlx::query(
        "INSERT INTO agent_transitions (tenant_id, agent_user_id, from_state, to_state, to_reason_id, cause, at, message_id)
         VALUES ($1, $2, $3, $4, $5, 'test', $6, 'm')",
    )
    .bind(t.id)
    .bind(agent)
    .bind(from)
    .bind(to)
    .bind(reason)
    .bind(at_ms)
    .execute(&app.db.pool)
    .await
    .unwrap();
}

const TOKYO: &str = "Asia/Tokyo";

/// The seeded floor of 2026-12-01 in Tokyo (the figures in the comments are the hand-computed ones).
async fn seed_tokyo(app: &TestApp, t: &Tenant) -> (Floor, Vec<i64>) {
    let f = floor(app, t).await;
    let d = |hms: &str| at(TOKYO, &format!("2026-12-01 {hms}"));
    let s = 1000;
    let mut ids = Vec::new();
    // 8. the day before: lead a's first dial ever (busy).
    ids.push(
        call(app, t, &f, 0, at(TOKYO, "2026-11-30 12:00:00"), None, None, at(TOKYO, "2026-11-30 12:00:05"), "busy")
            .await,
    );
    // 1. 09:10 lead a: rings 8 s, waits 2 s, talks 60 s with agent 1; saved 受注 and reported.
    let c1 = call(
        app,
        t,
        &f,
        0,
        d("09:10:00"),
        Some(d("09:10:08")),
        Some((d("09:10:10"), f.agent1)),
        d("09:11:10"),
        "no_entry",
    )
    .await;
    save(app, t, c1, "1", true, d("09:12:00")).await;
    ids.push(c1);
    // 2. 09:20 lead b: busy after 5 s.
    ids.push(call(app, t, &f, 1, d("09:20:00"), None, None, d("09:20:05"), "busy").await);
    // 3. 09:40 lead c: answered, left after 3 s without an agent (破棄呼).
    ids.push(call(app, t, &f, 2, d("09:40:00"), Some(d("09:40:06")), None, d("09:40:09"), "abandoned").await);
    // 4. 10:05 lead c: answered, released at the 20 s wait limit (制限時間).
    ids.push(call(app, t, &f, 2, d("10:05:00"), Some(d("10:05:04")), None, d("10:05:24"), "abandoned").await);
    // 5. 10:30 lead b: waits 5 s, talks 20 s with agent 2; saved 不通 (a call, not a connect).
    let c5 = call(
        app,
        t,
        &f,
        1,
        d("10:30:00"),
        Some(d("10:30:10")),
        Some((d("10:30:15"), f.agent2)),
        d("10:30:35"),
        "no_entry",
    )
    .await;
    save(app, t, c5, "2", false, d("10:31:00")).await;
    ids.push(c5);
    // 6. 11:00 lead d: on the do-not-call list, not dialled.
    ids.push(call(app, t, &f, 3, d("11:00:00"), None, None, d("11:00:00"), "restricted").await);
    // 7. 23:50 lead a: waits 1 s, talks 20 min with agent 1 past midnight; never saved.
    ids.push(
        call(
            app,
            t,
            &f,
            0,
            d("23:50:00"),
            Some(d("23:50:05")),
            Some((d("23:50:06"), f.agent1)),
            d("23:50:06") + 1200 * s,
            "no_entry",
        )
        .await,
    );
    // Agent 1's day: 09:00 ready, a call at 09:10, break 09:30-10:00, logs off at 10:15.
    for (from, to, reason, hms) in [
        ("offline", "ready", None, "09:00:00"),
        ("ready", "ringing", None, "09:10:08"),
        ("ringing", "talking", None, "09:10:10"),
        ("talking", "wrap_up", None, "09:11:10"),
        ("wrap_up", "ready", None, "09:11:40"),
        ("ready", "paused", Some(f.reason), "09:30:00"),
        ("paused", "ready", None, "10:00:00"),
        ("ready", "offline", None, "10:15:00"),
    ] {
        transition(app, t, f.agent1, from, to, reason, d(hms)).await;
    }
    (f, ids)
}

fn cells(report: &Value, label: &str) -> Vec<Value> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == label)
        .unwrap_or_else(|| panic!("no row {label} in {report}"))
        .as_array()
        .unwrap()
        .clone()
}

fn column(report: &Value, key: &str) -> usize {
    report["columns"].as_array().unwrap().iter().position(|c| c["key"] == key).unwrap_or_else(|| panic!("no {key}"))
}

pub async fn figures_match_the_hand_computed_ones(app: TestApp) {
    let t = app.tenant("rep").await;
    let (f, _) = seed_tokyo(&app, &t).await;
    let now = store::now_ms();
    let done = store::rollups::rebuild(&app.db, t.id, now).await.unwrap();
    assert!(done.days.len() >= 2, "{done:?}");
    assert!(store::rollups::verify(&app.db, t.id, now).await.unwrap().is_empty());
    let sv = t.token(Role::Sv);
    let day = "from=2026-12-01&to=2026-12-01";

    // 統計 by date: コール数 5 (the live answers), 応答呼 3, 破棄呼 1, あふれ 0, 制限時間 1, 応答率 60 %,
    // answer waits 2, 5, 1 s (avg 2.67 s, max 5 s), abandon waits 3 and 20 s (avg 11.5 s, max 20 s).
    let g = expect(app.call(sv, "get", &format!("/reports/groups?{day}&group_id={}", f.group), None).await, 200);
    let row = cells(&g, "2026-12-01");
    assert_eq!(row[1..6], [json!(5), json!(3), json!(1), json!(0), json!(1)], "{g}");
    assert!((row[6].as_f64().unwrap() - 0.6).abs() < 1e-9);
    assert_eq!(row[7..11], [json!(2666), json!(5000), json!(11500), json!(20000)]);
    assert_eq!(g["total"][1], 5);
    // by hour: 09 has calls 1 and 3, 10 calls 4 and 5, 23 call 7.
    let g = expect(app.call(sv, "get", &format!("/reports/groups?{day}&by=hour"), None).await, 200);
    assert_eq!(cells(&g, "09:00")[1..6], [json!(2), json!(1), json!(1), json!(0), json!(0)]);
    assert_eq!(cells(&g, "10:00")[1..6], [json!(2), json!(1), json!(0), json!(0), json!(1)]);
    assert_eq!(cells(&g, "23:00")[1..3], [json!(1), json!(1)]);
    // by agent: agent 1 took calls 1 and 7, agent 2 call 5.
    let g = expect(app.call(sv, "get", &format!("/reports/groups?{day}&by=agent"), None).await, 200);
    assert_eq!(cells(&g, "op")[2], 2);
    assert_eq!(cells(&g, "op2")[2], 1);
    // by talk time: 20 s (call 5), 60 s (call 1), 20 min (call 7).
    let g = expect(app.call(sv, "get", &format!("/reports/groups?{day}&by=duration"), None).await, 200);
    let answered: Vec<i64> = g["rows"].as_array().unwrap().iter().map(|r| r[2].as_i64().unwrap()).collect();
    assert_eq!(answered, [1, 0, 1, 0, 0, 1]);
    // by week (starting Monday): the week of 2026-11-30.
    let g = expect(
        app.call(sv, "get", "/reports/groups?from=2026-11-30&to=2026-12-06&by=week&week_start=mon", None).await,
        200,
    );
    assert_eq!(cells(&g, "2026-11-30")[1], 5);

    // キャンペーン統計: 件数 3 (a, b and c; d was not dialled), コール数 6; a ended the day 未入力
    // (call 7 unsaved), b 不通, c 破棄呼.
    let c =
        expect(app.call(sv, "get", &format!("/reports/campaigns?{day}&campaign_id={}", f.campaign), None).await, 200);
    let row = cells(&c, "2026-12-01");
    assert_eq!(row[1..3], [json!(3), json!(6)], "{c}");
    assert_eq!(row[column(&c, "result:1")], 0);
    assert_eq!(row[column(&c, "result:2")], 1);
    assert_eq!(row[column(&c, "result:no_entry")], 1);
    assert_eq!(row[column(&c, "result:abandoned")], 1);
    let c = expect(app.call(sv, "get", &format!("/reports/campaigns?{day}&show=percent&by=agent"), None).await, 200);
    let op = cells(&c, "op");
    assert_eq!(op[1..3], [json!(1), json!(2)]);
    assert_eq!(op[column(&c, "result:no_entry")], 1.0);

    // 電話番号統計: 6 dials, 5 connected, 62 + 3 + 20 + 25 + 1201 = 1,311 s on the line, 262 s each.
    let n = expect(app.call(sv, "get", &format!("/reports/numbers?{day}"), None).await, 200);
    assert_eq!(cells(&n, "0312345678")[1..5], [json!(6), json!(5), json!(1311), json!(262)]);

    // ステータス統計, agent 1 from 09:00 for 2 hours, in seconds: ready 608 + 1,100 + 900, ringing 2,
    // talking 60, wrap-up 30, 休憩 1,800, offline 2,700 (from 10:15).
    let s = expect(app.call(sv, "get", &format!("/reports/states?{day}&hour=9&hours=2&show=seconds"), None).await, 200);
    let op = cells(&s, "op");
    let secs = |k: &str| op[column(&s, k)].as_i64().unwrap() / 1000;
    assert_eq!(
        [secs("ready"), secs("ringing"), secs("talking"), secs("wrap_up"), secs("offline")],
        [2608, 2, 60, 30, 2700]
    );
    assert_eq!(secs(&format!("reason:{}", f.reason)), 1800);
    let s = expect(app.call(sv, "get", &format!("/reports/states?{day}&hour=9&hours=2&show=count"), None).await, 200);
    assert_eq!(cells(&s, "op")[column(&s, "ready")], 3);
    let s = expect(app.call(sv, "get", &format!("/reports/states?{day}&by=hour&hour=9&hours=1"), None).await, 200);
    let pct = cells(&s, "09:00")[column(&s, &format!("reason:{}", f.reason))].as_f64().unwrap();
    assert!((pct - 0.5).abs() < 1e-9, "{s}");

    // リスト: 4 registered, 3 worked by the end of the day (a the day before, b, c), 75 %;
    // 6 calls that day, 2 connects (calls 1 and 7; call 5 is 不通), 33.33 %.
    let l = expect(app.call(sv, "get", "/reports/lists?date=2026-12-01", None).await, 200);
    let row = cells(&l, "l");
    assert_eq!(row[1..3], [json!(4), json!(3)]);
    assert_eq!(row[3], 0.75);
    assert_eq!(row[4..6], [json!(6), json!(2)]);
    let l = expect(app.call(sv, "get", "/reports/lists?date=2026-11-30", None).await, 200);
    assert_eq!(cells(&l, "l")[2], 1);

    // 発信: 6 dials, 5 live, 2 abandons (40 % against a 3 % target); agent wait: ready time of the
    // campaign's agents (2,608 s) over 3 connected calls.
    let o = expect(app.call(sv, "get", &format!("/reports/outbound?{day}"), None).await, 200);
    let row = o["rows"][0].as_array().unwrap().clone();
    assert_eq!(row[2..6], [json!(6), json!(5), json!(3), json!(2)], "{o}");
    assert_eq!(row[6], 0.4);
    assert_eq!(row[8..10], [json!(0.4), json!(0.4)], "the 24 h and 30-day rates up to the day's end");
    assert_eq!(row[12], 2_608_000 / 3);
    let a = expect(app.call(sv, "get", &format!("/reports/abandons?{day}"), None).await, 200);
    let waits: Vec<i64> = a["rows"].as_array().unwrap().iter().map(|r| r[2].as_i64().unwrap()).collect();
    assert_eq!(waits, [3000, 20000]);
    assert_eq!(a["rows"][1][3], "○");

    // The wrap-up record of call 7 saved later: the job's refresh recounts that day.
    let c7 = expect(app.call(sv, "get", "/call-history?from=2026-12-01&to=2026-12-01&limit=1", None).await, 200);
    let c7 = c7["items"][0]["id"].as_i64().unwrap();
    save(&app, &t, c7, "1", false, store::now_ms()).await;
    store::rollups::refresh(&app.db, t.id, store::now_ms()).await.unwrap();
    let c = expect(app.call(sv, "get", &format!("/reports/campaigns?{day}"), None).await, 200);
    assert_eq!(cells(&c, "2026-12-01")[column(&c, "result:1")], 1);
    assert!(store::rollups::verify(&app.db, t.id, store::now_ms()).await.unwrap().is_empty());

    // The campaign's occupancy counts its agents as they were when the day was counted: an agent
    // who leaves the campaign later does not move that day's figures (the job recounts only days
    // whose facts changed); `verify` names the day, and `rebuild` recounts it with today's members.
    sqlx::query("DELETE FROM campaign_agents WHERE tenant_id = $1 AND user_id = $2")
        .bind(t.id)
        .bind(f.agent1)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let o = expect(app.call(sv, "get", &format!("/reports/outbound?{day}"), None).await, 200);
    assert_eq!(o["rows"][0][12], 2_608_000 / 3, "{o}");
    let day1 = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    assert!(store::rollups::verify(&app.db, t.id, store::now_ms()).await.unwrap().contains(&day1));
    store::rollups::rebuild(&app.db, t.id, store::now_ms()).await.unwrap();
    let o = expect(app.call(sv, "get", &format!("/reports/outbound?{day}"), None).await, 200);
    assert_eq!(o["rows"][0][12], 0, "agent 2's ready time on that day: none; {o}");
    assert!(store::rollups::verify(&app.db, t.id, store::now_ms()).await.unwrap().is_empty());
}

pub async fn call_history_filters_pages_and_exports(app: TestApp) {
    let t = app.tenant("hist").await;
    let (f, ids) = seed_tokyo(&app, &t).await;
    let sv = t.token(Role::Sv);
    let all = expect(app.call(sv, "get", "/call-history?from=2026-11-30&to=2026-12-01", None).await, 200);
    let got: Vec<i64> = all["items"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let mut want = ids.clone();
    want.reverse();
    assert_eq!(got, want, "newest first");
    // Keyset pages of 3 give the same rows.
    let mut paged = Vec::new();
    let mut url = "/call-history?from=2026-11-30&to=2026-12-01&limit=3".to_string();
    loop {
        let page = expect(app.call(sv, "get", &url, None).await, 200);
        paged.extend(page["items"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()));
        match page["next"].as_str() {
            Some(n) => url = format!("/call-history?from=2026-11-30&to=2026-12-01&limit=3&before={n}"),
            None => break,
        }
    }
    assert_eq!(paged, want);
    let ids_of =
        |v: &Value| -> Vec<i64> { v["items"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect() };
    let q = |s: &str| format!("/call-history?from=2026-12-01&to=2026-12-01&{s}");
    assert_eq!(ids_of(&expect(app.call(sv, "get", &q("min_seconds=60"), None).await, 200)), [ids[7], ids[1]]);
    assert_eq!(ids_of(&expect(app.call(sv, "get", &q(&format!("agent_id={}", f.agent2)), None).await, 200)), [ids[5]]);
    assert_eq!(ids_of(&expect(app.call(sv, "get", &q("result=2"), None).await, 200)), [ids[5]]);
    assert_eq!(ids_of(&expect(app.call(sv, "get", &q("tel=0900000003"), None).await, 200)), [ids[6]]);
    assert_eq!(ids_of(&expect(app.call(sv, "get", &q(&format!("group_id={}", f.group)), None).await, 200)).len(), 7);
    // Bad input names the field.
    for (bad, field) in [
        ("min_seconds=-1", "min_seconds"),
        ("tel=03-1", "tel"),
        ("from=yesterday", "from"),
        ("limit=0", "limit"),
        ("nope=1", "nope"),
    ] {
        let (s, b) = app.call(sv, "get", &format!("/call-history?{bad}"), None).await;
        assert_eq!((s.as_u16(), b["error"]["field"].as_str()), (400, Some(field)), "{bad}: {b}");
    }
    // Another tenant's campaign is no campaign here; its calls never show.
    let other = app.tenant("hist2").await;
    let (of, _) = seed_tokyo(&app, &other).await;
    let (s, b) = app.call(sv, "get", &format!("/call-history?campaign_id={}", of.campaign), None).await;
    assert_eq!((s.as_u16(), b["error"]["field"].as_str()), (422, Some("campaign_id")));
    let (s, _) = app.call(sv, "get", &format!("/reports/groups?group_id={}", of.group), None).await;
    assert_eq!(s.as_u16(), 422);
    assert_eq!(
        ids_of(&expect(app.call(sv, "get", "/call-history?from=2026-11-30&to=2026-12-01", None).await, 200)),
        want
    );

    // The CSV, UTF-8 with a BOM and CP932, read back; the columns as on screen.
    let get = |path: String| {
        let (http, base, token) = (app.http.clone(), app.base.clone(), sv.unwrap().to_string());
        async move {
            let r = http.get(format!("{base}{path}")).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200, "{path}");
            r.bytes().await.unwrap().to_vec()
        }
    };
    let utf8 = get("/call-history.csv?from=2026-11-30&to=2026-12-01".into()).await;
    assert!(utf8.starts_with("\u{feff}".as_bytes()));
    let text = String::from_utf8(utf8[3..].to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("発信日時,発着信,相手番号"), "{}", lines[0]);
    assert_eq!(lines.len(), 1 + ids.len());
    let sjis = get("/reports/groups.csv?from=2026-12-01&to=2026-12-01&encoding=shift_jis".into()).await;
    let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(&sjis);
    assert!(!bad);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "日付,コール数,応答呼,破棄呼,あふれ,制限時間,応答率,平均応答時間,最大応答時間,平均放棄時間,最大放棄時間"
    );
    assert_eq!(lines[1], "2026-12-01,0,0,0,0,0,-,-,-,-,-", "no rollup yet: the job has not run");
    store::rollups::rebuild(&app.db, t.id, store::now_ms()).await.unwrap();
    let sjis = get("/reports/groups.csv?from=2026-12-01&to=2026-12-01&encoding=shift_jis&lang=en".into()).await;
    let (text, _, _) = encoding_rs::SHIFT_JIS.decode(&sjis);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("Date,Calls,Answered"));
    assert_eq!(lines[1], "2026-12-01,5,3,1,0,1,60.00%,3s,5s,12s,20s");
    assert_eq!(lines[2], "Total,5,3,1,0,1,60.00%,3s,5s,12s,20s");
}

/// New York on 2026-11-01: clocks go back at 02:00, the day has 25 hours and two 01:00 hours.
pub async fn days_cut_at_the_tenants_midnight_across_dst(app: TestApp) {
    const NY: &str = "America/New_York";
    let t = app.tenant("dst").await;
    sqlx::query("UPDATE tenants SET time_zone = $1 WHERE id = $2")
        .bind(NY)
        .bind(t.id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let f = floor(&app, &t).await;
    let utc = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
    for start in [
        "2026-11-01T03:50:00Z", // 2026-10-31 23:50 EDT
        "2026-11-01T04:10:00Z", // 00:10 EDT
        "2026-11-01T05:30:00Z", // 01:30 EDT
        "2026-11-01T06:30:00Z", // 01:30 EST
        "2026-11-02T04:30:00Z", // 23:30 EST
    ] {
        call(&app, &t, &f, 1, utc(start), None, None, utc(start) + 5000, "busy").await;
    }
    // Ready from 00:00 EDT to 03:00 EST: four hours, two of them 01:00.
    transition(&app, &t, f.agent1, "offline", "ready", None, utc("2026-11-01T04:00:00Z")).await;
    transition(&app, &t, f.agent1, "ready", "offline", None, utc("2026-11-01T08:00:00Z")).await;
    // Agent 2 carries a break over midnight: ready at 16:00 EDT, paused at 21:00 EDT the day
    // before (its state as the day starts is its last transition before, not its first), ready at
    // 00:30 EDT, off at 01:00 EDT (the first).
    transition(&app, &t, f.agent2, "offline", "ready", None, utc("2026-10-31T20:00:00Z")).await;
    transition(&app, &t, f.agent2, "ready", "paused", Some(f.reason), utc("2026-11-01T01:00:00Z")).await;
    transition(&app, &t, f.agent2, "paused", "ready", None, utc("2026-11-01T04:30:00Z")).await;
    transition(&app, &t, f.agent2, "ready", "offline", None, utc("2026-11-01T05:00:00Z")).await;
    store::rollups::rebuild(&app.db, t.id, store::now_ms()).await.unwrap();
    let sv = t.token(Role::Sv);
    let c = expect(app.call(sv, "get", "/reports/campaigns?from=2026-10-31&to=2026-11-02", None).await, 200);
    assert_eq!(cells(&c, "2026-10-31")[2], 1);
    assert_eq!(cells(&c, "2026-11-01")[2], 4);
    assert_eq!(cells(&c, "2026-11-02")[2], 0);
    let c = expect(app.call(sv, "get", "/reports/campaigns?from=2026-11-01&to=2026-11-01&by=hour", None).await, 200);
    let calls: Vec<i64> = c["rows"].as_array().unwrap().iter().map(|r| r[2].as_i64().unwrap()).collect();
    assert_eq!(calls[..3], [1, 2, 0]);
    assert_eq!(calls[23], 1);
    let s = expect(
        app.call(sv, "get", "/reports/states?from=2026-11-01&to=2026-11-01&by=hour&hours=4&show=seconds", None).await,
        200,
    );
    let secs = |key: &str| -> Vec<i64> {
        s["rows"].as_array().unwrap().iter().map(|r| r[column(&s, key)].as_i64().unwrap() / 1000).collect()
    };
    assert_eq!(secs("ready"), [3600 + 1800, 7200, 3600, 0]);
    assert_eq!(secs(&format!("reason:{}", f.reason)), [1800, 0, 0, 0], "the break carried over midnight");
    let n = expect(
        app.call(sv, "get", "/reports/states?from=2026-11-01&to=2026-11-01&by=hour&hours=4&show=count", None).await,
        200,
    );
    let entries: Vec<i64> =
        n["rows"].as_array().unwrap().iter().map(|r| r[column(&n, &format!("reason:{}", f.reason))].as_i64().unwrap()).collect();
    assert_eq!(entries, [0, 0, 0, 0], "a break entered the day before is not entered again");
    let before = expect(
        app.call(sv, "get", "/reports/states?from=2026-10-31&to=2026-10-31&show=seconds", None).await,
        200,
    );
    let reason = column(&before, &format!("reason:{}", f.reason));
    assert_eq!(
        cells(&before, "op2")[reason].as_i64(),
        Some(3 * 3_600_000),
        "the day before holds its three hours of the break (21:00-24:00 EDT): {before}"
    );
}

pub async fn roles_limit_the_figures(app: TestApp) {
    let t = app.tenant("rol").await;
    let (_, ids) = seed_tokyo(&app, &t).await;
    store::rollups::rebuild(&app.db, t.id, store::now_ms()).await.unwrap();
    let day = "from=2026-12-01&to=2026-12-01";
    let (op, biz) = (t.token(Role::Op), t.token(Role::Biz));
    let history = |token: Option<&'static str>| {
        let app = &app;
        async move {
            let v = expect(app.call(token, "get", "/call-history?from=2026-11-30&to=2026-12-01", None).await, 200);
            v["items"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<i64>>()
        }
    };
    // OP: its own calls and figures only, whatever it asks for.
    let op: Option<&'static str> = op.map(|s| &*Box::leak(s.to_owned().into_boxed_str()));
    let biz: Option<&'static str> = biz.map(|s| &*Box::leak(s.to_owned().into_boxed_str()));
    assert_eq!(history(op).await, [ids[7], ids[1]]);
    let c = expect(app.call(op, "get", &format!("/reports/campaigns?{day}"), None).await, 200);
    assert_eq!(cells(&c, "2026-12-01")[1..3], [json!(1), json!(2)], "{c}");
    let c = expect(app.call(op, "get", &format!("/reports/campaigns?{day}&by=agent"), None).await, 200);
    assert_eq!(c["rows"].as_array().unwrap().len(), 1);
    let (s, b) = app.call(op, "get", &format!("/reports/campaigns?{day}&by=hour"), None).await;
    assert_eq!((s.as_u16(), b["error"]["field"].as_str()), (400, Some("by")));
    let st = expect(app.call(op, "get", &format!("/reports/states?{day}"), None).await, 200);
    assert_eq!(st["rows"].as_array().unwrap().len(), 1);
    for path in ["/reports/groups", "/reports/numbers", "/reports/outbound"] {
        assert_eq!(app.call(op, "get", path, None).await.0.as_u16(), 403, "{path}");
        assert_eq!(app.call(biz, "get", path, None).await.0.as_u16(), 403, "{path}");
    }
    // BIZ: what was reported to it (call 1, 受注).
    assert_eq!(history(biz).await, [ids[1]]);
    let c = expect(app.call(biz, "get", &format!("/reports/campaigns?{day}"), None).await, 200);
    let row = cells(&c, "2026-12-01");
    assert_eq!((row[1].clone(), row[column(&c, "result:1")].clone()), (json!(1), json!(1)), "{c}");
    // The agent reports its record of call 7; not agent 2's (404), and BIZ reports nothing (403).
    let wrapup = |call: i64| {
        let app = &app;
        let tenant = t.id;
        async move {
            let r = sqlx::query("SELECT id FROM wrapup_records WHERE tenant_id = $1 AND call_record_id = $2")
                .bind(tenant)
                .bind(call)
                .fetch_one(&app.db.pool)
                .await
                .unwrap();
            sqlx::Row::try_get::<i64, _>(&r, "id").unwrap()
        }
    };
    let (w7, w5) = (wrapup(ids[7]).await, wrapup(ids[5]).await);
    let yes = json!({"reported": true});
    expect(app.call(op, "post", &format!("/wrapup-records/{w7}/report"), Some(&yes)).await, 200);
    expect(app.call(op, "post", &format!("/wrapup-records/{w5}/report"), Some(&yes)).await, 404);
    expect(app.call(biz, "post", &format!("/wrapup-records/{w7}/report"), Some(&yes)).await, 403);
    let (s, b) = app.call(op, "post", &format!("/wrapup-records/{w7}/report"), Some(&json!({"reported": "yes"}))).await;
    assert_eq!((s.as_u16(), b["error"]["field"].as_str()), (400, Some("reported")));
    store::rollups::refresh(&app.db, t.id, store::now_ms()).await.unwrap();
    assert_eq!(history(biz).await, [ids[7], ids[1]]);
    let c = expect(app.call(biz, "get", &format!("/reports/campaigns?{day}"), None).await, 200);
    assert_eq!(cells(&c, "2026-12-01")[1], 2);
    // Another tenant's record is no record here.
    let other = app.tenant("rol2").await;
    let (_, oids) = seed_tokyo(&app, &other).await;
    let r = sqlx::query("SELECT id FROM wrapup_records WHERE call_record_id = $1")
        .bind(oids[1])
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let foreign: i64 = sqlx::Row::try_get(&r, "id").unwrap();
    expect(app.call(t.mgr(), "post", &format!("/wrapup-records/{foreign}/report"), Some(&yes)).await, 404);
}

/// Retention on a test clock: leads go at the batch-deletion date, the history at the
/// history-deletion date; the reports keep their figures; a second run deletes nothing.
pub async fn retention_deletes_on_its_dates_and_the_figures_stay(app: TestApp) {
    let t = app.tenant("ret").await;
    let (f, _) = seed_tokyo(&app, &t).await;
    let other = app.tenant("ret2").await;
    seed_tokyo(&app, &other).await;
    store::rollups::rebuild(&app.db, t.id, store::now_ms()).await.unwrap();
    let sv = t.token(Role::Sv);
    let day = "from=2026-12-01&to=2026-12-01";
    let before = expect(app.call(sv, "get", &format!("/reports/groups?{day}"), None).await, 200);
    let lists_before = expect(app.call(sv, "get", "/reports/lists?date=2026-12-01", None).await, 200);
    let r = sqlx::query("SELECT start_date, end_date FROM batches WHERE tenant_id = $1")
        .bind(t.id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let date = |c: &str| -> chrono::NaiveDate { sqlx::Row::try_get::<String, _>(&r, c).unwrap().parse().unwrap() };
    let dates = store::batch_dates::derive(date("start_date"), date("end_date"), 400);
    let noon = |d: chrono::NaiveDate| at(TOKYO, &format!("{d} 12:00:00"));
    let count = |sql: &'static str, tenant: i64| {
        let app = &app;
        async move {
            sqlx::Row::try_get::<i64, _>(&sqlx::query(sql).bind(tenant).fetch_one(&app.db.pool).await.unwrap(), "n")
                .unwrap()
        }
    };
    let leads = "SELECT COUNT(*) AS n FROM leads WHERE tenant_id = $1";
    let calls = "SELECT COUNT(*) AS n FROM call_records WHERE tenant_id = $1";
    // The day before the batch-deletion date: nothing goes.
    let r = store::retention::run(&app.db, t.id, noon(dates.batch_deletion.pred_opt().unwrap())).await.unwrap();
    assert_eq!(r, store::retention::Retained::default());
    // At it: the leads go, the history stays.
    let r = store::retention::run(&app.db, t.id, noon(dates.batch_deletion)).await.unwrap();
    assert_eq!((r.leads, r.call_records), (4, 0));
    assert_eq!((count(leads, t.id).await, count(calls, t.id).await), (0, 8));
    // At the history-deletion date: the history, the lists and the batch go; the other tenant keeps all.
    let r = store::retention::run(&app.db, t.id, noon(dates.history_deletion)).await.unwrap();
    assert_eq!((r.call_records, r.wrapup_records, r.batches), (8, 3, 1));
    assert_eq!(count(calls, t.id).await, 0);
    assert_eq!((count(leads, other.id).await, count(calls, other.id).await), (4, 8));
    // Idempotent: again, nothing.
    assert_eq!(store::retention::run(&app.db, t.id, noon(dates.history_deletion)).await.unwrap(), Default::default());
    // The rollups keep the figures; the job's refresh and a rebuild leave those days alone.
    store::rollups::refresh(&app.db, t.id, store::now_ms()).await.unwrap();
    store::rollups::rebuild(&app.db, t.id, store::now_ms()).await.unwrap();
    let after = expect(app.call(sv, "get", &format!("/reports/groups?{day}"), None).await, 200);
    assert_eq!(before["rows"], after["rows"]);
    assert!(store::rollups::verify(&app.db, t.id, store::now_ms()).await.unwrap().is_empty());
    // The list itself is gone, its figures with it from the list report (a deleted list has no row).
    let lists_after = expect(app.call(sv, "get", "/reports/lists?date=2026-12-01", None).await, 200);
    assert_eq!(lists_before["rows"].as_array().unwrap().len(), 1);
    assert_eq!(lists_after["rows"].as_array().unwrap().len(), 0);
    let _ = f;
}

/// CALLTREE's default statuses are fixed results: 不通, FAX and 現アナ are calls but not connects,
/// 見込 is a connect, whichever campaign codes exist.
pub async fn default_statuses_count_as_calltree_counts_them(app: TestApp) {
    let t = app.tenant("calltree").await;
    let (_, ids) = seed_tokyo(&app, &t).await;
    let sv = t.token(Role::Sv);
    let connects = |l: Value| cells(&l, "l")[5].clone();
    for (result, want) in [("fax", 1), ("no_contact", 1), ("not_in_service", 1), ("prospect", 2), ("complaint", 2)] {
        // Call 1 (a connect under code 1) saved with the default status instead.
        save(&app, &t, ids[1], result, true, at(TOKYO, "2026-12-01 09:12:00")).await;
        store::rollups::rebuild(&app.db, t.id, store::now_ms()).await.unwrap();
        let l = expect(app.call(sv, "get", "/reports/lists?date=2026-12-01", None).await, 200);
        assert_eq!(cells(&l, "l")[4], 6, "{result}: still 6 calls");
        assert_eq!(connects(l), want, "{result}");
    }
    // Their words in the campaign statistics' columns (lead b ends the day on call 5, now クレーム).
    save(&app, &t, ids[5], "complaint", false, at(TOKYO, "2026-12-01 10:31:00")).await;
    store::rollups::rebuild(&app.db, t.id, store::now_ms()).await.unwrap();
    let c = expect(app.call(sv, "get", "/reports/campaigns?from=2026-12-01&to=2026-12-01", None).await, 200);
    let col = &c["columns"][column(&c, "result:complaint")];
    assert!(col.to_string().contains("クレーム"), "{col}");
}

/// The CSV reads the history a day at a time (two at once) and page by page (5,000 rows), newest
/// first: across days and across pages of many calls started at one instant every call comes
/// exactly once, in order.
pub async fn the_call_history_csv_pages_through_calls_started_at_once(app: TestApp) {
    let t = app.tenant("csvpages").await;
    let f = floor(&app, &t).await;
    let sv = t.token(Role::Sv);
    let n: i64 = 12_345;
    let noon = at(TOKYO, "2026-12-01 12:00:00");
    // Fourteen instants over two days (the export reads a day at a time, two days at once): each
    // page ends inside a run of calls started at one instant.
    sqlx::query(
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $1)
         INSERT INTO call_records (tenant_id, campaign_id, call_job_id, lead_id, tel, caller_id, direction, started_at,
            ended_at, result, list_id)
         SELECT $2, $3, $4, $5, '0900000000', '0312345678', 'outbound', $6 - (i % 2) * 86400000 + (i % 7) * 1000,
            $6 - (i % 2) * 86400000 + (i % 7) * 1000 + 5000,
            'busy', $7 FROM s",
    )
    .bind(n)
    .bind(t.id)
    .bind(f.campaign)
    .bind(f.job)
    .bind(f.leads[0])
    .bind(noon)
    .bind(f.list)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let r = app
        .http
        .get(format!("{}/call-history.csv?from=2026-11-30&to=2026-12-01&lang=en", app.base))
        .bearer_auth(sv.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body = r.bytes().await.unwrap();
    let text = String::from_utf8(body[3..].to_vec()).unwrap();
    let ids: Vec<i64> =
        text.lines().skip(1).map(|l| l.rsplit(',').next().unwrap().trim().parse().expect("the id column")).collect();
    assert_eq!(ids.len() as i64, n, "every call once");
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len() as i64, n, "no call twice");
    // Newest first: by start time (the first column, to the second; the instants are a second
    // apart), then by id, both descending.
    let keys: Vec<(String, i64)> =
        text.lines().skip(1).zip(&ids).map(|(l, id)| (l.split(',').next().unwrap().to_string(), *id)).collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "in order");
    assert_eq!(keys.iter().map(|k| &k.0).collect::<std::collections::BTreeSet<_>>().len(), 14, "fourteen instants");
}

crate::both!(
    default_statuses_count_as_calltree_counts_them,
    retention_deletes_on_its_dates_and_the_figures_stay,
    roles_limit_the_figures,
    figures_match_the_hand_computed_ones,
    call_history_filters_pages_and_exports,
    days_cut_at_the_tenants_midnight_across_dst,
    the_call_history_csv_pages_through_calls_started_at_once
);
