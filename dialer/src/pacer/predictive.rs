//! The predictive pacer: a model-based controller steering the campaign's
//! service level.
//!
//! At each decision it predicts, second by second over a short horizon, the
//! live answers still to come (ringing calls, by age; `k` new calls) and the
//! agents that will be free to take them (ready ones, and busy ones by time in
//! state) 2 s later. With a normal approximation of their difference it
//! estimates the expected abandons `E(k)`, and launches the largest `k` whose
//! marginal call would abandon, if answered live, with probability at most
//! `lambda`. `lambda` is set by an integral loop on the observed outcomes
//! (every live answer nudges it up by `aim`, every abandon down by `1 - aim`),
//! so the realised abandon rate converges to `aim`; `aim` sits below the
//! target by a margin sized to the day's volume, and tightens when the day's
//! ledger runs hot, so that every day (not only the average) stays under
//! target.
//!
//! Two guards act on λ directly, faster than the loop: the *hourly cap* cuts
//! it as the last 60 minutes' abandons near `hour_cap_factor` × target (no
//! rolling hour above 5 % for a 3 % target), and the *recent-excess* term
//! cuts it while the last 10 minutes run clearly above the aim, so that a
//! step change (longer talks, agents leaving) is corrected within minutes;
//! the loop does not wind up while they hold. With few agents or little data
//! the decision blends smoothly into progressive, and so it does while the
//! carrier fails calls far more than usual (an outage: the lines it would
//! hold would all answer at once when the carrier comes back); lines per
//! available agent are capped and the dial level ramps. A target of 0 is
//! progressive dialling.

use super::estimate::{OutcomeModel, Resolution, ServiceModel};
use super::ledger::{ComplianceLedger, LedgerWindow};
use super::{
    progressive_launch, AgentState, Decision, FloorView, Pacer, PacerEvent, DEFAULT_ABANDON_TARGET,
    SERVICE_LEVEL_WAIT_MS,
};

/// Tuning of [`PredictivePacer`]. The defaults are the tuned values; build
/// a campaign's with [`PredictiveConfig::for_campaign`] (or set fields over
/// `..PredictiveConfig::default()`: fields may be added).
#[derive(Clone, Debug)]
pub struct PredictiveConfig {
    /// Abandon target (1 - service level) as a share, e.g. 0.03 for the
    /// campaign's `abandon_target_pct` 3.0. 0 means never abandon: the pacer
    /// then dials progressively.
    pub abandon_target: f64,
    /// Safety margin in standard deviations of a day's abandon rate.
    pub daily_margin_sd: f64,
    /// Ring timeout of the campaign (places the prior's ring-outs).
    pub ring_timeout_ms: u64,
    /// Longest prediction horizon, seconds.
    pub max_horizon_s: usize,
    /// Expected live answers in flight per available agent, at most.
    pub max_live_per_available: f64,
    /// Lines per active agent, at most.
    pub max_dial_level: f64,
    /// How fast the dial level may rise, lines per agent per second.
    pub ramp_level_per_s: f64,
    /// Active agents from which the pacer is fully predictive (fewer: blend
    /// towards progressive).
    pub full_predictive_agents: u32,
    /// Resolved calls from which the pacer is fully predictive.
    pub full_predictive_samples: f64,
    /// Memory of the call outcome model, in calls.
    pub outcome_half_life_calls: f64,
    /// Memory of the talk and wrap-up model, in calls.
    pub service_half_life_calls: f64,
    /// Gain of the integral loop on `ln(lambda)` per live answer, times the
    /// active agents (so the loop's speed in time does not depend on size).
    pub loop_gain_agents: f64,
    /// Offset from `now_ms` to the campaign's local time (ledger days).
    pub local_offset_ms: i64,
    /// No rolling 60 minutes may exceed this many times the target (5 % for
    /// a 3 % target): as the last hour's abandons near that cap, λ is cut
    /// towards progressive.
    pub hour_cap_factor: f64,
    /// Headroom under the hourly cap, in abandons, below which the cut
    /// starts (at least; more on large floors, see `hour_guard`).
    pub hour_headroom_abandons: f64,
    /// Recent-excess guard: when the abandons of the last
    /// `recent_window_min` minutes run more than `recent_z` standard
    /// deviations above the aim, λ is cut by `exp(-(z - recent_z) *
    /// recent_gain)` (a proportional term beside the integral loop, so a step
    /// change is corrected within minutes).
    pub recent_window_min: u64,
    pub recent_z: f64,
    pub recent_gain: f64,
    /// Failure surge (recent minus long-run failure share) from which the
    /// pacer treats the carrier as failing and falls back to progressive,
    /// fully so at twice this value.
    pub outage_surge: f64,
}

impl Default for PredictiveConfig {
    fn default() -> Self {
        PredictiveConfig {
            abandon_target: DEFAULT_ABANDON_TARGET,
            daily_margin_sd: 1.5,
            ring_timeout_ms: 20_000,
            max_horizon_s: 30,
            max_live_per_available: 2.0,
            max_dial_level: 12.0,
            ramp_level_per_s: 0.3,
            full_predictive_agents: 6,
            full_predictive_samples: 150.0,
            outcome_half_life_calls: 800.0,
            service_half_life_calls: 100.0,
            loop_gain_agents: 0.8,
            local_offset_ms: 0,
            hour_cap_factor: 5.0 / 3.0,
            hour_headroom_abandons: 4.0,
            outage_surge: 0.12,
            recent_window_min: 10,
            recent_z: 1.0,
            recent_gain: 0.5,
        }
    }
}

/// A campaign setting the pacer cannot take (the field is named).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PacerConfigError {
    #[error("abandon_target_pct must be from 0 to 100, got {0}")]
    AbandonTargetPct(f64),
    #[error("ring_timeout_s must be from 5 to 600, got {0}")]
    RingTimeoutS(u32),
}

impl PredictiveConfig {
    /// The tuned defaults with a campaign's own settings: its
    /// `abandon_target_pct` (percent of live answers, default 3.0; 0 =
    /// progressive), its `ring_timeout_s` (タイムアウト), and the tenant's
    /// UTC offset in ms (the compliance ledger's days start at local
    /// midnight when `now_ms` is Unix time).
    pub fn for_campaign(
        abandon_target_pct: f64,
        ring_timeout_s: u32,
        utc_offset_ms: i64,
    ) -> Result<Self, PacerConfigError> {
        if !(0.0..=100.0).contains(&abandon_target_pct) {
            return Err(PacerConfigError::AbandonTargetPct(abandon_target_pct));
        }
        if !(5..=600).contains(&ring_timeout_s) {
            return Err(PacerConfigError::RingTimeoutS(ring_timeout_s));
        }
        Ok(PredictiveConfig {
            abandon_target: abandon_target_pct / 100.0,
            ring_timeout_ms: u64::from(ring_timeout_s) * 1_000,
            local_offset_ms: utc_offset_ms,
            ..PredictiveConfig::default()
        })
    }
}

const OUTCOME_REFRESH_MS: u64 = 5_000;
const SERVICE_REFRESH_MS: u64 = 120_000;
/// Horizon points (seconds ahead) where supply and demand are compared.
const HORIZON_POINTS_S: [usize; 13] = [0, 1, 2, 3, 4, 6, 8, 10, 12, 14, 17, 21, 25];
const INITIAL_LAMBDA: f64 = 0.05;
const LN_LAMBDA_MIN: f64 = -6.9; // 0.001
const LN_LAMBDA_MAX: f64 = 0.0; // 1.0

/// Model-based predictive pacer (policy name `kakeru`).
#[derive(Clone, Debug)]
pub struct PredictivePacer {
    cfg: PredictiveConfig,
    outcome: OutcomeModel,
    service: ServiceModel,
    ledger: ComplianceLedger,
    ln_lambda: f64,
    aim_now: f64,
    /// Cut of λ (0..=1) from the hourly cap.
    hour_guard: f64,
    outcome_refreshed_ms: Option<u64>,
    service_refreshed_ms: Option<u64>,
    last_decide_ms: Option<u64>,
    last_level: f64,
    carry: f64,
    active_agents: f64,
    // Scratch, per horizon second.
    mean_l: Vec<f64>,
    var_l: Vec<f64>,
    mean_a: Vec<f64>,
    var_a: Vec<f64>,
    fresh: Vec<f64>,
    row: Vec<f64>,
    age_counts: Vec<u32>,
    talk_counts: Vec<u32>,
    wrap_counts: Vec<u32>,
    us: Vec<usize>,
}

impl PredictivePacer {
    pub fn new(cfg: PredictiveConfig) -> Self {
        PredictivePacer {
            outcome: OutcomeModel::new(cfg.ring_timeout_ms, cfg.outcome_half_life_calls),
            service: ServiceModel::new(cfg.service_half_life_calls, cfg.max_horizon_s + 3),
            ledger: ComplianceLedger::new(cfg.local_offset_ms),
            ln_lambda: INITIAL_LAMBDA.ln(),
            aim_now: cfg.abandon_target * 0.75,
            hour_guard: 1.0,
            outcome_refreshed_ms: None,
            service_refreshed_ms: None,
            last_decide_ms: None,
            last_level: 0.0,
            carry: 0.0,
            active_agents: 1.0,
            mean_l: Vec::new(),
            var_l: Vec::new(),
            mean_a: Vec::new(),
            var_a: Vec::new(),
            fresh: Vec::new(),
            row: Vec::new(),
            age_counts: Vec::new(),
            talk_counts: Vec::new(),
            wrap_counts: Vec::new(),
            us: Vec::new(),
            cfg,
        }
    }

    /// The campaign's compliance ledger as seen by this pacer.
    pub fn ledger(&self) -> &ComplianceLedger {
        &self.ledger
    }

    /// The ledger, to restore counts kept elsewhere (after a restart: the
    /// last 24 hours' live answers, with [`ComplianceLedger::record`]).
    pub fn ledger_mut(&mut self) -> &mut ComplianceLedger {
        &mut self.ledger
    }

    /// Current marginal abandon threshold (the hourly guard included).
    pub fn lambda(&self) -> f64 {
        self.ln_lambda.exp() * self.hour_guard
    }

    /// Abandon rate the loop currently steers to.
    pub fn aim(&self) -> f64 {
        self.aim_now
    }

    /// Estimated live-answer probability.
    pub fn p_live(&self) -> f64 {
        self.outcome.p_live()
    }

    fn on_live_outcome(&mut self, now_ms: u64, abandoned: bool) {
        self.ledger.record(now_ms, abandoned);
        let x = f64::from(u8::from(abandoned));
        let gain = (self.cfg.loop_gain_agents / self.active_agents.max(1.0)).clamp(0.002, 0.15);
        let step = gain * (self.aim_now - x);
        // While the hourly guard holds λ down, the loop does not wind up.
        if step < 0.0 || self.hour_guard >= 1.0 {
            self.ln_lambda = (self.ln_lambda + step).clamp(LN_LAMBDA_MIN, LN_LAMBDA_MAX);
        }
    }

    /// The abandon rate to aim at now: below target by a margin sized to a
    /// day's volume, lower still if today's ledger has spent its budget.
    fn update_aim(&mut self, now_ms: u64) {
        let target = self.cfg.abandon_target;
        let day = self.ledger.counts(now_ms, LedgerWindow::Rolling24h);
        let today = self.ledger.counts(now_ms, LedgerWindow::Today);
        // Expected live answers in a day: the last 24 h, at least today's.
        let day_live = (day.live.max(today.live) as f64).max(200.0);
        let sd = (target * (1.0 - target) / day_live).sqrt();
        let aim = (target - self.cfg.daily_margin_sd * sd).max(0.3 * target);
        // Budget left today at the aimed rate, spread over what remains.
        let remaining = (day_live - today.live as f64).max(0.1 * day_live);
        let budget = aim * (today.live as f64 + remaining) - today.abandoned as f64;
        let aim_today = (budget / remaining).clamp(0.3 * aim, aim);
        self.aim_now = aim_today;
        // Hourly cap: cut λ as the last hour's headroom (abandons it may
        // still take before its rate reaches the cap) runs out.
        let hour = self.ledger.counts(now_ms, LedgerWindow::LastHour);
        let cap = self.cfg.hour_cap_factor * target;
        let headroom = cap * hour.live as f64 - hour.abandoned as f64;
        let scale = self.cfg.hour_headroom_abandons.max(0.5 * (cap - aim) * hour.live as f64);
        self.hour_guard = (headroom / scale).clamp(0.0, 1.0);
        let recent = self.ledger.last_minutes(now_ms, self.cfg.recent_window_min);
        let expected = self.aim_now * recent.live as f64;
        let z = (recent.abandoned as f64 - expected) / (expected + 1.0).sqrt();
        self.hour_guard *= (-(z - self.cfg.recent_z).max(0.0) * self.cfg.recent_gain).exp();
    }

    fn refresh_models(&mut self, now_ms: u64) {
        if self.outcome_refreshed_ms.is_none_or(|t| now_ms.saturating_sub(t) >= OUTCOME_REFRESH_MS) {
            let dt = self.outcome_refreshed_ms.map_or(0, |t| now_ms.saturating_sub(t));
            self.outcome.advance(dt);
            self.outcome.refresh();
            self.outcome_refreshed_ms = Some(now_ms);
            self.update_aim(now_ms);
        }
        if self.service_refreshed_ms.is_none_or(|t| now_ms.saturating_sub(t) >= SERVICE_REFRESH_MS) {
            self.service.refresh();
            self.service_refreshed_ms = Some(now_ms);
        }
    }

    /// Expected abandons over the horizon with `k` new calls: every live
    /// answer arriving in `(u[i-1], u[i]]` abandons when the answers before it
    /// already use up the agents free by then plus the 2 s wait limit.
    fn expected_abandons(&self, k: f64) -> f64 {
        let mut total = 0.0;
        let (mut prev_l, mut prev_vl) = (0.0, 0.0);
        let mut prev_a = self.mean_a.first().copied().unwrap_or(0.0);
        let mut prev_va = self.var_a.first().copied().unwrap_or(0.0);
        for i in 0..self.mean_l.len() {
            let r = self.fresh[i];
            let l = self.mean_l[i] + k * r;
            let arrivals = (l - prev_l).max(0.0);
            if arrivals > 0.0 {
                let a = 0.5 * (prev_a + self.mean_a[i]);
                let va = 0.5 * (prev_va + self.var_a[i]);
                let mean = prev_l - a;
                let var = prev_vl + va + 0.1;
                total += arrivals * normal_cdf((mean + 0.5) / var.sqrt());
            }
            prev_l = l;
            prev_vl = self.var_l[i] + k * r * (1.0 - r);
            prev_a = self.mean_a[i];
            prev_va = self.var_a[i];
        }
        total
    }
}

impl Pacer for PredictivePacer {
    fn name(&self) -> &'static str {
        "kakeru"
    }

    fn on_event(&mut self, now_ms: u64, event: PacerEvent) {
        match event {
            PacerEvent::Launched => {}
            PacerEvent::AnsweredLive { ring_ms } => self.outcome.observe(ring_ms, Resolution::Live),
            PacerEvent::AnsweredMachine { ring_ms } => self.outcome.observe(ring_ms, Resolution::NotLive),
            PacerEvent::Failed { after_ms } => self.outcome.observe(after_ms, Resolution::Failed),
            PacerEvent::RangOut { after_ms } => self.outcome.observe(after_ms, Resolution::NotLive),
            PacerEvent::Connected { wait_ms } => self.on_live_outcome(now_ms, wait_ms > SERVICE_LEVEL_WAIT_MS),
            PacerEvent::Abandoned => self.on_live_outcome(now_ms, true),
            PacerEvent::TalkEnded { talk_ms } => self.service.observe_talk(talk_ms),
            PacerEvent::WrapEnded { wrap_ms } => self.service.observe_wrap(wrap_ms),
        }
    }

    fn decide(&mut self, now_ms: u64, floor: &FloorView) -> Decision {
        self.refresh_models(now_ms);
        let prog = progressive_launch(floor);
        let active = floor.active_agents();
        self.active_agents = f64::from(active);
        let dt_s = self.last_decide_ms.map_or(1.0, |t| (now_ms.saturating_sub(t) as f64 / 1_000.0).min(5.0));
        self.last_decide_ms = Some(now_ms);
        if active == 0 {
            self.last_level = 0.0;
            return Decision::new(0, floor, 0.0);
        }
        if self.cfg.abandon_target <= 0.0 {
            let d = Decision::new(prog, floor, 0.0);
            self.last_level = d.dial_level;
            return d;
        }

        let q95 = self.outcome.live_delay_quantile_ms(0.95);
        let h = (((q95 + SERVICE_LEVEL_WAIT_MS as f64) / 1_000.0).ceil() as usize).clamp(4, self.cfg.max_horizon_s);
        let patience_s = (SERVICE_LEVEL_WAIT_MS / 1_000) as usize;

        self.mean_l.clear();
        self.var_l.clear();
        self.mean_a.clear();
        self.var_a.clear();
        self.fresh.clear();
        let ready = f64::from(floor.ready_agents());
        let waiting = f64::from(floor.waiting_customers);
        self.us.clear();
        self.us.extend(HORIZON_POINTS_S.iter().copied().filter(|&u| u < h));
        self.us.push(h);
        for &u in &self.us {
            self.mean_l.push(waiting);
            self.var_l.push(0.0);
            self.mean_a.push(ready);
            self.var_a.push(0.0);
            let r = self.outcome.fresh_live_within(u as f64 * 1_000.0).min(1.0);
            self.fresh.push(r);
        }
        // Busy agents, grouped by residual-life row (talking) or by second in
        // wrap-up: one probability row per group.
        self.talk_counts.clear();
        self.talk_counts.resize(ServiceModel::TALKING_ROWS, 0);
        self.wrap_counts.clear();
        for a in floor.agents.iter().filter(|a| !a.pause_after_call) {
            match a.state {
                AgentState::Talking => self.talk_counts[ServiceModel::talking_row(a.in_state_ms)] += 1,
                AgentState::WrapUp => {
                    let b = (a.in_state_ms / 1_000) as usize;
                    if b >= self.wrap_counts.len() {
                        self.wrap_counts.resize(b + 1, 0);
                    }
                    self.wrap_counts[b] += 1;
                }
                AgentState::Ready | AgentState::Paused => {}
            }
        }
        let mut avail_h = ready;
        for row in 0..self.talk_counts.len() {
            let n = self.talk_counts[row];
            if n == 0 {
                continue;
            }
            let n = f64::from(n);
            let probs = self.service.talking_free_row(row);
            for (i, &u) in self.us.iter().enumerate() {
                let q = probs[u + patience_s];
                self.mean_a[i] += n * q;
                self.var_a[i] += n * q * (1.0 - q);
            }
            avail_h += n * probs[h + patience_s];
        }
        for b in 0..self.wrap_counts.len() {
            let n = self.wrap_counts[b];
            if n == 0 {
                continue;
            }
            let n = f64::from(n);
            let e = b as u64 * 1_000 + 500;
            for (i, &u) in self.us.iter().enumerate() {
                let q = self.service.wrapping_free_within(e, u + patience_s);
                self.mean_a[i] += n * q;
                self.var_a[i] += n * q * (1.0 - q);
            }
            avail_h += n * self.service.wrapping_free_within(e, h + patience_s);
        }
        // Ringing calls, grouped by age bucket (calls launched together share
        // a bucket): one probability row per bucket.
        let bin = self.outcome.bin_ms();
        self.age_counts.clear();
        for &age in floor.ringing_ages_ms {
            let b = (age / bin) as usize;
            if b >= self.age_counts.len() {
                self.age_counts.resize(b + 1, 0);
            }
            self.age_counts[b] += 1;
        }
        let mut inflight_live = 0.0;
        self.row.resize(h + 1, 0.0);
        for (b, &n) in self.age_counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let n = f64::from(n);
            let age = (b as u64 * bin) as f64 + 0.5 * bin as f64;
            self.outcome.live_within_row(age, &mut self.row);
            for (i, &u) in self.us.iter().enumerate() {
                let q = self.row[u].min(1.0);
                self.mean_l[i] += n * q;
                self.var_l[i] += n * q * (1.0 - q);
            }
            inflight_live += n * self.row[h].min(1.0);
        }

        // Caps: expected live answers per available agent, lines per agent,
        // and the ramp of the dial level.
        let r_h = self.fresh.last().copied().unwrap_or(0.0).max(1e-3);
        let lines = floor.ringing_ages_ms.len() as f64;
        let active_f = f64::from(active);
        let cap_live = (self.cfg.max_live_per_available * avail_h + 1.0 - inflight_live - waiting) / r_h;
        let cap_level = self.cfg.max_dial_level * active_f - lines;
        let cap_ramp = (self.last_level + self.cfg.ramp_level_per_s * dt_s) * active_f - lines + 1.0;
        let cap = cap_live.min(cap_level).min(cap_ramp).clamp(0.0, 10_000.0) as u32;

        // Largest k whose marginal call abandons (if live) with P <= lambda.
        let lambda = self.lambda();
        let threshold = lambda * r_h;
        let (mut lo, mut hi) = (0u32, cap);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            let k = f64::from(mid);
            let marginal = self.expected_abandons(k) - self.expected_abandons(k - 1.0);
            if marginal <= threshold {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let k_pred = lo;

        // Blend towards progressive with few agents or little data.
        let w_agents = (f64::from(active.saturating_sub(1))
            / f64::from(self.cfg.full_predictive_agents.saturating_sub(1).max(1)))
        .min(1.0);
        let w_data = (self.outcome.effective_samples() / self.cfg.full_predictive_samples).min(1.0);
        let surge = self.outcome.fail_surge() / self.cfg.outage_surge.max(1e-6);
        let w_carrier = (2.0 - surge).clamp(0.0, 1.0);
        let w = w_agents * w_data * w_carrier;
        let extra = f64::from(k_pred.saturating_sub(prog)) * w + self.carry;
        let extra_whole = extra.floor();
        self.carry = (extra - extra_whole).clamp(0.0, 0.999);
        let launch = prog.max(prog + extra_whole as u32).min(prog.max(cap));

        let k = f64::from(launch);
        let expected_live = inflight_live + waiting + k * r_h;
        let predicted = if expected_live > 1e-9 { (self.expected_abandons(k) / expected_live).min(1.0) } else { 0.0 };
        let d = Decision::new(launch, floor, predicted);
        self.last_level = d.dial_level;
        d
    }
}

/// Standard normal CDF (Abramowitz-Stegun 7.1.26 on erfc, |error| < 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacer::AgentView;

    fn train(p: &mut PredictivePacer, now: &mut u64) {
        // 3,000 calls: 20 % live at 6-10 s, 25 % fail at 3 s, rest ring out.
        for i in 0..3_000u64 {
            *now += 300;
            let ev = match i % 20 {
                0..=3 => PacerEvent::AnsweredLive { ring_ms: 6_000 + (i % 5) * 1_000 },
                4..=8 => PacerEvent::Failed { after_ms: 3_000 },
                _ => PacerEvent::RangOut { after_ms: 20_000 },
            };
            p.on_event(*now, ev);
            if i % 20 < 4 {
                p.on_event(*now, PacerEvent::Connected { wait_ms: 0 });
                p.on_event(*now, PacerEvent::TalkEnded { talk_ms: 60_000 + (i % 7) * 20_000 });
                p.on_event(*now, PacerEvent::WrapEnded { wrap_ms: 10_000 });
            }
        }
    }

    fn floor_of<'a>(agents: &'a [AgentView], ringing: &'a [u64]) -> FloorView<'a> {
        FloorView { ringing_ages_ms: ringing, waiting_customers: 0, agents }
    }

    #[test]
    fn without_data_it_is_progressive() {
        let mut p = PredictivePacer::new(PredictiveConfig::default());
        let mut agents =
            vec![AgentView { state: AgentState::Talking, in_state_ms: 100_000, pause_after_call: false }; 20];
        agents[0].state = AgentState::Ready;
        let d = p.decide(0, &floor_of(&agents, &[]));
        assert_eq!(d.launch, 1);
    }

    #[test]
    fn dials_ahead_of_agents_about_to_free_up() {
        let mut p = PredictivePacer::new(PredictiveConfig::default());
        let mut now = 0;
        train(&mut p, &mut now);
        // 20 agents in wrap-up for 8 s: all free within a few seconds.
        let agents = vec![AgentView { state: AgentState::WrapUp, in_state_ms: 8_000, pause_after_call: false }; 20];
        let mut launched = 0;
        let mut ringing = Vec::new();
        for step in 0..40 {
            now += 500;
            let d = p.decide(now, &floor_of(&agents, &ringing));
            launched += d.launch;
            ringing.extend(std::iter::repeat_n(0, d.launch as usize));
            ringing.iter_mut().for_each(|a| *a += 500);
            assert!(d.dial_level <= 12.0, "step {step}: {d:?}");
        }
        assert!(launched > 20, "progressive would launch 0, got {launched}");
        // With p = 0.2 it must not send hundreds of lines for 20 agents.
        assert!(launched < 200, "launched {launched}");
    }

    #[test]
    fn few_agents_all_talking_long_calls_launch_nothing() {
        let mut p = PredictivePacer::new(PredictiveConfig::default());
        let mut now = 0;
        train(&mut p, &mut now);
        let agents = vec![AgentView { state: AgentState::Talking, in_state_ms: 1_000, pause_after_call: false }; 3];
        let d = p.decide(now + 500, &floor_of(&agents, &[]));
        assert_eq!(d.launch, 0);
    }

    #[test]
    fn abandons_tighten_lambda() {
        let mut p = PredictivePacer::new(PredictiveConfig::default());
        let before = p.lambda();
        for i in 0..10 {
            p.on_event(i * 1_000, PacerEvent::Abandoned);
        }
        assert!(p.lambda() < before);
        assert_eq!(p.ledger().counts(10_000, LedgerWindow::Today).abandoned, 10);
    }

    fn ready(n: usize) -> Vec<AgentView> {
        vec![AgentView { state: AgentState::Ready, in_state_ms: 5_000, pause_after_call: false }; n]
    }

    #[test]
    fn a_carrier_outage_falls_back_to_progressive() {
        let mut p = PredictivePacer::new(PredictiveConfig::default());
        let mut now = 0;
        train(&mut p, &mut now);
        // Let the slow failure share settle on the trained 25 %.
        for _ in 0..400 {
            now += 5_000;
            p.decide(now, &floor_of(&ready(0), &[]));
        }
        let agents = ready(10);
        let before = p.clone().decide(now + 5_000, &floor_of(&agents, &[])).launch;
        assert!(before > 10, "a trained pacer dials ahead of 10 ready agents, got {before}");
        // Two minutes of every call failing at 3 s.
        for _ in 0..240 {
            now += 500;
            p.on_event(now, PacerEvent::Failed { after_ms: 3_000 });
        }
        let d = p.decide(now + 5_000, &floor_of(&agents, &[]));
        assert_eq!(d.launch, 10, "one call per ready agent while the carrier fails: {d:?}");
    }

    #[test]
    fn a_hot_hour_cuts_to_progressive() {
        let mut p = PredictivePacer::new(PredictiveConfig::default());
        let mut now = 0;
        train(&mut p, &mut now);
        let agents = ready(10);
        // Past the ramp (nothing launched is fed back: the floor stays empty).
        for _ in 0..20 {
            now += 500;
            p.decide(now, &floor_of(&agents, &[]));
        }
        let before = p.clone().decide(now + 500, &floor_of(&agents, &[])).launch;
        assert!(before > 10, "got {before}");
        // An hour later, the last hour: 300 live answers, 16 abandoned (5.3 %).
        now += 3_600_000;
        for i in 0..300u64 {
            now += 1_000;
            if i % 19 == 0 {
                p.on_event(now, PacerEvent::Abandoned);
            } else {
                p.on_event(now, PacerEvent::Connected { wait_ms: 500 });
            }
        }
        let d = p.decide(now + 5_000, &floor_of(&agents, &[]));
        assert_eq!(d.launch, 10, "{d:?}");
        assert!(p.lambda() < 1e-9);
    }

    #[test]
    fn zero_target_is_progressive() {
        let cfg = PredictiveConfig::for_campaign(0.0, 30, 0).unwrap();
        let mut p = PredictivePacer::new(cfg);
        let mut now = 0;
        train(&mut p, &mut now);
        let d = p.decide(now + 5_000, &floor_of(&ready(7), &[1_000, 2_000]));
        assert_eq!(d.launch, 5);
    }

    #[test]
    fn campaign_settings_are_checked_by_field() {
        let c = PredictiveConfig::for_campaign(2.5, 180, 9 * 3_600_000).unwrap();
        assert!((c.abandon_target - 0.025).abs() < 1e-12);
        assert_eq!(c.ring_timeout_ms, 180_000);
        let e = PredictiveConfig::for_campaign(-1.0, 180, 0).unwrap_err();
        assert!(e.to_string().contains("abandon_target_pct"), "{e}");
        assert!(PredictiveConfig::for_campaign(f64::NAN, 180, 0).is_err());
        let e = PredictiveConfig::for_campaign(3.0, 2, 0).unwrap_err();
        assert!(e.to_string().contains("ring_timeout_s"), "{e}");
    }

    #[test]
    fn normal_helpers() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
    }
}
