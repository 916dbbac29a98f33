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
