//! The media core's boundary (ARCHITECTURE.md, "Boundaries"): no runtime, socket library or storage
//! among its dependencies; the drivers and the archive around it live in crates of their own.

/// Names of the `[dependencies]` table of a manifest (one `name = ...` a line, as ours are written).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && !line.is_empty() && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once('=') {
                names.push(name.trim().to_string());
            }
        }
    }
    names
}

#[test]
fn the_media_core_depends_on_no_runtime_socket_library_or_storage() {
    let manifest = include_str!("../../Cargo.toml");
    let deps = dependencies(manifest);
    assert!(deps.contains(&"rtp-rs".to_string()), "the manifest was read: {deps:?}");
    for forbidden in [
        "tokio",
        "compio",
        "mio",
        "sqlx",
        "store",
        "io-uring",
        "libc",
        "socket2",
        "crossbeam-channel",
        "futures",
        "core_affinity",
        "metrics",
    ] {
        assert!(!deps.iter().any(|d| d == forbidden), "media depends on {forbidden}: {deps:?}");
    }
}
