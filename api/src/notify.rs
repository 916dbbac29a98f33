//! Dialer notices: after a write that changes what the dialer hosts dial with (a call job started
//! or stopped; campaigns, call jobs, caller IDs, results or phones written), the API tells every
//! host on `kakeru:dialer:notices`, so that they read the tenant's configuration again at once
//! rather than poll for it. A notice that cannot be published is logged, not an error: the write
//! is committed, and the hosts' periodic reconcile picks it up.

use bus::Envelope;
use wire::{streams, DialerNotice};

use crate::AppState;

/// The notice a write to `table` calls for, if any.
pub fn for_table(table: &str) -> Option<DialerNotice> {
    match table {
        "campaigns" | "call_jobs" | "caller_ids" | "result_codes" => Some(DialerNotice::JobsChanged),
        "phones" => Some(DialerNotice::PhonesChanged),
        _ => None,
    }
}

/// Publishes `notice` for the tenant (see the module docs).
pub async fn dialers(st: &AppState, tenant: i64, notice: DialerNotice) {
    let Ok(t) = u64::try_from(tenant) else { return };
    let now = u64::try_from(store::now_ms()).unwrap_or(0);
    let env = match Envelope::new(t, now, &notice) {
        Ok(e) => e,
        Err(e) => return tracing::error!(error = %e, "encoding a dialer notice"),
    };
    if let Err(e) = st.config.commands.publish(&streams::dialer_notices(), &env).await {
        metrics::counter!("kakeru_api_dialer_notices_failed_total").increment(1);
        tracing::warn!(error = %e, ?notice, "a dialer notice could not be published; the dialers reconcile within a minute");
    }
}
