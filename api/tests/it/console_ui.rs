//! The admin console (`/ui/admin`) in a real headless Chromium (`api/tests/browser/console.test.js`)
//! against the real API: every role walks the registry and sees only what it may do, and a
//! 50,000-row CSV is uploaded through the page. (The floor a manager builds and runs from the
//! console, with the dialer and the simulated floor, is `kakeru/tests/it/console.rs`.)

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use store::accounts::Role;

use crate::browser::{login_of, password};
use crate::browser_proc::{out_dir, Browser};
use crate::harness::{Backend, TestApp};

/// What each role may reach, from the API's registry (the operations that build the router): the
/// resources it reads with the buttons it gets, the hand-written screens, and what it may not reach.
fn expectations(fx: &HashMap<&'static str, i64>) -> Value {
    let ops = api::operations();
    let may = |role: Role, method: &str, path: &str| api::console::allowed(&ops, role, method, path);
    let mut out = Map::new();
    for role in Role::ALL {
        let mut resources = Map::new();
        let mut forbidden = Vec::new();
        for spec in api::resources::ALL_SPECS {
            let key = spec.path.trim_start_matches('/');
            if !may(role, "get", spec.path) {
                forbidden.push(key);
                continue;
            }
            let item = format!("{}/{{id}}", spec.path);
            resources.insert(
                key.to_owned(),
                json!({
                    "create": spec.creatable && may(role, "post", spec.path),
                    "update": spec.updatable && may(role, "patch", &item),
                    "delete": may(role, "delete", &item),
                    "id": fx.get(spec.path),
                }),
            );
        }
        let reads = |k: &str| resources.contains_key(k);
        let screens = [
            ("agents", reads("users")),
            ("import", may(role, "post", "/lists/{id}/imports/preview") && reads("lists")),
            (
                "monitor",
                may(role, "get", "/wallboard/stream")
                    && may(role, "post", "/call-jobs/{id}/stop")
                    && reads("call-jobs")
                    && reads("campaigns"),
            ),
            ("unsaved", may(role, "post", "/wrapup-records/{id}/save") && reads("wrapup-records")),
            ("recordings", may(role, "get", "/recordings")),
            ("tenant", may(role, "get", "/tenant") && may(role, "patch", "/tenant")),
            ("callbacks", may(role, "get", "/callbacks")),
            (
                "reports",
                ["groups", "campaigns", "numbers", "states", "lists", "outbound", "abandons"]
                    .iter()
                    .any(|r| may(role, "get", &format!("/reports/{r}"))),
            ),
            ("call-history", may(role, "get", "/call-history")),
        ];
        let yes: Vec<&str> = screens.iter().filter(|(_, ok)| *ok).map(|(s, _)| *s).collect();
        let no: Vec<&str> = screens.iter().filter(|(_, ok)| !*ok).map(|(s, _)| *s).collect();
        out.insert(
            role.as_str().to_owned(),
            json!({"resources": resources, "forbidden": forbidden, "screens": yes, "forbidden_screens": no}),
        );
    }
    Value::Object(out)
}

fn users() -> Value {
    Value::Object(
        Role::ALL
            .iter()
            .map(|r| (r.as_str().to_owned(), json!({"login": login_of(*r), "password": password(*r)})))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_each_role_only_what_it_may_do() {
    let app = TestApp::start(Backend::Sqlite).await;
    let t = app.tenant("walk").await;
    let fx = crate::access::fixtures(&app, &t).await;
    let expect = expectations(&fx);
    // The registry gives the roles different screens (the test would prove nothing otherwise).
    assert_eq!(expect["SV"]["resources"]["campaigns"]["delete"], false);
    assert_eq!(expect["MGR"]["resources"]["campaigns"]["delete"], true);
    assert!(expect["BY"]["forbidden"].as_array().is_some_and(|f| f.contains(&json!("campaigns"))));
    // A user locked after wrong passwords (ログインロック): the MGR unlocks it from its view.
    let locked = fx["/users"];
    store::sqlx::query("UPDATE users SET locked_at = $1, failed_logins = 5 WHERE id = $2")
        .bind(store::now_ms())
        .bind(locked)
        .execute(&app.db.pool)
        .await
        .expect("lock");
    let fixture = json!({"tenant": "walk", "users": users(), "expect": expect, "locked": locked});
    let b = Browser::script("console.test.js", "roles", &app.base, &fixture);
    let out = b.finish().await;
    assert!(out.iter().any(|l| l.starts_with("ROLES walked")), "{out:?}");
    let row = store::sqlx::query("SELECT locked_at, failed_logins FROM users WHERE id = $1")
        .bind(locked)
        .fetch_one(&app.db.pool)
        .await
        .expect("user");
    let locked_at: Option<i64> = store::sqlx::Row::try_get(&row, "locked_at").expect("locked_at");
    assert_eq!(locked_at, None, "unlocked from the console");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_imports_50000_rows_with_progress() {
    const ROWS: usize = 50_000;
    let app = TestApp::start(Backend::Sqlite).await;
    let t = app.tenant("bulk").await;
    let (_, _, list) = crate::harness::scaffold(&app, &t, json!({}), false).await;
    let mut csv = String::from("氏名,フリガナ,電話番号,備考\r\n");
    for i in 0..ROWS {
        csv.push_str(&format!("顧客{i},コキャク{i},03{:08},備考{}\r\n", 10_000_000 + i, i % 7));
    }
    let file = out_dir().join("leads-50000.csv");
    std::fs::write(&file, encoding_rs::SHIFT_JIS.encode(&csv).0).expect("the CSV");
    let fixture = json!({
        "tenant": "bulk",
        "mgr": {"login": login_of(Role::Mgr), "password": password(Role::Mgr)},
        "list": list,
        "rows": ROWS,
        "file": file,
    });
    let b = Browser::script("console.test.js", "bulk", &app.base, &fixture);
    let out = b.finish().await;
    let line = out.iter().find(|l| l.starts_with("IMPORT ")).expect("the measurement");
    println!("console import through the page (SQLite): {line}");
    let n: i64 = store::sqlx::Row::try_get(
        &store::sqlx::query("SELECT COUNT(*) AS n FROM leads WHERE list_id = $1")
            .bind(list)
            .fetch_one(&app.db.pool)
            .await
            .expect("count"),
        "n",
    )
    .expect("n");
    assert_eq!(n, ROWS as i64);
}
