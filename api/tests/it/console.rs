//! What the admin console needs from the API beyond plain records: its document of specs and
//! operations per role, free-text search, call jobs' lists read back, the CSV preview and an import
//! without a header row, the import's progress stream, and the list export for Excel.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use store::accounts::Role;

use crate::harness::{expect, Tenant, TestApp};
use crate::imports::{list, upload, urlencode};

fn sjis(s: &str) -> Vec<u8> {
    encoding_rs::SHIFT_JIS.encode(s).0.into_owned()
}

/// The console's document offers each role exactly the resources and buttons of the registry.
pub async fn console_specs_follow_the_registry(app: TestApp) {
    let t = app.tenant("spec").await;
    let ops = api::operations();
    let may = |role: Role, method: &str, path: &str| api::console::allowed(&ops, role, method, path);
    assert_eq!(app.call(None, "get", "/console/specs", None).await.0.as_u16(), 401);
    for role in Role::ALL {
        let doc = expect(app.call(t.token(role), "get", "/console/specs", None).await, 200);
        assert_eq!(doc["role"], role.as_str());
        let got: BTreeSet<&str> =
            doc["resources"].as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap()).collect();
        let want: BTreeSet<&str> = api::resources::ALL_SPECS
            .iter()
            .filter(|s| may(role, "get", s.path))
            .map(|s| s.path.trim_start_matches('/'))
            .collect();
        assert_eq!(got, want, "{role:?} reads");
        for r in doc["resources"].as_array().unwrap() {
            let path = r["path"].as_str().unwrap();
            let item = format!("{path}/{{id}}");
            assert_eq!(r["can"]["create"], may(role, "post", path), "{role:?} creates {path}");
            assert_eq!(r["can"]["update"], may(role, "patch", &item), "{role:?} edits {path}");
            assert_eq!(r["can"]["delete"], may(role, "delete", &item), "{role:?} deletes {path}");
        }
        let n = doc["ops"].as_array().unwrap().len();
        assert_eq!(n, ops.iter().filter(|o| o.roles.as_ref().is_none_or(|r| r.contains(&role))).count());
    }
}

async fn lead(app: &TestApp, t: &Tenant, list: i64, name: &str, tel: &str, tags: Value) -> i64 {
    let body = json!({"list_id": list, "name": name, "kana": "カナ", "tel": tel, "remarks": format!("{name}の備考"), "tags": tags});
    expect(app.call(t.mgr(), "post", "/leads", Some(&body)).await, 201)["id"].as_i64().unwrap()
}

pub async fn search_and_linked_lists(app: TestApp) {
    let t = app.tenant("search").await;
    let (c, b, l) = crate::harness::scaffold(&app, &t, json!({}), false).await;
    lead(&app, &t, l, "山田 太郎", "0311112222", json!(["春", "VIP"])).await;
    lead(&app, &t, l, "山田 花子", "09033334444", json!([])).await;
    lead(&app, &t, l, "鈴木 100%", "0355556666", json!(["vip"])).await;
    let names = |v: Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect()
    };
    let (app_, t_) = (&app, &t);
    let get = |q: &str| {
        let path = format!("/leads?list_id={l}&sort=id&q={}", urlencode(q));
        async move { expect(app_.call(t_.mgr(), "get", &path, None).await, 200) }
    };
    assert_eq!(names(get("山田").await), ["山田 太郎", "山田 花子"]);
    // Every word, each in some column; tags and remarks are searched; case-insensitive.
    assert_eq!(names(get("山田 vip").await), ["山田 太郎"]);
    assert_eq!(names(get("VIP").await), ["山田 太郎", "鈴木 100%"]);
    assert_eq!(names(get("花子の備考").await), ["山田 花子"]);
    // A phone number with separators finds the digits; % is literal.
    assert_eq!(names(get("090-3333").await), ["山田 花子"]);
    assert_eq!(names(get("100%").await), ["鈴木 100%"]);
    assert_eq!(get("1%0").await["total"], 0);
    assert_eq!(get("山田").await["total"], 2);
    // A list without searched fields refuses q, naming it.
    let (status, body) = app.call(t.mgr(), "get", "/grants?q=x", None).await;
    assert_eq!((status.as_u16(), body["error"]["field"].as_str()), (400, Some("q")));

    // A call job's lists read back (list and one record alike).
    let l2 = expect(app.call(t.mgr(), "post", "/lists", Some(&json!({"batch_id": b, "name": "l2"}))).await, 201)["id"]
        .as_i64()
        .unwrap();
    let g = expect(app.call(t.mgr(), "post", "/dialing-groups", Some(&json!({"name": "g"}))).await, 201)["id"]
        .as_i64()
        .unwrap();
    let job = json!({"campaign_id": c, "dialing_group_id": g, "name": "j", "list_ids": [l2, l]});
    let j = expect(app.call(t.mgr(), "post", "/call-jobs", Some(&job)).await, 201);
    let mut want = vec![l, l2];
    want.sort();
    assert_eq!(j["list_ids"], json!(want));
    let j = expect(
        app.call(t.mgr(), "patch", &format!("/call-jobs/{}", j["id"]), Some(&json!({"list_ids": [l2]}))).await,
        200,
    );
    assert_eq!(j["list_ids"], json!([l2]));
    let all = expect(app.call(t.mgr(), "get", "/call-jobs", None).await, 200);
    assert_eq!(all["items"][0]["list_ids"], json!([l2]));
    let (status, body) =
        app.call(t.mgr(), "patch", &format!("/call-jobs/{}", j["id"]), Some(&json!({"list_ids": ["x"]}))).await;
    assert_eq!((status.as_u16(), body["error"]["field"].as_str()), (422, Some("list_ids")));
}

pub async fn preview_and_import_without_a_header(app: TestApp) {
    let t = app.tenant("prev").await;
    let (_, l) = list(&app, &t, false).await;
    let token = t.mgr().unwrap();
    // CP932, tab separated, no header row: columns 列1.. and a suggested tel column.
    let file = sjis("山田\tヤマダ\t0311112222\r\n\tスズキ\t0311112223\r\n佐藤\tサトウ\t311114444\r\n");
    let (status, body) = app
        .raw(token, "POST", &format!("/lists/{l}/imports/preview?delimiter=tab&header=false"), "text/csv", file.clone())
        .await;
    assert_eq!(status.as_u16(), 200, "{}", String::from_utf8_lossy(&body));
    let p: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(p["encoding"], "shift_jis");
    assert_eq!(p["columns"], json!(["列1", "列2", "列3"]));
    assert_eq!(p["rows"][0], json!(["山田", "ヤマダ", "0311112222"]));
    assert_eq!(p["suggested"], json!({"列3": "tel"}));
    // With a header: named columns are suggested.
    let (_, body) = app
        .raw(
            token,
            "POST",
            &format!("/lists/{l}/imports/preview"),
            "text/csv",
            "氏名,フリガナ,電話番号\n山田,ヤマダ,0311112222\n".into(),
        )
        .await;
    let p: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(p["suggested"], json!({"氏名": "name", "フリガナ": "kana", "電話番号": "tel"}));
    // Bad input names its part.
    let (status, body) =
        app.raw(token, "POST", &format!("/lists/{l}/imports/preview?delimiter=x"), "text/csv", b"a\n".to_vec()).await;
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status.as_u16(), e["error"]["field"].as_str()), (400, Some("delimiter")));
    let (status, body) = app.raw(token, "POST", &format!("/lists/{l}/imports/preview"), "text/csv", vec![]).await;
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status.as_u16(), e["error"]["field"].as_str()), (422, Some("body")));
    let big = vec![b'a'; api::import::preview::PREVIEW_MAX_BYTES + 1];
    let (status, _) = app.raw(token, "POST", &format!("/lists/{l}/imports/preview"), "text/csv", big).await;
    assert_eq!(status.as_u16(), 413);
    // BIZ may not import; OP reads no lists.
    let (status, _) = app
        .raw(t.token(Role::Biz).unwrap(), "POST", &format!("/lists/{l}/imports/preview"), "text/csv", file.clone())
        .await;
    assert_eq!(status.as_u16(), 403);

    // The import as the page sends it: the mapping by 列N, the same delimiter and header choice.
    let mapping = urlencode(r#"{"列1":"name","列2":"kana","列3":"tel"}"#);
    let q = format!("?kind=generic&delimiter=tab&header=false&mapping={mapping}&tags=%5B%22%E7%A7%8B%22%5D");
    let v = upload(&app, &t, l, &q, file).await;
    assert_eq!(
        (v["status"].as_str(), v["imported_rows"].as_i64(), v["rejected_rows"].as_i64()),
        (Some("done"), Some(1), Some(2)),
        "{v}"
    );
    let id = v["id"].as_i64().unwrap();
    let (_, bytes) = app.raw(token, "GET", &format!("/imports/{id}/errors.csv"), "text/csv", vec![]).await;
    let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(&bytes);
    assert!(!bad);
    assert_eq!(
        text,
        "行,列1,列2,列3,エラー内容\r\n2,,スズキ,0311112223,name:値がありません\r\n3,佐藤,サトウ,311114444,tel:電話番号の先頭に0を入れてください\r\n"
    );
    let (status, body) =
        app.raw(token, "POST", &format!("/lists/{l}/imports?header=false"), "text/csv", b"a\n".to_vec()).await;
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status.as_u16(), e["error"]["field"].as_str()), (400, Some("header")));

    // The progress stream: a ticket, then the events until done (this import is over: done at once).
    let ticket =
        expect(app.call(t.mgr(), "post", "/stream-tickets", None).await, 201)["ticket"].as_str().unwrap().to_owned();
    let text = app
        .http
        .get(format!("{}/imports/{id}/stream?ticket={ticket}", app.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: done"), "{text}");
    assert!(text.contains("\"imported_rows\":1"), "{text}");
    // Single use.
    let r = app.http.get(format!("{}/imports/{id}/stream?ticket={ticket}", app.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // OP may take a ticket, but the import stream checks the role.
    let op_ticket = expect(app.call(t.token(Role::Op), "post", "/stream-tickets", None).await, 201)["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.http.get(format!("{}/imports/{id}/stream?ticket={op_ticket}", app.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

pub async fn list_export_for_excel(app: TestApp) {
    let t = app.tenant("exp").await;
    let (_, l) = list(&app, &t, false).await;
    expect(
        app.call(t.mgr(), "post", "/custom-fields", Some(&json!({"key": "plan", "label": "プラン", "kind": "text"})))
            .await,
        201,
    );
    let a = lead(&app, &t, l, "山田 太郎", "0311112222", json!(["春"])).await;
    lead(&app, &t, l, "髙橋 一郎", "0311113333", json!([])).await;
    expect(app.call(t.mgr(), "patch", &format!("/leads/{a}"), Some(&json!({"custom": {"plan": "A"}}))).await, 200);
    store::sqlx::query("UPDATE leads SET attempts = 2, last_result = 'busy' WHERE id = $1")
        .bind(a)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let token = t.mgr().unwrap();
    let (status, bytes) = app.raw(token, "GET", &format!("/lists/{l}/export.csv"), "text/csv", vec![]).await;
    assert_eq!(status.as_u16(), 200);
    let text = String::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], "\u{feff}name,kana,tel,remarks,tags,attempts,last_result,last_attempt_at,state,プラン");
    assert!(lines[1].starts_with("山田 太郎,カナ,0311112222,山田 太郎の備考,春,2,busy,,open,A"), "{text}");
    assert_eq!(lines.len(), 4, "{text}");
    // CP932 for old Excel; the attempt shortcut (未発信 = 0) and the search.
    let (_, bytes) = app
        .raw(token, "GET", &format!("/lists/{l}/export.csv?encoding=shift_jis&attempts=0"), "text/csv", vec![])
        .await;
    let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(&bytes);
    assert!(!bad);
    assert!(text.starts_with("name,kana,tel") && text.contains("髙橋") && !text.contains("山田"), "{text}");
    let (_, bytes) =
        app.raw(token, "GET", &format!("/lists/{l}/export.csv?q={}", urlencode("春")), "text/csv", vec![]).await;
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let (status, _) = app.raw(token, "GET", &format!("/lists/{l}/export.csv?encoding=x"), "text/csv", vec![]).await;
    assert_eq!(status.as_u16(), 400);
    let (status, _) =
        app.raw(t.token(Role::Op).unwrap(), "GET", &format!("/lists/{l}/export.csv"), "text/csv", vec![]).await;
    assert_eq!(status.as_u16(), 403);
    let other = app.tenant("exp2").await;
    let (status, _) = app.raw(other.mgr().unwrap(), "GET", &format!("/lists/{l}/export.csv"), "text/csv", vec![]).await;
    assert_eq!(status.as_u16(), 404);
}

crate::both!(
    console_specs_follow_the_registry,
    search_and_linked_lists,
    preview_and_import_without_a_header,
    list_export_for_excel
);
