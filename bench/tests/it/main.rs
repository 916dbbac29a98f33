//! Fast deterministic checks of the floor simulator and the pacers. The
//! 30-day grid is a benchmark (`--grid`), not a test.

use bench::pacing::{make_pacer, report, run_policy, simulate, SimConfig};

fn floor(agents: u32, p: f64, days: u32, shift_hours: f64, seed: u64) -> SimConfig {
    SimConfig { agents, answer_prob: p, days, shift_hours, seed, ..SimConfig::default() }
}

#[test]
fn same_seed_same_figures_bit_for_bit() {
    let cfg = floor(20, 0.2, 1, 2.0, 7);
    for policy in ["kakeru", "vicidial", "progressive"] {
        let a = simulate(&cfg, make_pacer(policy, &cfg, 1.0).unwrap().as_mut());
        let b = simulate(&cfg, make_pacer(policy, &cfg, 1.0).unwrap().as_mut());
        assert_eq!(a, b, "{policy}");
        let ra = report(policy, &cfg, &a, None);
        let rb = report(policy, &cfg, &b, None);
        assert_eq!(serde_json::to_string(&ra).unwrap(), serde_json::to_string(&rb).unwrap());
    }
    let other = simulate(&floor(20, 0.2, 1, 2.0, 8), make_pacer("kakeru", &cfg, 1.0).unwrap().as_mut());
    let first = simulate(&cfg, make_pacer("kakeru", &cfg, 1.0).unwrap().as_mut());
    assert_ne!(first, other, "seeds must matter");
}

#[test]
fn kakeru_keeps_abandon_under_target_and_beats_progressive() {
    let cfg = floor(50, 0.2, 2, 4.0, 3);
    let k = run_policy("kakeru", &cfg, None).unwrap();
    let p = run_policy("progressive", &cfg, None).unwrap();
    assert!(k.abandon_rate <= 0.03, "kakeru abandon {:?}", k);
    assert!(k.occupancy > p.occupancy + 0.10, "kakeru {:.3} vs progressive {:.3}", k.occupancy, p.occupancy);
    assert_eq!(p.abandoned, 0, "progressive never abandons");
}

#[test]
fn fixed_ratio_is_tuned_to_the_target() {
    let cfg = floor(10, 0.4, 1, 2.0, 5);
    let r = run_policy("ratio", &cfg, None).unwrap();
    assert!(r.ratio.unwrap() >= 1.0);
    assert!(r.abandon_rate <= 0.03, "{r:?}");
}

#[test]
fn nonstationary_day_runs_and_reports_steps() {
    let cfg = SimConfig { nonstationary: true, ..floor(20, 0.3, 1, 8.0, 2) };
    let r = run_policy("progressive", &cfg, None).unwrap();
    assert!(r.abandon_worst_after_step.is_some());
    assert!(r.occupancy > 0.2 && r.occupancy < 1.0, "{r:?}");
}
