//! Every resource of the outbound model, as data ([`Spec`]) plus the hooks that hold its rules.

use chrono::NaiveDate;
use serde_json::{Map, Value};
use store::accounts::Role;
use store::batch_dates;
use store::call_jobs::InUse;
use store::leads::PhoneType;

use crate::error::{ApiError, ApiResult};
use crate::resource::{check_ref, BoxFut, Ctx, Extra, Field, Hooks, Spec, SqlVal, Ty, Values};

pub const MGR: &[Role] = &[Role::Mgr];
pub const MGR_SV: &[Role] = &[Role::Mgr, Role::Sv];
pub const ALL: &[Role] = &[Role::Mgr, Role::Sv, Role::Op, Role::Biz, Role::By];

const NAME: Ty = Ty::Text { min: 1, max: 255 };
const NOTE: Ty = Ty::Text { min: 0, max: 255 };
const COUNT: Ty = Ty::Int { min: 0, max: i64::MAX };
const CREATED: Field = Field::new("created_at", Ty::Instant, "When the record was created.").read_only().sort();
const UPDATED: Field = Field::new("updated_at", Ty::Instant, "When the record last changed.").read_only().sort();

/// Campaign modes (SPEC 4).
pub const MODES: &[&str] = &["preview", "progressive", "predictive", "standard", "distribute", "dial"];
pub const FIELD_KINDS: &[&str] =
    &["text", "number", "date", "phone", "email", "long_text", "select", "radio", "checkbox", "postal_code"];
pub const MAX_LEADS_PER_LIST: i64 = 200_000;
pub const DUPLICATE_IN_BATCH: &str = "指定したバッチ内に同一の電話番号が既に登録されています";

macro_rules! hook {
    ($name:ident, |$ctx:ident, $id:ident, $v:ident| $body:block) => {
        fn $name<'a>($ctx: &'a Ctx, $id: Option<i64>, $v: &'a mut Values) -> BoxFut<'a, ApiResult<()>> {
            Box::pin(async move { $body })
        }
    };
}

macro_rules! guard {
    ($name:ident, |$ctx:ident, $id:ident| $body:block) => {
        fn $name<'a>($ctx: &'a Ctx, $id: i64) -> BoxFut<'a, ApiResult<()>> {
            Box::pin(async move { $body })
        }
    };
}

/// Whether a running call job of the caller's tenant is, or uses, the record.
async fn running_job_uses(ctx: &Ctx, what: InUse) -> ApiResult<bool> {
    Ok(store::call_jobs::running_job_uses(&ctx.st.db, ctx.tenant(), what).await?)
}

// ---------------------------------------------------------------------------------------- campaigns

pub static CAMPAIGNS: Spec = Spec {
    schema: "Campaign",
    path: "/campaigns",
    table: "campaigns",
    tag: "campaigns",
    doc: "キャンペーン: dialing settings shared by its batches and call jobs.",
    fields: &[
        Field::new("name", NAME, "Campaign name, unique in the tenant.").req().filter().sort().search(),
        Field::new("enabled", Ty::Bool, "On/off. Default true.").filter(),
        Field::new("caller_id", Ty::Tel, "発信者番号 shown to customers; null with withhold_caller_id.").null(),
        Field::new("withhold_caller_id", Ty::Bool, "Withhold the caller ID (prefix 184). Default false."),
        Field::new("mode", Ty::Enum(MODES), "Dialing mode. Default progressive.").filter(),
        Field::new(
            "next_number_on_no_answer",
            Ty::Bool,
            "After a call nobody answered (timeout, busy, not in service) the lead's next dial takes its next number (/lead-numbers, in the order added; after the last, the main one). Default false: always the main number.",
        ),
        Field::new(
            "dial_ratio",
            Ty::Real { min: 0.1, max: 10.0 },
            "発信速度倍率: channels per ready agent (fixed ratio). Default 1.0.",
        ),
        Field::new("max_channels", Ty::Int { min: 1, max: 100_000 }, "最大チャンネル. Default 30."),
        Field::new(
            "ring_timeout_s",
            Ty::Int { min: 5, max: 600 },
            "タイムアウト: ring time before 制限時間. Default 180.",
        ),
        Field::new(
            "agent_wait_timeout_s",
            Ty::Int { min: 1, max: 120 },
            "待ち呼タイムアウト for an answered customer. Default 20.",
        ),
        Field::new("waiting_audio", Ty::Text { min: 1, max: 255 }, "呼中音声: audio played to a waiting customer.")
            .null(),
        Field::new("acw_enabled", Ty::Bool, "After-call work (後処理) on. Default true."),
        Field::new("acw_seconds", Ty::Int { min: 0, max: 3600 }, "ACW length in seconds. Default 30."),
        Field::new("dtmf_result_entry", Ty::Bool, "Agents may key results by DTMF. Default false."),
        Field::new("business_start", Ty::TimeOfDay, "予約 From (HH:MM, tenant zone). Default 09:00."),
        Field::new("business_end", Ty::TimeOfDay, "予約 To (HH:MM, tenant zone). Default 18:00.").example("\"18:00\""),
        Field::new(
            "abandon_target_pct",
            Ty::Real { min: 0.0, max: 100.0 },
            "Abandon-rate target in percent (100 - service level). Default 3.0.",
        ),
        CREATED,
        UPDATED,
    ],
    extra: &[],
    read: &[Role::Mgr, Role::Sv, Role::Op, Role::Biz],
    write: MGR_SV,
    delete: MGR,
    scope: Some(("id", "campaigns")),
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks { before_write: Some(campaign_write), before_delete: Some(campaign_delete), ..Hooks::NONE },
};

hook!(campaign_write, |ctx, id, v| {
    let (mut start, mut end) = ("09:00".to_string(), "18:00".to_string());
    if let Some(id) = id {
        (start, end) = store::campaigns::business_hours(&ctx.st.db, ctx.tenant(), id).await?;
    }
    if let Some(s) = v.get("business_start").and_then(SqlVal::as_str) {
        start = s.to_string();
    }
    if let Some(s) = v.get("business_end").and_then(SqlVal::as_str) {
        end = s.to_string();
    }
    if start >= end {
        return Err(ApiError::invalid("business_end", "business_end: must be after business_start"));
    }
    Ok(())
});

guard!(campaign_delete, |ctx, id| {
    if running_job_uses(ctx, InUse::Campaign(id)).await? {
        return Err(ApiError::conflict("job_running", "a call job of this campaign is running"));
    }
    Ok(())
});

pub static RESULT_CODES: Spec = Spec {
    schema: "ResultCode",
    path: "/result-codes",
    table: "result_codes",
    tag: "campaigns",
    doc: "Numbered campaign results (番号,テキスト), keyed by DTMF entry. Beside them every tenant has fixed results that cannot be renamed or deleted: the system results (pending, busy, no_entry, abandoned, timeout, cancel, error, channel_limit, restricted, stopped) and CALLTREE's default statuses no_contact (不通), fax (FAX), not_in_service (現アナ), prospect (見込), recall (再コール: saved with a recall) and complaint (クレーム: the lead is stopped and its number put on the do-not-call list); 不通, FAX and 現アナ are calls but not connects.",
    fields: &[
        Field::new("campaign_id", Ty::Ref("campaigns"), "The campaign.").req().create_only().filter(),
        Field::new("number", Ty::Int { min: 1, max: 999 }, "Result number (0 is reserved for DTMF recall entry).").req().filter().sort(),
        Field::new("label", NAME, "Result text.").req().search(),
        Field::new("connected", Ty::Bool, "Counts as a connect (false for 不通, FAX, 現アナ). Default true."),
        CREATED,
    ],
    extra: &[],
    read: &[Role::Mgr, Role::Sv, Role::Op, Role::Biz],
    write: MGR_SV,
    delete: MGR,
    scope: Some(("campaign_id", "campaigns")),
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks::NONE,
};

// ------------------------------------------------------------------------------------ agents, floor

pub static DIALING_GROUPS: Spec = Spec {
    schema: "DialingGroup",
    path: "/dialing-groups",
    table: "dialing_groups",
    tag: "agents",
    doc: "発信グループ: the agents a call job connects customers to. Members: /dialing-groups/{id}/agents.",
    fields: &[
        Field::new("name", NAME, "Group name, unique in the tenant.").req().filter().sort().search(),
        Field::new(
            "no_answer_pause_reason_id",
            Ty::Ref("pause_reasons"),
            "無応答自動停止: an agent who does not take an offered customer is paused with this reason; null: off (the agent is ready again).",
        )
        .null(),
        Field::new(
            "no_answer_pause_release_s",
            Ty::Int { min: 0, max: 86_400 },
            "無応答自動停止時間: that pause ends by itself after this many seconds; 0 (the default): it lasts until the agent or a supervisor ends it.",
        ),
        CREATED,
    ],
    extra: &[Extra {
        name: "agent_count",
        expr: "SELECT COUNT(*) FROM dialing_group_agents a WHERE a.group_id = t.id",
        ty: COUNT,
        doc: "Number of member agents.",
    }],
    read: &[Role::Mgr, Role::Sv, Role::Op],
    write: MGR_SV,
    delete: MGR,
    scope: None,
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks { before_delete: Some(group_delete), ..Hooks::NONE },
};

guard!(group_delete, |ctx, id| {
    if running_job_uses(ctx, InUse::DialingGroup(id)).await? {
        return Err(ApiError::conflict("job_running", "a running call job uses this group"));
    }
    Ok(())
});

pub static PAUSE_REASONS: Spec = Spec {
    schema: "PauseReason",
    path: "/pause-reasons",
    table: "pause_reasons",
    tag: "agents",
    doc: "停止理由: the tenant's pause reasons with their wallboard colours.",
    fields: &[
        Field::new("name", Ty::Text { min: 1, max: 64 }, "Reason, e.g. 昼休憩.").req().sort().search(),
        Field::new("color", Ty::Color, "Colour on the wallboard, #RRGGBB."),
        Field::new("position", Ty::Int { min: 0, max: 1000 }, "Display order.").sort(),
        CREATED,
    ],
    extra: &[],
    read: &[Role::Mgr, Role::Sv, Role::Op],
    write: MGR,
    delete: MGR,
    scope: None,
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks::NONE,
};

pub static CLOSED_DAYS: Spec = Spec {
    schema: "ClosedDay",
    path: "/closed-days",
    table: "closed_days",
    tag: "dialing",
    doc: "休業日: the tenant's own closed dates (year-end, company holidays), besides Japan's national holidays (tenant setting closed_on_national_holidays). No call job starts or dials on a closed day.",
    fields: &[
        Field::new("day", Ty::Date, "The closed date, in the tenant's zone.").req().filter().sort(),
        Field::new("name", Ty::Text { min: 0, max: 100 }, "Why, e.g. 年末年始.").search(),
        CREATED,
    ],
    extra: &[],
    read: &[Role::Mgr, Role::Sv, Role::Op],
    write: MGR,
    delete: MGR,
    scope: None,
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks::NONE,
};

pub static PHONES: Spec = Spec {
    schema: "Phone",
    path: "/phones",
    table: "phones",
    tag: "agents",
    doc: "Agents' SIP accounts. Digest credentials are kept as HA1 (MD5 and SHA-256) in the tenant's realm; the password is never shown.",
    fields: &[
        Field::new("user_id", Ty::Ref("users"), "The agent using this phone.").null().filter(),
        Field::new("sip_username", Ty::Ident { max: 64 }, "SIP user name, unique in the realm.").req().create_only().filter().sort().search(),
        Field::new("password", Ty::Text { min: 8, max: 128 }, "Digest password (write-only).").req().write_only(),
        Field::new("realm", NAME, "Digest realm: the tenant's code.").read_only(),
        Field::new(
            "digest_algorithms",
            Ty::Enum(&store::dialing::DigestAlgorithms::ALL),
            "Digest challenges the phone gets: md5 (default; many phones give up on any other), sha256, or both (SHA-256 first, then MD5) for phones known to cope with two.",
        )
        .filter(),
        CREATED,
    ],
    extra: &[],
    read: MGR_SV,
    write: MGR,
    delete: MGR,
    scope: None,
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks { before_write: Some(phone_write), ..Hooks::NONE },
};

hook!(phone_write, |ctx, id, v| {
    let realm = store::tenancy::get_tenant(&ctx.st.db, ctx.tenant()).await?.code;
    let username = match (id, v.get("sip_username").and_then(SqlVal::as_str)) {
        (_, Some(u)) => u.to_string(),
        (Some(id), None) => {
            store::accounts::sip_username_of(&ctx.st.db, ctx.tenant(), id).await?.ok_or_else(ApiError::not_found)?
        }
        (None, None) => return Err(ApiError::invalid("sip_username", "sip_username: required")),
    };
    if let Some(pw) = v.input.get("password").and_then(Value::as_str) {
        let (md5, sha) = store::accounts::digest_ha1(&username, &realm, pw);
        v.set("ha1_md5", SqlVal::S(md5));
        v.set("ha1_sha256", SqlVal::S(sha));
    }
    if id.is_none() {
        v.set("realm", SqlVal::S(realm));
    }
    Ok(())
});

pub static USERS: Spec = Spec {
    schema: "User",
    path: "/users",
    table: "users",
    tag: "accounts",
    doc: "The tenant's users and their roles (MGR, SV, OP, BIZ, BY). An SV manages OP, BIZ and BY users only.",
    fields: &[
        Field::new("login", Ty::Text { min: 1, max: 64 }, "Login ID, unique in the tenant: 3 to 15 half-width letters and digits.")
            .pattern("^[A-Za-z0-9]{3,15}$")
            .example("\"sample01\"")
            .req()
            .create_only()
            .filter()
            .sort()
            .search(),
        Field::new("display_name", NAME, "Name shown on the wallboard.").req().sort().search(),
        Field::new("role", Ty::Enum(&["MGR", "SV", "OP", "BIZ", "BY"]), "Role.").req().filter(),
        Field::new(
            "password",
            Ty::Text { min: 1, max: 128 },
            "Password (write-only; stored as an argon2 hash): at least 8 characters with half-width digits, upper-case and lower-case letters. Setting it ends the user's other sessions.",
        )
        .example("\"Sample-Passw0rd\"")
        .req()
        .write_only(),
        Field::new("disabled", Ty::Bool, "A disabled user cannot log in; disabling ends its sessions for good. Default false.").filter(),
        Field::new(
            "phone_kind",
            Ty::Enum(&["sip", "browser"]),
            "The agent's phone: sip (a SIP phone, assigned in /phones) or browser (ブラウザフォン: WebRTC in the agent desktop, no SIP account). Default sip.",
        )
        .filter(),
        Field::new("locked_at", Ty::Instant, "ログインロック: when the account was locked after repeated wrong passwords (null: not locked). POST /users/{id}/unlock lifts it.")
            .null()
            .read_only()
            .filter(),
        CREATED,
        UPDATED,
    ],
    extra: &[],
    read: MGR_SV,
    write: MGR_SV,
    delete: MGR,
    scope: None,
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks { before_write: Some(user_write), after_write: Some(user_after), before_delete: Some(user_delete), after_delete: Some(user_deleted), ..Hooks::NONE },
};

hook!(user_write, |ctx, id, v| {
    if ctx.auth.role() == Role::Sv {
        let lower = |r: &str| matches!(r, "OP" | "BIZ" | "BY");
        if let Some(role) = v.get("role").and_then(SqlVal::as_str) {
            if !lower(role) {
                return Err(ApiError::forbidden().with_field("role"));
            }
        }
        if let Some(id) = id {
            let current =
                store::accounts::role_of(&ctx.st.db, ctx.tenant(), id).await?.ok_or_else(ApiError::not_found)?;
            if !lower(&current) {
                return Err(ApiError::forbidden());
            }
        }
    }
    if let Some(login) = v.input.get("login").and_then(Value::as_str) {
        if !store::accounts::login_id_ok(login) {
            return Err(ApiError::invalid("login", LOGIN_RULE));
        }
    }
    if let Some(pw) = v.input.get("password").and_then(Value::as_str) {
        if !store::accounts::password_ok(pw) {
            return Err(ApiError::invalid("password", PASSWORD_RULE));
        }
        let pw = pw.to_string();
        let hash = tokio::task::spawn_blocking(move || store::accounts::hash_password(&pw))
            .await
            .map_err(|_| ApiError::internal())?;
        v.set("password_hash", SqlVal::S(hash));
    }
    Ok(())
});

/// CloudCallCenter 11.1's rules (the console shows them in its words: 3文字以上15文字以下の半角英数字;
/// 8文字以上で半角数字、半角英大文字、半角英小文字の全てを含む必要がある).
pub const LOGIN_RULE: &str = "login: 3 to 15 half-width letters and digits";
pub const PASSWORD_RULE: &str =
    "password: at least 8 characters, and it must contain half-width digits, upper-case and lower-case letters";

/// A new password ends the user's other sessions (the caller's own is kept when it changes its own);
/// disabling ends them all, for good: re-enabling brings none back. Both go to the audit trail.
fn user_after<'a>(ctx: &'a Ctx, id: i64, input: &'a Map<String, Value>) -> BoxFut<'a, ApiResult<()>> {
    Box::pin(async move {
        use store::audit::{AuditEvent, AuditKind};
        // A role, a password or disabling: who may do what changed (see `sessions`).
        ctx.st.config.sessions.clear();
        // `login` is create-only and required: its presence means a new user, with no sessions yet.
        if input.contains_key("login") {
            return Ok(());
        }
        let db = &ctx.st.db;
        let mut kinds = Vec::new();
        if input.contains_key("password") {
            let keep = if id == ctx.auth.user() { ctx.auth.0.session_hash.as_deref() } else { None };
            store::accounts::end_sessions(db, ctx.tenant(), id, keep).await?;
            kinds.push(AuditKind::PasswordChanged);
        }
        if input.get("disabled") == Some(&Value::Bool(true)) {
            store::accounts::end_sessions(db, ctx.tenant(), id, None).await?;
            kinds.push(AuditKind::Disabled);
        }
        if kinds.is_empty() {
            return Ok(());
        }
        let login = store::accounts::login_of(db, ctx.tenant(), id).await?.ok_or_else(ApiError::not_found)?;
        for kind in kinds {
            let e = AuditEvent {
                tenant_id: ctx.tenant(),
                kind,
                user_id: Some(id),
                login: &login,
                source: "-",
                actor_user_id: Some(ctx.auth.user()),
            };
            store::audit::record(db, &e, store::now_ms()).await?;
        }
        Ok(())
    })
}

guard!(user_delete, |ctx, id| {
    if id == ctx.auth.user() {
        return Err(ApiError::conflict("self_delete", "you cannot delete yourself"));
    }
    Ok(())
});

// A deleted user's sessions go with it (see `sessions`).
guard!(user_deleted, |ctx, _id| {
    ctx.st.config.sessions.clear();
    Ok(())
});

pub static GRANTS: Spec = Spec {
    schema: "Grant",
    path: "/grants",
    table: "grants",
    tag: "accounts",
    doc: "A campaign or customer list granted to a user or to a dialing group. OP, BIZ and BY users see campaigns and lists only through grants; MGR and SV see the whole tenant.",
    fields: &[
        Field::new("user_id", Ty::Ref("users"), "Grantee user (or group_id).").example("1").null().create_only().filter(),
        Field::new("group_id", Ty::Ref("dialing_groups"), "Grantee dialing group (or user_id).").null().create_only().filter(),
        Field::new("resource_kind", Ty::Enum(&["campaign", "list"]), "What is granted.").req().create_only().filter(),
        Field::new("resource_id", Ty::Int { min: 1, max: i64::MAX }, "The campaign or list id.").req().create_only().filter(),
        CREATED,
    ],
    extra: &[],
    read: MGR_SV,
    write: MGR,
    delete: MGR,
    scope: None,
    own: None,
    creatable: true,
    updatable: false,
    hooks: Hooks { before_write: Some(grant_write), ..Hooks::NONE },
};

hook!(grant_write, |ctx, _id, v| {
    let user = v.get("user_id").and_then(SqlVal::as_i64);
    let group = v.get("group_id").and_then(SqlVal::as_i64);
    if user.is_some() == group.is_some() {
        return Err(ApiError::invalid("user_id", "user_id: give exactly one of user_id and group_id"));
    }
    let table = match v.get("resource_kind").and_then(SqlVal::as_str) {
        Some("campaign") => "campaigns",
        _ => "customer_lists",
    };
    let rid = v.get("resource_id").and_then(SqlVal::as_i64).unwrap_or(0);
    check_ref(ctx, "resource_id", table, rid).await
});

// ---------------------------------------------------------------------------------- caller ids, DNC

pub static CALLER_IDS: Spec = Spec {
    schema: "CallerId",
    path: "/caller-ids",
    table: "caller_ids",
    tag: "dialing",
    doc: "発信者番号 and the channel limit per number.",
    fields: &[
        Field::new("number", Ty::Tel, "The number.").req().filter().sort().search(),
        Field::new("label", NOTE, "Label.").search(),
        Field::new("max_channels", Ty::Int { min: 1, max: 100_000 }, "Channels at once on this number. Default 30."),
        CREATED,
    ],
    extra: &[],
    read: MGR_SV,
    write: MGR,
    delete: MGR,
    scope: None,
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks::NONE,
};

macro_rules! number_list {
    ($name:ident, $schema:literal, $path:literal, $table:literal, $doc:literal) => {
        pub static $name: Spec = Spec {
            schema: $schema,
            path: $path,
            table: $table,
            tag: "dialing",
            doc: $doc,
            fields: &[
                Field::new("number", Ty::Tel, "Phone number, unique in the list.").req().filter().sort().search(),
                Field::new("note", NOTE, "Why the number is listed.").search(),
                CREATED,
            ],
            extra: &[],
            read: MGR_SV,
            write: MGR_SV,
            delete: MGR,
            scope: None,
            own: None,
            creatable: true,
            updatable: true,
            hooks: Hooks::NONE,
        };
    };
}

number_list!(DNC_NUMBERS, "DncNumber", "/dnc-numbers", "dnc_numbers",
    "発信規制: numbers never dialled (result restricted). CSV upload: POST /dnc-numbers/upload; bulk delete: POST /dnc-numbers/bulk-delete.");
number_list!(INBOUND_BLOCKS, "InboundBlock", "/inbound-blocks", "inbound_blocks",
    "着信拒否: inbound calls from these numbers are refused. CSV upload: POST /inbound-blocks/upload; bulk delete: POST /inbound-blocks/bulk-delete.");

// ------------------------------------------------------------------------------------- phone book

pub static PHONE_BOOK: Spec = Spec {
    schema: "PhoneBookEntry",
    path: "/phone-book",
    table: "phone_book",
    tag: "callbacks",
    doc: "共通電話帳: the tenant's names for numbers, shown wherever a number is (callbacks, call history, the screen pop of a call without a lead). One name per number. CSV import: POST /phone-book/upload.",
    fields: &[
        Field::new("number", Ty::Tel, "Phone number, unique in the tenant.").req().filter().sort().search(),
        Field::new("name", NAME, "The name shown for the number (相手の名前).").req().sort().search(),
        Field::new("remarks", Ty::Text { min: 0, max: 1000 }, "Remarks.").null().search(),
        CREATED,
        UPDATED,
    ],
    extra: &[],
    read: &[Role::Mgr, Role::Sv, Role::Op],
    write: MGR_SV,
    delete: MGR_SV,
    scope: None,
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks::NONE,
};

// ------------------------------------------------------------------------------- outside transfers

pub static OUTSIDE_TRANSFERS: Spec = Spec {
    schema: "OutsideTransfer",
    path: "/outside-transfers",
    table: "outside_transfers",
    tag: "agents",
    doc: "外線転送: the tenant's saved outside numbers (a branch office, a partner's line) an agent transfers a call to (POST /agent/calls/{id}/transfer-outside) or calls into it as a third party (/conference), chosen by name on the desktop instead of typed (the desktop then sends `outside_transfer_id`, so the entry's own 発信者番号 is used). One name per entry.",
    fields: &[
        Field::new("name", NAME, "The name agents choose it by (名称), unique in the tenant.").req().sort().search(),
        Field::new("number", Ty::Tel, "The outside number (外線転送番号).").req().filter().sort().search(),
        Field::new("caller_id", Ty::Tel, "発信者番号 the outside number is called from; null: the call's own (the number the customer was called from).").null(),
        CREATED,
        UPDATED,
    ],
    extra: &[],
    read: &[Role::Mgr, Role::Sv, Role::Op],
    write: MGR,
    delete: MGR,
    scope: None,
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks::NONE,
};

// --------------------------------------------------------------------------------- batches, lists

pub static BATCHES: Spec = Spec {
    schema: "Batch",
    path: "/batches",
    table: "batches",
    tag: "lists",
    doc: "バッチ: a dated slice of a campaign holding customer lists. Default end = start + (R - 91) days, batch deletion = end + 90 days, history deletion = batch deletion + (R - 1) days, R the tenant's history retention. Start may not move after the first call's day, end not before the last call's day. A batch with calls and lists, with a running call job or with unsaved wrap-up records cannot be deleted.",
    fields: &[
        Field::new("campaign_id", Ty::Ref("campaigns"), "The campaign.").req().create_only().filter(),
        Field::new("name", NAME, "Batch name.").req().filter().sort().search(),
        Field::new("start_date", Ty::Date, "First day (tenant zone).").req().sort(),
        Field::new("end_date", Ty::Date, "Last day; default start + (R - 91) days.").sort(),
        Field::new("memo", Ty::Text { min: 0, max: 500 }, "メモ: free text, up to 500 characters."),
        Field::new("first_call_at", Ty::Instant, "First call made in this batch.").null().read_only(),
        Field::new("last_call_at", Ty::Instant, "Last call made in this batch.").null().read_only(),
        CREATED,
    ],
    extra: &[Extra { name: "list_count", expr: "SELECT COUNT(*) FROM customer_lists c WHERE c.batch_id = t.id", ty: COUNT, doc: "Customer lists in the batch." }],
    read: ALL,
    write: MGR_SV,
    delete: MGR,
    scope: Some(("campaign_id", "campaigns")),
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks { before_write: Some(batch_write), before_delete: Some(batch_delete), decorate: Some(batch_decorate), ..Hooks::NONE },
};

fn date_of(v: &Values, col: &str) -> Option<NaiveDate> {
    v.get(col).and_then(SqlVal::as_str).and_then(|s| s.parse().ok())
}

hook!(batch_write, |ctx, id, v| {
    let r = ctx.auth.0.retention_days;
    let tz = ctx.auth.tz();
    let (mut start, mut end, mut first, mut last) = (None, None, None, None);
    if let Some(id) = id {
        let row = store::batches::dates(&ctx.st.db, ctx.tenant(), id).await?;
        start = row.start_date.parse().ok();
        end = row.end_date.parse().ok();
        first = row.first_call_at.map(|ms| store::tenancy::local_date(tz, ms));
        last = row.last_call_at.map(|ms| store::tenancy::local_date(tz, ms));
    }
    let start =
        date_of(v, "start_date").or(start).ok_or_else(|| ApiError::invalid("start_date", "start_date: required"))?;
    let end = match date_of(v, "end_date").or(end) {
        Some(e) => e,
        None => {
            let e = batch_dates::default_end(start, r);
            v.set("end_date", SqlVal::S(e.to_string()));
            e
        }
    };
    batch_dates::check_dates(start, end, first, last)
        .map_err(|e| ApiError::invalid(e.field(), format!("{}: {}", e.field(), e.message())))
});

fn batch_decorate(ctx: &Ctx, m: &mut Map<String, Value>) {
    let start = m.get("start_date").and_then(Value::as_str).and_then(|s| s.parse::<NaiveDate>().ok());
    let end = m.get("end_date").and_then(Value::as_str).and_then(|s| s.parse::<NaiveDate>().ok());
    if let (Some(s), Some(e)) = (start, end) {
        let d = batch_dates::derive(s, e, ctx.auth.0.retention_days);
        m.insert("batch_deletion_date".into(), Value::from(d.batch_deletion.to_string()));
        m.insert("history_deletion_date".into(), Value::from(d.history_deletion.to_string()));
    }
}

guard!(batch_delete, |ctx, id| {
    if store::batches::has_calls_and_lists(&ctx.st.db, ctx.tenant(), id).await? {
        return Err(ApiError::conflict("batch_has_calls", "the batch has calls and lists: delete its lists first"));
    }
    if running_job_uses(ctx, InUse::Batch(id)).await? {
        return Err(ApiError::conflict("job_running", "a call job over this batch is running"));
    }
    if store::batches::has_unsaved_records(&ctx.st.db, ctx.tenant(), id).await? {
        return Err(ApiError::conflict("unsaved_records", "the batch has unsaved wrap-up records"));
    }
    Ok(())
});

pub static LISTS: Spec = Spec {
    schema: "CustomerList",
    path: "/lists",
    table: "customer_lists",
    tag: "lists",
    doc: "顧客リスト: a list of leads in a batch (at most 200,000 leads). Import CSV with POST /lists/{id}/imports.",
    fields: &[
        Field::new("batch_id", Ty::Ref("batches"), "The batch.").req().create_only().filter(),
        Field::new("name", NAME, "List name.").req().filter().sort().search(),
        Field::new("allow_duplicates", Ty::Bool, "Accept a phone number already in the batch. Default false."),
        CREATED,
    ],
    extra: &[Extra {
        name: "lead_count",
        expr: "SELECT COUNT(*) FROM leads l WHERE l.list_id = t.id",
        ty: COUNT,
        doc: "Leads in the list.",
    }],
    read: &[Role::Mgr, Role::Sv, Role::Biz, Role::By],
    write: &[Role::Mgr, Role::Sv, Role::By],
    delete: MGR,
    scope: Some(("id", "customer_lists")),
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks { before_delete: Some(list_delete), ..Hooks::NONE },
};

guard!(list_delete, |ctx, id| {
    if running_job_uses(ctx, InUse::CustomerList(id)).await? {
        return Err(ApiError::conflict("job_running", "a running call job uses this list"));
    }
    Ok(())
});

pub static CUSTOM_FIELDS: Spec = Spec {
    schema: "CustomField",
    path: "/custom-fields",
    table: "custom_fields",
    tag: "lists",
    doc: "The tenant's typed lead fields, targets of the generic CSV import.",
    fields: &[
        Field::new("key", Ty::Ident { max: 64 }, "Key in a lead's `custom` object.")
            .req()
            .create_only()
            .filter()
            .sort(),
        Field::new("label", NAME, "Label.").req().search(),
        Field::new("kind", Ty::Enum(FIELD_KINDS), "Type.").req().create_only().filter(),
        Field::new("options", Ty::JsonArray, "Choices for select, radio and checkbox (array of strings)."),
        CREATED,
    ],
    extra: &[],
    read: ALL,
    write: MGR,
    delete: MGR,
    scope: None,
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks { before_write: Some(custom_field_write), ..Hooks::NONE },
};

hook!(custom_field_write, |ctx, id, v| {
    let kind = match (v.get("kind").and_then(SqlVal::as_str), id) {
        (Some(k), _) => k.to_string(),
        (None, Some(id)) => store::leads::custom_field_kind(&ctx.st.db, ctx.tenant(), id).await?,
        (None, None) => String::new(),
    };
    let options = v.input.get("options");
    if let Some(Value::Array(items)) = options {
        if items.len() > 200
            || !items.iter().all(|i| i.as_str().is_some_and(|s| !s.is_empty() && s.chars().count() <= 255))
        {
            return Err(ApiError::invalid("options", "options: at most 200 strings of 1 to 255 characters"));
        }
    }
    let needs = matches!(kind.as_str(), "select" | "radio" | "checkbox");
    let empty = options.and_then(Value::as_array).is_none_or(|a| a.is_empty());
    if needs && empty && (id.is_none() || options.is_some()) {
        return Err(ApiError::invalid("options", "options: select, radio and checkbox need at least one choice"));
    }
    Ok(())
});

pub static LEADS: Spec = Spec {
    schema: "Lead",
    path: "/leads",
    table: "leads",
    tag: "lists",
    doc: "A customer to call. History entries: /leads/{id}/history.",
    fields: &[
        Field::new("list_id", Ty::Ref("customer_lists"), "The customer list.").req().create_only().filter(),
        Field::new("batch_id", Ty::Ref("batches"), "The list's batch.").read_only().filter(),
        Field::new("name", NAME, "Customer name.").req().filter().sort().search(),
        Field::new("kana", NAME, "Name in kana.").req().sort().search(),
        Field::new("tel", Ty::LeadTel, "The number dialled: half-width digits only, 9-30, leading 0 (BIZTEL §2.2).")
            .req()
            .filter()
            .sort()
            .search(),
        Field::new("phone_type", Ty::Enum(&["mobile", "fixed"]), "mobile (070/080/090) or fixed.").read_only().filter(),
        Field::new("remarks", Ty::Text { min: 0, max: 1000 }, "Remarks.").null().search(),
        Field::new("custom", Ty::JsonObject, "Custom field values by key."),
        Field::new("tags", Ty::JsonArray, "Tags.").search(),
        Field::new(
            "state",
            Ty::Enum(&["open", "done", "stopped"]),
            "open; done once completed; stopped (停止) by hand: never dialled, recalls included, until set open again.",
        )
        .filter(),
        Field::new("attempts", COUNT, "Calls made.").read_only().filter().sort(),
        Field::new("last_attempt_at", Ty::Instant, "Last call.").null().read_only().sort(),
        Field::new("last_result", NAME, "Result of the last call.").null().read_only().filter(),
        CREATED,
    ],
    extra: &[],
    read: &[Role::Mgr, Role::Sv, Role::Op, Role::Biz, Role::By],
    write: &[Role::Mgr, Role::Sv, Role::By],
    delete: MGR,
    scope: Some(("list_id", "customer_lists")),
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks { before_write: Some(lead_write), in_write: Some(lead_in_write), ..Hooks::NONE },
};

pub static LEAD_NUMBERS: Spec = Spec {
    schema: "LeadNumber",
    path: "/lead-numbers",
    table: "lead_numbers",
    tag: "lists",
    doc: "A lead's other numbers (電話番号の追加): dialled after the main one when the campaign moves on after no answer, in the order added.",
    fields: &[
        Field::new("lead_id", Ty::Ref("leads"), "The lead.").req().create_only().filter(),
        Field::new("tel", Ty::LeadTel, "The number: half-width digits only, 9-30, leading 0 (BIZTEL §2.2).")
            .req()
            .filter()
            .search(),
        Field::new("phone_type", Ty::Enum(&["mobile", "fixed"]), "mobile (070/080/090) or fixed.").read_only(),
        Field::new("label", Ty::Text { min: 0, max: 60 }, "What the number is (自宅, 携帯, 勤務先...).").null().search(),
        CREATED,
    ],
    extra: &[],
    read: &[Role::Mgr, Role::Sv, Role::Op, Role::Biz, Role::By],
    write: &[Role::Mgr, Role::Sv, Role::By],
    delete: &[Role::Mgr, Role::Sv, Role::By],
    scope: Some(("lead_id", "leads")),
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks { before_write: Some(lead_number_write), ..Hooks::NONE },
};

hook!(lead_number_write, |_ctx, _id, v| {
    if let Some(tel) = v.get("tel").and_then(SqlVal::as_str).map(str::to_string) {
        v.set("phone_type", SqlVal::S(PhoneType::of(&tel).as_str().to_string()));
    }
    Ok(())
});

hook!(lead_write, |ctx, id, v| {
    if id.is_none() {
        let list = v
            .get("list_id")
            .and_then(SqlVal::as_i64)
            .ok_or_else(|| ApiError::invalid("list_id", "list_id: required"))?;
        let batch =
            store::batches::of_list(&ctx.st.db, ctx.tenant(), list).await?.ok_or_else(ApiError::not_found)?.batch_id;
        v.set("batch_id", SqlVal::I(batch));
    }
    if let Some(tel) = v.get("tel").and_then(SqlVal::as_str).map(str::to_string) {
        v.set("phone_type", SqlVal::S(PhoneType::of(&tel).as_str().to_string()));
    }
    Ok(())
});

/// A lead's list cap and its batch's duplicate rule, checked in the write's transaction under the
/// batch's lock, the lock an import's publication takes (`store::leads::check_new_lead`).
fn lead_in_write<'a>(
    ctx: &'a Ctx,
    id: Option<i64>,
    v: &'a Values,
    tx: &'a mut store::WriteTx,
) -> BoxFut<'a, ApiResult<()>> {
    Box::pin(async move {
        let tel = v.get("tel").and_then(SqlVal::as_str);
        let list = match (id, v.get("list_id").and_then(SqlVal::as_i64)) {
            (_, Some(list)) => list,
            (Some(_), None) if tel.is_none() => return Ok(()), // neither the number nor the list changes
            (Some(id), None) => store::leads::list_of_lead_in(tx, ctx.tenant(), id).await?,
            (None, None) => return Err(ApiError::invalid("list_id", "list_id: required")),
        };
        match store::leads::check_new_lead(&ctx.st.db, tx, ctx.tenant(), list, id, tel, MAX_LEADS_PER_LIST).await? {
            Ok(()) => Ok(()),
            Err(store::leads::CreateRefused::DuplicateTel) => {
                Err(ApiError::conflict("duplicate_tel", DUPLICATE_IN_BATCH).with_field("tel"))
            }
            Err(store::leads::CreateRefused::ListFull) => {
                Err(ApiError::conflict("list_full", format!("a list holds at most {MAX_LEADS_PER_LIST} leads"))
                    .with_field("list_id"))
            }
        }
    })
}

// -------------------------------------------------------------------------------------- call jobs

pub const MAX_RUNNING_JOBS: i64 = 5;

pub static CALL_JOBS: Spec = Spec {
    schema: "CallJob",
    path: "/call-jobs",
    table: "call_jobs",
    tag: "dialing",
    doc: "コールジョブ: lists + dialing group + caller ID + filters. At most 5 run at once per tenant; a job starts from 1 hour before business start, dials inside business hours only. Start/stop: POST /call-jobs/{id}/start and /stop.",
    fields: &[
        Field::new("campaign_id", Ty::Ref("campaigns"), "The campaign.").req().create_only().filter(),
        Field::new("dialing_group_id", Ty::Ref("dialing_groups"), "Agents to connect customers to.").req().filter(),
        Field::new("name", Ty::Text { min: 1, max: 60 }, "Job name (コールジョブ名), up to 60 characters.").req().sort().search(),
        Field::new("caller_id", Ty::Tel, "Caller ID; null for the campaign's.").null(),
        Field::new("phone_type", Ty::Enum(&["any", "mobile", "fixed"]), "Dial only mobile (070/080/090) or fixed numbers. Default any."),
        Field::new("attempts_min", Ty::Int { min: 0, max: 1000 }, "Dial leads with at least this many attempts. Default 0."),
        Field::new("attempts_max", Ty::Int { min: 0, max: 1000 }, "... and at most this many (0..0 = never dialled).").null(),
        Field::new("last_attempt_from", Ty::Instant, "Last attempt at or after.").null(),
        Field::new("last_attempt_to", Ty::Instant, "Last attempt at or before.").null(),
        Field::new("last_attempt_band_from", Ty::TimeOfDay, "前回発信時間帯 from (HH:MM, tenant zone): leads last called in the band, on any day; with last_attempt_band_to.").null(),
        Field::new("last_attempt_band_to", Ty::TimeOfDay, "前回発信時間帯 to (HH:MM, exclusive; before from wraps past midnight).").null(),
        Field::new("list_ids", Ty::RefList("customer_lists"), "Customer lists of the job's campaign.")
            .req()
            .link("call_job_lists", "job_id", "list_id"),
        Field::new("notes", Ty::Text { min: 0, max: 500 }, "連絡事項: up to 500 characters, shown to admins and to the job's agents."),
        Field::new("status", Ty::Enum(&["stopped", "running", "finished"]), "State.").read_only().filter(),
        Field::new("started_at", Ty::Instant, "Last start.").null().read_only(),
        Field::new("stopped_at", Ty::Instant, "Last stop.").null().read_only(),
        CREATED,
    ],
    extra: &[
        Extra { name: "list_count", expr: "SELECT COUNT(*) FROM call_job_lists jl WHERE jl.job_id = t.id", ty: COUNT, doc: "Lists in the job." },
        Extra {
            name: "assigned_count",
            expr: "SELECT COUNT(*) FROM leads l JOIN call_job_lists jl ON jl.list_id = l.list_id WHERE jl.job_id = t.id",
            ty: COUNT,
            doc: "割当件数: leads in the job's lists.",
        },
        Extra {
            name: "target_count",
            expr: "SELECT COUNT(*) FROM leads l JOIN call_job_lists jl ON jl.list_id = l.list_id AND jl.tenant_id = l.tenant_id
                   WHERE jl.job_id = t.id
                     AND l.attempts >= t.attempts_min AND (t.attempts_max IS NULL OR l.attempts <= t.attempts_max)
                     AND (t.phone_type = 'any' OR l.phone_type = t.phone_type)
                     AND (t.last_attempt_from IS NULL OR l.last_attempt_at >= t.last_attempt_from)
                     AND (t.last_attempt_to IS NULL OR l.last_attempt_at <= t.last_attempt_to)
                     AND (t.last_attempt_band_from IS NULL OR t.last_attempt_band_to IS NULL OR t.last_attempt_band_from = t.last_attempt_band_to
                          OR l.last_attempt_time IS NOT NULL AND (t.last_attempt_band_from < t.last_attempt_band_to AND l.last_attempt_time >= t.last_attempt_band_from AND l.last_attempt_time < t.last_attempt_band_to
                             OR t.last_attempt_band_from > t.last_attempt_band_to AND (l.last_attempt_time >= t.last_attempt_band_from OR l.last_attempt_time < t.last_attempt_band_to)))",
            ty: COUNT,
            doc: "対象件数: leads of the job's lists matching its filters (リスト抽出条件), dialled or not.",
        },
        Extra {
            name: "remaining_count",
            expr: "SELECT COUNT(*) FROM leads l JOIN call_job_lists jl ON jl.list_id = l.list_id AND jl.tenant_id = l.tenant_id
                   WHERE jl.job_id = t.id AND l.state = 'open'
                     AND l.attempts >= t.attempts_min AND (t.attempts_max IS NULL OR l.attempts <= t.attempts_max)
                     AND (t.phone_type = 'any' OR l.phone_type = t.phone_type)
                     AND (t.last_attempt_from IS NULL OR l.last_attempt_at >= t.last_attempt_from)
                     AND (t.last_attempt_to IS NULL OR l.last_attempt_at <= t.last_attempt_to)
                     AND (t.last_attempt_band_from IS NULL OR t.last_attempt_band_to IS NULL OR t.last_attempt_band_from = t.last_attempt_band_to
                          OR l.last_attempt_time IS NOT NULL AND (t.last_attempt_band_from < t.last_attempt_band_to AND l.last_attempt_time >= t.last_attempt_band_from AND l.last_attempt_time < t.last_attempt_band_to
                             OR t.last_attempt_band_from > t.last_attempt_band_to AND (l.last_attempt_time >= t.last_attempt_band_from OR l.last_attempt_time < t.last_attempt_band_to)))
                     AND NOT EXISTS (SELECT 1 FROM recalls r WHERE r.lead_id = l.id AND r.status = 'open')
                     AND (t.status <> 'running' OR t.started_at IS NULL OR l.last_attempt_at IS NULL OR (l.last_attempt_at < t.started_at
                          AND NOT EXISTS (SELECT 1 FROM call_job_lists jl2 JOIN call_jobs j2 ON j2.id = jl2.job_id
                                          WHERE jl2.list_id = l.list_id AND jl2.tenant_id = l.tenant_id AND j2.status = 'running'
                                            AND j2.started_at IS NOT NULL AND j2.started_at <= l.last_attempt_at)))",
            ty: COUNT,
            doc: "残りリード (残件数): leads the job will still dial in this run (open, matching its filters, no open recall, not dialled since it started; for a stopped job, if started now). The same figure as the wallboard's remaining leads.",
        },
    ],
    read: &[Role::Mgr, Role::Sv, Role::Op],
    write: MGR_SV,
    delete: MGR,
    scope: Some(("campaign_id", "campaigns")),
    own: None,
    creatable: true,
    updatable: true,
    hooks: Hooks { before_write: Some(job_write), after_write: Some(job_lists), before_delete: Some(job_delete), ..Hooks::NONE },
};

hook!(job_write, |ctx, id, v| {
    if let Some(id) = id {
        if running_job_uses(ctx, InUse::Job(id)).await? {
            return Err(ApiError::conflict("job_running", "stop the job before changing it"));
        }
    }
    let (a, b) = (v.get("attempts_min").and_then(SqlVal::as_i64), v.get("attempts_max").and_then(SqlVal::as_i64));
    if let (Some(a), Some(b)) = (a, b) {
        if a > b {
            return Err(ApiError::invalid("attempts_max", "attempts_max: must not be below attempts_min"));
        }
    }
    let (f, t) =
        (v.get("last_attempt_from").and_then(SqlVal::as_i64), v.get("last_attempt_to").and_then(SqlVal::as_i64));
    if let (Some(f), Some(t)) = (f, t) {
        if f > t {
            return Err(ApiError::invalid("last_attempt_to", "last_attempt_to: must not be before last_attempt_from"));
        }
    }
    let band = |c| v.get(c).and_then(SqlVal::as_str).map(str::to_owned);
    if let (Some(f), Some(t)) = (band("last_attempt_band_from"), band("last_attempt_band_to")) {
        if f == t {
            return Err(ApiError::invalid(
                "last_attempt_band_to",
                "last_attempt_band_to: must differ from last_attempt_band_from",
            ));
        }
    }
    Ok(())
});

fn job_lists<'a>(ctx: &'a Ctx, id: i64, input: &'a Map<String, Value>) -> BoxFut<'a, ApiResult<()>> {
    Box::pin(async move {
        let Some(Value::Array(items)) = input.get("list_ids") else { return Ok(()) };
        if items.is_empty() || items.len() > 100 {
            return Err(ApiError::invalid("list_ids", "list_ids: 1 to 100 list ids"));
        }
        let campaign = store::call_jobs::campaign_of(&ctx.st.db, ctx.tenant(), id).await?;
        let mut ids = Vec::new();
        for item in items {
            let list = item
                .as_i64()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::invalid("list_ids", "list_ids: must hold list ids"))?;
            check_ref(ctx, "list_ids", "customer_lists", list).await?;
            if !store::call_jobs::list_in_campaign(&ctx.st.db, ctx.tenant(), list, campaign).await? {
                return Err(ApiError::invalid(
                    "list_ids",
                    format!("list_ids: list {list} is not in the job's campaign"),
                ));
            }
            if !ids.contains(&list) {
                ids.push(list);
            }
        }
        store::call_jobs::replace_lists(&ctx.st.db, ctx.tenant(), id, &ids).await?;
        Ok(())
    })
}

guard!(job_delete, |ctx, id| {
    if running_job_uses(ctx, InUse::Job(id)).await? {
        return Err(ApiError::conflict("job_running", "stop the job before deleting it"));
    }
    Ok(())
});

// ------------------------------------------------------------------------------ recalls and records

pub static RECALLS: Spec = Spec {
    schema: "Recall",
    path: "/recalls",
    table: "recalls",
    tag: "dialing",
    doc: "再コール: scheduled (due_at: auto-dialled when due) and/or owned by an agent (in that agent's recall list). OP users see and create only their own.",
    fields: &[
        Field::new("lead_id", Ty::Ref("leads"), "The lead.").req().create_only().filter(),
        Field::new("campaign_id", Ty::Ref("campaigns"), "The lead's campaign.").read_only().filter(),
        Field::new("due_at", Ty::Instant, "When to call (or agent_user_id, or both).").example("\"2026-12-01T09:00:00+09:00\"").null().sort(),
        Field::new("agent_user_id", Ty::Ref("users"), "Agent who owns the recall.").null().filter(),
        Field::new("status", Ty::Enum(&["open", "done", "cancelled"]), "State. Default open.").filter(),
        Field::new("note", Ty::Text { min: 0, max: 1000 }, "Note.").search(),
        Field::new("created_by", Ty::Ref("users"), "Who scheduled it.").null().read_only(),
        CREATED,
    ],
    extra: &[],
    read: &[Role::Mgr, Role::Sv, Role::Op],
    write: &[Role::Mgr, Role::Sv, Role::Op],
    delete: MGR,
    scope: Some(("campaign_id", "campaigns")),
    own: Some(("agent_user_id", &[Role::Op])),
    creatable: true,
    updatable: true,
    hooks: Hooks { before_write: Some(recall_write), after_write: Some(recall_assigned), ..Hooks::NONE },
};

/// A recall given to an agent is pushed to that agent's screen (its recall list's badge).
fn recall_assigned<'a>(ctx: &'a Ctx, id: i64, input: &'a Map<String, Value>) -> BoxFut<'a, ApiResult<()>> {
    Box::pin(async move {
        if input.get("agent_user_id").is_none_or(Value::is_null) {
            return Ok(());
        }
        let r = store::records::recall(&ctx.st.db, ctx.tenant(), id).await?;
        if let (Some(agent), "open") = (r.agent_user_id, r.status.as_str()) {
            let u = |v: i64| u64::try_from(v).unwrap_or(0);
            let n = wire::AgentNotice::RecallAssigned {
                agent_id: wire::AgentId(u(agent)),
                recall_id: u(id),
                lead_id: wire::LeadId(u(r.lead_id)),
                due_at_ms: r.due_at.map(u),
            };
            crate::desk::notify(&ctx.st, ctx.tenant(), &n).await;
        }
        Ok(())
    })
}

hook!(recall_write, |ctx, id, v| {
    let (mut due, mut agent) = (None, None);
    if let Some(id) = id {
        let r = store::records::recall(&ctx.st.db, ctx.tenant(), id).await?;
        (due, agent) = (r.due_at, r.agent_user_id);
    } else {
        v.set("created_by", SqlVal::I(ctx.auth.user()));
        let lead = v.get("lead_id").and_then(SqlVal::as_i64).unwrap_or(0);
        let campaign = store::leads::campaign_of_lead(&ctx.st.db, ctx.tenant(), lead).await?;
        check_ref(ctx, "lead_id", "campaigns", campaign)
            .await
            .map_err(|_| ApiError::invalid("lead_id", "lead_id: no such record"))?;
        v.set("campaign_id", SqlVal::I(campaign));
    }
    match v.get("due_at") {
        Some(SqlVal::I(t)) => due = Some(*t),
        Some(_) => due = None,
        None => {}
    }
    match v.get("agent_user_id") {
        Some(SqlVal::I(u)) => agent = Some(*u),
        Some(_) => agent = None,
        None => {}
    }
    if due.is_none() && agent.is_none() {
        return Err(ApiError::invalid("due_at", "due_at: give due_at, agent_user_id or both"));
    }
    Ok(())
});

pub static CALL_RECORDS: Spec = Spec {
    schema: "CallRecord",
    path: "/call-records",
    table: "call_records",
    tag: "records",
    doc: "One record per call placed (written by the dialer). OP users see their own calls.",
    fields: &[
        Field::new("campaign_id", Ty::Ref("campaigns"), "Campaign.").null().filter(),
        Field::new("call_job_id", Ty::Ref("call_jobs"), "Call job.").null().filter(),
        Field::new("lead_id", Ty::Ref("leads"), "Lead.").null().filter(),
        Field::new("agent_user_id", Ty::Ref("users"), "Agent connected.").null().filter(),
        Field::new("tel", Ty::Tel, "Number dialled.").filter().search(),
        Field::new("caller_id", Ty::Tel, "Caller ID used.").null(),
        Field::new("direction", Ty::Enum(&["outbound", "inbound"]), "Direction.").filter(),
        Field::new("started_at", Ty::Instant, "Dial time.").sort(),
        Field::new("answered_at", Ty::Instant, "Customer answered.").null().sort(),
        Field::new("bridged_at", Ty::Instant, "Connected to the agent.").null(),
        Field::new("ended_at", Ty::Instant, "Ended.").null().sort(),
        Field::new("result", NAME, "System or campaign result.").filter(),
        Field::new("sip_status", Ty::Int { min: 0, max: 699 }, "Final SIP status.").null().filter(),
        Field::new("recording_path", Ty::Text { min: 0, max: 1024 }, "Recording.").null(),
    ],
    extra: &[
        Extra {
            name: "callback_id",
            expr: "SELECT MIN(cb.id) FROM callbacks cb WHERE cb.tenant_id = t.tenant_id AND cb.call_record_id = t.id",
            ty: Ty::Int { min: 1, max: i64::MAX },
            doc: "折り返し呼ID: the callback registered from this call (POST /callbacks {\"call_id\"}), or null.",
        },
        Extra {
            name: "phone_book_name",
            expr: "SELECT pb.name FROM phone_book pb WHERE pb.tenant_id = t.tenant_id AND pb.number = t.tel",
            ty: NAME,
            doc: "相手の名前: the common phone book's name for the number, or null.",
        },
    ],
    read: &[Role::Mgr, Role::Sv, Role::Op, Role::Biz],
    write: &[],
    delete: &[],
    scope: None,
    own: Some(("agent_user_id", &[Role::Op])),
    creatable: false,
    updatable: false,
    hooks: Hooks::NONE,
};

pub static WRAPUP_RECORDS: Spec = Spec {
    schema: "WrapupRecord",
    path: "/wrapup-records",
    table: "wrapup_records",
    tag: "records",
    doc: "応対記録: one per connected call; `saved=false` lists the unsaved ones (応対記録(未保存)) until someone saves them with POST /wrapup-records/{id}/save. OP users see and save their own.",
    fields: &[
        Field::new("call_record_id", Ty::Ref("call_records"), "The call.").null().filter(),
        Field::new("lead_id", Ty::Ref("leads"), "The lead.").null().filter(),
        Field::new("agent_user_id", Ty::Ref("users"), "The agent.").null().filter(),
        Field::new("interlocutor", Ty::Enum(&["self", "other"]), "本人 or その他.").null(),
        Field::new("result", NAME, "Result.").filter(),
        Field::new("other_tel", Ty::Tel, "Other number.").null(),
        Field::new("next_action", Ty::Enum(&["continue", "recall", "complete"]), "Next action.").null(),
        Field::new("recall_at", Ty::Instant, "Recall time.").null(),
        Field::new("memo", Ty::Text { min: 0, max: 5000 }, "Memo.").search(),
        Field::new("state_after", Ty::Enum(&["continue", "break", "away", "end_job"]), "Agent state after saving.").null(),
        Field::new("saved", Ty::Bool, "false while in the unsaved list (応対記録(未保存)).").read_only().filter(),
        Field::new("saved_at", Ty::Instant, "Saved; null while unsaved.").null().sort(),
        Field::new("saved_by", Ty::Ref("users"), "Who saved.").null(),
        CREATED,
    ],
    extra: &[],
    read: &[Role::Mgr, Role::Sv, Role::Op, Role::Biz],
    write: &[],
    delete: &[],
    scope: None,
    own: Some(("agent_user_id", &[Role::Op])),
    creatable: false,
    updatable: false,
    hooks: Hooks::NONE,
};

pub static AUDIT_EVENTS: Spec = Spec {
    schema: "AuditEvent",
    path: "/audit-events",
    table: "audit_events",
    tag: "accounts",
    doc: "The audit trail: logins, refused logins, lockouts (ログインロック) and unlocks, password changes and disables. Read by MGR; written by the server only.",
    fields: &[
        Field::new(
            "kind",
            Ty::Enum(&["login", "login_failed", "locked", "unlocked", "password_changed", "disabled"]),
            "What happened.",
        )
        .read_only()
        .filter(),
        Field::new("user_id", Ty::Int { min: 1, max: i64::MAX }, "The account concerned (null: an unknown login).")
            .null()
            .read_only()
        .filter(),
        Field::new("login", Ty::Text { min: 0, max: 64 }, "The login, as typed for a refused one.").read_only().filter().search(),
        Field::new("source", Ty::Text { min: 0, max: 64 }, "The client's address (- for a change made in the console).")
            .read_only()
            .filter()
            .search(),
        Field::new("actor_user_id", Ty::Int { min: 1, max: i64::MAX }, "Who made the change (unlock, password, disable).")
            .null()
            .read_only()
        .filter(),
        Field::new("created_at", Ty::Instant, "When.").read_only().sort(),
    ],
    extra: &[],
    read: MGR,
    write: &[],
    delete: &[],
    scope: None,
    own: None,
    creatable: false,
    updatable: false,
    hooks: Hooks::NONE,
};

/// Every generic resource, in the order of the OpenAPI document.
pub static ALL_SPECS: &[&Spec] = &[
    &USERS,
    &GRANTS,
    &CAMPAIGNS,
    &RESULT_CODES,
    &DIALING_GROUPS,
    &PAUSE_REASONS,
    &CLOSED_DAYS,
    &PHONES,
    &CALLER_IDS,
    &BATCHES,
    &LISTS,
    &CUSTOM_FIELDS,
    &LEADS,
    &LEAD_NUMBERS,
    &CALL_JOBS,
    &DNC_NUMBERS,
    &INBOUND_BLOCKS,
    &PHONE_BOOK,
    &OUTSIDE_TRANSFERS,
    &RECALLS,
    &CALL_RECORDS,
    &WRAPUP_RECORDS,
    &AUDIT_EVENTS,
];
