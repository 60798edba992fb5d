//! The project's contracts live in its own `docs/` folder, and what cites them must point at
//! something that exists.
//!
//! - Every reference of the form `docs/<file>.md` or `docs/<file>.md#<anchor>` in the
//!   repository's code, scripts, Terraform and Markdown names a file that exists and, when it
//!   has an anchor, a heading of that file whose GitHub-style slug is the anchor.
//! - Nothing cites the outside specification the project was first written to any more: the
//!   contracts are in `docs/` now.
//! - The documents' own links (`[text](layout.md#object-keys)`) resolve, and the index
//!   `docs/README.md` links every document.
//!
//! Plain `std`: the parsing is small and hand-written, and unit tests at the end pin it.
//! This file is left out of the scan: its tests quote references that do not exist on purpose.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Directories never scanned, by name, wherever they are.
const SKIP_DIRS: &[&str] = &[
    "target",
    ".git",
    ".venv",
    ".venv-tools",
    "node_modules",
    ".terraform",
];
/// Directories never scanned, by path from the repository root.
const SKIP_PATHS: &[&str] = &["fuzz/target"];
/// Files scanned, by extension.
const EXTENSIONS: &[&str] = &["rs", "md", "tf", "tfvars", "hcl", "py", "toml"];
/// Directories whose every file is scanned (scripts have no extension).
const SCRIPT_DIRS: &[&str] = &["scripts", ".ci"];
/// This file, from the repository root.
const THIS_FILE: &str = "testkit/tests/doc_references.rs";
/// How the outside specification was cited.
const OUTSIDE_SPEC: &[&str] = &["SPEC §", "SPEC section", "SPEC.md"];

fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// One scanned file: its path from the repository root (`/`-separated) and its text.
struct Source {
    path: String,
    text: String,
}

/// Every file the checks read, in a stable order.
fn sources(root: &Path) -> Vec<Source> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Source>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let rel = relative(root, &path);
        let name = entry.file_name().to_string_lossy().into_owned();
        if meta.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) && !SKIP_PATHS.contains(&rel.as_str()) {
                walk(root, &path, out);
            }
        } else if meta.is_file() && scanned(&rel) {
            if let Ok(bytes) = fs::read(&path) {
                out.push(Source {
                    path: rel,
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                });
            }
        }
    }
}

/// Whether the file at `rel` (from the root) is one the checks read.
fn scanned(rel: &str) -> bool {
    if rel == THIS_FILE {
        return false;
    }
    let in_script_dir = SCRIPT_DIRS
        .iter()
        .any(|d| rel.strip_prefix(d).is_some_and(|r| r.starts_with('/')));
    let extension = rel
        .rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext);
    in_script_dir || extension.is_some_and(|e| EXTENSIONS.contains(&e))
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

// --- references -----------------------------------------------------------------------------

/// A `docs/<file>.md[#<anchor>]` reference found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    /// 1-based.
    line: usize,
    /// The path as written, without the anchor: `docs/status.md`, `../docs/status.md`.
    path: String,
    anchor: Option<String>,
}

impl Reference {
    fn text(&self) -> String {
        match &self.anchor {
            Some(a) => format!("{}#{a}", self.path),
            None => self.path.clone(),
        }
    }
}

/// A character that continues a word or a path: a `docs/` right after one is part of a longer
/// name (`mydocs/`, `fuzz/docs/`, a URL), not a reference to the repository's `docs/`.
fn continues_a_name(c: char) -> bool {
    c.is_alphanumeric() || "_-~$@:%+\\".contains(c)
}

/// A character of a file name under `docs/`.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-./".contains(c)
}

/// A character of an anchor (a GitHub slug).
fn anchor_char(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '_'
}

/// Only `./` and `../` steps: a path relative to the citing file that may lead to `docs/`.
fn relative_steps(run: &str) -> bool {
    run.is_empty()
        || run
            .strip_suffix('/')
            .is_some_and(|steps| steps.split('/').all(|step| step == "." || step == ".."))
}

/// Every `docs/<file>.md` reference in `text`, with an anchor when one follows.
fn references(text: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices("docs/") {
            let before = &line[..at];
            let steps_start = before.trim_end_matches(['.', '/']).len();
            let steps = &before[steps_start..];
            if before[..steps_start]
                .chars()
                .next_back()
                .is_some_and(continues_a_name)
                || !relative_steps(steps)
            {
                continue;
            }
            let after = &line[at + "docs/".len()..];
            let run = &after[..after.find(|c| !name_char(c)).unwrap_or(after.len())];
            // A full stop ends the sentence, not the name.
            let name = run.trim_end_matches('.');
            let well_formed = name.len() > ".md".len()
                && name.ends_with(".md")
                && name
                    .split('/')
                    .all(|part| !part.is_empty() && part != "." && part != "..");
            if !well_formed {
                continue;
            }
            let rest = &after[name.len()..];
            let anchor = rest.strip_prefix('#').and_then(|a| {
                let a = &a[..a.find(|c| !anchor_char(c)).unwrap_or(a.len())];
                (!a.is_empty()).then(|| a.to_owned())
            });
            out.push(Reference {
                line: index + 1,
                path: format!("{steps}docs/{name}"),
                anchor,
            });
        }
    }
    out
}

/// Where a reference written in the file `citing` (from the root) points, from the root:
/// `./` and `../` paths from the citing file's folder, others from the repository root.
/// `None` when it leads out of the repository.
fn resolve(citing: &str, path: &str) -> Option<PathBuf> {
    let start = if path.starts_with("./") || path.starts_with("../") {
        Path::new(citing)
            .parent()
            .unwrap_or(Path::new(""))
            .join(path)
    } else {
        PathBuf::from(path)
    };
    let mut out = PathBuf::new();
    for component in start.components() {
        match component {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

// --- headings and anchors -----------------------------------------------------------------

/// A heading's anchor as GitHub makes it: lower case, spaces to `-`, and every character that
/// is not a letter, a digit, `-` or `_` dropped (so `` `solace-meta/` `` gives `solace-meta`).
fn slug(heading: &str) -> String {
    rendered(heading)
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// A heading's text as it renders, near enough for its slug: a link keeps its text and loses
/// its destination, HTML tags go.
fn rendered(heading: &str) -> String {
    let mut out = String::new();
    let mut rest = heading;
    while let Some(c) = rest.chars().next() {
        if let Some(link) = rest.strip_prefix("](") {
            rest = link.find(')').map_or("", |end| &link[end + 1..]);
            continue;
        }
        if c == '<' {
            if let Some(end) = rest.find('>') {
                rest = &rest[end + 1..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The fence a line opens or closes (` ``` ` or `~~~`, after at most three spaces).
fn fence(line: &str) -> Option<char> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    ['`', '~']
        .into_iter()
        .find(|&f| trimmed.starts_with(&f.to_string().repeat(3)))
}

/// The text of an ATX heading (`## Text`, `## Text ##`).
fn atx_heading(line: &str) -> Option<&str> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let hashes = trimmed.len() - trimmed.trim_start_matches('#').len();
    let rest = &trimmed[hashes..];
    if !(1..=6).contains(&hashes) || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let text = rest.trim();
    let unclosed = text.trim_end_matches('#');
    Some(if unclosed.is_empty() {
        ""
    } else if unclosed.ends_with([' ', '\t']) {
        unclosed.trim_end()
    } else {
        text
    })
}

/// The underline of a setext heading (`===` or `---` under a line of text).
fn setext_underline(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && (t.chars().all(|c| c == '=') || t.chars().all(|c| c == '-'))
}

/// A line that can be the text of a setext heading.
fn paragraph_line(line: &str) -> bool {
    let t = line.trim_start();
    !t.is_empty()
        && line.len() - t.len() <= 3
        && !t.starts_with(['#', '|', '-', '*', '+', '>', '<'])
        && atx_heading(line).is_none()
}

/// `id="…"` and `name="…"` of the `<a …>` tags in a line: explicit anchors.
fn html_anchors(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in line.match_indices("<a ") {
        let tag = &line[at..];
        let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
        for attribute in ["id=\"", "name=\""] {
            if let Some(start) = tag.find(attribute) {
                let value = &tag[start + attribute.len()..];
                if let Some(end) = value.find('"') {
                    out.push(value[..end].to_owned());
                }
            }
        }
    }
    out
}

/// The anchors a Markdown file offers: its headings' slugs (a repeated slug gets `-1`, `-2`, …
/// as on GitHub) and explicit HTML anchors. Nothing inside fenced code counts.
fn anchors(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut add = |heading: &str, out: &mut Vec<String>| {
        let base = slug(heading);
        if base.is_empty() {
            return;
        }
        let n = seen.entry(base.clone()).or_insert(0);
        out.push(if *n == 0 { base } else { format!("{base}-{n}") });
        *n += 1;
    };
    let mut open: Option<char> = None;
    let mut previous: Option<&str> = None;
    for line in markdown.lines() {
        if let Some(f) = fence(line) {
            open = match open {
                None => Some(f),
                Some(o) if o == f => None,
                other => other,
            };
            previous = None;
            continue;
        }
        if open.is_some() {
            continue;
        }
        if let Some(text) = atx_heading(line) {
            add(text, &mut out);
            previous = None;
            continue;
        }
        if let Some(text) = previous.filter(|_| setext_underline(line)) {
            add(text.trim(), &mut out);
            previous = None;
            continue;
        }
        out.extend(html_anchors(line));
        previous = paragraph_line(line).then_some(line);
    }
    out
}

/// The targets of the inline links `[text](target)` of a Markdown file, with their line
/// numbers, outside fenced code.
fn markdown_links(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<char> = None;
    for (index, line) in markdown.lines().enumerate() {
        if let Some(f) = fence(line) {
            open = match open {
                None => Some(f),
                Some(o) if o == f => None,
                other => other,
            };
            continue;
        }
        if open.is_some() {
            continue;
        }
        for (at, _) in line.match_indices("](") {
            let target = &line[at + 2..];
            let Some(end) = target.find(')') else {
                continue;
            };
            // `(target "title")`: the target is the first word; `<target>` is allowed.
            let target = target[..end].split_whitespace().next().unwrap_or("");
            let target = target.trim_start_matches('<').trim_end_matches('>');
            if !target.is_empty() {
                out.push((index + 1, target.to_owned()));
            }
        }
    }
    out
}

/// Lines of `text` that cite the outside specification.
fn outside_spec_citations(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| OUTSIDE_SPEC.iter().any(|p| line.contains(p)))
        .map(|(index, line)| (index + 1, line.trim().to_owned()))
        .collect()
}

/// The anchors of Markdown files, read once each; `None` for a file that does not exist.
#[derive(Default)]
struct Anchors(HashMap<PathBuf, Option<Vec<String>>>);

impl Anchors {
    fn of(&mut self, root: &Path, file: &Path) -> Option<&[String]> {
        self.0
            .entry(file.to_owned())
            .or_insert_with(|| {
                let path = root.join(file);
                path.is_file().then(|| {
                    anchors(&String::from_utf8_lossy(
                        &fs::read(&path).unwrap_or_default(),
                    ))
                })
            })
            .as_deref()
    }
}

/// Checks one reference; the problem, if any.
fn check(
    root: &Path,
    anchors: &mut Anchors,
    target: Option<PathBuf>,
    anchor: Option<&str>,
) -> Option<String> {
    let Some(target) = target else {
        return Some("leads out of the repository".to_owned());
    };
    let shown = target.to_string_lossy().replace('\\', "/");
    let is_markdown = target.extension().is_some_and(|e| e == "md");
    if !is_markdown {
        return (!root.join(&target).exists()).then(|| format!("{shown} does not exist"));
    }
    let Some(offered) = anchors.of(root, &target) else {
        return Some(format!("{shown} does not exist"));
    };
    // Without an anchor, the file existing is all there is to check.
    let anchor = anchor?;
    if offered.iter().any(|a| a == anchor) {
        return None;
    }
    Some(if offered.is_empty() {
        format!("{shown} has no heading whose anchor is `{anchor}`: it has no headings")
    } else {
        format!(
            "{shown} has no heading whose anchor is `{anchor}`; its anchors are: {}",
            offered.join(", ")
        )
    })
}

// --- the checks -----------------------------------------------------------------------------

#[test]
fn every_docs_reference_resolves() {
    let root = root();
    let mut anchors = Anchors::default();
    let mut seen = 0;
    let mut dangling = Vec::new();
    for source in sources(&root) {
        for reference in references(&source.text) {
            seen += 1;
            let target = resolve(&source.path, &reference.path);
            if let Some(problem) = check(&root, &mut anchors, target, reference.anchor.as_deref()) {
                dangling.push(format!(
                    "  {}:{}: {}: {problem}",
                    source.path,
                    reference.line,
                    reference.text()
                ));
            }
        }
    }
    assert!(
        dangling.is_empty(),
        "{} of {seen} references to docs/ do not resolve (the file must exist under docs/, and \
         an anchor must be the GitHub slug of one of its headings):\n{}",
        dangling.len(),
        dangling.join("\n")
    );
}

#[test]
fn no_code_cites_the_outside_spec() {
    let mut citations = Vec::new();
    for source in sources(&root()) {
        for (line, text) in outside_spec_citations(&source.text) {
            citations.push(format!("  {}:{line}: {text}", source.path));
        }
    }
    assert!(
        citations.is_empty(),
        "{} places still cite the outside specification ({}); cite the document under docs/ \
         that holds the contract instead, as docs/<file>.md#<anchor> (docs/README.md lists \
         them):\n{}",
        citations.len(),
        OUTSIDE_SPEC.join(", "),
        citations.join("\n")
    );
}

#[test]
fn links_between_the_docs_resolve() {
    let root = root();
    let mut anchors = Anchors::default();
    let mut dangling = Vec::new();
    for source in sources(&root) {
        if !(source.path.starts_with("docs/") && source.path.ends_with(".md")) {
            continue;
        }
        for (line, target) in markdown_links(&source.text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                Some(PathBuf::from(&source.path))
            } else {
                resolve(&source.path, &format!("./{path}"))
            };
            if let Some(problem) = check(&root, &mut anchors, resolved, anchor) {
                dangling.push(format!("  {}:{line}: ({target}): {problem}", source.path));
            }
        }
    }
    assert!(
        dangling.is_empty(),
        "{} links in docs/ do not resolve:\n{}",
        dangling.len(),
        dangling.join("\n")
    );
}

#[test]
fn the_docs_index_lists_every_document() {
    let docs = root().join("docs");
    let index = fs::read_to_string(docs.join("README.md")).expect("docs/README.md, the index");
    let linked: Vec<String> = markdown_links(&index)
        .into_iter()
        .map(|(_, target)| target.split('#').next().unwrap_or("").to_owned())
        .collect();
    let mut documents: BTreeMap<String, bool> = BTreeMap::new();
    for entry in fs::read_dir(&docs).expect("docs/").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") && name != "README.md" {
            let listed = linked
                .iter()
                .any(|l| l == &name || l == &format!("./{name}"));
            documents.insert(name, listed);
        }
    }
    let missing: Vec<&String> = documents
        .iter()
        .filter(|(_, listed)| !**listed)
        .map(|(name, _)| name)
        .collect();
    assert!(!documents.is_empty(), "docs/ holds no document");
    assert!(
        missing.is_empty(),
        "docs/README.md does not link {missing:?}: give each document its line in the index"
    );
}

// --- the parsing, pinned ------------------------------------------------------------------

#[test]
fn slugs_follow_github() {
    for (heading, expected) in [
        ("The request message", "the-request-message"),
        ("Second-wave fields", "second-wave-fields"),
        ("The `solace-meta/` folder", "the-solace-meta-folder"),
        ("What's new?", "whats-new"),
        ("Rejected requests (v2)", "rejected-requests-v2"),
        ("Two  spaces", "two--spaces"),
        ("snake_case stays", "snake_case-stays"),
        ("1. Step one", "1-step-one"),
        ("Déjà vu", "déjà-vu"),
        (
            "See [the layout](layout.md#keys) here",
            "see-the-layout-here",
        ),
        ("A <em>tagged</em> word", "a-tagged-word"),
        ("  padded  ", "padded"),
    ] {
        assert_eq!(slug(heading), expected, "{heading:?}");
    }
}

#[test]
fn anchors_come_from_headings_outside_code() {
    let markdown = "\
# Title
Some text.

## Same
## Same
## Closed ##
    # indented four: code, not a heading
```sh
# a comment in code
```
~~~
## not a heading either
~~~
Setext title
============
Second setext
-------------
- a list item
---
<a id=\"explicit\"></a>
#hashtag is not a heading
#
";
    assert_eq!(
        anchors(markdown),
        [
            "title",
            "same",
            "same-1",
            "closed",
            "setext-title",
            "second-setext",
            "explicit",
        ]
    );
}

#[test]
fn references_are_found_where_prose_and_code_put_them() {
    let text = "\
plain docs/request.md here
`docs/layout.md#object-keys` in backticks
(docs/messages.md#errors): in a Rust comment
see docs/status.md#predicates, then more
the end is docs/settings.md.
an anchor at the end: docs/pipeline.md#retries.
[link](docs/request.md#fields) and [two](../docs/layout.md)
nested docs/sub/dir/file.md
\"docs/quoted.md\"
two on a line: docs/a.md and docs/b.md#c";
    let found: Vec<(usize, String)> = references(text)
        .into_iter()
        .map(|r| (r.line, r.text()))
        .collect();
    let expected = [
        (1, "docs/request.md"),
        (2, "docs/layout.md#object-keys"),
        (3, "docs/messages.md#errors"),
        (4, "docs/status.md#predicates"),
        (5, "docs/settings.md"),
        (6, "docs/pipeline.md#retries"),
        (7, "docs/request.md#fields"),
        (7, "../docs/layout.md"),
        (8, "docs/sub/dir/file.md"),
        (9, "docs/quoted.md"),
        (10, "docs/a.md"),
        (10, "docs/b.md#c"),
    ];
    let expected: Vec<(usize, String)> = expected
        .into_iter()
        .map(|(line, text)| (line, text.to_owned()))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn what_is_not_a_reference_is_ignored() {
    for text in [
        "the docs/ folder",
        "docs/*.md, every document",
        "docs/<file>.md#<anchor>",
        "mydocs/x.md",
        "fuzz/docs/x.md",
        "https://example.com/project/docs/x.md",
        "docs/readme.txt",
        "docs/.md",
        "/docs/absolute.md",
        "docs/../escape.md",
        "a.docs/x.md",
    ] {
        assert_eq!(references(text), [], "{text:?}");
    }
    let empty_anchor = references("docs/a.md# and more");
    assert_eq!(empty_anchor.len(), 1);
    assert_eq!(empty_anchor[0].anchor, None);
}

#[test]
fn references_resolve_from_the_root_or_the_citing_file() {
    assert_eq!(
        resolve("codec/src/lib.rs", "docs/layout.md"),
        Some(PathBuf::from("docs/layout.md"))
    );
    assert_eq!(
        resolve("functions/CONTRACT.md", "../docs/settings.md"),
        Some(PathBuf::from("docs/settings.md"))
    );
    assert_eq!(
        resolve("docs/request.md", "./layout.md"),
        Some(PathBuf::from("docs/layout.md"))
    );
    assert_eq!(resolve("README.md", "../docs/x.md"), None);
}

#[test]
fn markdown_links_and_outside_citations_are_found() {
    let markdown = "\
[one](request.md#fields) and [two](https://example.com) and [three](<layout.md> \"title\")
```
[in code](ignored.md)
```
[four](#local)";
    let links: Vec<(usize, String)> = markdown_links(markdown);
    let expected: Vec<(usize, String)> = [
        (1, "request.md#fields"),
        (1, "https://example.com"),
        (1, "layout.md"),
        (5, "#local"),
    ]
    .into_iter()
    .map(|(line, target)| (line, target.to_owned()))
    .collect();
    assert_eq!(links, expected);

    let code = "ok\n//! holds (SPEC §2)\nSPECIAL is fine\n# SPEC section 3\nsee SPEC.md";
    let lines: Vec<usize> = outside_spec_citations(code)
        .into_iter()
        .map(|(line, _)| line)
        .collect();
    assert_eq!(lines, [2, 4, 5]);
}

#[test]
fn the_scan_reads_code_docs_and_scripts_only() {
    for yes in [
        "README.md",
        "codec/src/lib.rs",
        "infra/sqs.tf",
        "config/example.tfvars",
        "infra/tests/solace.tftest.hcl",
        "codec/tests/interop.py",
        "Cargo.toml",
        "scripts/test",
        ".ci/run",
    ] {
        assert!(scanned(yes), "{yes}");
    }
    for no in [
        THIS_FILE,
        "Cargo.lock",
        "fuzz/seeds/decode/python-item.json",
        "scriptsx/y",
    ] {
        assert!(!scanned(no), "{no}");
    }
}
