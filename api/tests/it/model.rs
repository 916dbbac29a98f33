//! The outbound model's rules through the API: batch dates, delete guards, call jobs, lead
//! selection, number lists, validation, pagination.

use serde_json::json;
use store::accounts::Role;
use store::sqlx::Row;

use crate::harness::{expect, TestApp};
use crate::imports::list;

pub async fn batch_dates_follow_retention(app: TestApp) {
    let t = app.tenant("dates").await;
    let mgr = t.mgr();
    expect(app.call(mgr, "patch", "/tenant", Some(&json!({"history_retention_days": 400}))).await, 200);
    let c = expect(app.call(mgr, "post", "/campaigns", Some(&json!({"name": "c"}))).await, 201)["id"].as_i64().unwrap();
    let b = expect(
        app.call(mgr, "post", "/batches", Some(&json!({"campaign_id": c, "name": "b", "start_date": "2026-04-01"})))
            .await,
        201,
    );
    assert_eq!(b["end_date"], "2027-02-04");
    assert_eq!(b["batch_deletion_date"], "2027-05-05");
    assert_eq!(b["history_deletion_date"], "2028-06-07");
    let id = b["id"].as_i64().unwrap();
    // Calls made between 2026-05-10 and 2026-06-20 (Tokyo) pin the dates.
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
    store::sqlx::query("UPDATE batches SET first_call_at = $1, last_call_at = $2 WHERE id = $3")
        .bind(at("2026-05-10T09:30:00+09:00"))
        .bind(at("2026-06-20T17:00:00+09:00"))
        .bind(id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let path = format!("/batches/{id}");
    expect(app.call(mgr, "patch", &path, Some(&json!({"start_date": "2026-05-10"}))).await, 200);
    let e = expect(app.call(mgr, "patch", &path, Some(&json!({"start_date": "2026-05-11"}))).await, 422);
    assert_eq!(e["error"]["field"], "start_date");
    expect(app.call(mgr, "patch", &path, Some(&json!({"end_date": "2026-06-20"}))).await, 200);
    let e = expect(app.call(mgr, "patch", &path, Some(&json!({"end_date": "2026-06-19"}))).await, 422);
    assert_eq!(e["error"]["field"], "end_date");
    // R = 91 (BIZTEL §1.2 example 2): the shortest batch, end = start.
    expect(app.call(mgr, "patch", "/tenant", Some(&json!({"history_retention_days": 91}))).await, 200);
    let b = expect(
        app.call(
            mgr,
            "post",
            "/batches",
            Some(&json!({"campaign_id": c, "name": "short", "start_date": "2026-12-31"})),
        )
        .await,
        201,
    );
    assert_eq!(b["end_date"], "2026-12-31");
    assert_eq!(b["batch_deletion_date"], "2027-03-31");
    assert_eq!(b["history_deletion_date"], "2027-06-29");
    let e = expect(app.call(mgr, "patch", "/tenant", Some(&json!({"history_retention_days": 90}))).await, 422);
    assert_eq!(e["error"]["field"], "history_retention_days");
}

pub async fn batch_delete_guards(app: TestApp) {
    let t = app.tenant("guards").await;
    let mgr = t.mgr();
    let (b, l) = list(&app, &t, false).await;
    let lead = expect(
        app.call(mgr, "post", "/leads", Some(&json!({"list_id": l, "name": "a", "kana": "エー", "tel": "0312345678"})))
            .await,
        201,
    )["id"]
        .as_i64()
        .unwrap();
    // Unsaved wrap-up record.
    store::sqlx::query(
        "INSERT INTO wrapup_records (tenant_id, lead_id, result, created_at) VALUES ($1, $2, 'no_entry', 0)",
    )
    .bind(t.id)
    .bind(lead)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let e = expect(app.call(mgr, "delete", &format!("/batches/{b}"), None).await, 409);
    assert_eq!(e["error"]["code"], "unsaved_records");
    store::sqlx::query("UPDATE wrapup_records SET saved_at = 1 WHERE lead_id = $1")
        .bind(lead)
        .execute(&app.db.pool)
        .await
        .unwrap();
    // Calls and lists.
    store::sqlx::query("UPDATE batches SET first_call_at = 1, last_call_at = 2 WHERE id = $1")
        .bind(b)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let e = expect(app.call(mgr, "delete", &format!("/batches/{b}"), None).await, 409);
    assert_eq!(e["error"]["code"], "batch_has_calls");
    // A running call job over its list (SV may not delete at all).
    assert_eq!(app.call(t.token(Role::Sv), "delete", &format!("/batches/{b}"), None).await.0.as_u16(), 403);
    expect(app.call(mgr, "delete", &format!("/lists/{l}"), None).await, 204);
    expect(app.call(mgr, "delete", &format!("/batches/{b}"), None).await, 204);
    expect(app.call(mgr, "get", &format!("/batches/{b}"), None).await, 404);
}

async fn job(app: &TestApp, t: &crate::harness::Tenant, hours: (&str, &str)) -> (i64, i64) {
    let mgr = t.mgr();
    let hours = json!({"business_start": hours.0, "business_end": hours.1});
    let (c, _, l) = crate::harness::scaffold(app, t, hours, false).await;
    crate::harness::a_result(app, t, c).await;
    let g = expect(
        app.call(mgr, "post", "/dialing-groups", Some(&json!({"name": crate::harness::unique("g")}))).await,
        201,
    )["id"]
        .as_i64()
        .unwrap();
    let body = json!({"campaign_id": c, "dialing_group_id": g, "name": "j", "list_ids": [l]});
    let j = expect(app.call(mgr, "post", "/call-jobs", Some(&body)).await, 201)["id"].as_i64().unwrap();
    (j, l)
}

pub async fn at_most_five_jobs_run(app: TestApp) {
    let t = app.tenant("jobs").await;
    let mgr = t.mgr();
    let mut jobs = vec![];
    for _ in 0..6 {
        jobs.push(job(&app, &t, ("00:00", "23:59")).await.0);
    }
    for j in &jobs[..5] {
        let v = expect(app.call(mgr, "post", &format!("/call-jobs/{j}/start"), None).await, 200);
        assert_eq!(v["status"], "running");
    }
    let e = expect(app.call(mgr, "post", &format!("/call-jobs/{}/start", jobs[5]), None).await, 409);
    assert_eq!(e["error"]["code"], "too_many_running_jobs");
    // A running job cannot be changed or deleted; stopping frees a slot.
    let e = expect(app.call(mgr, "patch", &format!("/call-jobs/{}", jobs[0]), Some(&json!({"name": "x"}))).await, 409);
    assert_eq!(e["error"]["code"], "job_running");
    expect(app.call(mgr, "delete", &format!("/call-jobs/{}", jobs[0]), None).await, 409);
    expect(app.call(mgr, "post", &format!("/call-jobs/{}/stop", jobs[0]), None).await, 200);
    expect(app.call(mgr, "post", &format!("/call-jobs/{}/start", jobs[5]), None).await, 200);
    // Outside business hours (more than an hour before start): refused.
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Tokyo);
    use chrono::Timelike;
    let start = (now.hour() + 3) % 24;
    let end = (start + 2).min(23);
    if start + 2 <= 23 {
        let (j, _) = job(&app, &t, (&format!("{start:02}:00"), &format!("{end:02}:00"))).await;
        expect(app.call(mgr, "post", &format!("/call-jobs/{}/stop", jobs[1]), None).await, 200);
        let e = expect(app.call(mgr, "post", &format!("/call-jobs/{j}/start"), None).await, 409);
        assert_eq!(e["error"]["code"], "outside_business_hours");
    }
}

pub async fn next_dialable_leads_respect_filters_and_recalls(app: TestApp) {
    let t = app.tenant("sel").await;
    let mgr = t.mgr();
    let (j, l) = job(&app, &t, ("00:00", "23:59")).await;
    let mut ids = vec![];
    for (i, tel) in ["0311110001", "09011110002", "0311110003", "08011110004"].iter().enumerate() {
        let v = expect(
            app.call(
                mgr,
                "post",
                "/leads",
                Some(&json!({"list_id": l, "name": format!("l{i}"), "kana": "カナ", "tel": tel})),
            )
            .await,
            201,
        );
        ids.push(v["id"].as_i64().unwrap());
    }
    store::sqlx::query("UPDATE leads SET attempts = 2, last_attempt_at = 1000 WHERE id = $1")
        .bind(ids[2])
        .execute(&app.db.pool)
        .await
        .unwrap();
    // A due scheduled recall on the last lead comes first; an agent-owned one is not the job's.
    expect(
        app.call(mgr, "post", "/recalls", Some(&json!({"lead_id": ids[3], "due_at": "2020-01-01T00:00:00Z"}))).await,
        201,
    );
    expect(
        app.call(mgr, "post", "/recalls", Some(&json!({"lead_id": ids[1], "agent_user_id": t.user(Role::Op)}))).await,
        201,
    );
    let f = store::leads::job_filter(&app.db, t.id, j).await.unwrap();
    let got = store::leads::next_dialable(&app.db, t.id, j, &f, store::now_ms(), 100).await.unwrap();
    let order: Vec<i64> = got.iter().map(|c| c.lead_id).collect();
    assert_eq!(order, vec![ids[3], ids[0], ids[2]]);
    assert!(got[0].recall_id.is_some());
    // A lead held for an agent's preview is nobody else's until the hold ends; an ended hold
    // (never dialled, never skipped) excludes nothing.
    let now = store::now_ms();
    let hold = |until: i64, lead: i64| {
        store::sqlx::query("UPDATE leads SET preview_user_id = $1, preview_until = $2 WHERE id = $3")
            .bind(t.user(Role::Op))
            .bind(until)
            .bind(lead)
            .execute(&app.db.pool)
    };
    hold(now + 60_000, ids[0]).await.unwrap();
    hold(now + 60_000, ids[3]).await.unwrap();
    let got = store::leads::next_dialable(&app.db, t.id, j, &f, now, 100).await.unwrap();
    assert_eq!(got.iter().map(|c| c.lead_id).collect::<Vec<_>>(), vec![ids[2]], "held leads and recalls skipped");
    let mut own = f.clone();
    own.preview = Some(store::leads::PreviewFilter { user_id: t.user(Role::Op), skipped_since: 0 });
    let got = store::leads::next_dialable(&app.db, t.id, j, &own, now, 100).await.unwrap();
    assert_eq!(got.iter().map(|c| c.lead_id).collect::<Vec<_>>(), order, "the agent's own holds do not exclude");
    hold(now - 1, ids[0]).await.unwrap();
    hold(now - 1, ids[3]).await.unwrap();
    let got = store::leads::next_dialable(&app.db, t.id, j, &f, now, 100).await.unwrap();
    assert_eq!(got.iter().map(|c| c.lead_id).collect::<Vec<_>>(), order, "ended holds exclude nothing");
    // Filters: never dialled (0..0), fixed numbers only.
    expect(
        app.call(
            mgr,
            "patch",
            &format!("/call-jobs/{j}"),
            Some(&json!({"attempts_min": 0, "attempts_max": 0, "phone_type": "fixed"})),
        )
        .await,
        200,
    );
    let f = store::leads::job_filter(&app.db, t.id, j).await.unwrap();
    let got = store::leads::next_dialable(&app.db, t.id, j, &f, store::now_ms(), 100).await.unwrap();
    assert_eq!(got.iter().filter(|c| c.recall_id.is_none()).map(|c| c.lead_id).collect::<Vec<_>>(), vec![ids[0]]);
    // Last-attempt window.
    expect(app.call(mgr, "patch", &format!("/call-jobs/{j}"), Some(&json!({"attempts_max": null, "phone_type": "any", "last_attempt_from": "1970-01-01T00:00:00Z", "last_attempt_to": "1970-01-01T00:00:02Z"}))).await, 200);
    let f = store::leads::job_filter(&app.db, t.id, j).await.unwrap();
    let got = store::leads::next_dialable(&app.db, t.id, j, &f, store::now_ms(), 100).await.unwrap();
    assert_eq!(got.iter().filter(|c| c.recall_id.is_none()).map(|c| c.lead_id).collect::<Vec<_>>(), vec![ids[2]]);
    // 割当件数 counts the job's leads; 対象件数 those matching its filters (BIZTEL §2.6).
    let job = expect(app.call(mgr, "get", &format!("/call-jobs/{j}"), None).await, 200);
    assert_eq!(job["assigned_count"], 4);
    assert_eq!(job["target_count"], 1);
}

/// BIZTEL's rules for call jobs: start preconditions (§3.1), the batch's period (§1.2), 連絡事項 and
/// names (§2.5), and one number never taken into two running jobs over one list (§2.7).
pub async fn call_job_rules_of_the_seeds(app: TestApp) {
    let t = app.tenant("rules").await;
    let mgr = t.mgr();
    let (j, l) = job(&app, &t, ("00:00", "23:59")).await;
    let lead = |tel: &'static str| {
        let app = &app;
        async move {
            let body = json!({"list_id": l, "name": "n", "kana": "カナ", "tel": tel});
            expect(app.call(mgr, "post", "/leads", Some(&body)).await, 201)["id"].as_i64().unwrap()
        }
    };
    let (a, b) = (lead("0311112001").await, lead("0311112002").await);
    let start = |job: i64| {
        let app = &app;
        async move { app.call(mgr, "post", &format!("/call-jobs/{job}/start"), None).await }
    };
    let job_row = expect(app.call(mgr, "get", &format!("/call-jobs/{j}"), None).await, 200);
    let campaign = job_row["campaign_id"].as_i64().unwrap();

    // No results (対話結果) on the campaign: refused, saying so.
    let codes = expect(app.call(mgr, "get", &format!("/result-codes?campaign_id={campaign}"), None).await, 200);
    let code = codes["items"][0]["id"].as_i64().unwrap();
    expect(app.call(mgr, "delete", &format!("/result-codes/{code}"), None).await, 204);
    let e = expect(start(j).await, 409);
    assert_eq!(e["error"]["code"], "no_results");
    assert!(e["error"]["message"].as_str().unwrap().contains("対話結果"), "{e}");
    let result = json!({"campaign_id": campaign, "number": 1, "label": "成約"});
    expect(app.call(mgr, "post", "/result-codes", Some(&result)).await, 201);

    // An unsaved wrap-up record (応対記録(未保存)) of one of its leads: refused until saved.
    store::sqlx::query(
        "INSERT INTO wrapup_records (tenant_id, lead_id, result, created_at) VALUES ($1, $2, 'no_entry', 0)",
    )
    .bind(t.id)
    .bind(a)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let e = expect(start(j).await, 409);
    assert_eq!(e["error"]["code"], "unsaved_records");
    store::sqlx::query("UPDATE wrapup_records SET saved_at = 1 WHERE lead_id = $1")
        .bind(a)
        .execute(&app.db.pool)
        .await
        .unwrap();

    // Outside its batch's period (実施期間): refused, and the dialer picks none of its leads.
    let batch: i64 = store::sqlx::query("SELECT batch_id FROM customer_lists WHERE id = $1")
        .bind(l)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
        .try_get("batch_id")
        .unwrap();
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Tokyo).date_naive();
    let day = |d: i64| (today + chrono::Duration::days(d)).to_string();
    let period = json!({"start_date": day(-60), "end_date": day(-31)});
    expect(app.call(mgr, "patch", &format!("/batches/{batch}"), Some(&period)).await, 200);
    let e = expect(start(j).await, 409);
    assert_eq!(e["error"]["code"], "outside_batch_period");
    let mut f = store::leads::job_filter(&app.db, t.id, j).await.unwrap();
    f.period_day = Some(today.to_string());
    assert!(store::leads::next_dialable(&app.db, t.id, j, &f, store::now_ms(), 10).await.unwrap().is_empty());
    f.period_day = Some(day(-40));
    assert_eq!(store::leads::next_dialable(&app.db, t.id, j, &f, store::now_ms(), 10).await.unwrap().len(), 2);
    let period = json!({"start_date": day(-60), "end_date": day(30)});
    expect(app.call(mgr, "patch", &format!("/batches/{batch}"), Some(&period)).await, 200);

    // A closed day (休業日) of the tenant: refused, naming it; an SV may not add one.
    let closed = json!({"day": day(0), "name": "創立記念日"});
    expect(app.call(t.token(Role::Sv), "post", "/closed-days", Some(&closed)).await, 403);
    let c = expect(app.call(mgr, "post", "/closed-days", Some(&closed)).await, 201)["id"].as_i64().unwrap();
    expect(app.call(mgr, "post", "/closed-days", Some(&closed)).await, 409);
    let e = expect(start(j).await, 409);
    assert_eq!(e["error"]["code"], "closed_day");
    assert!(e["error"]["message"].as_str().unwrap().contains(&day(0)), "{e}");
    expect(app.call(mgr, "delete", &format!("/closed-days/{c}"), None).await, 204);
    let ten = expect(app.call(mgr, "patch", "/tenant", Some(&json!({"closed_on_national_holidays": true}))).await, 200);
    assert_eq!(ten["closed_on_national_holidays"], true);
    expect(app.call(mgr, "patch", "/tenant", Some(&json!({"closed_on_national_holidays": false}))).await, 200);
    assert_eq!(expect(start(j).await, 200)["status"], "running");

    // 連絡事項 up to 500 characters, shown to the job's agents; job names up to 60; batch memo 500.
    let long = |n: usize| "あ".repeat(n);
    expect(app.call(mgr, "post", &format!("/call-jobs/{j}/stop"), None).await, 200);
    let e = expect(app.call(mgr, "patch", &format!("/call-jobs/{j}"), Some(&json!({"notes": long(501)}))).await, 422);
    assert_eq!(e["error"]["field"], "notes");
    let e = expect(app.call(mgr, "patch", &format!("/call-jobs/{j}"), Some(&json!({"name": long(61)}))).await, 422);
    assert_eq!(e["error"]["field"], "name");
    let v = expect(
        app.call(mgr, "patch", &format!("/call-jobs/{j}"), Some(&json!({"notes": long(500), "name": long(60)}))).await,
        200,
    );
    assert_eq!(v["notes"].as_str().unwrap().chars().count(), 500);
    let e = expect(app.call(mgr, "patch", &format!("/batches/{batch}"), Some(&json!({"memo": long(501)}))).await, 422);
    assert_eq!(e["error"]["field"], "memo");
    expect(app.call(mgr, "patch", &format!("/batches/{batch}"), Some(&json!({"memo": "DM送付済み"}))).await, 200);

    // Two running jobs over one list: a lead the first one dialled in its run is not taken into
    // the second, though the second started later (BIZTEL §2.7).
    let group = job_row["dialing_group_id"].as_i64().unwrap();
    let body = json!({"campaign_id": campaign, "dialing_group_id": group, "name": "j2", "list_ids": [l]});
    let j2 = expect(app.call(mgr, "post", "/call-jobs", Some(&body)).await, 201)["id"].as_i64().unwrap();
    let now = store::now_ms();
    for (job, started) in [(j, now - 60_000), (j2, now - 30_000)] {
        store::sqlx::query("UPDATE call_jobs SET status = 'running', started_at = $1 WHERE id = $2")
            .bind(started)
            .bind(job)
            .execute(&app.db.pool)
            .await
            .unwrap();
    }
    store::sqlx::query("UPDATE leads SET attempts = 1, last_attempt_at = $1 WHERE id = $2")
        .bind(now - 45_000)
        .bind(a)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let picks = |job: i64, started: i64| {
        let app = &app;
        let t = &t;
        async move {
            let mut f = store::leads::job_filter(&app.db, t.id, job).await.unwrap();
            f.not_attempted_since = Some(started);
            let got = store::leads::next_dialable(&app.db, t.id, job, &f, store::now_ms(), 10).await.unwrap();
            got.into_iter().map(|c| c.lead_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(picks(j2, now - 30_000).await, vec![b], "the first job's lead is not taken into the second");
    assert_eq!(picks(j, now - 60_000).await, vec![b]);
    let remaining =
        expect(app.call(mgr, "get", &format!("/call-jobs/{j2}"), None).await, 200)["remaining_count"].clone();
    assert_eq!(remaining, 1, "the second job's 残件数 counts as it dials");

    // 前回発信時間帯 (BIZTEL §2.5): a band of the day, on any day, wrapping past midnight.
    let body = json!({"campaign_id": campaign, "dialing_group_id": group, "name": "j3", "list_ids": [l],
        "last_attempt_band_from": "10:00", "last_attempt_band_to": "12:00"});
    let j3 = expect(app.call(mgr, "post", "/call-jobs", Some(&body)).await, 201)["id"].as_i64().unwrap();
    for (lead, time) in [(a, "10:30"), (b, "12:00")] {
        store::sqlx::query("UPDATE leads SET last_attempt_time = $1 WHERE id = $2")
            .bind(time)
            .bind(lead)
            .execute(&app.db.pool)
            .await
            .unwrap();
    }
    let band_picks = |job: i64| {
        let app = &app;
        let t = &t;
        async move {
            let f = store::leads::job_filter(&app.db, t.id, job).await.unwrap();
            let got = store::leads::next_dialable(&app.db, t.id, job, &f, store::now_ms(), 10).await.unwrap();
            got.into_iter().map(|c| c.lead_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(band_picks(j3).await, vec![a], "10:30 is in 10:00-12:00, 12:00 is not");
    assert_eq!(expect(app.call(mgr, "get", &format!("/call-jobs/{j3}"), None).await, 200)["target_count"], 1);
    let wrap = json!({"last_attempt_band_from": "11:00", "last_attempt_band_to": "10:15"});
    expect(app.call(mgr, "patch", &format!("/call-jobs/{j3}"), Some(&wrap)).await, 200);
    assert_eq!(band_picks(j3).await, vec![b], "11:00-10:15 wraps past midnight: 12:00 in, 10:30 out");
    // A lead stopped by hand (停止) is not dialled until it is open again (calltree-faq).
    expect(app.call(mgr, "patch", &format!("/leads/{b}"), Some(&json!({"state": "stopped"}))).await, 200);
    assert!(band_picks(j3).await.is_empty(), "a stopped lead is not picked");
    expect(app.call(mgr, "patch", &format!("/leads/{b}"), Some(&json!({"state": "open"}))).await, 200);
    assert_eq!(band_picks(j3).await, vec![b]);
    let same = json!({"last_attempt_band_from": "10:00", "last_attempt_band_to": "10:00"});
    let e = expect(app.call(mgr, "patch", &format!("/call-jobs/{j3}"), Some(&same)).await, 422);
    assert_eq!(e["error"]["field"], "last_attempt_band_to");
}

pub async fn number_lists_upload_and_bulk_delete(app: TestApp) {
    let t = app.tenant("dnc").await;
    let mgr = t.mgr().unwrap();
    let csv = encoding_rs::SHIFT_JIS
        .encode("電話番号,備考\r\n03-1111-2222,本人希望\r\n0311112222,重複\r\nabc,\r\n09033334444,\r\n")
        .0
        .into_owned();
    let (s, body) = app.raw(mgr, "POST", "/dnc-numbers/upload", "text/csv", csv).await;
    assert_eq!(s.as_u16(), 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["added"], 2, "{v}");
    assert_eq!(v["duplicates"], 1);
    assert_eq!(v["errors"][0]["row"], 4);
    let list = expect(app.call(Some(mgr), "get", "/dnc-numbers?sort=number", None).await, 200);
    assert_eq!(list["items"][0]["number"], "0311112222");
    assert_eq!(list["items"][0]["note"], "本人希望");
    let v = expect(
        app.call(Some(mgr), "post", "/dnc-numbers/bulk-delete", Some(&json!({"numbers": ["090-3333-4444"]}))).await,
        200,
    );
    assert_eq!(v["deleted"], 1);
    let v = expect(app.call(Some(mgr), "post", "/dnc-numbers/bulk-delete", Some(&json!({"all": true}))).await, 200);
    assert_eq!(v["deleted"], 1);
    let e = expect(app.call(Some(mgr), "post", "/dnc-numbers/bulk-delete", Some(&json!({}))).await, 422);
    assert_eq!(e["error"]["field"], "ids");
    // Bad bytes are a 415, never a 5xx.
    let (s, _) = app.raw(mgr, "POST", "/inbound-blocks/upload", "text/csv", vec![0x82, 0xff, 0xff, 0x00]).await;
    assert_eq!(s.as_u16(), 415);
    // A large list (written many rows a statement): numbers new, repeated in the file, and already there.
    let mut csv = String::from("0311112222\n");
    for i in 0..60_000 {
        csv.push_str(&format!("05{:08},n{i}\n", i % 50_000));
    }
    let (s, body) = app.raw(mgr, "POST", "/dnc-numbers/upload", "text/csv", csv.into_bytes()).await;
    assert_eq!(s.as_u16(), 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((v["added"].as_i64(), v["duplicates"].as_i64()), (Some(50_001), Some(10_000)), "{v}");
    let list = expect(app.call(Some(mgr), "get", "/dnc-numbers?number=0500000007", None).await, 200);
    assert_eq!(list["items"][0]["note"], "n7", "the first of a repeated number is kept");
    // Files over 5 MB (cloudcallcenter-manual §10.13: "csvの容量が5MBを超えている") are refused whole,
    // naming the field, even when every row is a good number.
    let big = "0312345678\n".repeat(5_000_001 / 11 + 1).into_bytes();
    assert!(big.len() > 5_000_000 && big.len() < 5 << 20);
    let (s, body) = app.raw(mgr, "POST", "/inbound-blocks/upload", "text/csv", big).await;
    assert_eq!(s.as_u16(), 413, "{}", String::from_utf8_lossy(&body));
    let e: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(e["error"]["field"], "body", "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("5 MB"), "{e}");
}

pub async fn lists_paginate_sort_filter_and_validate(app: TestApp) {
    let t = app.tenant("page").await;
    let mgr = t.mgr();
    for i in 0..7 {
        expect(
            app.call(mgr, "post", "/campaigns", Some(&json!({"name": format!("c{i}"), "enabled": i % 2 == 0}))).await,
            201,
        );
    }
    let v = expect(app.call(mgr, "get", "/campaigns?limit=3&offset=2&sort=-name", None).await, 200);
    assert_eq!(v["total"], 7);
    let names: Vec<&str> = v["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["c4", "c3", "c2"]);
    assert_eq!(expect(app.call(mgr, "get", "/campaigns?enabled=false", None).await, 200)["total"], 3);
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("sort=password", "sort"),
        ("enabled=maybe", "enabled"),
        ("nope=1", "nope"),
    ] {
        let e = expect(app.call(mgr, "get", &format!("/campaigns?{q}"), None).await, 400);
        assert_eq!(e["error"]["field"], field, "{q}");
    }
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "mode": "turbo"}), "mode"),
        (json!({"name": "x", "ring_timeout_s": 1}), "ring_timeout_s"),
        (json!({"name": "x", "caller_id": "12-34"}), "caller_id"),
        (json!({"name": "x", "business_start": "25:00"}), "business_start"),
        (json!({"name": "x", "business_start": "19:00"}), "business_end"),
        (json!({"name": "x", "surprise": 1}), "surprise"),
        (json!({"name": "x", "created_at": "2020-01-01T00:00:00Z"}), "created_at"),
    ] {
        let e = expect(app.call(mgr, "post", "/campaigns", Some(&body)).await, 422);
        assert_eq!(e["error"]["field"], field, "{body}");
        assert_eq!(e["error"]["code"], "invalid_field");
    }
    let (s, body) = app.raw(mgr.unwrap(), "POST", "/campaigns", "application/json", b"{\"name\": ".to_vec()).await;
    assert_eq!(s.as_u16(), 400, "{}", String::from_utf8_lossy(&body));
    let e = expect(app.call(mgr, "post", "/campaigns", Some(&json!({"name": "c0"}))).await, 409);
    assert_eq!(e["error"]["code"], "already_exists");
    expect(app.call(mgr, "get", "/campaigns/abc", None).await, 404);
    expect(app.call(mgr, "get", "/campaigns/99999999", None).await, 404);
    expect(app.call(mgr, "get", "/no-such-thing", None).await, 404);
    // The document lists every operation the router serves.
    let doc = expect(app.call(None, "get", "/openapi.json", None).await, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for op in api::operations() {
        assert!(doc["paths"][&op.path][op.method].is_object(), "{} {} undocumented", op.method, op.path);
    }
    // Every reference in the document resolves to a component.
    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = vec![];
    refs(&doc, &mut all);
    assert!(all.len() > 100, "only {} references", all.len());
    for r in all {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(doc["components"]["schemas"][name].is_object(), "{r} does not resolve");
    }
}

pub async fn wrapup_records_save_results_and_recalls(app: TestApp) {
    let t = app.tenant("wrap").await;
    let mgr = t.mgr();
    let (c, _, l) = crate::harness::scaffold(&app, &t, json!({}), false).await;
    expect(
        app.call(mgr, "post", "/result-codes", Some(&json!({"campaign_id": c, "number": 3, "label": "成約"}))).await,
        201,
    );
    let lead = |tel: &str| json!({"list_id": l, "name": "n", "kana": "カナ", "tel": tel});
    let l1 = expect(app.call(mgr, "post", "/leads", Some(&lead("0311110001"))).await, 201)["id"].as_i64().unwrap();
    let l2 = expect(app.call(mgr, "post", "/leads", Some(&lead("0311110002"))).await, 201)["id"].as_i64().unwrap();
    let op = t.user(Role::Op);
    let mut records = vec![];
    for (lead, agent) in [(l1, op), (l2, t.user(Role::Sv))] {
        let call: i64 = store::sqlx::Row::try_get(
            &store::sqlx::query("INSERT INTO call_records (tenant_id, campaign_id, lead_id, agent_user_id, tel, started_at, result) VALUES ($1, $2, $3, $4, '03', 0, 'pending') RETURNING id")
                .bind(t.id).bind(c).bind(lead).bind(agent).fetch_one(&app.db.pool).await.unwrap(),
            "id",
        )
        .unwrap();
        let w: i64 = store::sqlx::Row::try_get(
            &store::sqlx::query("INSERT INTO wrapup_records (tenant_id, call_record_id, lead_id, agent_user_id, result, created_at) VALUES ($1, $2, $3, $4, 'no_entry', 0) RETURNING id")
                .bind(t.id).bind(call).bind(lead).bind(agent).fetch_one(&app.db.pool).await.unwrap(),
            "id",
        )
        .unwrap();
        records.push((w, call));
    }
    // Both wait in the unsaved list; the agent sees only their own.
    assert_eq!(expect(app.call(mgr, "get", "/wrapup-records?saved=false", None).await, 200)["total"], 2);
    assert_eq!(expect(app.call(t.token(Role::Op), "get", "/wrapup-records?saved=false", None).await, 200)["total"], 1);
    let (w1, call1) = records[0];
    let (w2, _) = records[1];
    // The agent may not save a colleague's record; a result must exist.
    let body = json!({"result": "3", "next_action": "recall", "recall_at": "2030-01-02T10:00:00+09:00", "recall_to_agent": true, "memo": "明日10時に再度", "state_after": "break"});
    expect(app.call(t.token(Role::Op), "post", &format!("/wrapup-records/{w2}/save"), Some(&body)).await, 404);
    let bad = json!({"result": "99", "next_action": "continue", "state_after": "continue"});
    assert_eq!(
        expect(app.call(mgr, "post", &format!("/wrapup-records/{w1}/save"), Some(&bad)).await, 422)["error"]["field"],
        "result"
    );
    let no_time = json!({"result": "3", "next_action": "recall", "state_after": "continue"});
    assert_eq!(
        expect(app.call(mgr, "post", &format!("/wrapup-records/{w1}/save"), Some(&no_time)).await, 422)["error"]
            ["field"],
        "recall_at"
    );
    let saved =
        expect(app.call(t.token(Role::Op), "post", &format!("/wrapup-records/{w1}/save"), Some(&body)).await, 200);
    assert_eq!(saved["saved"], true);
    assert_eq!(saved["result"], "3");
    assert_eq!(saved["memo"], "明日10時に再度");
    // The recall is the agent's, due at the time given; the lead and the call carry the result.
    let recalls = expect(app.call(mgr, "get", &format!("/recalls?lead_id={l1}&status=open"), None).await, 200);
    assert_eq!(recalls["total"], 1);
    assert_eq!(recalls["items"][0]["agent_user_id"], op);
    assert_eq!(recalls["items"][0]["due_at"], "2030-01-02T10:00:00+09:00");
    assert_eq!(expect(app.call(mgr, "get", &format!("/leads/{l1}"), None).await, 200)["last_result"], "3");
    // The call record keeps the dialer's system result: one writer per column.
    assert_eq!(expect(app.call(mgr, "get", &format!("/call-records/{call1}"), None).await, 200)["result"], "pending");
    // Completing replaces the open recall and closes the lead.
    let done = json!({"result": "busy", "next_action": "complete", "state_after": "continue"});
    expect(app.call(mgr, "post", &format!("/wrapup-records/{w1}/save"), Some(&done)).await, 200);
    assert_eq!(
        expect(app.call(mgr, "get", &format!("/recalls?lead_id={l1}&status=open"), None).await, 200)["total"],
        0
    );
    assert_eq!(expect(app.call(mgr, "get", &format!("/leads/{l1}"), None).await, 200)["state"], "done");
    assert_eq!(expect(app.call(mgr, "get", "/wrapup-records?saved=false", None).await, 200)["total"], 1);
}

/// CALLTREE's default statuses (不通, FAX, 現アナ, 見込, 再コール, クレーム) exist in every tenant without a
/// campaign code and drive their features: 再コール is saved with a recall, クレーム stops the lead
/// and puts its number on the do-not-call list.
pub async fn default_statuses_drive_their_features(app: TestApp) {
    let t = app.tenant("defaults").await;
    let mgr = t.mgr();
    let (c, _, l) = crate::harness::scaffold(&app, &t, json!({}), false).await;
    let op = t.user(Role::Op);
    let mut records = vec![];
    for tel in ["0311120001", "0311120002"] {
        let body = json!({"list_id": l, "name": "n", "kana": "カナ", "tel": tel});
        let lead = expect(app.call(mgr, "post", "/leads", Some(&body)).await, 201)["id"].as_i64().unwrap();
        let call: i64 = store::sqlx::Row::try_get(
            &store::sqlx::query("INSERT INTO call_records (tenant_id, campaign_id, lead_id, agent_user_id, tel, started_at, result) VALUES ($1, $2, $3, $4, $5, 0, 'pending') RETURNING id")
                .bind(t.id).bind(c).bind(lead).bind(op).bind(tel).fetch_one(&app.db.pool).await.unwrap(),
            "id",
        )
        .unwrap();
        let w: i64 = store::sqlx::Row::try_get(
            &store::sqlx::query("INSERT INTO wrapup_records (tenant_id, call_record_id, lead_id, agent_user_id, result, created_at) VALUES ($1, $2, $3, $4, 'no_entry', 0) RETURNING id")
                .bind(t.id).bind(call).bind(lead).bind(op).fetch_one(&app.db.pool).await.unwrap(),
            "id",
        )
        .unwrap();
        records.push((w, lead, tel));
    }
    let tok = t.token(Role::Op);
    let appr = &app;
    let save = |w: i64, body: serde_json::Value| async move {
        appr.call(tok, "post", &format!("/wrapup-records/{w}/save"), Some(&body)).await
    };
    let (w1, l1, _) = records[0];
    // The campaign has no codes of its own; the defaults are there all the same.
    let e =
        expect(save(w1, json!({"result": "recall", "next_action": "continue", "state_after": "continue"})).await, 422);
    assert_eq!(e["error"]["field"], "next_action");
    let recall = json!({"result": "recall", "next_action": "recall", "recall_at": "2030-01-02T10:00:00+09:00", "state_after": "continue"});
    assert_eq!(expect(save(w1, recall).await, 200)["result"], "recall");
    assert_eq!(
        expect(app.call(mgr, "get", &format!("/recalls?lead_id={l1}&status=open"), None).await, 200)["total"],
        1
    );
    // クレーム: never recalled; the lead is stopped and its number is on the do-not-call list.
    let (w2, l2, tel2) = records[1];
    let e = expect(save(w2, json!({"result": "complaint", "next_action": "recall", "recall_at": "2030-01-02T10:00:00+09:00", "state_after": "continue"})).await, 422);
    assert_eq!(e["error"]["field"], "next_action");
    expect(save(w2, json!({"result": "complaint", "next_action": "continue", "state_after": "continue"})).await, 200);
    let lead = expect(app.call(mgr, "get", &format!("/leads/{l2}"), None).await, 200);
    assert_eq!((lead["state"].as_str(), lead["last_result"].as_str()), (Some("stopped"), Some("complaint")));
    let dnc = expect(app.call(mgr, "get", &format!("/dnc-numbers?number={tel2}"), None).await, 200);
    assert_eq!(dnc["total"], 1, "{dnc}");
    let history = expect(app.call(mgr, "get", &format!("/leads/{l2}/history"), None).await, 200);
    assert!(history.to_string().contains("クレーム"), "{history}");
    // The others' lead was untouched by the complaint.
    assert_eq!(expect(app.call(mgr, "get", &format!("/leads/{l1}"), None).await, 200)["state"], "open");
    // A fixed result is no campaign code: nothing to rename or delete, and an unknown word is refused.
    let e =
        expect(save(w1, json!({"result": "fuzu", "next_action": "continue", "state_after": "continue"})).await, 422);
    assert_eq!(e["error"]["field"], "result");
}

/// A lead's other numbers (/lead-numbers): validated like the main number, typed, unique per lead,
/// written by MGR/SV/BY and read by OP, never seen from another tenant.
pub async fn a_lead_carries_other_numbers(app: TestApp) {
    let t = app.tenant("numbers").await;
    let mgr = t.mgr();
    let (c, _, l) = crate::harness::scaffold(&app, &t, json!({}), false).await;
    let body = json!({"list_id": l, "name": "n", "kana": "カナ", "tel": "0311130001"});
    let lead = expect(app.call(mgr, "post", "/leads", Some(&body)).await, 201)["id"].as_i64().unwrap();
    let n = expect(
        app.call(mgr, "post", "/lead-numbers", Some(&json!({"lead_id": lead, "tel": "09011130002", "label": "携帯"})))
            .await,
        201,
    );
    assert_eq!((n["phone_type"].as_str(), n["label"].as_str()), (Some("mobile"), Some("携帯")));
    let e = expect(
        app.call(mgr, "post", "/lead-numbers", Some(&json!({"lead_id": lead, "tel": "03-1113-0003"}))).await,
        422,
    );
    assert_eq!(e["error"]["field"], "tel");
    expect(app.call(mgr, "post", "/lead-numbers", Some(&json!({"lead_id": lead, "tel": "09011130002"}))).await, 409);
    let op = t.token(Role::Op);
    expect(app.call(op, "post", "/lead-numbers", Some(&json!({"lead_id": lead, "tel": "0311130004"}))).await, 403);
    let other = app.tenant("numbers2").await;
    let e = expect(
        app.call(other.mgr(), "post", "/lead-numbers", Some(&json!({"lead_id": lead, "tel": "0311130005"}))).await,
        422,
    );
    assert_eq!(e["error"]["field"], "lead_id");
    assert_eq!(expect(app.call(other.mgr(), "get", "/lead-numbers", None).await, 200)["total"], 0);
    assert_eq!(expect(app.call(mgr, "get", &format!("/lead-numbers?lead_id={lead}"), None).await, 200)["total"], 1);
    // The campaign's setting, off by default.
    let camp = expect(app.call(mgr, "get", &format!("/campaigns/{c}"), None).await, 200);
    assert_eq!(camp["next_number_on_no_answer"], false);
    let camp = expect(
        app.call(mgr, "patch", &format!("/campaigns/{c}"), Some(&json!({"next_number_on_no_answer": true}))).await,
        200,
    );
    assert_eq!(camp["next_number_on_no_answer"], true);
    // Deleting the lead takes its numbers with it.
    expect(app.call(mgr, "delete", &format!("/leads/{lead}"), None).await, 204);
    assert_eq!(expect(app.call(mgr, "get", "/lead-numbers", None).await, 200)["total"], 0);
}

crate::both!(
    a_lead_carries_other_numbers,
    default_statuses_drive_their_features,
    wrapup_records_save_results_and_recalls,
    batch_dates_follow_retention,
    batch_delete_guards,
    at_most_five_jobs_run,
    next_dialable_leads_respect_filters_and_recalls,
    call_job_rules_of_the_seeds,
    number_lists_upload_and_bulk_delete,
    lists_paginate_sort_filter_and_validate,
);
