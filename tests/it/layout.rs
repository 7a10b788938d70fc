//! The shape of the source tree, as docs/architecture.md draws it: every
//! top-level module of `src/` declared (and documented) in `lib.rs`, few of
//! them, and no import cycle between them (a folder may use the folders
//! below it, never one that uses it back).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules: folders and files of `src/` but `lib.rs`/`main.rs`.
fn top_level() -> BTreeSet<String> {
    std::fs::read_dir(src())
        .unwrap()
        .flatten()
        .map(|e| {
            e.file_name()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .filter(|n| n != "lib" && n != "main")
        .collect()
}

/// Every `crate::NAME` a file names (also inside `crate::{A, B::c}`).
fn crate_refs(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(inner) = rest.strip_prefix('{') {
            let (mut depth, mut item) = (1, String::new());
            for c in inner.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && c == ',') {
                    out.insert(ident(item.trim()));
                    item.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn lib_rs_lists_every_top_level_module_and_there_are_few() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let tops = top_level();
    for m in &tops {
        assert!(
            lib.contains(&format!("pub mod {m};")) && lib.contains(&format!("[`{m}`]")),
            "lib.rs declares and documents `{m}`"
        );
    }
    // Every entry counts, lib.rs and main.rs too.
    let entries = std::fs::read_dir(src()).unwrap().count();
    assert!(entries <= 17, "{entries} entries under src/: {tops:?}");
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let tops = top_level();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut all = Vec::new();
    files(&src(), &mut all);
    // The plugins are the `plugins` module (lib.rs includes plugins/): a
    // core module that used one would be a cycle too.
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins");
    files(&plugins, &mut all);
    let tops: BTreeSet<String> = tops.into_iter().chain(["plugins".to_string()]).collect();
    for f in all {
        let from = match f.strip_prefix(src()) {
            Ok(rel) => {
                let first = rel.iter().next().unwrap().to_string_lossy();
                first.trim_end_matches(".rs").to_string()
            }
            Err(_) => "plugins".to_string(),
        };
        if !tops.contains(&from) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let uses = graph.entry(from.clone()).or_default();
        for r in crate_refs(&text) {
            let to = if r == "Error" { "error".to_string() } else { r };
            if to != from && tops.contains(&to) {
                uses.insert(to);
            }
        }
    }
    assert_eq!(cycle(&graph), None);
    // The check can fail: a made-up cycle is found.
    let mut bad = graph.clone();
    bad.entry("oci".into()).or_default().insert("engine".into());
    assert!(cycle(&bad).is_some_and(|c| c.contains("oci")), "{bad:?}");
    assert!(crate_refs("use crate::{a::B, c};\nlet x = crate::d::e();").len() == 3);
}

/// A cycle in `g`, drawn `a -> b -> a`, if there is one (depth-first: a
/// module met again while on the path is a cycle).
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if done.contains(n) {
            return None;
        }
        if let Some(i) = path.iter().position(|p| p == n) {
            return Some(format!("{} -> {n}", path[i..].join(" -> ")));
        }
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}
