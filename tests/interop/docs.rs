//! Every reference in the repository resolves to its own `docs/`: requirement ids (`R1`…`R61`,
//! `docs/requirements.md`), Dendrite defects and palpo findings (`B-n`, `palpo n`,
//! `docs/regressions.md`), and architecture sections (`docs/architecture.md §n`). Every Markdown
//! document a file names is one of the repository's (none above its root), and every repository path a file names (`tests/sim/kit.rs`)
//! exists. The test authors' chapter, `docs/testing.md`, runs as doctests.

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
        for named in documents_named(&text) {
            if !resolves_inside(&path, &named) {
                missing.push(format!("{shown}: {named}, not a document of the repository"));
            }
        }
    }
    assert!(missing.is_empty(), "references that do not resolve to docs/:\n{}", missing.join("\n"));
}

/// The Markdown documents a text names: every path-like word ending in `.md` (`README.md`,
/// `docs/testing.md`, `../README.md`). Words inside a URL (`https://…/README.md`) are left out.
fn documents_named(text: &str) -> Vec<String> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    let mut out = Vec::new();
    for (end, _) in text.match_indices(".md") {
        let after = text[end + 3..].chars().next();
        if after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `.mdx`, a field `.md_…`
        }
        let start = text[..end]
            .char_indices()
            .rev()
            .find(|(_, c)| !is_path_char(*c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = text[start..end + 3].trim_start_matches('/');
        let stem = word.trim_end_matches(".md");
        if stem.is_empty() || stem.ends_with('/') || stem.ends_with('.') {
            continue; // `*.md`, `{a,b}.md`: a pattern
        }
        if text[..start].ends_with(':') || text[..start].ends_with("//") {
            continue; // a URL
        }
        out.push(word.to_owned());
    }
    out
}

#[test]
fn the_document_guard_finds_paths_and_skips_urls_patterns_and_other_extensions() {
    // The outside path is built, so this file names no outside document itself.
    let outside = format!("../x/{}.md", "NOTES");
    let text = format!(
        "see {outside}, docs/testing.md and `README.md`; not https://a/b.md, *.md, <TAG>.md, \
         notes.mdx or a field .md_len"
    );
    assert_eq!(documents_named(&text), [outside.as_str(), "docs/testing.md", "README.md"]);
    assert!(!resolves_inside(&root().join("README.md"), &outside));
    assert!(resolves_inside(&root().join("README.md"), "docs/testing.md"));
    // A document that exists, but outside the repository, does not count either.
    let elsewhere = std::env::temp_dir().join(format!("guard-{}.md", std::process::id()));
    std::fs::write(&elsewhere, "outside").unwrap();
    let inside = resolves_inside(&root().join("README.md"), elsewhere.to_str().unwrap());
    std::fs::remove_file(&elsewhere).unwrap();
    assert!(!inside, "{} is outside the repository", elsewhere.display());
}

/// Whether a document `named` in `file` is a file of the repository: from the repository
/// root, the file's own directory or package, or `docs/`, and never above the root.
fn resolves_inside(file: &Path, named: &str) -> bool {
    let bases = [
        root(),
        file.parent().map(Path::to_path_buf).unwrap_or_else(root),
        package_of(file),
        root().join("docs"),
    ];
    let Ok(root) = root().canonicalize() else { return false };
    bases
        .iter()
        .any(|base| base.join(named).canonicalize().is_ok_and(|found| found.starts_with(&root)))
}

/// The workspace package a file belongs to: the nearest directory above it with a
/// `Cargo.toml` (the root for the library's own files).
fn package_of(path: &Path) -> PathBuf {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d.join("Cargo.toml").is_file() {
            return d.to_path_buf();
        }
        dir = d.parent();
    }
    root()
}

/// The repository paths a text names: every `tests/…`, `examples/…`, `src/…`, `docs/…`,
/// `crates/…` or `benches/…` that starts a word. Paths with a placeholder (`{a,b}`, `<stem>`,
/// `*`, `…`) are patterns, not paths, and are left out.
fn paths_named(text: &str) -> Vec<String> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    let mut out = Vec::new();
    for top in ["tests/", "examples/", "src/", "docs/", "crates/", "benches/"] {
        for (i, _) in text.match_indices(top) {
            if text[..i].chars().next_back().is_some_and(is_path_char) {
                continue; // inside a longer path or a URL
            }
            let len = text[i..].find(|c: char| !is_path_char(c)).unwrap_or(text.len() - i);
            let next = text[i + len..].chars().next();
            if next.is_some_and(|c| "{<*…".contains(c)) {
                continue;
            }
            let path = text[i..i + len].trim_end_matches('.');
            if path.len() > top.len() {
                out.push(path.to_owned());
            }
        }
    }
    out
}

#[test]
fn every_repository_path_named_in_docs_and_doc_comments_exists() {
    let mut missing = Vec::new();
    for path in files() {
        let shown = path.strip_prefix(root()).unwrap_or(&path).display().to_string();
        if shown.ends_with("interop/docs.rs") {
            continue; // this file names path prefixes, not paths
        }
        let package = package_of(&path);
        for named in paths_named(&read(&path)) {
            // SyTest's own files (`tests/31sync/17peeking.pl`) are in SyTest's repository.
            if named.ends_with(".pl") {
                continue;
            }
            // A path resolves from the repository root, or from the file's own package
            // (`src/shim.rs` in `examples/http_pair/`).
            if !root().join(&named).exists() && !package.join(&named).exists() {
                missing.push(format!("{shown}: {named}"));
            }
        }
    }
    assert!(missing.is_empty(), "paths that do not exist:\n{}", missing.join("\n"));
}

/// The Rust snippets of a Markdown file: the lines between each ```` ```rust ```` fence and
/// the fence that closes it.
fn rust_snippets(markdown: &str) -> Vec<String> {
    let mut snippets = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, fence) if fence.starts_with("```rust") => current = Some(String::new()),
            (Some(_), "```") => snippets.extend(current.take()),
            (Some(snippet), _) => {
                snippet.push_str(line);
                snippet.push('\n');
            }
            (None, _) => {}
        }
    }
    snippets
}

#[test]
fn the_testing_chapter_runs_as_doctests_that_assert_and_need_the_testing_feature_only_if_used() {
    let lib = read(&root().join("src/lib.rs"));
    let included = lib
        .find("#[doc = include_str!(\"../docs/testing.md\")]")
        .is_some_and(|i| lib[..i].trim_end().ends_with("#[cfg(doctest)]"));
    assert!(included, "src/lib.rs must include docs/testing.md under #[cfg(doctest)]");
    let chapter = read(&root().join("docs/testing.md"));
    let snippets = rust_snippets(&chapter);
    assert!(snippets.len() >= 8, "the chapter's snippets: {}", snippets.len());
    for (n, snippet) in snippets.iter().enumerate() {
        let first = snippet.lines().next().unwrap_or_default();
        assert!(snippet.contains("assert"), "snippet {n} asserts nothing:\n{snippet}");
        if snippet.contains("matrix_peek::testing") {
            // As README.md does: without the feature, the snippet compiles to nothing.
            assert!(
                first.starts_with("# #[cfg(feature = \"testing\")]"),
                "snippet {n} uses the testing kit without the feature guard:\n{snippet}"
            );
        }
    }
    for index in ["README.md", "docs/README.md"] {
        assert!(read(&root().join(index)).contains("testing.md"), "{index} must point at it");
    }
}
