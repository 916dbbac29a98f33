//! The fixed results every tenant has, beside each campaign's numbered results (番号,テキスト).
//!
//! Two kinds, one table, so that the dialer, control, the API, the reports and the pages name a
//! result alike:
//! - the **system results** the dialer and control set on a call (SPEC 4: 発信待機中, ビジー, ...);
//! - CALLTREE's **default statuses** (calltree-faq.txt, デフォルトの結果ステータス): 不通, FAX, 現アナ, 見込,
//!   再コール and クレーム. An agent saves them like a numbered result; they exist in every tenant, are
//!   fixed in code (so nobody can rename or delete them) and drive their features: 不通, FAX and 現アナ
//!   are calls but not connects (コネクト数), 再コール is saved only with a recall, and クレーム stops
//!   the lead (停止) and puts its number on the tenant's do-not-call list (発信規制), so the customer
//!   who complained is not called again by any job.
//!
//! 現アナ is both: the dialer sets it on a number not in service (SIP 404, 410, 484, 604), and an
//! agent may save it after hearing the announcement.

/// One fixed result: its key (stored in `call_records.result` / `wrapup_records.result`), its
/// words in ja and en, whether a bridged call with it counts as a connect, and who sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    pub key: &'static str,
    pub ja: &'static str,
    pub en: &'static str,
    /// Counts as a connect (コネクト数) when the call was bridged.
    pub connect: bool,
    /// CALLTREE's default status: an agent may save it on a wrap-up record.
    pub default_status: bool,
}

const fn sys(key: &'static str, ja: &'static str, en: &'static str) -> Fixed {
    Fixed { key, ja, en, connect: true, default_status: false }
}

const fn status(key: &'static str, ja: &'static str, en: &'static str, connect: bool) -> Fixed {
    Fixed { key, ja, en, connect, default_status: true }
}

/// Every fixed result, system results first, then the default statuses in CALLTREE's order.
pub const FIXED: &[Fixed] = &[
    sys("pending", "発信待機中", "Pending"),
    sys("busy", "ビジー", "Busy"),
    sys("no_entry", "未入力", "No entry"),
    sys("abandoned", "破棄呼", "Abandoned"),
    sys("timeout", "制限時間", "Timeout"),
    sys("cancel", "キャンセル", "Cancel"),
    sys("error", "エラー", "Error"),
    sys("channel_limit", "チャンネル制限", "Channel limit"),
    sys("restricted", "発信規制", "Do-not-call"),
    sys("stopped", "停止", "Stopped"),
    status("no_contact", "不通", "No contact", false),
    status("fax", "FAX", "Fax", false),
    status("not_in_service", "現アナ", "Not in service", false),
    status("prospect", "見込", "Prospect", true),
    status("recall", "再コール", "Recall", true),
    status("complaint", "クレーム", "Complaint", true),
];

/// The fixed result with this key.
pub fn fixed(key: &str) -> Option<&'static Fixed> {
    FIXED.iter().find(|f| f.key == key)
}

/// CALLTREE's default statuses, in order.
pub fn default_statuses() -> impl Iterator<Item = &'static Fixed> {
    FIXED.iter().filter(|f| f.default_status)
}

/// Whether `result` (a fixed key or a result number) is one an agent may save on a wrap-up record
/// without looking the campaign's codes up: the system results and the default statuses.
pub fn is_fixed(result: &str) -> bool {
    fixed(result).is_some()
}

/// A fixed result that is a call but never a connect (不通, FAX, 現アナ).
pub fn is_no_connect(result: &str) -> bool {
    fixed(result).is_some_and(|f| f.default_status && !f.connect)
}

/// Whether `number` is a result number (番号) of the campaign.
pub async fn campaign_has_number(db: &crate::Db, tenant_id: i64, campaign_id: i64, number: i64) -> crate::Result<bool> {
    Ok(sqlx::query("SELECT 1 AS one FROM result_codes WHERE campaign_id = $1 AND number = $2 AND tenant_id = $3")
        .bind(campaign_id)
        .bind(number)
        .bind(tenant_id)
        .fetch_optional(&db.pool)
        .await?
        .is_some())
}

/// A numbered result of a campaign: its number and label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    pub number: i64,
    pub label: String,
}

/// The numbered results of one campaign, or of every campaign of the tenant, by number.
pub async fn numbered(db: &crate::Db, tenant_id: i64, campaign_id: Option<i64>) -> crate::Result<Vec<Numbered>> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT number, label FROM result_codes WHERE tenant_id = $1 AND ($2 = 0 OR campaign_id = $2) ORDER BY number, id",
    )
    .bind(tenant_id)
    .bind(campaign_id.unwrap_or(0))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(|r| Ok(Numbered { number: r.try_get("number")?, label: r.try_get("label")? })).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calltree_defaults_are_six_and_three_are_not_connects() {
        let keys: Vec<_> = default_statuses().map(|f| f.ja).collect();
        assert_eq!(keys, ["不通", "FAX", "現アナ", "見込", "再コール", "クレーム"]);
        let no: Vec<_> = FIXED.iter().filter(|f| is_no_connect(f.key)).map(|f| f.ja).collect();
        assert_eq!(no, ["不通", "FAX", "現アナ"]);
        assert!(!is_no_connect("busy") && !is_no_connect("7") && !is_fixed("7"));
        let mut seen = std::collections::HashSet::new();
        assert!(FIXED.iter().all(|f| seen.insert(f.key)), "keys are unique");
    }
}
