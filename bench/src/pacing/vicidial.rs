//! Baseline: an emulation of VICIdial's adaptive dial level (the
//! `AST_VDadapt` process with `dial_method` ADAPT_TAPERED or ADAPT_AVERAGE at
//! its defaults). Written from VICIdial's documented behaviour, not ported:
//!
//! - lines = ceil(dial level x active agents), where lines count calls ringing,
//!   customers waiting and customers talking to agents (`vicidial_auto_calls`);
//! - every 15 s the dial level moves by the average "agent differential" of
//!   the cycle (ready agents minus waiting customers, minus
//!   `adaptive_dl_diff_target` = 0) per active agent (`adaptive_intensity` = 0);
//! - when the day's drop percentage exceeds the allowed one, the level drops
//!   in proportion to the excess; ADAPT_AVERAGE allows
//!   `adaptive_dropped_percentage` (3 %) on the day's average, ADAPT_TAPERED
//!   allows up to twice that early in the shift, tapering to it at mid-shift;
//! - the level stays within [1.0, `adaptive_maximum_level` = 3.0], starting
//!   at `auto_dial_level` = 1.0.

use dialer::pacer::{AgentState, Decision, FloorView, Pacer, PacerEvent};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdaptMode {
    Tapered,
    Average,
}

#[derive(Clone, Debug)]
pub struct VicidialPacer {
    mode: AdaptMode,
    level: f64,
    max_level: f64,
    dropped_pct_target: f64,
    shift_ms: u64,
    cycle_ms: u64,
    last_adapt_ms: Option<u64>,
    day: Option<u64>,
    day_start_ms: u64,
    live_today: u64,
    drops_today: u64,
    diff_sum: f64,
    diff_n: u32,
}

const DAY_MS: u64 = 86_400_000;

impl VicidialPacer {
    pub fn new(mode: AdaptMode, shift_ms: u64) -> Self {
        VicidialPacer {
            mode,
            level: 1.0,
            max_level: 3.0,
            dropped_pct_target: 3.0,
            shift_ms: shift_ms.max(1),
            cycle_ms: 15_000,
            last_adapt_ms: None,
            day: None,
            day_start_ms: 0,
            live_today: 0,
            drops_today: 0,
            diff_sum: 0.0,
            diff_n: 0,
        }
    }

    fn roll_day(&mut self, now_ms: u64) {
        let d = now_ms / DAY_MS;
        if self.day != Some(d) {
            self.day = Some(d);
            self.day_start_ms = now_ms;
            self.live_today = 0;
            self.drops_today = 0;
        }
    }

    fn adapt(&mut self, now_ms: u64, active: u32) {
        let diff = if self.diff_n > 0 { self.diff_sum / f64::from(self.diff_n) } else { 0.0 };
        self.diff_sum = 0.0;
        self.diff_n = 0;
        let drop_pct = if self.live_today > 0 { 100.0 * self.drops_today as f64 / self.live_today as f64 } else { 0.0 };
        let allowed = match self.mode {
            AdaptMode::Average => self.dropped_pct_target,
            AdaptMode::Tapered => {
                let frac = now_ms.saturating_sub(self.day_start_ms) as f64 / self.shift_ms as f64;
                self.dropped_pct_target * (2.0 - 2.0 * frac).max(1.0)
            }
        };
        if drop_pct > allowed && self.live_today >= 10 {
            let excess = ((drop_pct - allowed) / allowed).min(1.0);
            self.level -= self.level * 0.1 * excess.max(0.1);
        } else if active > 0 {
            self.level += diff / f64::from(active);
        }
        self.level = self.level.clamp(1.0, self.max_level);
        self.last_adapt_ms = Some(now_ms);
    }
}

impl Pacer for VicidialPacer {
    fn name(&self) -> &'static str {
        match self.mode {
            AdaptMode::Tapered => "vicidial",
            AdaptMode::Average => "vicidial-average",
        }
    }

    fn on_event(&mut self, now_ms: u64, event: PacerEvent) {
        self.roll_day(now_ms);
        match event {
            PacerEvent::Connected { wait_ms } => {
                self.live_today += 1;
                self.drops_today += u64::from(wait_ms > dialer::pacer::SERVICE_LEVEL_WAIT_MS);
            }
            PacerEvent::Abandoned => {
                self.live_today += 1;
                self.drops_today += 1;
            }
            _ => {}
        }
    }

    fn decide(&mut self, now_ms: u64, floor: &FloorView) -> Decision {
        self.roll_day(now_ms);
        let active = floor.active_agents();
        self.diff_sum += f64::from(floor.ready_agents()) - f64::from(floor.waiting_customers);
        self.diff_n += 1;
        match self.last_adapt_ms {
            None => self.last_adapt_ms = Some(now_ms),
            Some(t) if now_ms.saturating_sub(t) >= self.cycle_ms => self.adapt(now_ms, active),
            Some(_) => {}
        }
        let talking = floor.agents.iter().filter(|a| a.state == AgentState::Talking).count() as u32;
        let lines_used = floor.ringing_ages_ms.len() as u32 + floor.waiting_customers + talking;
        let goal = (self.level * f64::from(active)).ceil() as u32;
        let launch = goal.saturating_sub(lines_used);
        let lines = floor.ringing_ages_ms.len() as f64 + f64::from(launch);
        Decision { launch, dial_level: lines / f64::from(active.max(1)), predicted_abandon: 0.0 }
    }
}
