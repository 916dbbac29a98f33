//! Fast deterministic checks of the floor simulator and the pacers. The
//! 30-day grid is a benchmark (`--grid`), not a test.

mod binary;
mod control;

use bench::pacing::{compliant, make_pacer, report, run_policy, run_reports, simulate, PacingArgs, SimConfig};
use clap::Parser;

/// `kakeru-bench pacing` as its CLI parses it.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: PacingArgs,
}

/// The JSON lines `kakeru-bench pacing ... --json` prints for `argv`.
fn json_lines(argv: &str) -> Vec<String> {
    let cli = Cli::try_parse_from(std::iter::once("pacing").chain(argv.split_whitespace())).unwrap();
    let mut lines = Vec::new();
    run_reports(&cli.args, |r| {
        lines.push(serde_json::to_string(r)?);
        Ok(())
    })
    .unwrap();
    lines
}

const SHORT: &str =
    "--agents 12 --answer-prob 0.25 --talk-mean-s 90 --days 2 --shift-hours 1.5 --policy kakeru,progressive,ratio,vicidial --json";

#[test]
fn same_seed_same_json_bit_for_bit() {
    let argv = format!("{SHORT} --seed 7 --answering-machines");
    let a = json_lines(&argv);
    let b = json_lines(&argv);
    assert_eq!(a.len(), 4);
    assert_eq!(a, b, "two runs of one seed must print the same bytes");
}

#[test]
fn different_seeds_give_different_figures() {
    let a = json_lines(&format!("{SHORT} --seed 7"));
    let b = json_lines(&format!("{SHORT} --seed 8"));
    for (x, y) in a.iter().zip(&b) {
        let (x, y): (serde_json::Value, serde_json::Value) =
            (serde_json::from_str(x).unwrap(), serde_json::from_str(y).unwrap());
        assert_eq!(x["policy"], y["policy"]);
        assert_ne!(x["occupancy"], y["occupancy"], "{} ignores the seed", x["policy"]);
        assert_ne!(x["wait_mean_s"], y["wait_mean_s"], "{} ignores the seed", x["policy"]);
    }
}

#[test]
fn json_carries_the_documented_figures() {
    let lines = json_lines("--agents 8 --answer-prob 0.3 --days 1 --shift-hours 1 --seed 3 --policy kakeru --json");
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["policy"], "kakeru");
    for key in [
        "occupancy",
        "abandon_rate",
        "abandon_worst_day",
        "days_over_target",
        "wait_mean_s",
        "wait_p95_s",
        "dials_per_agent_hour",
        "abandon_worst_60min",
    ] {
        assert!(v[key].is_number(), "{key} missing in {v}");
    }
    let occupancy = v["occupancy"].as_f64().unwrap();
    assert!(occupancy > 0.2 && occupancy < 1.0, "{v}");
    assert!(v["dials_per_agent_hour"].as_f64().unwrap() > 10.0, "{v}");
}

#[test]
fn bad_arguments_name_the_flag() {
    let cli = Cli::try_parse_from(["pacing", "--policy", "turbo"]).unwrap();
    let e = run_reports(&cli.args, |_| Ok(())).unwrap_err().to_string();
    assert!(e.contains("--policy") && e.contains("turbo"), "{e}");
    let cli = Cli::try_parse_from(["pacing", "--ring-timeout-s", "5"]).unwrap();
    let e = run_reports(&cli.args, |_| Ok(())).unwrap_err().to_string();
    assert!(e.contains("--ring-timeout-s"), "{e}");
}

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
fn fixed_ratio_is_tuned_to_the_same_bar_as_kakeru() {
    // Three short days: the tuned ratio must keep every day at target (one
    // day in 30 may be over; none in three), and a ratio 10 % higher must not.
    let cfg = floor(10, 0.3, 3, 2.0, 5);
    let r = run_policy("ratio", &cfg, None).unwrap();
    let ratio = r.ratio.unwrap();
    assert!(ratio > 1.0, "{r:?}");
    assert!(r.abandon_rate <= 0.03 && r.days_over_target == 0, "{r:?}");
    let tuned = simulate(&cfg, make_pacer("ratio", &cfg, ratio).unwrap().as_mut());
    assert!(compliant(&tuned, 0.03));
    let higher = simulate(&cfg, make_pacer("ratio", &cfg, ratio * 1.1).unwrap().as_mut());
    assert!(!compliant(&higher, 0.03), "ratio {ratio} was not the largest compliant one");
}

#[test]
fn nonstationary_day_runs_and_reports_steps() {
    let cfg = SimConfig { nonstationary: true, ..floor(20, 0.3, 1, 8.0, 2) };
    let r = run_policy("progressive", &cfg, None).unwrap();
    assert!(r.abandon_worst_after_step.is_some());
    assert!(r.occupancy > 0.2 && r.occupancy < 1.0, "{r:?}");
}
