//! "SQL lives in `store`" (ARCHITECTURE.md, "Invariants"): the roles' crates call `store`'s
//! functions and write no statement of their own. This scans their sources (not their tests, and
//! not `bench`, which is tooling) for a statement being made.

use std::path::{Path, PathBuf};

/// The crates whose sources may hold no statement.
const CRATES: &[&str] = &["api", "control", "dialer", "kakeru"];

/// Files that still build statements outside `store`, and why (none now: the generic resources'
/// statements are `store::resource`'s, made from the API's description of each resource).
const ALLOWED: &[(&str, &str)] = &[];

/// A statement being made on this line: `sqlx::query...`, or a free call of `query(`,
/// `query_as(` or `query_scalar(` (a method such as a Redis wrapper's `self.query(` is not one).
fn makes_statement(line: &str) -> bool {
    if line.contains("sqlx::query") {
        return true;
    }
    ["query(", "query_as(", "query_scalar("].iter().any(|call| {
        line.match_indices(call).any(|(at, _)| {
            let before = line[..at].chars().next_back();
            !before.is_some_and(|c| c == '.' || c == '_' || c.is_alphanumeric())
        })
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_detector_sees_statements_and_not_methods() {
    assert!(makes_statement(r#"let r = sqlx::query("SELECT 1").fetch_one(&db.pool).await?;"#));
    assert!(makes_statement(r#"use store::sqlx::query::Query;"#));
    assert!(makes_statement(r#"let n: i64 = query_scalar("SELECT COUNT(*) FROM leads")"#));
    assert!(makes_statement(r#"let q = query(&sql);"#));
    assert!(makes_statement(r#"(query_as("SELECT id FROM users"))"#));
    assert!(!makes_statement(r#"let id: String = self.query("publish", &c).await?;"#));
    assert!(!makes_statement(r#"fn run_query(x: u8) {}"#));
    assert!(!makes_statement(r#"let q = Q::new(&p, &["from", "to"])?; // the report's query (filters)"#));
}

#[test]
fn sql_lives_in_store() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut scanned = 0;
    let mut found = Vec::new();
    for krate in CRATES {
        let mut files = Vec::new();
        rust_files(&root.join(krate).join("src"), &mut files);
        assert!(!files.is_empty(), "{krate}/src holds no Rust file: the scan looked in the wrong place");
        for file in files {
            let rel = file.strip_prefix(&root).expect("under the workspace").to_string_lossy().replace('\\', "/");
            if ALLOWED.iter().any(|(allowed, _)| *allowed == rel) {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {rel}: {e}"));
            scanned += 1;
            for (n, line) in text.lines().enumerate() {
                if makes_statement(line) {
                    found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(scanned > 50, "only {scanned} files scanned");
    assert!(
        found.is_empty(),
        "statements outside store (move them into a store function of their domain):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_allowed_files_still_need_it() {
    // An allowance outlives its reason only until the file stops making statements.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (file, why) in ALLOWED {
        assert!(!why.is_empty());
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("reading {file}: {e}"));
        assert!(text.lines().any(makes_statement), "{file} makes no statement any more: drop it from ALLOWED");
    }
}
