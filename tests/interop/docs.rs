//! Every reference in the repository resolves to its own `docs/`: requirement ids (`R1`…`R61`,
//! `docs/requirements.md`), Dendrite defects and palpo findings (`B-n`, `palpo n`,
//! `docs/regressions.md`), and architecture sections (`docs/architecture.md §n`). Nothing names a
//! document outside the repository.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Every source and documentation file of the repository (not `target/`).
fn files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == "target" || name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                walk(&path, out);
            } else if ["rs", "md", "toml"]
                .iter()
                .any(|ext| path.extension().is_some_and(|e| e == *ext))
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for dir in ["src", "tests", "examples", "benches", "crates", "docs"] {
        walk(&root().join(dir), &mut out);
    }
    out.extend(["README.md", "BENCHMARKS.md", "clippy.toml"].map(|f| root().join(f)));
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The headings of a docs file, as their text after the `#`s.
fn headings(doc: &str) -> BTreeSet<String> {
    read(&root().join("docs").join(doc))
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim().to_owned())
        .collect()
}

/// `word` followed by a number: the numbers found after each occurrence of `prefix`.
fn ids_after(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(prefix) {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            continue;
        }
        let digits: String =
            text[i + prefix.len()..].chars().take_while(|c| c.is_ascii_digit()).collect();
        if !digits.is_empty() {
            out.push(digits);
        }
    }
    out
}

#[test]
fn every_requirement_defect_and_section_reference_resolves_to_docs() {
    let requirements = headings("requirements.md");
    let regressions = headings("regressions.md");
    let architecture = headings("architecture.md");
    let mut missing = Vec::new();
    for path in files() {
        let text = read(&path);
        let shown = path.strip_prefix(root()).unwrap_or(&path).display().to_string();
        for n in ids_after(&text, "R") {
            // `R0` is `ClientPrefix::R0`, not a requirement.
            if n != "0" && !requirements.contains(&format!("R{n}")) {
                missing.push(format!("{shown}: R{n}"));
            }
        }
        for n in ids_after(&text, "B-") {
            if !regressions.contains(&format!("B-{n}")) {
                missing.push(format!("{shown}: B-{n}"));
            }
        }
        for n in ids_after(&text, "palpo ") {
            if !regressions.contains(&format!("palpo {n}")) {
                missing.push(format!("{shown}: palpo {n}"));
            }
        }
        for (i, _) in text.match_indices("docs/architecture.md §") {
            let rest = &text[i + "docs/architecture.md §".len()..];
            let section: String =
                rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'b').collect();
            let section = section.trim_end_matches('.');
            if section.is_empty() {
                continue; // prose about the form (`§N`), not a reference
            }
            let found = architecture.iter().any(|h| {
                h.strip_prefix(section).is_some_and(|t| t.starts_with(' ') || t.starts_with('.'))
            });
            if !found {
                missing.push(format!("{shown}: docs/architecture.md §{section}"));
            }
        }
        for outside in
            ["DESIGN §", "DESIGN.md", "reference/msc.md", "shared/reference", "peers.md §"]
        {
            if text.contains(outside) && !shown.ends_with("interop/docs.rs") {
                missing.push(format!("{shown}: names {outside}, outside the repository"));
            }
        }
    }
    assert!(missing.is_empty(), "references that do not resolve to docs/:\n{}", missing.join("\n"));
}
