//! Which crate may depend on which (ARCHITECTURE.md, "Boundaries"): every member's manifest checked
//! against the table. Above all, the control service is linked by the composition (`kakeru`) and
//! the benches alone: the dialer and the API speak to it over the bus, with the `wire` schemas.

use std::path::Path;

/// The workspace's crates each crate's `[dependencies]` may name (the table of ARCHITECTURE.md).
const MAY_DEPEND_ON: &[(&str, &[&str])] = &[
    ("wire", &[]),
    ("media", &[]),
    ("sip", &[]),
    ("store", &[]),
    ("telemetry", &[]),
    ("bus", &["wire"]),
    ("wallboard", &["bus", "wire"]),
    ("media-driver", &["media"]),
    ("media-archive", &["media", "store"]),
    ("control", &["bus", "wire", "wallboard", "store"]),
    ("api", &["bus", "wire", "wallboard", "store", "telemetry"]),
    ("sim", &["sip", "media"]),
    ("dialer", &["bus", "wire", "media", "media-driver", "sip", "store"]),
    (
        "kakeru",
        &[
            "api",
            "bus",
            "control",
            "dialer",
            "media",
            "media-archive",
            "sim",
            "sip",
            "store",
            "telemetry",
            "wallboard",
            "wire",
        ],
    ),
];

/// The members of the workspace manifest's `members = [...]`.
fn members(workspace: &str) -> Vec<String> {
    let start = workspace.find("members").expect("a members list");
    let list = &workspace[start..];
    let list = &list[list.find('[').expect("[") + 1..list.find(']').expect("]")];
    list.split(',').map(|m| m.trim().trim_matches('"').to_string()).filter(|m| !m.is_empty()).collect()
}

/// Names of the `[dependencies]` table of a manifest (`name = ...` or `name.workspace = ...`, one a
/// line, as ours are written).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && !line.is_empty() && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once('=') {
                let name = name.trim();
                names.push(name.split_once('.').map_or(name, |(n, _)| n).to_string());
            }
        }
    }
    names
}

#[test]
fn every_crate_depends_only_on_the_crates_its_row_allows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace");
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).expect("the workspace manifest");
    let members = members(&workspace);
    assert!(members.iter().any(|m| m == "dialer"), "the members were read: {members:?}");
    for member in &members {
        let manifest = std::fs::read_to_string(root.join(member).join("Cargo.toml")).expect("a manifest");
        let deps = dependencies(&manifest);
        assert!(!deps.is_empty(), "{member}'s dependencies were read");
        if member == "bench" {
            continue; // any
        }
        let Some((_, allowed)) = MAY_DEPEND_ON.iter().find(|(c, _)| c == member) else {
            panic!("{member} has no row in the table: add one here and in ARCHITECTURE.md");
        };
        for dep in deps.iter().filter(|d| members.contains(d)) {
            assert!(allowed.contains(&dep.as_str()), "{member} depends on {dep}: its row allows {allowed:?}");
        }
    }
}

#[test]
fn the_dialer_and_the_api_do_not_link_the_control_service() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace");
    for member in ["dialer", "api", "sim", "bus", "wire", "wallboard"] {
        let manifest = std::fs::read_to_string(root.join(member).join("Cargo.toml")).expect("a manifest");
        let deps = dependencies(&manifest);
        assert!(!deps.is_empty(), "{member}'s dependencies were read");
        assert!(!deps.iter().any(|d| d == "control"), "{member} depends on control: {deps:?}");
    }
}
