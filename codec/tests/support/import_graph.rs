//! The import graph of one crate's top-level modules, read from its sources, and a check that
//! it has no circles. Standard library only, so any crate's tests can include this file:
//!
//! ```ignore
//! #[path = "<relative path to>/codec/tests/support/import_graph.rs"]
//! mod import_graph;
//!
//! #[test]
//! fn modules_import_without_circles() {
//!     import_graph::assert_acyclic(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
//! }
//! ```
//!
//! A top-level module is `src/<name>.rs` or everything under `src/<name>/`; the crate root
//! (`lib.rs`, else `main.rs`) and `src/bin/` are not modules. Module `a` imports module `b`
//! when a `crate::b…` path appears in `a`'s code (a `use`, or a path in an expression, in
//! `#[cfg(test)]` code too; comments and string literals do not count), or a `crate::X` path
//! whose `X` the crate root takes from `b` (`pub use b::{X, …}`). `self::` and `super::`
//! paths are not followed.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module name to the modules it imports (never itself).
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The import graph of the crate whose sources are in `src`.
pub fn module_graph(src: &Path) -> std::io::Result<Graph> {
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut root = None;
    for entry in std::fs::read_dir(src)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if path.is_dir() {
            if name != "bin" {
                let mut under = Vec::new();
                rust_files(&path, &mut under)?;
                files.entry(name).or_default().extend(under);
            }
        } else if let Some(stem) = name.strip_suffix(".rs") {
            match stem {
                "lib" => root = Some(path),
                "main" => {
                    root.get_or_insert(path);
                }
                _ => files.entry(stem.to_owned()).or_default().push(path),
            }
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let reexports = match &root {
        Some(root) => reexports(&strip(&std::fs::read_to_string(root)?), &modules),
        None => BTreeMap::new(),
    };
    let mut graph = Graph::new();
    for (module, paths) in &files {
        let imports = graph.entry(module.clone()).or_default();
        for path in paths {
            let code = strip(&std::fs::read_to_string(path)?);
            for name in crate_paths(&code) {
                let targets = if modules.contains(&name) {
                    vec![name]
                } else {
                    reexports.get(&name).cloned().unwrap_or_default()
                };
                imports.extend(targets.into_iter().filter(|t| t != module));
            }
        }
    }
    Ok(graph)
}

/// A circle in the graph, as its modules in order (the first repeated at the end), if any.
pub fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        graph: &Graph,
        node: &str,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = stack[from..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(graph, next, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(graph, node, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

/// The graph, one module a line: `a -> b, c`.
pub fn render(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(module, imports)| {
            let imports: Vec<&str> = imports.iter().map(String::as_str).collect();
            format!("{module} -> {}\n", imports.join(", "))
        })
        .collect()
}

/// Panics, naming the circle, when the crate in `src` has modules that import each other.
pub fn assert_acyclic(src: &Path) -> Graph {
    let graph = module_graph(src)
        .unwrap_or_else(|e| panic!("reading the sources in {}: {e}", src.display()));
    assert!(
        graph.len() > 1,
        "{}: expected the modules of a crate",
        src.display()
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "modules of {} import each other: {}\nthe graph:\n{}",
            src.display(),
            cycle.join(" -> "),
            render(&graph)
        );
    }
    graph
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The code with comments and the contents of string and character literals blanked out.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        let at = |j: usize| c.get(j).copied().unwrap_or('\0');
        if c[i] == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if is_ident(c[i]) {
            let start = i;
            while i < c.len() && is_ident(c[i]) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let raw = matches!(word.as_str(), "r" | "br" | "cr");
            if raw && (at(i) == '#' || at(i) == '"') {
                let mut hashes = 0;
                while at(i + hashes) == '#' {
                    hashes += 1;
                }
                if at(i + hashes) == '"' {
                    i += hashes + 1;
                    while i < c.len() && !(c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#')) {
                        i += 1;
                    }
                    i += hashes + 1;
                    out.push_str("\"\"");
                    continue;
                }
            }
            if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                continue; // The string follows.
            }
            if word == "b" && at(i) == '\'' {
                continue; // A byte literal follows.
            }
            out.push_str(&word);
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '\u{..}'), or else a lifetime or label.
            if at(i + 1) == '\\' {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if at(i + 2) == '\'' {
                i += 3;
                out.push_str("' '");
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The first segment of every `crate::` path in stripped code (`crate::a::b` gives `a`,
/// `crate::{a, b::c}` gives `a` and `b`).
fn crate_paths(code: &str) -> Vec<String> {
    let c: Vec<char> = code.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if !is_ident(c[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < c.len() && is_ident(c[i]) {
            i += 1;
        }
        let word: String = c[start..i].iter().collect();
        if word != "crate" {
            continue;
        }
        let mut j = skip_ws(&c, i);
        if !(c.get(j) == Some(&':') && c.get(j + 1) == Some(&':')) {
            continue;
        }
        j = skip_ws(&c, j + 2);
        i = first_segments(&c, j, &mut names);
    }
    names
}

fn skip_ws(c: &[char], mut i: usize) -> usize {
    while i < c.len() && c[i].is_whitespace() {
        i += 1;
    }
    i
}

/// Reads a path tail at `i` (a name, or a `{…}` group) and collects its first segments.
fn first_segments(c: &[char], i: usize, names: &mut Vec<String>) -> usize {
    if c.get(i) == Some(&'{') {
        // Each comma-separated entry at this depth starts with a name.
        let mut i = skip_ws(c, i + 1);
        let mut expect_name = true;
        let mut depth = 0;
        while i < c.len() {
            match c[i] {
                '{' if !expect_name => depth += 1,
                '{' => {
                    i = first_segments(c, i, names);
                    expect_name = false;
                    continue;
                }
                '}' if depth == 0 => return i + 1,
                '}' => depth -= 1,
                ',' if depth == 0 => expect_name = true,
                ch if is_ident(ch) && expect_name => {
                    let start = i;
                    while i < c.len() && is_ident(c[i]) {
                        i += 1;
                    }
                    let word: String = c[start..i].iter().collect();
                    if word != "self" {
                        names.push(word);
                    }
                    expect_name = false;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        i
    } else {
        let start = i;
        let mut i = i;
        while i < c.len() && is_ident(c[i]) {
            i += 1;
        }
        if i > start {
            names.push(c[start..i].iter().collect());
        }
        i
    }
}

/// What the crate root's `use` declarations bring in from its modules: name to modules
/// (`pub use batch::{A, B as C}` gives `A` and `C` from `batch`). A glob brings in nothing
/// this can name.
fn reexports(root: &str, modules: &BTreeSet<String>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut rest = root;
    while let Some(at) = find_word(rest, "use") {
        let after = &rest[at + 3..];
        let end = after.find(';').unwrap_or(after.len());
        let decl: String = after[..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        rest = &after[end..];
        let decl = decl
            .strip_prefix("crate::")
            .or_else(|| decl.strip_prefix("self::"))
            .unwrap_or(&decl);
        let (first, tail) = decl.split_once("::").unwrap_or((decl, ""));
        let first = first.trim();
        if !modules.contains(first) {
            continue;
        }
        for name in imported_names(tail) {
            let entry = out.entry(name).or_default();
            if !entry.iter().any(|m| m == first) {
                entry.push(first.to_owned());
            }
        }
    }
    out
}

/// The names a `use` tail binds: the last segment of each path, or its `as` name.
fn imported_names(tail: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut item = String::new();
    let mut flush = |item: &mut String| {
        let words: Vec<&str> = item.split_whitespace().collect();
        let name = match words.as_slice() {
            [.., "as", alias] => Some(*alias),
            [path] => path.rsplit("::").next(),
            _ => None,
        };
        if let Some(name) = name.filter(|n| !n.is_empty() && *n != "*" && *n != "self") {
            names.push(name.to_owned());
        }
        item.clear();
    };
    for ch in tail.chars() {
        match ch {
            '{' => item.clear(),
            '}' => flush(&mut item),
            ',' => flush(&mut item),
            _ => item.push(ch),
        }
    }
    flush(&mut item);
    names
}

/// The offset of `word` standing alone (not part of a longer name).
fn find_word(s: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = s[from..].find(word).map(|i| i + from) {
        let before = s[..at].chars().next_back();
        let after = s[at + word.len()..].chars().next();
        if !before.is_some_and(is_ident) && !after.is_some_and(is_ident) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_from_code_only() {
        let code = strip(
            r##"
            use crate::{a, b::{c, d}, self};
            // crate::commented
            /* crate::block /* nested */ crate::still */
            let s = "crate::string";
            let r = r#"crate::raw"#;
            let ch = '"'; let lt: &'static str = "";
            crate::e::f(crate :: g);
            pub(crate) fn h() {}
            "##,
        );
        assert_eq!(crate_paths(&code), ["a", "b", "e", "g"]);
    }

    #[test]
    fn root_reexports_name_their_module() {
        let modules: BTreeSet<String> = ["batch", "item"].map(String::from).into();
        let root = "pub use batch::{Decoder, Encoder as Enc};\npub use item::Item;\nuse std::fmt;";
        let map = reexports(&strip(root), &modules);
        assert_eq!(map["Decoder"], ["batch"]);
        assert_eq!(map["Enc"], ["batch"]);
        assert_eq!(map["Item"], ["item"]);
        assert!(!map.contains_key("fmt"));
    }

    #[test]
    fn a_circle_is_found_and_named() {
        let graph: Graph = [
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a"]),
            ("d", vec![]),
        ]
        .into_iter()
        .map(|(m, i)| (m.to_owned(), i.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(
            find_cycle(&graph),
            Some(["a", "b", "c", "a"].map(String::from).to_vec())
        );
        let mut acyclic = graph.clone();
        acyclic.insert("c".into(), BTreeSet::new());
        assert_eq!(find_cycle(&acyclic), None);
    }
}
