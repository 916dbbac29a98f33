//! Recordings through the API: who sees what, downloads with their content type, the day's zip,
//! storage usage, and bad input named.

use std::io::Read;

use serde_json::Value;
use store::accounts::Role;

use crate::harness::{expect, recording, Tenant, TestApp};

/// 2026-11-22 10:00 in Tokyo.
const T0: i64 = 1_795_309_200_000;
const DAY_MS: i64 = 86_400_000;

/// A call record of `agent`, started at `at`.
async fn call(app: &TestApp, t: &Tenant, agent: Option<i64>, at: i64) -> i64 {
    store::sqlx::Row::try_get(
        &store::sqlx::query(
            "INSERT INTO call_records (tenant_id, agent_user_id, tel, started_at, result) VALUES ($1, $2, '0311112222', $3, 'busy') RETURNING id",
        )
        .bind(t.id)
        .bind(agent)
        .bind(at)
        .fetch_one(&app.db.pool)
        .await
        .expect("call record"),
        "id",
    )
    .expect("id")
}

async fn get_bytes(app: &TestApp, token: &str, path: &str) -> (u16, String, Vec<u8>) {
    let resp = app.http.get(format!("{}{}", app.base, path)).bearer_auth(token).send().await.expect("sent");
    let status = resp.status().as_u16();
    let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_string()).unwrap_or_default();
    (status, ctype, resp.bytes().await.expect("body").to_vec())
}

fn ids(v: &Value) -> Vec<i64> {
    v["items"].as_array().expect("items").iter().map(|i| i["id"].as_i64().expect("id")).collect()
}

pub async fn recordings_by_role_date_and_call(app: TestApp) {
    let t = app.tenant("rec").await;
    let op = t.user(Role::Op);
    let mine = call(&app, &t, Some(op), T0).await;
    let theirs = call(&app, &t, Some(t.user(Role::Sv)), T0 + 60_000).await;
    let next_day = call(&app, &t, Some(op), T0 + DAY_MS).await;
    let (r1, p1) = recording(&app, t.id, mine, 1, T0, b"RIFF one").await;
    let (r2, _) = recording(&app, t.id, theirs, 2, T0 + 60_000, b"RIFF two").await;
    let (r3, _) = recording(&app, t.id, next_day, 3, T0 + DAY_MS, b"RIFF three").await;
    assert!(p1.ends_with(format!("{}/2026-11-22/1.wav", t.id)));

    let all = expect(app.call(t.mgr(), "get", "/recordings", None).await, 200);
    assert_eq!(ids(&all), vec![r3, r2, r1], "newest first");
    assert_eq!(all["items"][2]["call_record_id"], mine);
    assert_eq!(all["items"][2]["date"], "2026-11-22");
    assert_eq!(all["items"][2]["format"], "wav");
    assert_eq!(all["items"][2]["started_at"], "2026-11-22T10:00:00+09:00");
    let sv = expect(
        app.call(t.token(Role::Sv), "get", "/recordings?date_from=2026-11-22&date_to=2026-11-22", None).await,
        200,
    );
    assert_eq!(ids(&sv), vec![r2, r1]);
    let by_call = expect(app.call(t.mgr(), "get", &format!("/recordings?call_record_id={theirs}"), None).await, 200);
    assert_eq!(ids(&by_call), vec![r2]);
    let by_agent =
        expect(app.call(t.mgr(), "get", &format!("/recordings?agent_user_id={op}&limit=1"), None).await, 200);
    assert_eq!((ids(&by_agent), by_agent["total"].as_i64()), (vec![r3], Some(2)));
    // An OP sees the recordings of their own calls only.
    let own = expect(app.call(t.token(Role::Op), "get", "/recordings", None).await, 200);
    assert_eq!(ids(&own), vec![r3, r1]);
    expect(app.call(t.token(Role::Op), "get", &format!("/recordings/{r2}"), None).await, 404);
    let (s, _, _) = get_bytes(&app, t.token(Role::Op).unwrap(), &format!("/recordings/{r2}/audio")).await;
    assert_eq!(s, 404);
    // BIZ and BY have no access at all.
    for role in [Role::Biz, Role::By] {
        expect(app.call(t.token(role), "get", "/recordings", None).await, 403);
        expect(app.call(t.token(role), "get", &format!("/recordings/{r1}/audio"), None).await, 403);
    }
    // Download: the file's bytes with its content type.
    let (s, ctype, body) = get_bytes(&app, t.token(Role::Op).unwrap(), &format!("/recordings/{r1}/audio")).await;
    assert_eq!((s, ctype.as_str(), body.as_slice()), (200, "audio/wav", b"RIFF one".as_slice()));
    // Once encoded, the Opus file is served as Ogg.
    let ogg = p1.with_extension("opus");
    std::fs::write(&ogg, b"OggS opus").unwrap();
    store::recordings::encoded(&app.db, t.id, r1, &ogg.to_string_lossy(), 9, 0, T0).await.unwrap();
    let (s, ctype, body) = get_bytes(&app, t.mgr().unwrap(), &format!("/recordings/{r1}/audio")).await;
    assert_eq!((s, ctype.as_str(), body.as_slice()), (200, "audio/ogg; codecs=opus", b"OggS opus".as_slice()));

    // The day's zip holds that day's recordings (an OP's: their own), streamed.
    let (s, ctype, zip) = get_bytes(&app, t.mgr().unwrap(), "/recordings/zip?date=2026-11-22").await;
    assert_eq!((s, ctype.as_str()), (200, "application/zip"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a valid zip");
    let mut names: Vec<String> = archive.file_names().map(|n| n.expect("name").to_string()).collect();
    names.sort();
    assert_eq!(names, vec!["2026-11-22/100000_1.opus", "2026-11-22/100100_2.wav"]);
    let mut content = Vec::new();
    archive.by_name("2026-11-22/100100_2.wav").unwrap().read_to_end(&mut content).unwrap();
    assert_eq!(content, b"RIFF two");
    let (_, _, zip) = get_bytes(&app, t.token(Role::Op).unwrap(), "/recordings/zip?date=2026-11-22").await;
    let archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a valid zip");
    let names: Vec<String> = archive.file_names().map(|n| n.expect("name").to_string()).collect();
    assert_eq!(names, vec!["2026-11-22/100000_1.opus"]);
    let (_, _, empty) = get_bytes(&app, t.mgr().unwrap(), "/recordings/zip?date=2020-01-01").await;
    assert_eq!(zip::ZipArchive::new(std::io::Cursor::new(empty)).expect("an empty zip").len(), 0);

    // Usage counts the live files against the quota.
    let u = expect(app.call(t.token(Role::Sv), "get", "/recordings/usage", None).await, 200);
    assert_eq!(u["bytes"], 9 + 8 + 10);
    assert_eq!(u["recordings"], 3);
    assert_eq!(u["quota_bytes"], 53_687_091_200i64);
    expect(app.call(t.token(Role::Op), "get", "/recordings/usage", None).await, 403);

    // Bad input names the field.
    for (q, field) in [
        ("/recordings?date_from=2026-13-01", "date_from"),
        ("/recordings?date_to=yesterday", "date_to"),
        ("/recordings?call_record_id=x", "call_record_id"),
        ("/recordings?agent_user_id=0", "agent_user_id"),
        ("/recordings?limit=501", "limit"),
        ("/recordings?offset=-1", "offset"),
        ("/recordings?tel=03", "tel"),
        ("/recordings/zip?date=22-11-2026", "date"),
        ("/recordings/zip?day=2026-11-22", "day"),
    ] {
        let e = expect(app.call(t.mgr(), "get", q, None).await, 400);
        assert_eq!(e["error"]["field"], field, "{q}");
    }
    expect(app.call(t.mgr(), "get", "/recordings/abc", None).await, 404);

    // A recording deleted past the quota: its audio answers 410 saying why (an OP's other agent's: 404 still).
    store::sqlx::query("UPDATE recordings SET deleted_at = $1, deleted_reason = 'quota' WHERE id = $2")
        .bind(T0)
        .bind(r1)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let e = expect(app.call(t.mgr(), "get", &format!("/recordings/{r1}/audio"), None).await, 410);
    assert_eq!(e["error"]["code"], "recording_deleted", "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("quota"), "{e}");
    expect(app.call(t.mgr(), "get", &format!("/recordings/{r1}"), None).await, 404);
    let (s, _, _) = get_bytes(&app, t.token(Role::Op).unwrap(), &format!("/recordings/{r2}/audio")).await;
    assert_eq!(s, 404);
}

pub async fn another_tenants_recording_is_404(app: TestApp) {
    let a = app.tenant("reca").await;
    let b = app.tenant("recb").await;
    let c = call(&app, &a, Some(a.user(Role::Op)), T0).await;
    let (r, _) = recording(&app, a.id, c, 10, T0, b"RIFF a").await;
    expect(app.call(a.mgr(), "get", &format!("/recordings/{r}"), None).await, 200);
    expect(app.call(b.mgr(), "get", &format!("/recordings/{r}"), None).await, 404);
    let (s, _, _) = get_bytes(&app, b.mgr().unwrap(), &format!("/recordings/{r}/audio")).await;
    assert_eq!(s, 404);
    assert_eq!(expect(app.call(b.mgr(), "get", "/recordings", None).await, 200)["total"], 0);
    let (_, _, zip) = get_bytes(&app, b.mgr().unwrap(), "/recordings/zip?date=2026-11-22").await;
    assert_eq!(zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("zip").len(), 0);
    assert_eq!(expect(app.call(b.mgr(), "get", "/recordings/usage", None).await, 200)["bytes"], 0);
}

crate::both!(recordings_by_role_date_and_call, another_tenants_recording_is_404);
