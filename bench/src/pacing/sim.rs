//! Deterministic floor simulator: agents, a carrier and customers in simulated
//! time, driving a `dialer::pacer::Pacer` exactly as the dialer engine does.
//!
//! Event-driven (a binary heap of timestamped events, ties broken by insertion
//! order), seeded (ChaCha8, one stream for call outcomes and one for handling
//! times, so policies see comparable floors), no wall clock: the same config
//! gives the same figures bit for bit.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use dialer::pacer::{AgentState, AgentView, FloorView, Pacer, PacerEvent};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEC: u64 = 1_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;
/// Shifts start at 09:00 of each simulated day.
const SHIFT_START_OFFSET: u64 = 9 * HOUR;

/// The floor being simulated.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub agents: u32,
    /// Live-answer probability of a call (the start value on non-stationary days).
    pub answer_prob: f64,
    pub answer_delay_mean_s: f64,
    pub answer_delay_cv: f64,
    /// Share of the non-answered calls that fail (at about `fail_mean_s`); the
    /// rest ring out at the ring timeout.
    pub fail_share: f64,
    pub fail_mean_s: f64,
    pub ring_timeout_s: f64,
    pub talk_mean_s: f64,
    pub talk_cv: f64,
    pub wrap_mean_s: f64,
    pub wrap_cv: f64,
    /// A live customer with no agent after this long abandons (and hears the
    /// campaign's message).
    pub patience_s: f64,
    /// Share of all calls answered by a machine (detected 2.5 s after answer).
    pub machine_share: f64,
    pub nonstationary: bool,
    pub days: u32,
    pub shift_hours: f64,
    pub seed: u64,
    pub decide_every_ms: u64,
    pub abandon_target: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            agents: 50,
            answer_prob: 0.2,
            answer_delay_mean_s: 8.0,
            answer_delay_cv: 0.5,
            fail_share: 0.3,
            fail_mean_s: 3.0,
            ring_timeout_s: 20.0,
            talk_mean_s: 120.0,
            talk_cv: 1.0,
            wrap_mean_s: 10.0,
            wrap_cv: 0.5,
            patience_s: 2.0,
            machine_share: 0.0,
            nonstationary: false,
            days: 30,
            shift_hours: 8.0,
            seed: 1,
            decide_every_ms: 500,
            abandon_target: 0.03,
        }
    }
}

/// Step changes of a non-stationary day, minutes after shift start.
pub const STEP_MINUTES: [u64; 7] = [120, 135, 240, 270, 300, 360, 362];

/// Per-day figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DayStats {
    pub live: u64,
    pub abandoned: u64,
}

impl DayStats {
    pub fn abandon_rate(&self) -> f64 {
        if self.live == 0 {
            0.0
        } else {
            self.abandoned as f64 / self.live as f64
        }
    }
}

/// Raw outcome of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimResult {
    pub dials: u64,
    pub live: u64,
    pub abandoned: u64,
    pub connected: u64,
    pub machines: u64,
    pub handle_ms: u64,
    pub available_ms: u64,
    pub days: Vec<DayStats>,
    /// Agent wait (ready until connected) histogram, 100 ms bins.
    pub wait_hist: Vec<u64>,
    pub wait_sum_ms: u64,
    /// Live answers and abandons per shift minute (days x shift minutes).
    pub minute_live: Vec<u32>,
    pub minute_abandoned: Vec<u32>,
    pub shift_minutes: usize,
}

const WAIT_BIN_MS: u64 = 100;
const WAIT_BINS: usize = 36_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Tick,
    Resolve(u32),
    Patience(u64),
    TalkEnd(u32),
    WrapEnd(u32),
    BreakStart(u32, u64),
    BreakEnd(u32),
    ShiftStart(u32),
    ShiftEnd(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Live,
    Machine,
    Fail,
    RingOut,
}

#[derive(Clone, Copy, Debug)]
struct Call {
    launched_ms: u64,
    outcome: Outcome,
    /// Index in `Sim::ring_launched` / `Sim::ring_slot`.
    pos: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AState {
    Offline,
    Ready,
    Talking,
    WrapUp,
    Paused,
}

#[derive(Clone, Copy, Debug)]
struct Agent {
    state: AState,
    since_ms: u64,
    break_pending: bool,
    login_ms: u64,
    paused_ms: u64,
}

struct Sim<'p> {
    cfg: SimConfig,
    pacer: &'p mut dyn Pacer,
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    now: u64,
    call_rng: ChaCha8Rng,
    svc_rng: ChaCha8Rng,
    calls: Vec<Option<Call>>,
    free_slots: Vec<u32>,
    /// The ringing calls, compact (swap-removed on resolve): launch times and
    /// slots, so that a tick reads only calls in flight.
    ring_launched: Vec<u64>,
    ring_slot: Vec<u32>,
    queue: VecDeque<(u64, u64)>,
    next_customer: u64,
    agents: Vec<Agent>,
    day: u32,
    shift_open: bool,
    shift_start_ms: u64,
    res: SimResult,
    ages: Vec<u64>,
    views: Vec<AgentView>,
}

/// Runs `cfg` with `pacer`; deterministic in `cfg.seed`.
pub fn simulate(cfg: &SimConfig, pacer: &mut dyn Pacer) -> SimResult {
    let shift_minutes = (cfg.shift_hours * 60.0).round() as usize;
    let mut sim = Sim {
        cfg: cfg.clone(),
        pacer,
        heap: BinaryHeap::new(),
        seq: 0,
        now: 0,
        call_rng: ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(2).wrapping_add(1)),
        svc_rng: ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(2).wrapping_add(2)),
        calls: Vec::new(),
        free_slots: Vec::new(),
        ring_launched: Vec::new(),
        ring_slot: Vec::new(),
        queue: VecDeque::new(),
        next_customer: 0,
        agents: vec![
            Agent { state: AState::Offline, since_ms: 0, break_pending: false, login_ms: 0, paused_ms: 0 };
            cfg.agents as usize
        ],
        day: 0,
        shift_open: false,
        shift_start_ms: 0,
        res: SimResult {
            days: vec![DayStats::default(); cfg.days as usize],
            wait_hist: vec![0; WAIT_BINS],
            minute_live: vec![0; cfg.days as usize * shift_minutes],
            minute_abandoned: vec![0; cfg.days as usize * shift_minutes],
            shift_minutes,
            ..SimResult::default()
        },
        ages: Vec::new(),
        views: Vec::new(),
    };
    for d in 0..cfg.days {
        sim.push(u64::from(d) * DAY + SHIFT_START_OFFSET, Ev::ShiftStart(d));
    }
    while let Some(Reverse((t, _, ev))) = sim.heap.pop() {
        sim.now = t;
        sim.handle(ev);
    }
    sim.res
}

fn lognormal(rng: &mut ChaCha8Rng, mean: f64, cv: f64) -> f64 {
    let s2 = (1.0 + cv * cv).ln();
    let mu = mean.ln() - s2 / 2.0;
    mu_sigma_lognormal(rng, mu, s2.sqrt())
}

fn mu_sigma_lognormal(rng: &mut ChaCha8Rng, mu: f64, sigma: f64) -> f64 {
    (mu + sigma * std_normal(rng)).exp()
}

fn std_normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller, one output per pair of uniforms (keeps streams simple).
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn ms(s: f64) -> u64 {
    (s * 1_000.0).round().max(0.0) as u64
}

impl Sim<'_> {
    fn push(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, ev)));
    }

    fn shift_ms(&self) -> u64 {
        ms(self.cfg.shift_hours * 3_600.0)
    }

    /// Minutes since shift start (for non-stationary schedules and ledgers).
    fn shift_minute(&self) -> u64 {
        self.now.saturating_sub(self.shift_start_ms) / MIN
    }

    fn answer_prob_now(&self) -> f64 {
        if !self.cfg.nonstationary {
            return self.cfg.answer_prob;
        }
        let frac = (self.now.saturating_sub(self.shift_start_ms) as f64 / self.shift_ms() as f64).min(1.0);
        self.cfg.answer_prob * (1.0 - 0.5 * frac)
    }

    fn outage_now(&self) -> bool {
        self.cfg.nonstationary && self.shift_open && (360..362).contains(&self.shift_minute())
    }

    fn talk_mean_now(&self) -> f64 {
        if self.cfg.nonstationary && self.shift_minute() >= 300 {
            self.cfg.talk_mean_s * 1.5
        } else {
            self.cfg.talk_mean_s
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::ShiftStart(d) => self.shift_start(d),
            Ev::ShiftEnd(_) => {
                self.shift_open = false;
                self.maybe_log_out_all();
            }
            Ev::Tick => self.tick(),
            Ev::Resolve(slot) => self.resolve(slot),
            Ev::Patience(id) => {
                if self.queue.front().is_some_and(|(c, _)| *c == id) {
                    self.queue.pop_front();
                    self.pacer.on_event(self.now, PacerEvent::Abandoned);
                    self.count_live(true);
                    self.maybe_log_out_all();
                }
            }
            Ev::TalkEnd(a) => {
                let ag = &mut self.agents[a as usize];
                let talk = self.now - ag.since_ms;
                ag.state = AState::WrapUp;
                ag.since_ms = self.now;
                self.res.handle_ms += talk;
                self.pacer.on_event(self.now, PacerEvent::TalkEnded { talk_ms: talk });
                let w = ms(lognormal(&mut self.svc_rng, self.cfg.wrap_mean_s, self.cfg.wrap_cv));
                self.push(self.now + w, Ev::WrapEnd(a));
            }
            Ev::WrapEnd(a) => {
                let now = self.now;
                let ag = &mut self.agents[a as usize];
                let wrap = now - ag.since_ms;
                self.res.handle_ms += wrap;
                ag.since_ms = now;
                if ag.break_pending {
                    ag.break_pending = false;
                    ag.state = AState::Paused;
                } else {
                    ag.state = AState::Ready;
                }
                self.pacer.on_event(now, PacerEvent::WrapEnded { wrap_ms: wrap });
                self.serve_queue();
                self.maybe_log_out_all();
            }
            Ev::BreakStart(a, dur) => {
                let ag = &mut self.agents[a as usize];
                match ag.state {
                    AState::Ready => {
                        ag.state = AState::Paused;
                        ag.since_ms = self.now;
                    }
                    AState::Talking | AState::WrapUp => ag.break_pending = true,
                    AState::Paused | AState::Offline => {}
                }
                self.push(self.now + dur, Ev::BreakEnd(a));
            }
            Ev::BreakEnd(a) => {
                let now = self.now;
                let ag = &mut self.agents[a as usize];
                ag.break_pending = false;
                if ag.state == AState::Paused {
                    ag.paused_ms += now - ag.since_ms;
                    ag.state = AState::Ready;
                    ag.since_ms = now;
                    self.serve_queue();
                }
            }
        }
    }

    fn shift_start(&mut self, d: u32) {
        self.day = d;
        self.shift_open = true;
        self.shift_start_ms = self.now;
        let now = self.now;
        for ag in &mut self.agents {
            *ag = Agent { state: AState::Ready, since_ms: now, break_pending: false, login_ms: now, paused_ms: 0 };
        }
        let end = now + self.shift_ms();
        self.push(end, Ev::ShiftEnd(d));
        self.push(now, Ev::Tick);
        if self.cfg.nonstationary {
            let n = self.cfg.agents;
            for a in 0..n {
                if a % 4 == 0 {
                    self.push(now + 120 * MIN, Ev::BreakStart(a, 15 * MIN));
                }
                if a % 2 == 1 {
                    self.push(now + 240 * MIN, Ev::BreakStart(a, 30 * MIN));
                }
            }
        }
    }

    fn tick(&mut self) {
        if !self.shift_open {
            return;
        }
        let now = self.now;
        self.ages.clear();
        self.ages.extend(self.ring_launched.iter().map(|t| now - t));
        self.views.clear();
        for ag in &self.agents {
            let state = match ag.state {
                AState::Offline => continue,
                AState::Ready => AgentState::Ready,
                AState::Talking => AgentState::Talking,
                AState::WrapUp => AgentState::WrapUp,
                AState::Paused => AgentState::Paused,
            };
            self.views.push(AgentView { state, in_state_ms: now - ag.since_ms, pause_after_call: ag.break_pending });
        }
        let floor =
            FloorView { ringing_ages_ms: &self.ages, waiting_customers: self.queue.len() as u32, agents: &self.views };
        let d = self.pacer.decide(now, &floor);
        // Bound: never more than 100 lines per agent in flight.
        let launch = d.launch.min((self.cfg.agents * 100).saturating_sub(self.ring_slot.len() as u32));
        for _ in 0..launch {
            self.launch();
        }
        self.push(now + self.cfg.decide_every_ms, Ev::Tick);
    }

    fn launch(&mut self) {
        self.res.dials += 1;
        self.pacer.on_event(self.now, PacerEvent::Launched);
        let p = self.answer_prob_now();
        let timeout = self.cfg.ring_timeout_s;
        let u: f64 = self.call_rng.gen();
        let (outcome, after_s) = if self.outage_now() {
            (Outcome::Fail, self.cfg.fail_mean_s)
        } else if u < p {
            let mut d = lognormal(&mut self.call_rng, self.cfg.answer_delay_mean_s, self.cfg.answer_delay_cv);
            // The live answer probability is p by definition: redraw the rare
            // delays beyond the ring timeout (bounded).
            for _ in 0..16 {
                if d < timeout - 0.5 {
                    break;
                }
                d = lognormal(&mut self.call_rng, self.cfg.answer_delay_mean_s, self.cfg.answer_delay_cv);
            }
            (Outcome::Live, d.min(timeout - 0.5))
        } else if u < p + self.cfg.machine_share {
            let d = lognormal(&mut self.call_rng, self.cfg.answer_delay_mean_s, self.cfg.answer_delay_cv);
            (Outcome::Machine, (d + 2.5).min(timeout))
        } else if self.call_rng.gen::<f64>() < self.cfg.fail_share {
            let f = self.cfg.fail_mean_s + 0.5 * std_normal(&mut self.call_rng);
            (Outcome::Fail, f.clamp(1.0, 5.0))
        } else {
            (Outcome::RingOut, timeout)
        };
        let call = Call { launched_ms: self.now, outcome, pos: self.ring_slot.len() as u32 };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.calls[s as usize] = Some(call);
                s
            }
            None => {
                self.calls.push(Some(call));
                (self.calls.len() - 1) as u32
            }
        };
        self.ring_launched.push(self.now);
        self.ring_slot.push(slot);
        self.push(self.now + ms(after_s), Ev::Resolve(slot));
    }

    fn resolve(&mut self, slot: u32) {
        // Invariant: a Resolve event is scheduled once per launched call.
        let Some(call) = self.calls[slot as usize].take() else {
            return;
        };
        self.free_slots.push(slot);
        let pos = call.pos as usize;
        self.ring_launched.swap_remove(pos);
        self.ring_slot.swap_remove(pos);
        if let Some(&moved) = self.ring_slot.get(pos) {
            if let Some(c) = self.calls[moved as usize].as_mut() {
                c.pos = pos as u32;
            }
        }
        let after = self.now - call.launched_ms;
        match call.outcome {
            Outcome::Live => {
                self.pacer.on_event(self.now, PacerEvent::AnsweredLive { ring_ms: after });
                let id = self.next_customer;
                self.next_customer += 1;
                self.queue.push_back((id, self.now));
                self.push(self.now + ms(self.cfg.patience_s), Ev::Patience(id));
                self.serve_queue();
            }
            Outcome::Machine => {
                self.res.machines += 1;
                self.pacer.on_event(self.now, PacerEvent::AnsweredMachine { ring_ms: after });
            }
            Outcome::Fail => self.pacer.on_event(self.now, PacerEvent::Failed { after_ms: after }),
            Outcome::RingOut => self.pacer.on_event(self.now, PacerEvent::RangOut { after_ms: after }),
        }
        self.maybe_log_out_all();
    }

    /// Connects waiting customers to the longest-waiting ready agents.
    fn serve_queue(&mut self) {
        while let Some(&(_, answered)) = self.queue.front() {
            let Some(a) = self
                .agents
                .iter()
                .enumerate()
                .filter(|(_, g)| g.state == AState::Ready)
                .min_by_key(|(i, g)| (g.since_ms, *i))
                .map(|(i, _)| i)
            else {
                return;
            };
            self.queue.pop_front();
            let now = self.now;
            let ag = &mut self.agents[a];
            let agent_wait = now - ag.since_ms;
            ag.state = AState::Talking;
            ag.since_ms = now;
            self.res.wait_sum_ms += agent_wait;
            self.res.wait_hist[((agent_wait / WAIT_BIN_MS) as usize).min(WAIT_BINS - 1)] += 1;
            self.res.connected += 1;
            let wait = now - answered;
            self.pacer.on_event(now, PacerEvent::Connected { wait_ms: wait });
            self.count_live(false);
            let talk_mean = self.talk_mean_now();
            let talk = ms(lognormal(&mut self.svc_rng, talk_mean, self.cfg.talk_cv));
            self.push(now + talk.max(1), Ev::TalkEnd(a as u32));
        }
    }

    fn count_live(&mut self, abandoned: bool) {
        self.res.live += 1;
        self.res.abandoned += u64::from(abandoned);
        let day = &mut self.res.days[self.day as usize];
        day.live += 1;
        day.abandoned += u64::from(abandoned);
        let m = (self.shift_minute() as usize).min(self.res.shift_minutes - 1);
        let i = self.day as usize * self.res.shift_minutes + m;
        self.res.minute_live[i] += 1;
        self.res.minute_abandoned[i] += u32::from(abandoned);
    }

    /// After shift end, once no call is ringing or waiting, free agents log
    /// out; busy ones log out when their wrap-up ends.
    fn maybe_log_out_all(&mut self) {
        if self.shift_open || !self.ring_slot.is_empty() || !self.queue.is_empty() {
            return;
        }
        let now = self.now;
        for ag in &mut self.agents {
            match ag.state {
                AState::Ready | AState::Paused => {
                    if ag.state == AState::Paused {
                        ag.paused_ms += now - ag.since_ms;
                    }
                    self.res.available_ms += (now - ag.login_ms).saturating_sub(ag.paused_ms);
                    ag.state = AState::Offline;
                }
                AState::Talking | AState::WrapUp | AState::Offline => {}
            }
        }
        // Busy agents: log out at their wrap end (handled when they become Ready).
    }
}
