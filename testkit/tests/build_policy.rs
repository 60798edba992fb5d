//! Every build and install the project's scripts run is pinned: each `cargo build`, `test`,
//! `clippy`, `run`, `install` and `lambda build` passes `--locked` (the lock files decide every
//! crate's version), and each `pip install` passes `--require-hashes` (every Python package,
//! the emulator's and the tools', is checked against the hash its lock file records).
//!
//! A command is read with its backslash continuations joined; comments and `log`/`echo`
//! lines (which only print a command) are not commands.

use std::path::{Path, PathBuf};

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts");

/// The script files: `scripts/*`, not the `.d` folders of their lock files.
fn scripts() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(SCRIPTS)
        .expect("scripts/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// The commands of a shell script: lines with their continuations joined, comments dropped.
fn commands(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if current.is_empty() {
            if line.starts_with('#') {
                continue;
            }
            start = i + 1;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push((start, std::mem::take(&mut current)));
            }
        }
    }
    out
}

/// What a command lacks, if it is a build or install that must be pinned.
fn unpinned(command: &str) -> Option<&'static str> {
    let words: Vec<&str> = command.split_whitespace().collect();
    if matches!(words.first(), Some(&("log" | "echo" | "printf"))) {
        return None;
    }
    let has = |flag: &str| words.contains(&flag);
    for (i, w) in words.iter().enumerate() {
        if *w == "cargo" {
            // `cargo +nightly build`, `cargo lambda build`
            let sub: Vec<&str> = words[i + 1..]
                .iter()
                .copied()
                .filter(|w| !w.starts_with('+'))
                .take(2)
                .collect();
            let pinned_sub = match sub.as_slice() {
                ["lambda", "build", ..] => true,
                [s, ..] => matches!(*s, "build" | "test" | "clippy" | "run" | "install"),
                [] => false,
            };
            if pinned_sub && !has("--locked") {
                return Some("--locked");
            }
        }
        if *w == "pip" && words.get(i + 1) == Some(&"install") && !has("--require-hashes") {
            return Some("--require-hashes");
        }
    }
    None
}

#[test]
fn every_build_and_install_in_the_scripts_is_pinned() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for path in scripts() {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (line, command) in commands(&text) {
            let printed = command.starts_with("log ") || command.starts_with("echo ");
            if !printed && (command.contains(" --locked") || command.contains(" --require-hashes"))
            {
                checked += 1;
            }
            if let Some(flag) = unpinned(&command) {
                problems.push(format!(
                    "{}:{line}: lacks {flag}: {command}",
                    Path::new(&path).display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // scripts/test (2), demo, fuzz-smoke, package-lambdas (cargo and pip), emulator, check-infra
    assert!(
        checked >= 8,
        "the scripts' pinned commands were found ({checked})"
    );
}

#[test]
fn the_check_catches_an_unpinned_command() {
    assert_eq!(unpinned("cargo build --release"), Some("--locked"));
    assert_eq!(unpinned("cargo +nightly build --quiet"), Some("--locked"));
    assert_eq!(unpinned("cargo lambda build --release"), Some("--locked"));
    assert_eq!(unpinned("cargo test --locked --workspace"), None);
    assert_eq!(
        unpinned("\"${VENV}/bin/python\" -m pip install -r x.txt"),
        Some("--require-hashes")
    );
    assert_eq!(
        unpinned("python -m pip install --require-hashes -r x"),
        None
    );
    assert_eq!(unpinned("log \"cargo build\""), None);
    assert_eq!(unpinned("cargo fmt --all -- --check"), None);
    let joined = commands("cargo build \\\n  --locked \\\n  --release\n# cargo build\n");
    assert_eq!(joined.len(), 1);
    assert_eq!(unpinned(&joined[0].1), None);
}
