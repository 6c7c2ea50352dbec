//! The house's shape, checked: no file of `src/` over 600 lines; the
//! top-level modules of `src/` form a layered graph (each uses only modules
//! below it, unit tests aside), and so do the files of
//! `src/store/postgres/`; the store has one seam (statements written once,
//! each backend only its primitives) and one batch writer; the wall clock is
//! read in one place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The code of a file as the build sees it outside unit tests: without
/// comments (doc links name modules without using them) and without the
/// `#[cfg(test)]` module at its end.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal (a URL) is rare in paths of
            // `crate::`; cutting there only ever drops text.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names after `crate::` in `code`, including each in `crate::{a, b::c}`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                found.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

/// A cycle in `edges`, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_file_of_src_is_over_600_lines() {
    let long: Vec<String> = rust_files(&src())
        .into_iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_top_level_modules_of_src_form_layers() {
    let modules: BTreeSet<String> = std::fs::read_dir(src())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path.file_stem()?.to_str()?.to_owned();
            let is_module = path.is_dir() || path.extension().is_some_and(|e| e == "rs");
            (is_module && name != "lib" && name != "main").then_some(name)
        })
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for module in &modules {
        let dir = src().join(module);
        let files = if dir.is_dir() {
            rust_files(&dir)
        } else {
            vec![src().join(format!("{module}.rs"))]
        };
        let uses = edges.entry(module.clone()).or_default();
        for file in files {
            for name in crate_paths(&code(&file)) {
                if modules.contains(&name) && &name != module {
                    uses.insert(name);
                }
            }
        }
    }
    assert_eq!(
        cycle(&edges),
        None,
        "the modules use each other: {edges:#?}"
    );
    // The check itself sees edges: the ledger stands on the model.
    assert!(edges["ledger"].contains("model"), "{edges:#?}");
}

#[test]
fn the_files_of_the_postgres_store_form_layers() {
    let dir = src().join("store/postgres");
    let files: BTreeSet<String> = rust_files(&dir)
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let text = code(&dir.join(format!("{file}.rs")));
        let uses = edges.entry(file.clone()).or_default();
        for other in &files {
            let named = [
                format!("super::{other}::"),
                format!("super::{other}}}"),
                format!("super::{other},"),
                format!("postgres::{other}::"),
                format!(" {other}::{{"),
                format!("super::{{{other},"),
            ];
            if other != file && named.iter().any(|n| text.contains(n.as_str())) {
                uses.insert(other.clone());
            }
        }
    }
    assert_eq!(cycle(&edges), None, "{edges:#?}");
    assert!(edges["store"].contains("retry"), "{edges:#?}");
}

fn stems(dir: &Path) -> BTreeSet<String> {
    rust_files(dir)
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_store_has_one_seam_and_one_batch_writer() {
    let store = src().join("store");
    // Each backend keeps its primitives (connections, transactions, the
    // writer's connection) and its schema: no file forwards statements.
    let set = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
    assert_eq!(
        stems(&store.join("sqlite")),
        set(&["mod", "readers", "schema"])
    );
    assert_eq!(
        stems(&store.join("postgres")),
        set(&["mod", "retry", "store"])
    );
    // Statements are functions, not macros expanded per backend.
    for path in rust_files(&store.join("sql")) {
        let text = code(&path);
        for definition in text.split("macro_rules!").skip(1) {
            let body = definition.split("\n}\n").next().unwrap_or_default();
            assert!(
                !body.contains("sqlx::query") && !body.contains("async fn"),
                "{} makes statements by macro",
                path.display()
            );
        }
    }
    // One batch loop, which both backends' writers run.
    let loops: Vec<PathBuf> = rust_files(&store)
        .into_iter()
        .filter(|path| code(path).contains("async fn write_batch"))
        .collect();
    assert_eq!(loops, vec![store.join("writer.rs")]);
    let writers = rust_files(&store)
        .iter()
        .map(|path| code(path).matches("impl Batches for").count())
        .sum::<usize>();
    assert_eq!(writers, 2, "one Batches for each backend");
}

#[test]
fn the_wall_clock_is_read_in_one_place() {
    let reads: Vec<String> = rust_files(&src())
        .into_iter()
        .filter_map(|path| {
            let code = code(&path);
            let read = [
                "SystemTime::now",
                "now_utc(",
                "Utc::now",
                "OffsetDateTime::now",
            ]
            .iter()
            .any(|call| code.contains(call));
            read.then(|| path.strip_prefix(src()).unwrap().display().to_string())
        })
        .collect();
    assert_eq!(reads, ["clock.rs"], "everything else asks a Clock");
}
