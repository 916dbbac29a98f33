//! The prepare step: an engine's [`PrepareRequest`] carried out against the database. It picks the
//! leads, checks them against the do-not-call list and writes their call records (before any
//! INVITE leaves), or the records of why not, in one transaction per step. The engine runs one
//! step at a time per tenant, so two of them never pick one number.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use store::dialing::{self, NewCall, NotDialled, RunningJob};
use store::Db;

use super::core::{PrepareKind, PrepareRequest, Prepared, PreparedDial, PreviewAsk, NO_REDIAL_AFTER_ABANDON_MS};

/// Carries out one prepare. `recordings_dir`: where this host records (`None`: not recorded).
pub async fn run(
    db: &Db,
    instance: &str,
    req: PrepareRequest,
    recordings_dir: Option<&Path>,
) -> Result<Prepared, store::StoreError> {
    let PrepareRequest { id, tenant, campaign, token, numbers, kind } = req;
    let fence = token.map(|t| dialing::Fence { campaign_id: i(campaign), holder: instance.to_string(), token: i(t) });
    let fence = fence.as_ref();
    let mut p = match kind {
        PrepareKind::Paced { jobs, start, k, predictive } => {
            paced(db, instance, fence, tenant, jobs, start, k, numbers, predictive).await?
        }
        PrepareKind::Preview { ask, all_jobs } => {
            preview(db, instance, fence, tenant, &ask, &all_jobs, &numbers).await?
        }
        PrepareKind::OwnedRecalls { job_ids, agents } => {
            let agents: Vec<i64> = agents.iter().map(|a| i(*a)).collect();
            let due = store::preview::owned_recalls_due(db, i(tenant), &job_ids, &agents, store::now_ms()).await?;
            let owned_recalls = due.into_iter().map(|r| (r.agent as u64, r.job_id, r.lead_id)).collect();
            Step { time_zone: String::new(), prepared: Prepared { owned_recalls, ..Prepared::default() } }
        }
    };
    p.id = id;
    if let Some(d) = recordings_dir.filter(|_| !p.dials.is_empty()) {
        p.recording_dir = recording_dir(d, tenant, &p.time_zone, store::now_ms()).await;
    }
    Ok(p.prepared)
}

/// A prepare's answer and the zone its recordings' day is cut in.
struct Step {
    prepared: Prepared,
    time_zone: String,
}

impl std::ops::Deref for Step {
    type Target = Prepared;
    fn deref(&self) -> &Prepared {
        &self.prepared
    }
}

impl std::ops::DerefMut for Step {
    fn deref_mut(&mut self) -> &mut Prepared {
        &mut self.prepared
    }
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Up to `k` leads over the campaign's jobs (round robin from `start`).
#[allow(clippy::too_many_arguments)]
async fn paced(
    db: &Db,
    instance: &str,
    fence: Option<&dialing::Fence>,
    tenant: u64,
    jobs: Vec<RunningJob>,
    start: usize,
    k: u32,
    mut numbers: HashSet<String>,
    predictive: bool,
) -> Result<Step, store::StoreError> {
    let now = store::now_ms();
    let mut picked: Vec<(RunningJob, store::leads::Candidate)> = Vec::new();
    let mut exhausted = Vec::new();
    let mut remaining = 0u64;
    let n = jobs.len().max(1);
    let mut want = i64::from(k);
    for off in 0..jobs.len() {
        let job = &jobs[(start + off) % n];
        let mut f = job.filter.clone();
        f.not_attempted_since = job.started_at;
        f.period_day = Some(store::tenancy::local_day(&job.time_zone, now));
        if predictive {
            f.not_abandoned_since = Some(now - NO_REDIAL_AFTER_ABANDON_MS);
        }
        if want > 0 {
            // Ask for more than needed: some numbers may be in flight already.
            let ask = want + numbers.len().min(1000) as i64;
            let cands = store::leads::next_dialable(db, i(tenant), job.job_id, &f, now, ask).await?;
            let got = cands.len() as i64;
            for c in cands {
                if want == 0 {
                    break;
                }
                if numbers.insert(c.tel.clone()) {
                    picked.push((job.clone(), c));
                    want -= 1;
                }
            }
            if got < ask && want > 0 {
                exhausted.push(job.job_id);
            }
        }
        remaining += store::leads::count_dialable(db, i(tenant), job.job_id, &f).await?.max(0) as u64;
    }
    let tels: Vec<String> = picked.iter().map(|(_, c)| c.tel.clone()).collect();
    let dnc = dialing::dnc_hits(db, i(tenant), &tels).await?;
    let mut calls = Vec::new();
    let mut not_dialled = Vec::new();
    for (job, c) in picked {
        if dnc.contains(&c.tel) {
            not_dialled.push(NotDialled {
                campaign_id: job.campaign_id,
                job_id: job.job_id,
                lead: c,
                caller_id: job.caller_id.clone(),
                result: "restricted",
            });
        } else {
            calls.push(NewCall {
                campaign_id: job.campaign_id,
                job_id: job.job_id,
                lead: c,
                caller_id: job.caller_id.clone(),
            });
        }
    }
    // A lead claimed by another host since it was picked, or past a channel limit counted over
    // every host, is left as it is.
    let ids = dialing::begin_calls(db, i(tenant), instance, now, &calls, &not_dialled, fence).await?;
    let dials: Vec<PreparedDial> = ids
        .into_iter()
        .zip(calls)
        .filter_map(|(id, c)| {
            id.map(|id| PreparedDial { call: id as u64, job: c.job_id, lead: c.lead, caller_id: c.caller_id })
        })
        .collect();
    remaining = remaining.saturating_sub(dials.len() as u64);
    Ok(Step {
        time_zone: jobs.first().map(|j| j.time_zone.clone()).unwrap_or_default(),
        prepared: Prepared {
            restricted: not_dialled.len(),
            dials,
            exhausted,
            remaining: Some(remaining),
            ..Prepared::default()
        },
    })
}

/// One preview dial: the lead still dialable by the job and held by the agent, its number not in a
/// call, not on the do-not-call list, no channel limit reached; then its call record (or the
/// record of why not) in one transaction, as for paced dials.
async fn preview(
    db: &Db,
    instance: &str,
    fence: Option<&dialing::Fence>,
    tenant: u64,
    ask: &PreviewAsk,
    all_jobs: &[RunningJob],
    numbers: &HashSet<String>,
) -> Result<Step, store::StoreError> {
    let now = store::now_ms();
    let job = &ask.job;
    let mut remaining = 0u64;
    for j in all_jobs {
        let mut f = j.filter.clone();
        f.not_attempted_since = j.started_at;
        f.period_day = Some(store::tenancy::local_day(&j.time_zone, now));
        remaining += store::leads::count_dialable(db, i(tenant), j.job_id, &f).await?.max(0) as u64;
    }
    let mut p = Step {
        time_zone: job.time_zone.clone(),
        prepared: Prepared { remaining: Some(remaining), ..Prepared::default() },
    };
    let cand =
        store::preview::candidate(db, i(tenant), job.job_id, i(ask.agent), ask.lead, job.started_at, now).await?;
    let Some(c) = cand else {
        p.not_placed = Some("lead_not_dialable");
        return Ok(p);
    };
    if numbers.contains(&c.tel) {
        p.not_placed = Some("number_in_call");
        return Ok(p);
    }
    let restricted = !dialing::dnc_hits(db, i(tenant), std::slice::from_ref(&c.tel)).await?.is_empty();
    let result = if restricted {
        Some("restricted")
    } else if ask.limit_reached {
        Some("channel_limit")
    } else {
        None
    };
    if let Some(result) = result {
        let n = NotDialled {
            campaign_id: job.campaign_id,
            job_id: job.job_id,
            lead: c,
            caller_id: job.caller_id.clone(),
            result,
        };
        dialing::begin_calls(db, i(tenant), instance, now, &[], &[n], fence).await?;
        p.restricted = usize::from(restricted);
        p.not_placed = Some(result);
        return Ok(p);
    }
    let call = NewCall { campaign_id: job.campaign_id, job_id: job.job_id, lead: c, caller_id: job.caller_id.clone() };
    let ids = dialing::begin_calls(db, i(tenant), instance, now, std::slice::from_ref(&call), &[], fence).await?;
    if ids.first().is_some_and(Option::is_none) {
        // Taken by another dial since it was checked, or a channel limit reached on another host.
        p.not_placed = Some("lead_not_dialable");
        return Ok(p);
    }
    p.dials = ids
        .into_iter()
        .flatten()
        .map(|id| PreparedDial {
            call: id as u64,
            job: call.job_id,
            lead: call.lead.clone(),
            caller_id: call.caller_id.clone(),
        })
        .collect();
    p.remaining = p.remaining.map(|n| n.saturating_sub(1));
    Ok(p)
}

/// Today's recordings directory of a tenant (created), in the store's layout
/// `<dir>/<tenant>/<YYYY-MM-DD>/<call>.wav`; `None` (calls not recorded) when it cannot be made.
async fn recording_dir(d: &Path, tenant: u64, time_zone: &str, now: i64) -> Option<PathBuf> {
    let tz = store::tenancy::parse_tz(time_zone).unwrap_or(chrono_tz::Asia::Tokyo);
    let file = store::recordings::recording_path(d, i(tenant), tz, now, 0);
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_else(|| d.to_path_buf());
    match tokio::fs::create_dir_all(&dir).await {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "recordings directory unusable; calls not recorded");
            None
        }
    }
}
