//! Callbacks (折り返し呼) in a real headless Chromium (`api/tests/browser/callbacks.test.js`) against
//! the real API: two agents on the desktop's 折り返し呼一覧 with the agents' push channel (new
//! callbacks counted and notified, the claim race in the page: the second agent gets the 409 and
//! reloads), and a supervisor's 折り返し呼履歴 in the admin console (search, edit, 保存しますか?, the
//! 409 of a record changed meanwhile). Screenshots ja and en under `target/tmp/browser/`.

use serde_json::{json, Value};
use store::accounts::Role;

use crate::browser::{login_of, password};
use crate::browser_proc::Browser;
use crate::harness::{expect, Backend, TestApp};

fn id(v: &Value) -> i64 {
    v["id"].as_i64().expect("id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_claim_and_complete_callbacks_on_the_desktop() {
    let (app, t, pushed) = crate::callbacks::with_push(Backend::Sqlite, "cbdesk").await;
    let mgr = t.mgr();
    let op = t.user(Role::Op);
    expect(app.call(mgr, "patch", &format!("/users/{op}"), Some(&json!({"display_name": "田中 太郎"}))).await, 200);
    let body = json!({"login": "sato", "display_name": "佐藤 花子", "role": "OP", "password": "Sato-pass-1"});
    let sato = id(&expect(app.call(mgr, "post", "/users", Some(&body)).await, 201));
    let campaign = id(&expect(app.call(mgr, "post", "/campaigns", Some(&json!({"name": "春の案内"}))).await, 201));
    expect(app.call(mgr, "post", "/phone-book", Some(&json!({"number": "0355550001", "name": "山田商店"}))).await, 201);
    let fixture = json!({
        "tenant": "cbdesk",
        "a": {"login": login_of(Role::Op), "password": password(Role::Op), "name": "田中 太郎"},
        "b": {"login": "sato", "password": "Sato-pass-1", "name": "佐藤 花子"},
        "named": "山田商店",
    });
    let mut b = Browser::script("callbacks.test.js", "desk", &app.base, &fixture);
    let mut open = 0;
    while let Some(step) = b.next_step().await {
        match step.as_str() {
            "register" => {
                // One from a call of the agent's history, three by hand.
                let call =
                    crate::callbacks::call(&app, &t, Some(campaign), op, "0355550001", store::now_ms() - 3_600_000)
                        .await;
                let mut ids = vec![id(&expect(
                    app.call(t.token(Role::Op), "post", "/callbacks", Some(&json!({"call_id": call}))).await,
                    201,
                ))];
                let mut numbers = vec!["0355550001".to_string()];
                for (n, label) in [("0311112222", "請求"), ("09033334444", "解約"), ("0120000555", "請求")] {
                    let v = expect(
                        app.call(
                            mgr,
                            "post",
                            "/callbacks",
                            Some(&json!({"number": n, "label": label, "campaign_id": campaign})),
                        )
                        .await,
                        201,
                    );
                    ids.push(id(&v));
                    numbers.push(n.to_string());
                }
                open = ids.len();
                b.go("register", Some(json!({"ids": ids, "numbers": numbers}))).await;
            }
            "assign" => {
                let v = expect(app.call(mgr, "post", "/callbacks", Some(&json!({"number": "0366667777"}))).await, 201);
                let path = format!("/callbacks/{}", id(&v));
                expect(
                    app.call(t.token(Role::Sv), "patch", &path, Some(&json!({"assignee_user_id": sato, "version": 1})))
                        .await,
                    200,
                );
                open += 1;
                b.go("assign", None).await;
            }
            "many" => {
                for i in 0..20 {
                    let n = format!("0399{:06}", i);
                    expect(app.call(mgr, "post", "/callbacks", Some(&json!({"number": n}))).await, 201);
                }
                open += 20;
                // One of the first four was completed in the page.
                let total = open - 1;
                b.go("many", Some(json!({"total": total, "open": total}))).await;
            }
            other => panic!("unknown step {other}"),
        }
    }
    b.finish().await;
    let done: i64 = store::sqlx::Row::try_get(
        &store::sqlx::query("SELECT COUNT(*) AS n FROM callbacks WHERE tenant_id = $1 AND status = 'done' AND assignee_user_id = $2 AND memo <> ''")
            .bind(t.id)
            .bind(op)
            .fetch_one(&app.db.pool)
            .await
            .expect("count"),
        "n",
    )
    .expect("n");
    assert_eq!(done, 1, "the callback the agent took, with its memo, complete");
    pushed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_assigns_from_the_callback_history() {
    let app = TestApp::start(Backend::Sqlite).await;
    let t = app.tenant("cbcon").await;
    let mgr = t.mgr();
    let op = t.user(Role::Op);
    expect(app.call(mgr, "patch", &format!("/users/{op}"), Some(&json!({"display_name": "田中 太郎"}))).await, 200);
    expect(app.call(mgr, "post", "/phone-book", Some(&json!({"number": "0355550001", "name": "山田商店"}))).await, 201);
    let mut target = 0;
    for (n, label) in [("0355550001", "請求"), ("0311112222", "解約"), ("09033334444", "請求")] {
        let v = expect(
            app.call(mgr, "post", "/callbacks", Some(&json!({"number": n, "label": label, "memo": "午後希望"}))).await,
            201,
        );
        if n == "0355550001" {
            target = id(&v);
        }
    }
    let fixture = json!({
        "tenant": "cbcon",
        "sv": {"login": login_of(Role::Sv), "password": password(Role::Sv)},
        "op": {"id": op, "name": "田中 太郎"},
        "number": "0355550001",
        "count": 3,
    });
    let mut b = Browser::script("callbacks.test.js", "console", &app.base, &fixture);
    while let Some(step) = b.next_step().await {
        match step.as_str() {
            "bump" => {
                // Someone else saves the record while the SV has it open.
                let path = format!("/callbacks/{target}");
                expect(app.call(mgr, "patch", &path, Some(&json!({"memo": "別の担当者が更新"}))).await, 200);
                b.go("bump", None).await;
            }
            other => panic!("unknown step {other}"),
        }
    }
    b.finish().await;
    let v = expect(app.call(mgr, "get", &format!("/callbacks/{target}"), None).await, 200);
    assert_eq!(v["assignee_user_id"], op);
    assert_eq!(v["status"], "done");
    assert_eq!(v["memo"], "別の担当者が更新", "the stale save was refused");
}
