//! The layer map of `docs/architecture.md`, checked on the source: the drivers import
//! nothing above them, and the write path (`flush/`), the read path (`load/`) and
//! references (`reference.rs`) reach each other only through the seams' traits.
//! A new `use` that breaks a rule fails here with the file and line.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code lines of a file (comments and unit-test modules left out), numbered.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).expect("read source");
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push((n + 1, line.to_string()));
    }
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The files of `area` (a folder or a file under `src/`).
fn files_of(area: &str) -> Vec<PathBuf> {
    let path = src().join(area);
    let mut files = Vec::new();
    if path.is_dir() {
        rust_files(&path, &mut files);
    } else {
        files.push(path);
    }
    assert!(!files.is_empty(), "no files in {area}");
    files
}

/// Lines of `area` that mention one of `forbidden` (paths like `crate::flush` or
/// root re-exports like `Flusher`), minus lines that only use `allowed` names.
fn violations(area: &str, forbidden: &[&str], allowed: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files_of(area) {
        for (n, line) in code_lines(&file) {
            let mut rest = line.clone();
            for ok in allowed {
                rest = rest.replace(ok, "");
            }
            for bad in forbidden {
                let hit = if bad.starts_with("crate::") {
                    rest.contains(bad)
                } else {
                    // A root re-export, used as `crate::Name` or inside `use crate::{…}`.
                    rest.contains("crate::")
                        && rest
                            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .any(|w| w == *bad)
                };
                if hit {
                    let rel = file.strip_prefix(src()).unwrap_or(&file).display();
                    found.push(format!("src/{rel}:{n} uses {bad}: {}", line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn drivers_import_nothing_above_them() {
    let above = [
        "crate::flush",
        "crate::load",
        "crate::reference",
        "crate::db",
        "crate::sync",
        "crate::engine",
        "crate::registry",
        "crate::observe",
        "crate::executor",
        "crate::tracked",
        "crate::query",
        "Engine",
        "Flusher",
        "Tracked",
        "Reader",
        "Transaction",
        "Db",
        "Registry",
        "ValidatedRegistry",
    ];
    let found = violations("sql", &above, &[]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn write_and_read_paths_do_not_import_each_other() {
    let found = violations(
        "flush",
        &["crate::load", "crate::executor", "Reader", "Preload"],
        &[],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
    let found = violations(
        "load",
        &["crate::flush", "crate::observe", "Flusher", "ChangeSet"],
        &[],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn references_meet_the_paths_only_through_seam_traits() {
    // A reference hands a new entity to the write path as `Flushable`, and loads
    // through the read front; the write path sees references as `AnyRef` /
    // `NewEntity`.
    let found = violations(
        "reference.rs",
        &["crate::flush", "crate::load", "crate::executor", "Flusher"],
        &["crate::flush::Flushable"],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
    let found = violations(
        "flush",
        &["crate::reference", "Ref"],
        &["crate::reference::NewEntity", "crate::reference::AnyRef"],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_checker_finds_a_forbidden_use() {
    // The rules above would pass on an empty tree; make sure a real line is caught.
    let found = violations("load", &["crate::tracked"], &[]);
    assert!(
        !found.is_empty(),
        "load/ imports Tracked from crate::tracked"
    );
}
