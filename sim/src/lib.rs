//! The built-in peers of the embedded default and of the benches: a simulated **carrier** trunk and
//! simulated **agents' phones**, real SIP and RTP over UDP (loopback), driven by the same sans-IO
//! SIP endpoint as the dialer ([`sip::Endpoint`]).
//!
//! - [`carrier`]: answers INVITEs like a floor's customers would (answer probability, answer delay
//!   lognormal with mean 8 s, 30 % of the non-answers failing at about 3 s, the rest ringing until
//!   the dialer's CANCEL, talk time lognormal), or by rules on the dialled number's last digit for
//!   tests; streams G.711 RTP to every answered call; keeps a log of every number it was asked to
//!   call and what it did.
//! - [`phone`]: agents' softphones: REGISTER with digest, auto-answer the nailed-up leg, RTP, and
//!   RFC 4733 digits on request.
//! - [`browser`]: a browser's WebRTC peer (str0m) for the browser phone's tests and bench.
//! - [`agent`]: agents working a call job through the API and its push channel, as the agent
//!   desktop does ([`sse`] is their server-sent events client).
//! - [`floor`]: a floor of them: their phones registered, then one agent each on a call job.

pub mod agent;
pub mod browser;
pub mod carrier;
pub mod floor;
pub mod phone;
mod rtp;
pub mod sse;

use std::time::Instant;

use rand::Rng;

/// A lognormal sample with this mean and coefficient of variation (sd / mean).
pub fn lognormal_ms(rng: &mut impl Rng, mean_ms: f64, cv: f64) -> u64 {
    let sigma2 = (1.0 + cv * cv).ln();
    let mu = mean_ms.max(1.0).ln() - sigma2 / 2.0;
    let z: f64 = {
        // Box-Muller from two uniforms.
        let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = rng.gen();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    };
    (mu + sigma2.sqrt() * z).exp().round().max(1.0) as u64
}

/// Drives an endpoint's timers: the instant of the next deadline, or an hour away.
pub(crate) fn next_deadline(a: Option<Instant>, b: Option<Instant>) -> Instant {
    match (a, b) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600)),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    #[test]
    fn lognormal_has_its_mean() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = 20_000;
        let sum: u64 = (0..n).map(|_| super::lognormal_ms(&mut rng, 8_000.0, 1.0)).sum();
        let mean = sum as f64 / n as f64;
        assert!((7_600.0..8_400.0).contains(&mean), "mean {mean}");
    }
}
