//! CSV lead import through the API: both encodings, the error CSV, limits, and all-or-nothing.

use serde_json::{json, Value};
use store::accounts::Role;

use crate::harness::{expect, Tenant, TestApp};

/// Waits for an import job to finish and returns its final status.
pub async fn wait(app: &TestApp, token: &str, id: i64) -> Value {
    for _ in 0..1200 {
        let v = expect(app.call(Some(token), "get", &format!("/imports/{id}"), None).await, 200);
        if v["status"] == "done" || v["status"] == "failed" {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("import {id} did not finish");
}

/// A campaign, a batch and a list; returns (batch id, list id).
pub async fn list(app: &TestApp, t: &Tenant, allow_duplicates: bool) -> (i64, i64) {
    let (_, b, l) = crate::harness::scaffold(app, t, json!({}), allow_duplicates).await;
    (b, l)
}

pub async fn upload(app: &TestApp, t: &Tenant, list: i64, query: &str, bytes: Vec<u8>) -> Value {
    let token = t.mgr().unwrap();
    let (status, body) = app.raw(token, "POST", &format!("/lists/{list}/imports{query}"), "text/csv", bytes).await;
    assert_eq!(status.as_u16(), 202, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    wait(app, token, v["id"].as_i64().unwrap()).await
}

async fn lead_count(app: &TestApp, list: i64) -> i64 {
    store::sqlx::Row::try_get(
        &store::sqlx::query("SELECT COUNT(*) AS n FROM leads WHERE list_id = $1")
            .bind(list)
            .fetch_one(&app.db.pool)
            .await
            .unwrap(),
        "n",
    )
    .unwrap()
}

fn sjis(s: &str) -> Vec<u8> {
    encoding_rs::SHIFT_JIS.encode(s).0.into_owned()
}

pub async fn imports_cp932_and_utf8_with_error_csv(app: TestApp) {
    let t = app.tenant("imp").await;
    let (_, l) = list(&app, &t, false).await;
    let csv = "name,kana,tel,remarks\r\n山田太郎,ヤマダタロウ,09011112222,\"一行目\\n二行目\"\r\n,スズキ,0311113333,\r\n佐藤,サトウ,311114444,\r\n高橋,タカハシ,09011112222,\r\n";
    let v = upload(&app, &t, l, "", sjis(csv)).await;
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(v["encoding"], "shift_jis");
    assert_eq!(v["imported_rows"], 1);
    assert_eq!(v["rejected_rows"], 3);
    assert_eq!(lead_count(&app, l).await, 1);
    let leads = expect(app.call(t.mgr(), "get", &format!("/leads?list_id={l}"), None).await, 200);
    assert_eq!(leads["items"][0]["name"], "山田太郎");
    assert_eq!(leads["items"][0]["remarks"], "一行目\n二行目");
    assert_eq!(leads["items"][0]["phone_type"], "mobile");
    // The error CSV comes back in the upload's encoding, one row per rejected line with its reason.
    let id = v["id"].as_i64().unwrap();
    let (status, bytes) =
        app.raw(t.mgr().unwrap(), "GET", &format!("/imports/{id}/errors.csv"), "text/csv", vec![]).await;
    assert_eq!(status.as_u16(), 200);
    let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(&bytes);
    assert!(!bad, "error CSV is Shift_JIS");
    assert!(text.contains("name:値がありません"), "{text}");
    assert!(text.contains("tel:電話番号の先頭に0を入れてください"), "{text}");
    assert!(text.contains("指定したバッチ内に同一の電話番号が既に登録されています"), "{text}");
    for row in ["3", "4", "5"] {
        assert!(text.lines().any(|line| line.starts_with(row)), "row {row} listed: {text}");
    }

    // UTF-8 with a BOM and LF line ends; a duplicate of a lead already in the batch is refused.
    let csv = "\u{feff}name,kana,tel,remarks\n鈴木,スズキ,0311113333,\n山田,ヤマダ,09011112222,\n";
    let v = upload(&app, &t, l, "?tags=%5B%22spring%22%5D", csv.as_bytes().to_vec()).await;
    assert_eq!(v["encoding"], "utf-8-bom", "{v}");
    assert_eq!(v["imported_rows"], 1);
    assert_eq!(v["rejected_rows"], 1);
    let leads = expect(app.call(t.mgr(), "get", &format!("/leads?list_id={l}&tel=0311113333"), None).await, 200);
    assert_eq!(leads["items"][0]["tags"], json!(["spring"]));
    let id = v["id"].as_i64().unwrap();
    let (_, bytes) = app.raw(t.mgr().unwrap(), "GET", &format!("/imports/{id}/errors.csv"), "text/csv", vec![]).await;
    let text = String::from_utf8(bytes).expect("UTF-8 error CSV");
    assert!(text.contains("指定したバッチ内に同一の電話番号が既に登録されています"), "{text}");
}

pub async fn header_only_and_limits_import_nothing(app: TestApp) {
    let t = app.tenant("lim").await;
    let (_, l) = list(&app, &t, false).await;
    let v = upload(&app, &t, l, "", b"name,kana,tel,remarks\r\n".to_vec()).await;
    assert_eq!(v["status"], "failed");
    assert_eq!(v["error_message"], "ヘッダーのみでデータがありません");

    // 50,001 rows: refused when the last row is read, after 50,000 were written in the
    // transaction: nothing of the upload stays.
    let mut csv = String::from("name,kana,tel,remarks\n");
    for i in 0..50_001 {
        csv.push_str(&format!("n{i},カナ,03{:08},\n", i));
    }
    let v = upload(&app, &t, l, "", csv.into_bytes()).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["imported_rows"], 0);
    assert_eq!(lead_count(&app, l).await, 0);

    // A list holds at most 200,000 leads: an upload that would pass it imports nothing.
    let (b, l2) = list(&app, &t, true).await;
    fill(&app, t.id, l2, b, 199_995).await;
    let mut csv = String::from("name,kana,tel,remarks\n");
    for i in 0..10 {
        csv.push_str(&format!("n{i},カナ,04{:08},\n", i));
    }
    let v = upload(&app, &t, l2, "", csv.into_bytes()).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["error_code"], "list_full");
    assert_eq!(lead_count(&app, l2).await, 199_995);
}

pub async fn generic_import_maps_custom_fields(app: TestApp) {
    let t = app.tenant("gen").await;
    let mgr = t.mgr();
    expect(
        app.call(mgr, "post", "/custom-fields", Some(&json!({"key": "age", "label": "年齢", "kind": "number"}))).await,
        201,
    );
    expect(
        app.call(
            mgr,
            "post",
            "/custom-fields",
            Some(&json!({"key": "plan", "label": "プラン", "kind": "select", "options": ["A", "B"]})),
        )
        .await,
        201,
    );
    let (_, l) = list(&app, &t, false).await;
    let mapping =
        serde_json::to_string(&json!({"氏名": "name", "カナ": "kana", "電話": "tel", "年齢": "age", "プラン": "plan"}))
            .unwrap();
    let q = format!("?kind=generic&mapping={}", urlencode(&mapping));
    let csv = "氏名,カナ,電話,年齢,プラン\n田中,タナカ,0355556666,42,A\n伊藤,イトウ,0355557777,abc,B\n";
    let v = upload(&app, &t, l, &q, csv.as_bytes().to_vec()).await;
    assert_eq!(v["imported_rows"], 1, "{v}");
    assert_eq!(v["rejected_rows"], 1);
    let leads = expect(app.call(mgr, "get", &format!("/leads?list_id={l}"), None).await, 200);
    assert_eq!(leads["items"][0]["custom"]["age"], json!(42));
    assert_eq!(leads["items"][0]["custom"]["plan"], json!("A"));
    // A mapping without a tel column is refused before anything is read.
    let q = format!("?kind=generic&mapping={}", urlencode(r#"{"氏名":"name"}"#));
    let (status, body) =
        app.raw(mgr.unwrap(), "POST", &format!("/lists/{l}/imports{q}"), "text/csv", b"x".to_vec()).await;
    assert_eq!(status.as_u16(), 422, "{}", String::from_utf8_lossy(&body));
    // Only MGR, SV and BY import.
    let (status, _) =
        app.raw(t.token(Role::Op).unwrap(), "POST", &format!("/lists/{l}/imports"), "text/csv", b"x".to_vec()).await;
    assert_eq!(status.as_u16(), 403);
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn an_interrupted_import_reports_failed(app: TestApp) {
    let t = app.tenant("crash").await;
    let (_, l) = list(&app, &t, false).await;
    // A job whose process died: unfinished, no heartbeat for minutes, nothing imported.
    let row = store::sqlx::query(
        "INSERT INTO import_jobs (tenant_id, list_id, kind, status, created_at, heartbeat_at)
         VALUES ($1, $2, 'standard', 'running', 0, 0) RETURNING id",
    )
    .bind(t.id)
    .bind(l)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let id: i64 = store::sqlx::Row::try_get(&row, "id").unwrap();
    let v = expect(app.call(t.mgr(), "get", &format!("/imports/{id}"), None).await, 200);
    assert_eq!(v["status"], "failed");
    assert_eq!(v["error_code"], "interrupted");
    assert_eq!(lead_count(&app, l).await, 0);
}

/// A file of `rows` distinct numbers (`prefix` makes files of different numbers).
fn numbers_file(rows: usize, prefix: &str) -> Vec<u8> {
    let mut csv = String::from("name,kana,tel,remarks\n");
    for i in 0..rows {
        csv.push_str(&format!("n{i},カナ,{prefix}{i:08},\n"));
    }
    csv.into_bytes()
}

/// Starts the uploads all at once (each waits for its 202) and waits for every job to end.
async fn upload_parallel(app: &TestApp, t: &Tenant, uploads: Vec<(i64, Vec<u8>)>) -> Vec<Value> {
    let token = t.mgr().unwrap();
    let started = futures::future::join_all(uploads.into_iter().map(|(list, bytes)| async move {
        let (status, body) = app.raw(token, "POST", &format!("/lists/{list}/imports"), "text/csv", bytes).await;
        assert_eq!(status.as_u16(), 202, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice::<Value>(&body).unwrap()["id"].as_i64().unwrap()
    }))
    .await;
    let mut out = Vec::new();
    for id in started {
        out.push(wait(app, token, id).await);
    }
    out
}

/// Parallel uploads of one file into one list that forbids duplicates (4, then 8 of them), and into
/// two lists of one batch: each number is imported once; every other upload refuses it by row, in
/// its error CSV (SPEC 4: no number twice in a batch).
pub async fn parallel_imports_keep_the_duplicate_rule(app: TestApp) {
    let t = app.tenant("par").await;
    const ROWS: usize = 49_000;
    let file = numbers_file(ROWS, "03");
    for n in [4, 8] {
        let (_, l) = list(&app, &t, false).await;
        let jobs = upload_parallel(&app, &t, (0..n).map(|_| (l, file.clone())).collect()).await;
        assert_eq!(lead_count(&app, l).await, ROWS as i64, "{n} parallel uploads: each number once");
        let imported: i64 = jobs.iter().map(|j| j["imported_rows"].as_i64().unwrap()).sum();
        assert_eq!(imported, ROWS as i64, "{jobs:?}");
        for j in &jobs {
            assert_eq!(j["status"], "done", "{j}");
            let (imp, rej) = (j["imported_rows"].as_i64().unwrap(), j["rejected_rows"].as_i64().unwrap());
            assert_eq!(imp + rej, ROWS as i64, "every row imported or refused: {j}");
        }
        // A refused row is named in the job's error CSV with the duplicate's text.
        let refused = jobs.iter().find(|j| j["rejected_rows"].as_i64().unwrap() > 0).expect("a refusing upload");
        let id = refused["id"].as_i64().unwrap();
        let (status, bytes) =
            app.raw(t.mgr().unwrap(), "GET", &format!("/imports/{id}/errors.csv"), "text/csv", vec![]).await;
        assert_eq!(status.as_u16(), 200);
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.lines().count() as i64, 1 + refused["rejected_rows"].as_i64().unwrap(), "one line per row");
        let line = text.lines().nth(1).unwrap();
        assert!(
            line.contains("カナ,03") && line.ends_with("指定したバッチ内に同一の電話番号が既に登録されています"),
            "{line}"
        );
    }
    // Two lists of one batch: the batch holds each number once.
    let (b, l1) = list(&app, &t, false).await;
    let l2 = expect(
        app.call(t.mgr(), "post", "/lists", Some(&json!({"batch_id": b, "name": "l2", "allow_duplicates": false})))
            .await,
        201,
    )["id"]
        .as_i64()
        .unwrap();
    let jobs =
        upload_parallel(&app, &t, vec![(l1, file.clone()), (l2, file.clone()), (l1, file.clone()), (l2, file)]).await;
    assert_eq!(lead_count(&app, l1).await + lead_count(&app, l2).await, ROWS as i64, "{jobs:?}");
}

/// Parallel uploads into a list near its 200,000 cap: the list never passes it; each upload is
/// imported whole or refused whole as list_full.
pub async fn parallel_imports_keep_the_list_cap(app: TestApp) {
    let t = app.tenant("cap").await;
    let (b, l) = list(&app, &t, true).await;
    fill(&app, t.id, l, b, 140_000).await;
    // Each upload fits alone (140,000 + 49,000); two would not.
    let uploads = (0..4).map(|i| (l, numbers_file(49_000, &format!("0{}", 4 + i)))).collect();
    let jobs = upload_parallel(&app, &t, uploads).await;
    let count = lead_count(&app, l).await;
    assert_eq!(count, 189_000, "{jobs:?}");
    assert_eq!(jobs.iter().filter(|j| j["status"] == "done").count(), 1, "{jobs:?}");
    for j in jobs.iter().filter(|j| j["status"] != "done") {
        assert_eq!(j["error_code"], "list_full", "{j}");
        assert_eq!(j["imported_rows"], 0);
    }
}

/// Single leads (`POST /leads`, and the desktop's dial mode `POST /agent/leads`) created while an
/// import publishes into the same list: they take the batch's lock the import takes, so the batch
/// never holds a number twice and the list never passes its cap; the refused side is told so (a
/// 409 naming `tel` or `list_id`, or the import's error CSV naming the row).
pub async fn single_creates_race_an_import(backend: crate::harness::Backend) {
    use crate::agents::{phone_for, running_job, shard_event, until_agent, Buses, Control};
    let buses = Buses::new(false).await;
    let bus = buses.bus.clone();
    let config = api::Config { commands: bus::Publisher::new(bus.clone()), ..Default::default() };
    let wallboards = config.wallboards.clone();
    let app = TestApp::start_with(backend, config).await;
    let t = app.tenant("race").await;
    let (mgr, op) = (t.mgr(), t.token(Role::Op));
    let op_id = t.user(Role::Op);
    // A dial-mode job over a list that forbids duplicates; the operator works it.
    let (_, _, job) = running_job(&app, &t, &[op_id], json!({"mode": "dial"})).await;
    let l =
        expect(app.call(mgr, "get", &format!("/call-jobs/{job}"), None).await, 200)["list_ids"][0].as_i64().unwrap();
    let batch = expect(app.call(mgr, "get", &format!("/lists/{l}"), None).await, 200)["batch_id"].as_i64().unwrap();
    phone_for(&app, &t, op_id).await;
    let control = Control::start(&bus, &app, &wallboards, t.id).await;
    expect(app.call(op, "post", "/agent/session", Some(&json!({"call_job_id": job}))).await, 202);
    until_agent(&app, op, op_id, "ringing", |v| v["state"] == "ringing").await;
    let agent = wire::AgentId(op_id as u64);
    shard_event(&bus, t.id, wire::ShardEvent::AgentLegUp { agent_id: agent, shard: 0 }).await;
    until_agent(&app, op, op_id, "ready", |v| v["state"] == "ready").await;
    let before = lead_count(&app, l).await;

    // Singles of the file's numbers, through both endpoints, from before the upload until after its end.
    const ROWS: usize = 20_000;
    let (status, body) =
        app.raw(mgr.unwrap(), "POST", &format!("/lists/{l}/imports"), "text/csv", numbers_file(ROWS, "06")).await;
    assert_eq!(status.as_u16(), 202, "{}", String::from_utf8_lossy(&body));
    let import = serde_json::from_slice::<Value>(&body).unwrap()["id"].as_i64().unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let single = |agent: bool, lane: usize| {
        let done = &done;
        let app = &app;
        let (path, token) = if agent { ("/agent/leads", op) } else { ("/leads", mgr) };
        async move {
            let (mut created, mut refused) = (0i64, 0i64);
            let mut i = lane;
            let mut after_end = 0;
            while after_end < 20 {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    after_end += 1;
                }
                let tel = format!("06{:08}", (i * 7919) % ROWS);
                i += 4;
                match single_lead(app, token, path, l, &tel, ("duplicate_tel", "tel")).await {
                    true => created += 1,
                    false => refused += 1,
                }
            }
            (created, refused)
        }
    };
    let mgr_s = mgr.unwrap();
    let waiter = async {
        let j = wait(&app, mgr_s, import).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        j
    };
    let (j, a, b, c, d) = tokio::join!(waiter, single(false, 0), single(false, 1), single(true, 2), single(true, 3));
    let created = a.0 + b.0 + c.0 + d.0;
    let refused = a.1 + b.1 + c.1 + d.1;
    let dups: i64 = store::sqlx::Row::try_get(
        &store::sqlx::query(
            "SELECT COUNT(*) AS n FROM (SELECT tel FROM leads WHERE batch_id = $1 GROUP BY tel HAVING COUNT(*) > 1) d",
        )
        .bind(batch)
        .fetch_one(&app.db.pool)
        .await
        .unwrap(),
        "n",
    )
    .unwrap();
    println!("{backend:?}: import {j}; singles created {created}, refused {refused}");
    assert_eq!(dups, 0, "a number twice in the batch: import {j}, singles created {created}, refused {refused}");
    assert_eq!(j["status"], "done", "{j}");
    let (imported, rejected) = (j["imported_rows"].as_i64().unwrap(), j["rejected_rows"].as_i64().unwrap());
    assert_eq!(imported + created, ROWS as i64, "each number once: {j}, singles {created}");
    assert_eq!(lead_count(&app, l).await, before + ROWS as i64);
    assert_eq!(rejected, created, "the import refuses the rows the singles took: {j}");
    assert!(refused > 0, "the singles after the import are refused");
    if rejected > 0 {
        let (status, bytes) = app.raw(mgr_s, "GET", &format!("/imports/{import}/errors.csv"), "text/csv", vec![]).await;
        assert_eq!(status.as_u16(), 200);
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.lines().count() as i64, 1 + rejected);
        assert!(
            text.lines().nth(1).unwrap().ends_with("指定したバッチ内に同一の電話番号が既に登録されています"),
            "{text}"
        );
    }

    // The cap: the list 30 short of it; an import of 20 new numbers and 60 single creates race.
    let max = api::resources::MAX_LEADS_PER_LIST;
    let n = lead_count(&app, l).await;
    fill(&app, t.id, l, batch, max - 30 - n).await;
    let (status, body) =
        app.raw(mgr_s, "POST", &format!("/lists/{l}/imports"), "text/csv", numbers_file(20, "07")).await;
    assert_eq!(status.as_u16(), 202, "{}", String::from_utf8_lossy(&body));
    let import = serde_json::from_slice::<Value>(&body).unwrap()["id"].as_i64().unwrap();
    let capped = |agent: bool, lane: usize| {
        let app = &app;
        let (path, token) = if agent { ("/agent/leads", op) } else { ("/leads", mgr) };
        async move {
            let (mut created, mut full) = (0i64, 0i64);
            for k in 0..15 {
                match single_lead(app, token, path, l, &format!("08{lane}{k:08}"), ("list_full", "list_id")).await {
                    true => created += 1,
                    false => full += 1,
                }
            }
            (created, full)
        }
    };
    let (j, a, b, c, d) =
        tokio::join!(wait(&app, mgr_s, import), capped(false, 0), capped(false, 1), capped(true, 2), capped(true, 3));
    let count = lead_count(&app, l).await;
    assert!(count <= max, "over the cap: {count}; import {j}");
    let created = a.0 + b.0 + c.0 + d.0;
    let imported = if j["status"] == "done" { j["imported_rows"].as_i64().unwrap() } else { 0 };
    if j["status"] != "done" {
        assert_eq!(j["error_code"], "list_full", "{j}");
    }
    assert_eq!(count, max - 30 + created + imported, "{j}");
    assert!(a.1 + b.1 + c.1 + d.1 > 0, "60 singles and 20 rows into 30 places: some refused");
    control.stop().await;
}

/// Creates one lead through `path`: `true` when created, `false` when refused with the 409 `refusal`
/// (its code and the field it names); any other answer fails the test.
async fn single_lead(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
    list: i64,
    tel: &str,
    refusal: (&str, &str),
) -> bool {
    let body = json!({"list_id": list, "name": "single", "kana": "カナ", "tel": tel});
    let (st, v) = app.call(token, "post", path, Some(&body)).await;
    match st.as_u16() {
        201 => true,
        409 => {
            let got = (v["error"]["code"].as_str(), v["error"]["field"].as_str());
            assert_eq!(got, (Some(refusal.0), Some(refusal.1)), "{path}: {v}");
            false
        }
        s => panic!("{path}: {s} {v}"),
    }
}

/// Puts `n` leads into a list straight in SQL.
async fn fill(app: &TestApp, tenant: i64, list: i64, batch: i64, n: i64) {
    let fill = match app.backend {
        crate::harness::Backend::Postgres => {
            "INSERT INTO leads (tenant_id, list_id, batch_id, name, kana, tel, phone_type, created_at)
             SELECT $1, $2, $3, 'x', 'x', '0300000000', 'fixed', 0 FROM generate_series(1, $4)"
        }
        crate::harness::Backend::Sqlite => {
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $4)
             INSERT INTO leads (tenant_id, list_id, batch_id, name, kana, tel, phone_type, created_at)
             SELECT $1, $2, $3, 'x', 'x', '0300000000', 'fixed', 0 FROM s"
        }
    };
    store::sqlx::query(fill).bind(tenant).bind(list).bind(batch).bind(n).execute(&app.db.pool).await.unwrap();
}

crate::both!(
    parallel_imports_keep_the_duplicate_rule,
    parallel_imports_keep_the_list_cap,
    an_interrupted_import_reports_failed,
    imports_cp932_and_utf8_with_error_csv,
    header_only_and_limits_import_nothing,
    generic_import_maps_custom_fields
);

mod single_creates_race_an_import {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::single_creates_race_an_import(crate::harness::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::single_creates_race_an_import(crate::harness::Backend::Postgres).await
    }
}
