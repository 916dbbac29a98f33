//! Online estimators with priors and exponential forgetting (no oracle: they
//! learn only from the events the dialer reports).

/// A histogram of durations whose old samples fade out: each new sample weighs
/// `2^(1/half_life)` times the previous one, so a sample's weight halves every
/// `half_life` samples. Bounded: a fixed number of bins, the last one catching
/// everything longer.
#[derive(Clone, Debug)]
pub struct DecayingHistogram {
    bin_ms: u64,
    counts: Vec<f64>,
    total: f64,
    weight: f64,
    growth: f64,
}

const RESCALE_ABOVE: f64 = 1e120;

impl DecayingHistogram {
    /// `bins` bins of `bin_ms` each (the last one is the overflow bin).
    pub fn new(bin_ms: u64, bins: usize, half_life_samples: f64) -> Self {
        assert!(bin_ms > 0 && bins > 1, "histogram needs bins");
        DecayingHistogram {
            bin_ms,
            counts: vec![0.0; bins],
            total: 0.0,
            weight: 1.0,
            growth: 2f64.powf(1.0 / half_life_samples.max(1.0)),
        }
    }

    fn bin_of(&self, value_ms: u64) -> usize {
        ((value_ms / self.bin_ms) as usize).min(self.counts.len() - 1)
    }

    /// Adds `mass` samples' worth at `value_ms` (weights relative to a fresh sample).
    pub fn add_mass(&mut self, value_ms: u64, mass: f64) {
        let b = self.bin_of(value_ms);
        let w = self.weight * mass;
        self.counts[b] += w;
        self.total += w;
    }

    pub fn add(&mut self, value_ms: u64) {
        self.add_mass(value_ms, 1.0);
        self.weight *= self.growth;
        if self.weight > RESCALE_ABOVE {
            let k = 1.0 / self.weight;
            self.counts.iter_mut().for_each(|c| *c *= k);
            self.total *= k;
            self.weight = 1.0;
        }
    }

    /// Effective number of samples (in units of the newest sample's weight).
    pub fn effective_samples(&self) -> f64 {
        self.total / self.weight
    }

    pub fn bin_ms(&self) -> u64 {
        self.bin_ms
    }

    /// Cumulative normalised masses at bin edges: `out[i]` = share of samples
    /// below `i * bin_ms`; `out.len() == bins + 1`.
    pub fn cumulative(&self, out: &mut Vec<f64>) {
        out.clear();
        out.push(0.0);
        let inv = if self.total > 0.0 { 1.0 / self.total } else { 0.0 };
        let mut acc = 0.0;
        for c in &self.counts {
            acc += c * inv;
            out.push(acc);
        }
    }

    /// Mean in ms (bin centres).
    pub fn mean_ms(&self) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        let w = self.bin_ms as f64;
        self.counts.iter().enumerate().map(|(i, c)| c * (i as f64 + 0.5) * w).sum::<f64>() / self.total
    }
}

/// Linear interpolation of a cumulative table built by
/// [`DecayingHistogram::cumulative`] at `t_ms`.
pub(crate) fn interp(cum: &[f64], bin_ms: u64, t_ms: f64) -> f64 {
    let x = (t_ms / bin_ms as f64).max(0.0);
    let b = x as usize;
    if b + 1 >= cum.len() {
        return cum[cum.len() - 1];
    }
    let f = x - b as f64;
    cum[b] + f * (cum[b + 1] - cum[b])
}

/// How calls end after launch: answered live, failed (busy, congestion,
/// outage: fast), or otherwise not live (machine, ring-out), and when. One
/// joint model so that a ringing call's chances are conditioned on its age.
///
/// The failure share is learnt apart, with a short and a long memory, and the
/// model uses the smaller of the two: a burst of failures (a carrier outage)
/// then does not make the pacer believe that calls will keep failing, which
/// would flood the lines when the carrier comes back.
#[derive(Clone, Debug)]
pub struct OutcomeModel {
    /// Non-failed calls: live answers, and the rest, by resolution time.
    live: Vec<f64>,
    other: Vec<f64>,
    total: f64,
    weight: f64,
    growth: f64,
    /// Failure times (shape only).
    fail: Vec<f64>,
    fail_total: f64,
    fail_weight: f64,
    fail_fast: f64,
    fail_slow: f64,
    fast_alpha: f64,
    cum_live: Vec<f64>,
    cum_all: Vec<f64>,
}

/// Kind of call resolution fed to [`OutcomeModel::observe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    Live,
    Failed,
    NotLive,
}

const OUTCOME_BIN_MS: u64 = 250;

impl OutcomeModel {
    /// `ring_timeout_ms` places the prior's ring-outs; `half_life` in calls.
    pub fn new(ring_timeout_ms: u64, half_life_calls: f64) -> Self {
        let bins = (ring_timeout_ms.clamp(5_000, 300_000) / OUTCOME_BIN_MS) as usize + 8;
        let half_life = half_life_calls.max(1.0);
        let mut m = OutcomeModel {
            live: vec![0.0; bins],
            other: vec![0.0; bins],
            total: 0.0,
            weight: 1.0,
            growth: 2f64.powf(1.0 / half_life),
            fail: vec![0.0; bins],
            fail_total: 0.0,
            fail_weight: 1.0,
            fail_fast: 0.25,
            fail_slow: 0.25,
            fast_alpha: 1.0 / 60.0,
            cum_live: Vec::new(),
            cum_all: Vec::new(),
        };
        // Prior worth ~10 calls: of the non-failed, 27 % live around 5-12 s,
        // the rest ring out; failures at 3 s.
        for (t, mass) in [(5_000, 0.5), (7_000, 0.6), (9_000, 0.5), (12_000, 0.4)] {
            m.add(t, Resolution::Live, mass);
        }
        m.add(3_000, Resolution::Failed, 1.0);
        m.add(ring_timeout_ms, Resolution::NotLive, 5.5);
        m.refresh();
        m
    }

    fn add(&mut self, after_ms: u64, r: Resolution, mass: f64) {
        let b = ((after_ms / OUTCOME_BIN_MS) as usize).min(self.live.len() - 1);
        match r {
            Resolution::Live => self.live[b] += self.weight * mass,
            Resolution::NotLive => self.other[b] += self.weight * mass,
            Resolution::Failed => {
                self.fail[b] += self.fail_weight * mass;
                self.fail_total += self.fail_weight * mass;
                return;
            }
        }
        self.total += self.weight * mass;
    }

    pub fn observe(&mut self, after_ms: u64, r: Resolution) {
        self.add(after_ms, r, 1.0);
        let failed = f64::from(u8::from(r == Resolution::Failed));
        self.fail_fast += self.fast_alpha * (failed - self.fail_fast);
        if r == Resolution::Failed {
            self.fail_weight *= self.growth;
            if self.fail_weight > RESCALE_ABOVE {
                let k = 1.0 / self.fail_weight;
                self.fail.iter_mut().for_each(|c| *c *= k);
                self.fail_total *= k;
                self.fail_weight = 1.0;
            }
            return;
        }
        self.weight *= self.growth;
        if self.weight > RESCALE_ABOVE {
            let k = 1.0 / self.weight;
            self.live.iter_mut().for_each(|c| *c *= k);
            self.other.iter_mut().for_each(|c| *c *= k);
            self.total *= k;
            self.weight = 1.0;
        }
    }

    /// Lets the slow failure share follow the fast one with a time constant
    /// of 30 minutes (in time, not calls: an outage makes many calls).
    pub fn advance(&mut self, dt_ms: u64) {
        let k = (dt_ms as f64 / 1_800_000.0).min(1.0);
        self.fail_slow += k * (self.fail_fast - self.fail_slow);
    }

    /// Share of calls failing, as used for prediction.
    pub fn fail_share(&self) -> f64 {
        self.fail_fast.min(self.fail_slow)
    }

    /// How far the recent failure share (the last ~60 calls) runs above the
    /// long-run one: near 0 normally, towards 0.7 in a carrier outage.
    pub fn fail_surge(&self) -> f64 {
        (self.fail_fast - self.fail_slow).max(0.0)
    }

    /// Recomputes the cumulative tables (call every few seconds).
    pub fn refresh(&mut self) {
        let f = self.fail_share();
        let inv = if self.total > 0.0 { (1.0 - f) / self.total } else { 0.0 };
        let inv_f = if self.fail_total > 0.0 { f / self.fail_total } else { 0.0 };
        self.cum_live.clear();
        self.cum_all.clear();
        self.cum_live.push(0.0);
        self.cum_all.push(0.0);
        let (mut l, mut a) = (0.0, 0.0);
        for ((x, y), z) in self.live.iter().zip(&self.other).zip(&self.fail) {
            l += x * inv;
            a += (x + y) * inv + z * inv_f;
            self.cum_live.push(l);
            self.cum_all.push(a);
        }
    }

    /// Share of calls answered live.
    pub fn p_live(&self) -> f64 {
        *self.cum_live.last().unwrap_or(&0.0)
    }

    /// Effective number of resolved calls behind the estimate.
    pub fn effective_samples(&self) -> f64 {
        self.total / self.weight + self.fail_total / self.fail_weight
    }

    /// P(a fresh call answers live within `u_ms`).
    pub fn fresh_live_within(&self, u_ms: f64) -> f64 {
        interp(&self.cum_live, OUTCOME_BIN_MS, u_ms)
    }

    /// P(a call still ringing at `age_ms` answers live within the next `u_ms`).
    pub fn live_within(&self, age_ms: f64, u_ms: f64) -> f64 {
        let alive = 1.0 - interp(&self.cum_all, OUTCOME_BIN_MS, age_ms);
        if alive <= 1e-9 {
            return 0.0;
        }
        let l0 = interp(&self.cum_live, OUTCOME_BIN_MS, age_ms);
        let l1 = interp(&self.cum_live, OUTCOME_BIN_MS, age_ms + u_ms);
        ((l1 - l0) / alive).clamp(0.0, 1.0)
    }

    /// Fills `out[u]` = P(a call ringing at `age_ms` answers live within
    /// `u` seconds), for `u` in `0..out.len()`; returns the share of such calls
    /// that are still to resolve (0 when none can be).
    pub fn live_within_row(&self, age_ms: f64, out: &mut [f64]) {
        let alive = 1.0 - interp(&self.cum_all, OUTCOME_BIN_MS, age_ms);
        if alive <= 1e-9 {
            out.iter_mut().for_each(|o| *o = 0.0);
            return;
        }
        let inv = 1.0 / alive;
        let l0 = interp(&self.cum_live, OUTCOME_BIN_MS, age_ms);
        for (u, o) in out.iter_mut().enumerate() {
            let l1 = interp(&self.cum_live, OUTCOME_BIN_MS, age_ms + u as f64 * 1_000.0);
            *o = ((l1 - l0) * inv).clamp(0.0, 1.0);
        }
    }

    /// Width of the age buckets callers may group ringing calls by.
    pub fn bin_ms(&self) -> u64 {
        OUTCOME_BIN_MS
    }

    /// Delay by which a share `q` of the live answers have arrived.
    pub fn live_delay_quantile_ms(&self, q: f64) -> f64 {
        let total = self.p_live();
        if total <= 0.0 {
            return 0.0;
        }
        let target = q * total;
        let i = self.cum_live.partition_point(|c| *c < target);
        (i as u64 * OUTCOME_BIN_MS) as f64
    }
}

/// Talk and wrap-up durations, and from them the chance that a busy agent is
/// free within the next seconds given time already spent in state.
#[derive(Clone, Debug)]
pub struct ServiceModel {
    talk: DecayingHistogram,
    wrap: DecayingHistogram,
    cum_talk: Vec<f64>,
    cum_wrap: Vec<f64>,
    /// `talk_free[row * stride + u]`: P(free within u s | talking for row*2 s).
    talk_free: Vec<f64>,
    row_gen: Vec<u32>,
    gen: u32,
    wq: [f64; 3],
    horizon_s: usize,
}

const TALK_BIN_MS: u64 = 2_000;
const TALK_BINS: usize = 900;
/// Residual-life table rows: 2 s wide up to 60 s in state, then 5 % wider
/// each, up to 30 minutes (agents grouped by row share one computation).
const FINE_ROWS: usize = 30;
const TALK_ROWS: usize = 101;
const ROW_GROWTH: f64 = 1.05;
const WRAP_BIN_MS: u64 = 1_000;
const WRAP_BINS: usize = 300;

impl ServiceModel {
    /// Tables answer for `u` in whole seconds up to `horizon_s`.
    pub fn new(half_life_samples: f64, horizon_s: usize) -> Self {
        let mut talk = DecayingHistogram::new(TALK_BIN_MS, TALK_BINS, half_life_samples);
        let mut wrap = DecayingHistogram::new(WRAP_BIN_MS, WRAP_BINS, half_life_samples);
        // Weak prior: talk around 1-3 minutes, wrap-up around 10 s.
        for (t, m) in [(40_000, 0.5), (90_000, 0.8), (150_000, 0.6), (300_000, 0.3)] {
            talk.add_mass(t, m);
        }
        for (t, m) in [(5_000, 0.5), (10_000, 1.0), (20_000, 0.5)] {
            wrap.add_mass(t, m);
        }
        let mut s = ServiceModel {
            talk,
            wrap,
            cum_talk: Vec::new(),
            cum_wrap: Vec::new(),
            talk_free: Vec::new(),
            row_gen: Vec::new(),
            gen: 0,
            wq: [0.0; 3],
            horizon_s,
        };
        s.refresh();
        s
    }

    pub fn observe_talk(&mut self, talk_ms: u64) {
        self.talk.add(talk_ms);
    }

    pub fn observe_wrap(&mut self, wrap_ms: u64) {
        self.wrap.add(wrap_ms);
    }

    pub fn mean_talk_ms(&self) -> f64 {
        self.talk.mean_ms()
    }

    pub fn mean_wrap_ms(&self) -> f64 {
        self.wrap.mean_ms()
    }

    pub fn effective_samples(&self) -> f64 {
        self.talk.effective_samples()
    }

    fn wrap_quantile_ms(&self, q: f64) -> f64 {
        let i = self.cum_wrap.partition_point(|c| *c < q);
        let i = i.max(1);
        // Interpolate within bin i-1.
        let lo = self.cum_wrap[i - 1];
        let hi = self.cum_wrap.get(i).copied().unwrap_or(1.0);
        let f = if hi > lo { (q - lo) / (hi - lo) } else { 0.5 };
        ((i - 1) as f64 + f) * WRAP_BIN_MS as f64
    }

    /// Takes in the samples seen so far; the residual-life table rows are
    /// then recomputed lazily, when first asked for (call every minute or so).
    pub fn refresh(&mut self) {
        self.talk.cumulative(&mut self.cum_talk);
        self.wrap.cumulative(&mut self.cum_wrap);
        self.wq = [self.wrap_quantile_ms(1.0 / 6.0), self.wrap_quantile_ms(0.5), self.wrap_quantile_ms(5.0 / 6.0)];
        let stride = self.horizon_s + 1;
        self.talk_free.resize(TALK_ROWS * stride, 0.0);
        self.row_gen.resize(TALK_ROWS, 0);
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.row_gen.iter_mut().for_each(|g| *g = u32::MAX);
        }
    }

    fn compute_row(&mut self, row: usize) {
        let stride = self.horizon_s + 1;
        let wq = self.wq;
        let e = if row < FINE_ROWS {
            (row as u64 * TALK_BIN_MS + TALK_BIN_MS / 2) as f64
        } else {
            60_000.0 * ROW_GROWTH.powf((row - FINE_ROWS) as f64 + 0.5)
        };
        let s_e = 1.0 - interp(&self.cum_talk, TALK_BIN_MS, e);
        let mean = self.talk.mean_ms();
        let out = &mut self.talk_free[row * stride..(row + 1) * stride];
        if s_e <= 1e-9 {
            // Beyond anything seen: assume about a mean talk left.
            let m = (mean + wq[1]).max(1_000.0);
            for (u, o) in out.iter_mut().enumerate() {
                *o = 1.0 - (-(u as f64 * 1_000.0) / m).exp();
            }
        } else {
            for (u, o) in out.iter_mut().enumerate() {
                let u_ms = u as f64 * 1_000.0;
                let mut p = 0.0;
                for w in wq {
                    if u_ms > w {
                        let s = 1.0 - interp(&self.cum_talk, TALK_BIN_MS, e + u_ms - w);
                        p += (s_e - s) / s_e;
                    }
                }
                *o = (p / 3.0).clamp(0.0, 1.0);
            }
        }
        self.row_gen[row] = self.gen;
    }

    /// Row of the residual-life table for an agent talking for `in_state_ms`.
    pub fn talking_row(in_state_ms: u64) -> usize {
        if in_state_ms < 60_000 {
            (in_state_ms / TALK_BIN_MS) as usize
        } else {
            let k = ((in_state_ms as f64 / 60_000.0).ln() / ROW_GROWTH.ln()) as usize;
            (FINE_ROWS + k).min(TALK_ROWS - 1)
        }
    }

    /// Number of rows [`ServiceModel::talking_row`] may return.
    pub const TALKING_ROWS: usize = TALK_ROWS;

    /// `row[u]`: P(an agent of table row `row` is free within `u` seconds).
    pub fn talking_free_row(&mut self, row: usize) -> &[f64] {
        let row = row.min(TALK_ROWS - 1);
        if self.row_gen[row] != self.gen {
            self.compute_row(row);
        }
        let stride = self.horizon_s + 1;
        &self.talk_free[row * stride..(row + 1) * stride]
    }

    /// P(an agent talking for `in_state_ms` is free within `u_s` seconds).
    pub fn talking_free_within(&mut self, in_state_ms: u64, u_s: usize) -> f64 {
        let u = u_s.min(self.horizon_s);
        self.talking_free_row(Self::talking_row(in_state_ms))[u]
    }

    /// P(an agent in wrap-up for `in_state_ms` is free within `u_s` seconds).
    pub fn wrapping_free_within(&self, in_state_ms: u64, u_s: usize) -> f64 {
        let e = in_state_ms as f64;
        let s_e = 1.0 - interp(&self.cum_wrap, WRAP_BIN_MS, e);
        if s_e <= 1e-9 {
            return 1.0 - (-(u_s as f64) / 5.0).exp();
        }
        let s = 1.0 - interp(&self.cum_wrap, WRAP_BIN_MS, e + u_s as f64 * 1_000.0);
        ((s_e - s) / s_e).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_forgets_old_samples() {
        let mut h = DecayingHistogram::new(1_000, 10, 10.0);
        for _ in 0..200 {
            h.add(1_500);
        }
        for _ in 0..100 {
            h.add(7_500);
        }
        let mut cum = Vec::new();
        h.cumulative(&mut cum);
        // After 10 half-lives the old mode weighs < 0.1 %.
        assert!(cum[2] < 0.01, "old mass {}", cum[2]);
        assert!((h.effective_samples() - 14.4).abs() < 1.0);
    }

    #[test]
    fn outcome_model_learns_live_share_and_conditions_on_age() {
        let mut m = OutcomeModel::new(20_000, 2_000.0);
        for i in 0..5_000u64 {
            match i % 10 {
                0 | 1 => m.observe(6_000 + (i % 7) * 500, Resolution::Live),
                2..=4 => m.observe(3_000, Resolution::Failed),
                _ => m.observe(20_000, Resolution::NotLive),
            }
        }
        // The failure share used is the smaller of a fast and a slow (in
        // time) estimate: before the slow one has caught up it is the prior.
        m.refresh();
        assert!(m.fail_share() < 0.26);
        m.advance(4 * 3_600_000);
        m.refresh();
        assert!((m.fail_share() - 0.3).abs() < 0.02, "f {}", m.fail_share());
        assert!((m.p_live() - 0.2).abs() < 0.01, "p {}", m.p_live());
        // A call still ringing at 10 s can no longer answer live.
        assert!(m.live_within(10_000.0, 10_000.0) < 0.01);
        // At 4 s, the failures are gone: 2 of 7 remaining will answer live.
        let p = m.live_within(4_000.0, 15_000.0);
        assert!((p - 2.0 / 7.0).abs() < 0.02, "p {p}");
    }

    #[test]
    fn service_model_residual_life() {
        let mut s = ServiceModel::new(500.0, 30);
        for _ in 0..3_000 {
            s.observe_talk(100_000);
            s.observe_wrap(10_000);
        }
        s.refresh();
        // Talking 95 s, talk lasts 100 s, wrap 10 s: free in ~15 s.
        assert!(s.talking_free_within(95_000, 10) < 0.05);
        assert!(s.talking_free_within(95_000, 20) > 0.95);
        assert!(s.wrapping_free_within(5_000, 2) < 0.05);
        assert!(s.wrapping_free_within(5_000, 8) > 0.95);
    }
}
