//! The production binary's command line: the roles, and nothing of the benches (`kakeru-bench`).

use std::process::Command;

#[test]
fn the_production_binary_has_no_bench_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_kakeru"))
        .args(["bench", "media", "--calls", "1", "--seconds", "1"])
        .output()
        .expect("kakeru runs");
    assert!(!out.status.success(), "kakeru ran a bench");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unrecognized subcommand 'bench'"), "{err}");
    let help = Command::new(env!("CARGO_BIN_EXE_kakeru")).arg("--help").output().expect("kakeru runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("dialer") && help.contains("control"), "the roles are listed: {help}");
    assert!(!help.contains("bench"), "no bench in the production binary's help: {help}");
}
