//! The engine core under virtual time: no socket, no database, no clock. A [`Sim`] plays the
//! world around one tenant's [`Engine`]: an in-memory lead store answering its prepares (with a
//! do-not-call list), a scripted carrier answering its dials by the number's last digit, and a
//! small stand-in for control that offers answered customers to ready agents and walks them
//! through talk and wrap-up. Every step checks the channel limits.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialer::calls::{CallEnd, CallEvent, CancelReason, Command, DtmfEntry, EndCause, Now, Party};
use dialer::engine::core::{
    CoreConfig, Engine, Input, JobConfig, Output, PrepareKind, PrepareRequest, Prepared, PreparedDial, RecoveredAgent,
    Write,
};
use store::dialing::RunningJob;
use store::leads::{Candidate, JobFilter};
use wire::agent::{AgentId, AgentState, CallId, Cause, Command as Ctl, Event, Transition};
use wire::{CallJobId, CallerIdId, CampaignId, Keyed, LeadId, ShardEvent, SystemResult};

const TENANT: u64 = 1;
/// 2026-12-07 10:00 in Tokyo (01:00 UTC).
const T0_UNIX_MS: u64 = 1_796_605_200_000;

/// What the carrier does with a number, by its last digit.
#[derive(Clone, Copy, Debug)]
enum Line {
    /// Answers after the first, the customer hangs up after the second (if bridged).
    Answer(u64, u64),
    /// A final failure status after this long.
    Fail(u16, u64),
    /// Rings until cancelled.
    Ring,
}

fn line(tel: &str) -> Line {
    match tel.chars().last().and_then(|c| c.to_digit(10)).unwrap_or(0) {
        4 => Line::Fail(486, 300),
        5 => Line::Fail(603, 300),
        7 => Line::Ring,
        _ => Line::Answer(2_000, 5_000),
    }
}

#[derive(Debug)]
enum Ev {
    Answer(u64),
    Fail(u64, u16),
    RingTimeout(u64),
    CustomerHangsUp(u64),
    WrapDone(u64),
    /// The stand-in for control offers waiting customers again.
    Offer,
}

struct Job {
    job: RunningJob,
    leads: Vec<(i64, String)>,
}

/// The world around one engine. See the module docs.
struct Sim {
    engine: Engine,
    t_ms: u64,
    base: Instant,
    events: BinaryHeap<Reverse<(u64, u64, usize)>>,
    payloads: Vec<Option<Ev>>,
    seq: u64,
    jobs: Vec<Job>,
    dnc: HashSet<String>,
    /// Leads dialled (or given a result without a dial) in this run.
    attempted: HashSet<i64>,
    next_call: u64,
    /// Live calls: tel, campaign, answered, the agent bridged.
    calls: BTreeMap<u64, (String, u64, bool, Option<u64>)>,
    ring_timeout_ms: u64,
    /// Calls each number got from the carrier.
    dialled: HashMap<String, usize>,
    agents: BTreeMap<u64, AgentState>,
    waiting: Vec<u64>,
    /// Automatically answer prepares (off: the test answers them).
    auto_prepare: bool,
    pending_prepares: Vec<PrepareRequest>,
    published: Vec<ShardEvent>,
    /// What the agents' pages were told.
    notices: Vec<wire::AgentNotice>,
    writes: Vec<Write>,
    commands: Vec<Command>,
    max_in_flight: HashMap<u64, usize>,
    limits: HashMap<u64, usize>,
    /// Due recalls agents own: (agent, job, lead).
    owned: Vec<(u64, i64, i64)>,
}

fn running_job(job_id: i64, campaign: i64, mode: &str, max_channels: i64) -> RunningJob {
    RunningJob {
        tenant_id: TENANT as i64,
        time_zone: "Asia/Tokyo".into(),
        job_id,
        campaign_id: campaign,
        dialing_group_id: 1,
        started_at: Some(T0_UNIX_MS as i64),
        filter: JobFilter {
            campaign_id: campaign,
            phone_type: None,
            attempts_min: 0,
            attempts_max: None,
            last_attempt_from: None,
            last_attempt_to: None,
            last_attempt_band: None,
            not_attempted_since: None,
            not_abandoned_since: None,
            period_day: None,
            preview: None,
        },
        caller_id: Some("0312345678".into()),
        mode: mode.into(),
        dial_ratio: 1.0,
        max_channels,
        ring_timeout_s: 20,
        agent_wait_timeout_s: 20,
        waiting_audio: None,
        dtmf_result_entry: true,
        business_start: "09:00".into(),
        business_end: "18:00".into(),
        abandon_target_pct: 3.0,
        campaign_enabled: true,
        national_holidays: true,
        closed_days: Vec::new(),
    }
}

impl Sim {
    fn new(jobs: Vec<(RunningJob, usize)>) -> Sim {
        let cfg = CoreConfig { shards: 2, ..CoreConfig::default() };
        let mut next_lead = 1;
        let jobs: Vec<Job> = jobs
            .into_iter()
            .map(|(job, n)| {
                let leads = (0..n)
                    .map(|_| {
                        let id = next_lead;
                        next_lead += 1;
                        (id, format!("0900000{id:04}"))
                    })
                    .collect();
                Job { job, leads }
            })
            .collect();
        let limits = jobs.iter().map(|j| (j.job.campaign_id as u64, j.job.max_channels as usize)).collect();
        let mut sim = Sim {
            engine: Engine::new(TENANT, Arc::new(cfg)),
            t_ms: 0,
            base: Instant::now(),
            events: BinaryHeap::new(),
            payloads: Vec::new(),
            seq: 0,
            jobs,
            dnc: HashSet::new(),
            attempted: HashSet::new(),
            next_call: 1000,
            calls: BTreeMap::new(),
            ring_timeout_ms: 20_000,
            dialled: HashMap::new(),
            agents: BTreeMap::new(),
            waiting: Vec::new(),
            auto_prepare: true,
            pending_prepares: Vec::new(),
            published: Vec::new(),
            notices: Vec::new(),
            writes: Vec::new(),
            commands: Vec::new(),
            max_in_flight: HashMap::new(),
            limits,
            owned: Vec::new(),
        };
        let jobs = sim.job_configs();
        sim.input(Input::Jobs(jobs));
        sim
    }

    fn job_configs(&self) -> Vec<JobConfig> {
        self.jobs
            .iter()
            .map(|j| JobConfig { job: j.job.clone(), waiting_audio: None, result_numbers: vec![1, 2, 3] })
            .collect()
    }

    fn now(&self) -> Now {
        Now { mono: self.base + Duration::from_millis(self.t_ms), unix_ms: T0_UNIX_MS + self.t_ms }
    }

    fn at(&mut self, after_ms: u64, ev: Ev) {
        self.seq += 1;
        self.payloads.push(Some(ev));
        self.events.push(Reverse((self.t_ms + after_ms, self.seq, self.payloads.len() - 1)));
    }

    fn input(&mut self, input: Input) {
        let now = self.now();
        self.engine.handle_input(now, input);
        self.drain();
    }

    /// Logs agents in to campaign `campaign` and makes them ready (as control's transitions do).
    fn agents_ready(&mut self, campaign: u64, ids: &[u64]) {
        for &a in ids {
            // The agent's phone registers, then the agent starts the job (the nailed-up leg).
            self.shard(CallEvent::Registered {
                tenant_id: TENANT,
                user_id: Some(a),
                username: format!("agent{a}"),
                contact: format!("sip:agent{a}@127.0.0.9:5070"),
                source: "127.0.0.9:5070".parse().expect("address"),
                expires_s: 3600,
            });
            self.input(Input::Agent(Event::Command(Ctl::DialAgentLeg {
                agent_id: AgentId(a),
                campaign_id: Some(CampaignId(campaign)),
            })));
            self.transition(a, AgentState::Ready, None);
        }
    }

    fn transition(&mut self, agent: u64, to: AgentState, call: Option<u64>) {
        let from = self.agents.get(&agent).copied().unwrap_or(AgentState::Offline);
        self.agents.insert(agent, to);
        let t = Transition {
            agent_id: AgentId(agent),
            from,
            to,
            at_ms: self.now().unix_ms,
            cause: Cause::GoReady,
            call_id: call.map(CallId),
            lead_id: None,
            not_dialled: None,
        };
        self.input(Input::Agent(Event::Transition(t)));
    }

    /// Carries out the engine's outputs the way the world would.
    fn drain(&mut self) {
        loop {
            match self.engine.poll_output() {
                Output::Timeout(_) => break,
                Output::Shard { command, .. } => self.on_command(command),
                Output::Publish { tenant, event } => {
                    assert_eq!(tenant, TENANT);
                    if let ShardEvent::CustomerAnswered { call_id, .. } = &event {
                        self.waiting.push(call_id.0);
                        self.at(0, Ev::Offer);
                    }
                    self.published.push(event);
                }
                Output::Write { tenant, write } => {
                    assert_eq!(tenant, TENANT);
                    self.writes.push(write);
                }
                Output::Notice { tenant, notice } => {
                    assert_eq!(tenant, TENANT);
                    self.notices.push(notice);
                }
                Output::ReadRegistrations { tenant } => assert_eq!(tenant, TENANT),
                Output::Prepare(req) => {
                    assert_eq!(req.tenant, TENANT);
                    assert!(self.pending_prepares.is_empty(), "two prepares at once for one tenant");
                    self.pending_prepares.push(*req);
                }
            }
        }
        if self.auto_prepare {
            while let Some(req) = self.pending_prepares.pop() {
                let p = self.answer(&req);
                self.input(Input::Prepared(p));
            }
        }
        self.check_limits();
    }

    fn check_limits(&mut self) {
        let mut per: HashMap<u64, usize> = HashMap::new();
        for (_, c, _, _) in self.calls.values() {
            *per.entry(*c).or_default() += 1;
        }
        for (c, n) in per {
            let m = self.max_in_flight.entry(c).or_default();
            *m = (*m).max(n);
            if let Some(limit) = self.limits.get(&c) {
                assert!(n <= *limit, "campaign {c}: {n} calls in flight over its limit {limit}");
            }
        }
    }

    /// The lead store's answer to a prepare.
    fn answer(&mut self, req: &PrepareRequest) -> Prepared {
        let mut p = Prepared { id: req.id, ..Prepared::default() };
        let mut numbers = req.numbers.clone();
        match &req.kind {
            PrepareKind::Paced { jobs, k, .. } => {
                let mut want = *k as usize;
                for rj in jobs {
                    let job = self.jobs.iter().find(|j| j.job.job_id == rj.job_id).expect("known job");
                    let leads: Vec<(i64, String)> =
                        job.leads.iter().filter(|(id, _)| !self.attempted.contains(id)).cloned().collect();
                    let mut got = 0;
                    for (id, tel) in leads {
                        if want == 0 {
                            break;
                        }
                        if numbers.contains(&tel) {
                            continue;
                        }
                        got += 1;
                        self.attempted.insert(id);
                        numbers.insert(tel.clone());
                        if self.dnc.contains(&tel) {
                            p.restricted += 1;
                            continue;
                        }
                        want -= 1;
                        self.next_call += 1;
                        p.dials.push(PreparedDial {
                            call: self.next_call,
                            job: rj.job_id,
                            lead: Candidate { lead_id: id, tel, recall_id: None },
                            caller_id: rj.caller_id.clone(),
                        });
                    }
                    if want > 0 && got < *k as usize {
                        p.exhausted.push(rj.job_id);
                    }
                }
                // As the store counts them after the dials began: the jobs' leads not attempted.
                let left = jobs
                    .iter()
                    .filter_map(|rj| self.jobs.iter().find(|j| j.job.job_id == rj.job_id))
                    .flat_map(|j| j.leads.iter())
                    .filter(|(id, _)| !self.attempted.contains(id))
                    .count();
                p.remaining = Some(left as u64);
            }
            PrepareKind::OwnedRecalls { job_ids, agents } => {
                p.owned_recalls =
                    self.owned.iter().filter(|(a, j, _)| agents.contains(a) && job_ids.contains(j)).copied().collect();
            }
            PrepareKind::Preview { ask, .. } => {
                let job = self.jobs.iter().find(|j| j.job.job_id == ask.job.job_id).expect("known job");
                let lead = job.leads.iter().find(|(id, _)| *id == ask.lead).cloned();
                match lead {
                    None => p.not_placed = Some("lead_not_dialable"),
                    Some((_, tel)) if numbers.contains(&tel) => p.not_placed = Some("number_in_call"),
                    Some((id, tel)) if self.dnc.contains(&tel) => {
                        self.attempted.insert(id);
                        p.restricted = 1;
                        p.not_placed = Some("restricted");
                    }
                    Some(_) if ask.limit_reached => p.not_placed = Some("channel_limit"),
                    Some((id, tel)) => {
                        self.attempted.insert(id);
                        self.next_call += 1;
                        p.dials.push(PreparedDial {
                            call: self.next_call,
                            job: ask.job.job_id,
                            lead: Candidate { lead_id: id, tel, recall_id: None },
                            caller_id: ask.job.caller_id.clone(),
                        });
                    }
                }
            }
        }
        p
    }

    /// The shard and the carrier.
    fn on_command(&mut self, cmd: Command) {
        self.commands.push(cmd.clone());
        match cmd {
            Command::DialCustomer(d) => {
                *self.dialled.entry(d.tel.clone()).or_default() += 1;
                let campaign = self
                    .jobs
                    .iter()
                    .find(|j| j.leads.iter().any(|(_, t)| *t == d.tel))
                    .map(|j| j.job.campaign_id as u64)
                    .expect("a dialled number is a lead's");
                self.calls.insert(d.call, (d.tel.clone(), campaign, false, None));
                match line(&d.tel) {
                    Line::Answer(after, _) => self.at(after, Ev::Answer(d.call)),
                    Line::Fail(status, after) => self.at(after, Ev::Fail(d.call, status)),
                    Line::Ring => {}
                }
                let timeout = self.ring_timeout_ms;
                self.at(timeout, Ev::RingTimeout(d.call));
            }
            Command::Bridge { call, agent } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.3 = Some(agent);
                    let talk = match line(&c.0) {
                        Line::Answer(_, talk) => talk,
                        _ => 1_000,
                    };
                    self.shard(CallEvent::Bridged { call, agent });
                    self.transition(agent, AgentState::Talking, Some(call));
                    self.at(talk, Ev::CustomerHangsUp(call));
                }
            }
            Command::Cancel { call, reason } => {
                if self.calls.get(&call).is_some_and(|c| !c.2) {
                    self.end(call, 487, EndCause::Cancelled(reason), false, None);
                }
            }
            Command::HangUpCustomer { call, by } => {
                if let Some(c) = self.calls.get(&call).cloned() {
                    let cause =
                        if c.3.is_some() { EndCause::Completed } else { EndCause::Cancelled(CancelReason::HungUp) };
                    let _ = by;
                    self.end(call, 200, cause, c.2, c.3);
                }
            }
            Command::Abandon { call } => self.end(call, 200, EndCause::Abandoned, true, None),
            Command::DialAgent(d) => {
                self.shard(CallEvent::AgentLegUp { agent: d.agent });
            }
            Command::HangUpAgent { agent } => self.shard(CallEvent::AgentLegDown { agent }),
            Command::Unbridge { .. }
            | Command::SetAccounts(_)
            | Command::SetNonceKeys(_)
            | Command::Supervise(_)
            | Command::EndSupervision { .. }
            | Command::Hold { .. }
            | Command::Park { .. }
            | Command::DialBrowser(_)
            | Command::TransferOutside(_)
            | Command::Conference(_)
            | Command::EndConference { .. }
            | Command::LeaveConference { .. } => {}
        }
    }

    fn shard(&mut self, event: CallEvent) {
        self.input(Input::Shard { shard: 0, event });
    }

    fn end(&mut self, call: u64, status: u16, cause: EndCause, answered: bool, agent: Option<u64>) {
        if self.calls.remove(&call).is_none() {
            return;
        }
        self.waiting.retain(|c| *c != call);
        let end = CallEnd {
            status,
            reason: String::new(),
            cause,
            ended_by: Party::Customer,
            answered,
            agent,
            ring_ms: 0,
            wait_ms: 0,
            talk_ms: 0,
        };
        self.shard(CallEvent::CustomerEnded { call, end });
        if let Some(a) = agent {
            self.transition(a, AgentState::WrapUp, Some(call));
            self.at(1_000, Ev::WrapDone(a));
        }
    }

    fn on_event(&mut self, ev: Ev) {
        match ev {
            Ev::Answer(call) => {
                if let Some(c) = self.calls.get_mut(&call) {
                    if !c.2 {
                        c.2 = true;
                        self.shard(CallEvent::CustomerAnswered { call, ring_ms: 2_000 });
                    }
                }
            }
            Ev::Fail(call, status) => {
                if self.calls.get(&call).is_some_and(|c| !c.2) {
                    self.end(call, status, EndCause::Rejected, false, None);
                }
            }
            Ev::RingTimeout(call) => {
                if self.calls.get(&call).is_some_and(|c| !c.2) {
                    self.end(call, 487, EndCause::Cancelled(CancelReason::RingTimeout), false, None);
                }
            }
            Ev::CustomerHangsUp(call) => {
                if let Some(c) = self.calls.get(&call).cloned() {
                    self.end(call, 200, EndCause::Completed, true, c.3);
                }
            }
            Ev::WrapDone(agent) => {
                if self.agents.get(&agent) == Some(&AgentState::WrapUp) {
                    self.transition(agent, AgentState::Ready, None);
                    self.at(0, Ev::Offer);
                }
            }
            Ev::Offer => {
                // Control's match: the longest waiting customer to a ready agent.
                while let Some(&call) = self.waiting.first() {
                    let Some(agent) = self.agents.iter().find(|(_, s)| **s == AgentState::Ready).map(|(a, _)| *a)
                    else {
                        break;
                    };
                    self.waiting.remove(0);
                    self.transition(agent, AgentState::Ringing, Some(call));
                    self.input(Input::Agent(Event::Command(Ctl::Bridge {
                        agent_id: AgentId(agent),
                        call_id: CallId(call),
                    })));
                }
            }
        }
    }

    /// Runs the world for `ms` of virtual time.
    fn run_for(&mut self, ms: u64) {
        let end = self.t_ms + ms;
        loop {
            let next_event = self.events.peek().map(|Reverse((t, _, _))| *t);
            let next_timer = {
                let d = self.engine.poll_timeout().saturating_duration_since(self.base);
                d.as_millis() as u64
            };
            let t = next_event.unwrap_or(u64::MAX).min(next_timer).max(self.t_ms);
            if t > end {
                self.t_ms = end;
                return;
            }
            self.t_ms = t;
            if next_event == Some(t) {
                let Some(Reverse((_, _, i))) = self.events.pop() else { continue };
                if let Some(ev) = self.payloads[i].take() {
                    self.on_event(ev);
                }
            } else {
                let now = self.now();
                self.engine.handle_timeout(now);
                self.drain();
            }
        }
    }

    fn results(&self) -> HashMap<u64, &'static str> {
        let mut out = HashMap::new();
        for w in &self.writes {
            if let Write::Results(r) = w {
                for r in r {
                    out.insert(r.call_id as u64, r.result);
                }
            }
        }
        out
    }

    fn finished_jobs(&self) -> Vec<i64> {
        self.writes
            .iter()
            .filter_map(|w| match w {
                Write::EndJob { job, .. } => Some(*job),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn progressive_dials_every_lead_once_and_the_job_finishes() {
    let mut sim = Sim::new(vec![(running_job(1, 10, "progressive", 50), 30)]);
    sim.dnc.insert("09000000003".into());
    sim.agents_ready(10, &[1, 2, 3]);
    sim.run_for(600_000);
    // Every lead but the do-not-call one reached the carrier exactly once.
    let leads: Vec<String> = sim.jobs[0].leads.iter().map(|(_, t)| t.clone()).collect();
    for tel in &leads {
        let n = sim.dialled.get(tel).copied().unwrap_or(0);
        if sim.dnc.contains(tel) {
            assert_eq!(n, 0, "a do-not-call number was dialled: {tel}");
        } else {
            assert_eq!(n, 1, "{tel}");
        }
    }
    assert_eq!(sim.engine.stats().restricted, 1);
    // Progressive: never more calls ringing or waiting than ready agents (3).
    assert!(sim.max_in_flight[&10] <= 3 + 3, "{:?}", sim.max_in_flight);
    // Every call has its result: busy (486), cancel (603, SPEC 4), timeout (ring), no_entry.
    let results = sim.results();
    assert_eq!(results.len(), leads.len() - 1);
    for d in sim.commands.iter().filter_map(|c| match c {
        Command::DialCustomer(d) => Some(d),
        _ => None,
    }) {
        let want = match line(&d.tel) {
            Line::Fail(486, _) => "busy",
            Line::Fail(603, _) => "cancel",
            Line::Ring => "timeout",
            _ => "no_entry",
        };
        assert_eq!(results.get(&d.call).copied(), Some(want), "{}", d.tel);
    }
    // The result travels on call_ended: the same as written.
    for ev in &sim.published {
        if let ShardEvent::CallEnded { call_id, result, .. } = ev {
            assert_eq!(Some(result.as_str()), results.get(&call_id.0).copied());
        }
    }
    assert_eq!(sim.finished_jobs(), vec![1]);
}

#[test]
fn channel_limits_hold_for_the_campaign_and_the_shared_caller_id() {
    // Two campaigns, one caller ID limited to 3 channels; each campaign allows 4.
    let mut a = running_job(1, 10, "progressive", 4);
    let mut b = running_job(2, 11, "progressive", 4);
    a.ring_timeout_s = 60;
    b.ring_timeout_s = 60;
    let mut sim = Sim::new(vec![(a, 40), (b, 40)]);
    sim.limits.insert(10, 4);
    sim.limits.insert(11, 4);
    sim.input(Input::CallerLimits(HashMap::from([("0312345678".to_string(), 3)])));
    sim.agents_ready(10, &[1, 2, 3, 4, 5, 6]);
    sim.agents_ready(11, &[7, 8, 9, 10, 11, 12]);
    let mut worst = 0;
    for _ in 0..600 {
        sim.run_for(500);
        let n = sim.calls.len();
        worst = worst.max(n);
        assert!(n <= 3, "the caller ID's limit: {n} calls at once");
    }
    assert_eq!(worst, 3, "the limit is reached, not just respected");
}

#[test]
fn dials_only_within_business_hours_and_calls_in_progress_finish() {
    let mut job = running_job(1, 10, "progressive", 10);
    job.business_start = "10:00".into();
    job.business_end = "10:05".into();
    let mut sim = Sim::new(vec![(job, 200)]);
    sim.agents_ready(10, &[1, 2]);
    // 10:00 to 10:05 Tokyo: dials; the last ones still end with their results.
    sim.run_for(5 * 60_000 - 1);
    let dialled_in_hours = sim.dialled.len();
    assert!(dialled_in_hours > 10, "dials inside the hours: {dialled_in_hours}");
    sim.run_for(10 * 60_000);
    assert_eq!(sim.dialled.len(), dialled_in_hours, "no dial after the end of business hours");
    assert!(sim.calls.is_empty(), "calls in progress at the end finished");
    assert_eq!(sim.results().len(), dialled_in_hours, "each with its result");
    // BIZTEL §3.2: at business end the job is stopped (once), and no call in progress is cut.
    let ends: Vec<(i64, &str)> = sim
        .writes
        .iter()
        .filter_map(|w| match w {
            Write::EndJob { job, status } => Some((*job, *status)),
            _ => None,
        })
        .collect();
    assert_eq!(ends, vec![(1, "stopped")], "the job stops at business end");
    assert!(sim.results().values().all(|r| *r != "stopped"), "no call in progress was cut: {:?}", sim.results());
}

#[test]
fn no_dial_on_a_closed_day() {
    let mut job = running_job(1, 10, "progressive", 10);
    // 2026-12-07, the day of T0: one of the tenant's own closed dates.
    job.closed_days = vec!["2026-12-07".into()];
    let mut sim = Sim::new(vec![(job.clone(), 20)]);
    sim.agents_ready(10, &[1]);
    sim.run_for(30 * 60_000);
    assert!(sim.dialled.is_empty(), "dialled on a closed day");
    // National holidays count where the tenant keeps them: 2026-11-03 (文化の日).
    let holiday = T0_UNIX_MS - 34 * 86_400_000;
    assert!(!dialer::engine::core::in_business_hours(&job, holiday));
    job.closed_days.clear();
    assert!(dialer::engine::core::in_business_hours(&job, T0_UNIX_MS));
    assert!(!dialer::engine::core::in_business_hours(&job, holiday));
    job.national_holidays = false;
    assert!(dialer::engine::core::in_business_hours(&job, holiday));
}

#[test]
fn a_job_started_before_business_hours_stops_at_their_end_that_day() {
    let mut job = running_job(1, 10, "progressive", 10);
    // Started 10:00 Tokyo; hours 10:30-10:40 that day.
    job.business_start = "10:30".into();
    job.business_end = "10:40".into();
    assert_eq!(dialer::engine::core::business_end_after_start(&job), Some(T0_UNIX_MS + 40 * 60_000));
    // Started after the end (by hand in the database): the next day's end.
    job.started_at = Some((T0_UNIX_MS + 50 * 60_000) as i64);
    assert_eq!(dialer::engine::core::business_end_after_start(&job), Some(T0_UNIX_MS + 40 * 60_000 + 86_400_000));
    job.started_at = None;
    assert_eq!(dialer::engine::core::business_end_after_start(&job), None);
}

#[test]
fn a_job_before_business_hours_waits_for_them() {
    let mut job = running_job(1, 10, "progressive", 10);
    job.business_start = "10:30".into();
    let mut sim = Sim::new(vec![(job, 20)]);
    sim.agents_ready(10, &[1]);
    sim.run_for(29 * 60_000);
    assert!(sim.dialled.is_empty(), "dialled before business start");
    sim.run_for(2 * 60_000);
    assert!(!sim.dialled.is_empty(), "dials from business start");
}

#[test]
fn preview_dials_only_what_the_agent_asks() {
    let mut sim = Sim::new(vec![(running_job(1, 10, "preview", 10), 10)]);
    sim.dnc.insert("09000000002".into());
    sim.agents_ready(10, &[1]);
    sim.run_for(10_000);
    assert!(sim.dialled.is_empty(), "the preview pacer never launches");
    let ask = |lead: u64| {
        Input::Agent(Event::Command(Ctl::DialPreview {
            agent_id: AgentId(1),
            campaign_id: CampaignId(10),
            call_job_id: CallJobId(1),
            lead_id: LeadId(lead),
            caller_id: None,
        }))
    };
    sim.input(ask(1));
    sim.run_for(1);
    assert_eq!(sim.dialled.len(), 1);
    // Placed: control learns it before any event of the call.
    let placed = sim.published.iter().position(|e| matches!(e, ShardEvent::PreviewPlaced { lead_id: LeadId(1), .. }));
    let answered = sim.published.iter().position(|e| matches!(e, ShardEvent::CustomerAnswered { .. }));
    assert!(placed.is_some() && answered.is_none_or(|a| a > placed.unwrap_or(0)));
    // A do-not-call lead: 発信規制, no call.
    sim.input(ask(2));
    assert!(sim.published.iter().any(
        |e| matches!(e, ShardEvent::PreviewNotDialled { lead_id: LeadId(2), result, .. } if result == "restricted")
    ));
    assert_eq!(sim.dialled.len(), 1);
    // An unknown lead, a job that is not running.
    sim.input(ask(99));
    assert!(sim.published.iter().any(|e| matches!(e, ShardEvent::PreviewNotDialled { lead_id: LeadId(99), result, .. } if result == "lead_not_dialable")));
    sim.input(Input::Agent(Event::Command(Ctl::DialPreview {
        agent_id: AgentId(1),
        campaign_id: CampaignId(10),
        call_job_id: CallJobId(7),
        lead_id: LeadId(3),
        caller_id: None,
    })));
    assert!(sim.published.iter().any(
        |e| matches!(e, ShardEvent::PreviewNotDialled { lead_id: LeadId(3), result, .. } if result == "job_not_running")
    ));
}

/// Agent `agent` of campaign 10 dials lead `lead` of job 1 (its preview).
fn preview_ask(agent: u64, lead: u64) -> Input {
    manual_dial(agent, lead, None)
}

#[test]
fn preview_outside_business_hours_and_at_the_channel_limit() {
    let mut job = running_job(1, 10, "preview", 1);
    job.business_start = "11:00".into();
    let mut sim = Sim::new(vec![(job, 10)]);
    sim.agents_ready(10, &[1, 2]);
    let ask = preview_ask;
    sim.input(ask(1, 1));
    assert!(sim
        .published
        .iter()
        .any(|e| matches!(e, ShardEvent::PreviewNotDialled { result, .. } if result == "outside_hours")));
    sim.run_for(60 * 60_000);
    // 11:00: one channel; the first dial takes it, the second is recorded channel_limit.
    sim.auto_prepare = false;
    sim.input(ask(1, 7));
    sim.input(ask(2, 8));
    assert_eq!(sim.pending_prepares.len(), 1, "one prepare at a time");
    let first = sim.pending_prepares.remove(0);
    let p = sim.answer(&first);
    sim.input(Input::Prepared(p));
    let second = sim.pending_prepares.remove(0);
    match &second.kind {
        PrepareKind::Preview { ask, .. } => assert!(ask.limit_reached, "the channel was counted while being prepared"),
        k => panic!("{k:?}"),
    }
}

/// Agent `agent` of campaign 10 dials lead `lead` of job 1 from caller ID `cid` (its 発番号; `None`:
/// the job's own).
fn manual_dial(agent: u64, lead: u64, cid: Option<u64>) -> Input {
    Input::Agent(Event::Command(Ctl::DialPreview {
        agent_id: AgentId(agent),
        campaign_id: CampaignId(10),
        call_job_id: CallJobId(1),
        lead_id: LeadId(lead),
        caller_id: cid.map(CallerIdId),
    }))
}

#[test]
fn a_manual_dial_goes_out_with_the_caller_id_the_agent_chose_under_that_numbers_limit() {
    let mut sim = Sim::new(vec![(running_job(1, 10, "preview", 10), 20)]);
    sim.input(Input::CallerLimits(HashMap::from([("0399990000".to_string(), 1)])));
    sim.input(Input::CallerIds(HashMap::from([(5, "0399990000".to_string())])));
    sim.agents_ready(10, &[1, 2, 3]);
    let ask = manual_dial;
    let from = |sim: &Sim, tel: &str| {
        sim.commands.iter().find_map(|c| match c {
            Command::DialCustomer(d) if d.tel == tel => Some(d.caller_id.clone()),
            _ => None,
        })
    };
    let refused = |sim: &Sim, lead: u64| {
        sim.published.iter().find_map(|e| match e {
            ShardEvent::PreviewNotDialled { lead_id, result, .. } if *lead_id == LeadId(lead) => Some(result.clone()),
            _ => None,
        })
    };
    // Agent 1 dials lead 7 (it rings on) from caller ID 5: the carrier is offered that number.
    sim.input(ask(1, 7, Some(5)));
    sim.run_for(1);
    assert_eq!(from(&sim, "09000000007"), Some(Some("0399990000".to_string())));
    // Agent 2 picks the same number: its one channel is in use, so no dial (チャンネル制限).
    sim.input(ask(2, 17, Some(5)));
    sim.run_for(1);
    assert_eq!(refused(&sim, 17).as_deref(), Some("channel_limit"));
    assert_eq!(from(&sim, "09000000017"), None, "dialled past the caller ID's limit");
    // From the job's own number instead, the same lead goes out.
    sim.input(ask(2, 17, None));
    sim.run_for(1);
    assert_eq!(from(&sim, "09000000017"), Some(Some("0312345678".to_string())));
    // A caller ID the engine does not know (deleted since the page listed it): no dial, said why.
    sim.input(ask(3, 8, Some(9)));
    sim.run_for(1);
    assert_eq!(refused(&sim, 8).as_deref(), Some("caller_id_unknown"));
    assert_eq!(from(&sim, "09000000008"), None);
}

/// Two agents choose the same 発番号 at once: the first dial, still being prepared, counts against
/// that number's limit (not against the campaign's own caller ID), so the second is refused
/// `channel_limit` by the engine rather than placed past the limit.
#[test]
fn two_manual_dials_from_one_chosen_caller_id_at_once_keep_its_limit() {
    let mut sim = Sim::new(vec![(running_job(1, 10, "preview", 10), 20)]);
    sim.input(Input::CallerLimits(HashMap::from([("0399990000".to_string(), 1)])));
    sim.input(Input::CallerIds(HashMap::from([(5, "0399990000".to_string())])));
    sim.agents_ready(10, &[1, 2, 3]);
    sim.auto_prepare = false;
    let ask = manual_dial;
    sim.input(ask(1, 7, Some(5)));
    sim.input(ask(2, 17, Some(5)));
    sim.input(ask(3, 27, None));
    let limit_reached = |p: &PrepareRequest| match &p.kind {
        PrepareKind::Preview { ask, .. } => ask.limit_reached,
        k => panic!("{k:?}"),
    };
    let mut seen = Vec::new();
    while !sim.pending_prepares.is_empty() {
        let p = sim.pending_prepares.remove(0);
        seen.push(limit_reached(&p));
        let answer = sim.answer(&p);
        sim.input(Input::Prepared(answer));
    }
    // The first takes the number's one channel; the second, asked while the first was being
    // prepared, finds it taken; the third goes out with the job's own number, under no such limit.
    assert_eq!(seen, [false, true, false]);
}

#[test]
fn a_stop_while_dials_are_prepared_leaves_no_call_without_a_result() {
    let mut sim = Sim::new(vec![(running_job(1, 10, "progressive", 20), 50)]);
    sim.agents_ready(10, &[1, 2, 3, 4, 5]);
    sim.run_for(30_000);
    assert!(!sim.calls.is_empty());
    // A prepare is in flight when the stop begins.
    sim.auto_prepare = false;
    sim.run_for(10_000);
    let in_flight = sim.pending_prepares.pop();
    let ringing: Vec<u64> = sim.calls.iter().filter(|(_, c)| !c.2).map(|(id, _)| *id).collect();
    sim.input(Input::Stop);
    let in_flight_was_asked = in_flight.is_some();
    if let Some(req) = in_flight {
        let p = sim.answer(&req);
        let n = p.dials.len();
        sim.input(Input::Prepared(p));
        let not_dialled: usize =
            sim.writes.iter().map(|w| if let Write::NotDialled(c) = w { c.len() } else { 0 }).sum();
        assert_eq!(not_dialled, n, "prepared leads are not dialled and get stopped");
    }
    let dials_before = sim.dialled.values().sum::<usize>();
    sim.run_for(10_000);
    assert_eq!(sim.dialled.values().sum::<usize>(), dials_before, "no dial after the stop");
    assert!(sim.engine.is_stopped());
    assert_eq!(sim.engine.calls_in_flight(), 0);
    let placed: Vec<u64> = sim
        .commands
        .iter()
        .filter_map(|c| if let Command::DialCustomer(d) = c { Some(d.call) } else { None })
        .collect();
    let results = sim.results();
    for c in placed {
        assert!(results.contains_key(&c), "call {c} has no result");
    }
    // Ringing calls were cancelled as stopped; the agents' legs hung up.
    assert!(in_flight_was_asked || !ringing.is_empty(), "the test stops with something in flight");
    for c in ringing {
        assert_eq!(results.get(&c), Some(&"stopped"), "call {c} ringing at the stop");
    }
    assert!(sim.commands.iter().any(|c| matches!(c, Command::HangUpAgent { .. })));
}

#[test]
fn calls_that_never_end_get_a_result_after_the_grace() {
    let mut sim = Sim::new(vec![(running_job(1, 10, "progressive", 20), 5)]);
    sim.agents_ready(10, &[1, 2]);
    sim.run_for(600);
    let live: Vec<u64> = sim.calls.keys().copied().collect();
    assert!(!live.is_empty());
    // The shard is gone: nothing answers the stop's cancels.
    sim.calls.clear();
    sim.input(Input::Stop);
    sim.run_for(10_000);
    assert!(sim.engine.is_stopped());
    let results = sim.results();
    for c in live {
        assert_eq!(results.get(&c), Some(&"stopped"));
    }
}

#[test]
fn orphans_of_an_earlier_run_are_told_to_control_with_the_result_error() {
    let mut sim = Sim::new(vec![]);
    let agents =
        vec![RecoveredAgent { agent: 5, campaign: Some(10), state: AgentState::Ready, since_ms: 0, call: None }];
    sim.input(Input::Recovered { agents, contacts: vec![], orphans: vec![71, 72] });
    let ended: Vec<(u64, SystemResult)> = sim
        .published
        .iter()
        .filter_map(|e| match e {
            ShardEvent::CallEnded { call_id, result, .. } => Some((call_id.0, *result)),
            _ => None,
        })
        .collect();
    assert_eq!(ended, vec![(71, SystemResult::Error), (72, SystemResult::Error)]);
    assert_eq!(sim.engine.stats().orphans_failed, 2);
}

#[test]
fn dtmf_result_entry_goes_to_control_only_for_the_campaigns_numbers() {
    let mut sim = Sim::new(vec![(running_job(1, 10, "progressive", 10), 0)]);
    sim.agents_ready(10, &[1]);
    sim.shard(CallEvent::DtmfEntry { agent: 1, call: 500, entry: DtmfEntry::Result { number: 2 } });
    sim.shard(CallEvent::DtmfEntry { agent: 1, call: 501, entry: DtmfEntry::Result { number: 9 } });
    sim.shard(CallEvent::DtmfEntry { agent: 1, call: 502, entry: DtmfEntry::Recall { after_ms: 600_000 } });
    let keyed: Vec<(u64, Keyed)> = sim
        .published
        .iter()
        .filter_map(|e| match e {
            ShardEvent::ResultKeyed { call_id, keyed, .. } => Some((call_id.0, *keyed)),
            _ => None,
        })
        .collect();
    assert_eq!(keyed, vec![(500, Keyed::Result { number: 2 }), (502, Keyed::Recall { after_ms: 600_000 })]);
}

#[test]
fn an_agent_pausing_after_the_call_is_counted_as_not_coming_back() {
    let mut sim = Sim::new(vec![(running_job(1, 10, "predictive", 50), 100)]);
    sim.agents_ready(10, &[1, 2]);
    sim.transition(1, AgentState::Talking, Some(900));
    use dialer::pacer::AgentState as P;
    let seen: Vec<(bool, P)> =
        sim.engine.pacer_agents(sim.now(), 10).iter().map(|a| (a.pause_after_call, a.state)).collect();
    assert!(seen.contains(&(false, P::Talking)) && seen.contains(&(false, P::Ready)), "{seen:?}");
    // Control deferred the agent's break to the end of the call.
    sim.input(Input::Agent(Event::Deferred { agent_id: AgentId(1), after_call: true }));
    assert!(sim.engine.pacer_agents(sim.now(), 10).iter().any(|a| a.pause_after_call && a.state == P::Talking));
    // Still in the call through wrap-up; cleared once the break begins.
    sim.transition(1, AgentState::WrapUp, Some(900));
    assert!(sim.engine.pacer_agents(sim.now(), 10).iter().any(|a| a.pause_after_call && a.state == P::WrapUp));
    sim.transition(1, AgentState::Paused { reason_id: wire::PauseReasonId(1) }, None);
    assert!(sim.engine.pacer_agents(sim.now(), 10).iter().all(|a| !a.pause_after_call));
}

#[test]
fn a_recall_an_agent_owns_in_a_paced_job_goes_to_that_agent_only() {
    let mut sim = Sim::new(vec![(running_job(1, 10, "predictive", 10), 50)]);
    sim.owned.push((2, 1, 77));
    sim.agents_ready(10, &[1]);
    sim.run_for(6_000);
    let due = |sim: &Sim| {
        sim.published
            .iter()
            .filter_map(|e| match e {
                ShardEvent::RecallDue { agent_id, lead_id, call_job_id, .. } => {
                    Some((agent_id.0, lead_id.0, call_job_id.0))
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(due(&sim).is_empty(), "the owner is not working the job yet");
    sim.agents_ready(10, &[2]);
    sim.run_for(6_000);
    assert_eq!(due(&sim).first(), Some(&(2, 77, 1)), "to its owner, for its job");
    assert!(due(&sim).iter().all(|(a, _, _)| *a == 2));
}

/// The campaign's remaining leads (its dialer figure, the agents' 残件数) come from the paced
/// prepares' counts; the look for agents' owned recalls every few seconds counts none and leaves
/// the figure alone (it used to reset it to 0).
#[test]
fn the_remaining_leads_figure_survives_the_looks_for_owned_recalls() {
    let mut sim = Sim::new(vec![(running_job(1, 10, "progressive", 5), 30)]);
    sim.agents_ready(10, &[1]);
    sim.run_for(1_000);
    let last = |sim: &Sim| {
        sim.published.iter().rev().find_map(|e| match e {
            ShardEvent::DialerStatus { remaining_leads, .. } => Some(*remaining_leads),
            _ => None,
        })
    };
    let counted = last(&sim).expect("a status");
    assert!(counted > 0 && counted < 30, "{counted}");
    // One agent: its call rings; the engine looks for owned recalls every 5 s meanwhile.
    sim.published.clear();
    sim.run_for(12_000);
    let statuses: Vec<u64> = sim
        .published
        .iter()
        .filter_map(|e| match e {
            ShardEvent::DialerStatus { remaining_leads, .. } => Some(*remaining_leads),
            _ => None,
        })
        .collect();
    assert!(statuses.len() >= 10, "{statuses:?}");
    assert!(statuses.iter().all(|n| *n > 0), "the figure fell to 0 with leads left: {statuses:?}");
}

/// A browser phone's offer and the job's start travel apart (the dialer notices; control): an
/// agent's leg asked for with no registered phone waits for the page's offer, then is set up from
/// it; with no offer at all the agent is unreachable once the wait is over.
#[test]
fn a_leg_without_a_phone_waits_for_the_pages_offer() {
    let mut sim = Sim::new(vec![(running_job(1, 10, "progressive", 5), 0)]);
    let unreachable = |sim: &Sim, agent: u64| {
        sim.published.iter().any(|e| matches!(e, ShardEvent::AgentUnreachable { agent_id, .. } if agent_id.0 == agent))
    };
    let dial_leg = |sim: &mut Sim, agent: u64| {
        sim.input(Input::Agent(Event::Command(Ctl::DialAgentLeg {
            agent_id: AgentId(agent),
            campaign_id: Some(CampaignId(10)),
        })));
    };
    // The job starts before the offer arrives: no SIP dial, not unreachable yet.
    dial_leg(&mut sim, 7);
    sim.run_for(1_000);
    assert!(!unreachable(&sim, 7));
    assert!(!sim.commands.iter().any(|c| matches!(c, Command::DialAgent(_))), "no phone to dial");
    // The page's offer: its WebRTC leg is set up at once.
    sim.input(Input::PhoneOffer { agent: 7, sdp: "v=0".into() });
    assert!(sim.commands.iter().any(|c| matches!(c, Command::DialBrowser(d) if d.agent == 7)));
    // No phone and no offer: unreachable when the wait is over, and only then.
    dial_leg(&mut sim, 8);
    sim.run_for(dialer::engine::core::LEG_WAITS_FOR_OFFER_MS - 1_000);
    assert!(!unreachable(&sim, 8));
    sim.run_for(2_000);
    assert!(unreachable(&sim, 8), "the agent with no phone is told unreachable");
    assert!(!unreachable(&sim, 7), "the browser phone's agent never was");
    // An agent logged off while waiting is not reported later.
    dial_leg(&mut sim, 9);
    sim.input(Input::Agent(Event::Command(Ctl::HangUpAgentLeg { agent_id: AgentId(9) })));
    sim.run_for(dialer::engine::core::LEG_WAITS_FOR_OFFER_MS + 1_000);
    assert!(!unreachable(&sim, 9));
}

/// 外線転送 to a saved outside number with its own 発信者番号: the outside leg goes out from that
/// number, not the call's, and holds a channel of it.
#[test]
fn a_saved_outside_numbers_caller_id_is_the_outside_legs() {
    let mut sim = Sim::new(vec![(running_job(1, 10, "preview", 5), 20)]);
    sim.agents_ready(10, &[1]);
    sim.input(preview_ask(1, 1));
    sim.run_for(2_500);
    let call = sim.calls.iter().find(|(_, c)| c.3 == Some(1)).map(|(id, _)| *id).expect("agent 1's call");
    let tel = wire::Tel::new("0399998888").expect("tel");
    let caller_id = Some(wire::Tel::new("0355550100").expect("tel"));
    let conference = Ctl::Conference { agent_id: AgentId(1), call_id: CallId(call), tel, caller_id };
    sim.input(Input::Agent(Event::Command(conference)));
    let placed: Vec<_> = sim
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Conference(t) => Some((t.call, t.tel.clone(), t.caller_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(placed, vec![(call, "0399998888".to_string(), Some("0355550100".to_string()))]);
}

/// 外線転送: the outside leg goes out from the call's caller ID and is a channel of its campaign
/// until it fails; at the limit the agent is told and no leg is placed.
#[test]
fn an_outside_leg_is_a_channel_of_the_call_and_is_refused_at_the_limit() {
    let mut sim = Sim::new(vec![(running_job(1, 10, "preview", 2), 20)]);
    sim.agents_ready(10, &[1, 2]);
    let ask = preview_ask;
    // Agent 1 talks with lead 1's customer (answered after 2 s, bridged at once).
    sim.input(ask(1, 1));
    sim.run_for(2_500);
    let call = sim.calls.iter().find(|(_, c)| c.3 == Some(1)).map(|(id, _)| *id).expect("agent 1's call");
    let tel = wire::Tel::new("0399998888").expect("tel");
    let transfer = Ctl::TransferOutside { agent_id: AgentId(1), call_id: CallId(call), tel, caller_id: None };
    sim.input(Input::Agent(Event::Command(transfer)));
    let placed: Vec<_> = sim
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::TransferOutside(t) => Some((t.call, t.tel.clone(), t.caller_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(placed, vec![(call, "0399998888".to_string(), Some("0312345678".to_string()))]);
    // Two channels in use (the call and its outside leg): agent 2's dial is refused.
    sim.input(ask(2, 2));
    sim.run_for(1);
    let refused = |sim: &Sim| {
        sim.published
            .iter()
            .any(|e| matches!(e, ShardEvent::PreviewNotDialled { result, .. } if result == "channel_limit"))
    };
    assert!(refused(&sim), "the outside leg holds a channel");
    // The outside number was busy: the channel is free again, and the page was told why.
    let reason = dialer::calls::OutsideFailure::Busy;
    sim.shard(CallEvent::OutsideFailed { call, agent: 1, status: 486, reason });
    assert!(sim.notices.iter().any(|n| matches!(n,
        wire::AgentNotice::OutsideTransfer { outcome, .. } if outcome == "busy")));
    sim.published.clear();
    sim.input(ask(2, 3));
    sim.run_for(1);
    assert!(!refused(&sim), "the channel came back with the leg");
    // Both channels busy again (two calls): a transfer now is refused before any leg is placed.
    sim.run_for(2_500);
    let before = sim.commands.iter().filter(|c| matches!(c, Command::TransferOutside(_))).count();
    sim.input(Input::Agent(Event::Command(transfer)));
    let after = sim.commands.iter().filter(|c| matches!(c, Command::TransferOutside(_))).count();
    assert_eq!(before, after, "no leg past the campaign's limit");
    assert!(sim.notices.iter().any(|n| matches!(n,
        wire::AgentNotice::OutsideTransfer { outcome, .. } if outcome == "channel_limit")));
}
