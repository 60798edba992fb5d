//! The dependency trees keep to the policy in `deny.toml` (cargo-deny's format, so the same
//! policy can be run by cargo-deny; this test needs nothing but cargo and the lock files):
//!
//! - every package's SPDX `license` expression is satisfied by `[licenses] allow` (plus the
//!   `[[licenses.exceptions]]` for that crate); a package without one needs a
//!   `[[licenses.clarify]]` entry; and every allowed licence is needed by some package;
//! - no crate of `[bans] deny` is in a tree;
//! - every package comes from cargo's default registry, `crates-io` (or `[sources]`'s other
//!   allowed registries and git repositories, none today), or is Solace's own code here.
//!
//! The trees are those of `cargo metadata --locked --offline` (with `[graph]`'s targets and
//! features): the root workspace's `Cargo.lock` (normal, build and dev dependencies of every
//! member) and the fuzz workspace's `fuzz/Cargo.lock`. When a crate has not been downloaded
//! yet (a fresh machine that built only part of the workspace), cargo is run once more
//! without `--offline` and downloads it from the registry, as a build would. Advisories are
//! not checked: their database cannot be fetched here.
//!
//! Plain `std` and serde_json: the SPDX expressions and the part of TOML that `deny.toml`
//! uses are parsed by hand below, and unit tests at the end pin both.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value as Json;

/// How cargo spells its default registry, `crates-io`, in a package's `source` (as
/// `registry+URL` or `sparse+URL`): the git index's URL, and the sparse index's. The default
/// of `[sources] allow-registry`.
const CRATES_IO: &[&str] = &[
    "https://github.com/rust-lang/crates.io-index",
    "https://index.crates.io/",
];

/// The lock files checked: the workspace's manifest (from the repository root) and its lock.
const WORKSPACES: &[(&str, &str)] = &[
    ("Cargo.toml", "Cargo.lock"),
    ("fuzz/Cargo.toml", "fuzz/Cargo.lock"),
];

fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

// --- the checks ----------------------------------------------------------------------------

#[test]
fn every_dependency_has_an_allowed_licence() {
    let (policy, graphs) = setup();
    let mut bad = Vec::new();
    for graph in graphs {
        let mut skipped = 0;
        for pkg in &graph.packages {
            if policy.skips(pkg) {
                skipped += 1;
                continue;
            }
            if let Err(why) = policy.licence(pkg, Omit::Nothing) {
                bad.push(format!("  {} ({}): {why}", pkg.label(), graph.lock));
            }
        }
        eprintln!(
            "{}: {} packages, {skipped} of them Solace's own unpublished crates (not checked)",
            graph.lock,
            graph.packages.len()
        );
    }
    assert!(
        bad.is_empty(),
        "{} package(s) have a licence that deny.toml does not allow (`[licenses] allow`, or a \
         `[[licenses.exceptions]]` entry for the crate with its reason):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn every_allowed_licence_is_needed() {
    let (policy, graphs) = setup();
    let packages: Vec<(&Graph, &Package)> = graphs
        .iter()
        .flat_map(|g| g.packages.iter().map(move |p| (g, p)))
        .filter(|(_, p)| !policy.skips(p))
        .collect();
    // Packages that pass with the whole policy but not without the one entry.
    let needing = |omit: Omit| -> Vec<String> {
        packages
            .iter()
            .filter(|(_, p)| {
                policy.licence(p, Omit::Nothing).is_ok() && policy.licence(p, omit).is_err()
            })
            .map(|(g, p)| format!("{} ({})", p.label(), g.lock))
            .collect()
    };
    let mut unneeded = Vec::new();
    for (i, licensee) in policy.allow.iter().enumerate() {
        let by = needing(Omit::Allowed(i));
        match by.first() {
            None => unneeded.push(format!("  `{licensee}` in [licenses] allow")),
            Some(first) => eprintln!("{licensee}: needed by {first} and {} more", by.len() - 1),
        }
    }
    for (i, exception) in policy.exceptions.iter().enumerate() {
        if !packages.iter().any(|(_, p)| exception.spec.matches(p)) {
            unneeded.push(format!(
                "  [[licenses.exceptions]] for {}: no such package",
                exception.spec
            ));
            continue;
        }
        for (j, licensee) in exception.allow.iter().enumerate() {
            if needing(Omit::Exception(i, j)).is_empty() {
                unneeded.push(format!(
                    "  `{licensee}` of [[licenses.exceptions]] for {}",
                    exception.spec
                ));
            }
        }
    }
    for clarify in &policy.clarify {
        if !packages.iter().any(|(_, p)| clarify.spec.matches(p)) {
            unneeded.push(format!(
                "  [[licenses.clarify]] for {}: no such package",
                clarify.spec
            ));
        }
    }
    assert!(
        unneeded.is_empty(),
        "deny.toml allows more than the dependencies need; remove:\n{}",
        unneeded.join("\n")
    );
}

#[test]
fn no_banned_crate_is_in_the_tree() {
    let (policy, graphs) = setup();
    let mut bad = Vec::new();
    for graph in graphs {
        for pkg in &graph.packages {
            for ban in policy.deny.iter().filter(|ban| ban.spec.matches(pkg)) {
                bad.push(format!(
                    "  {} ({}), licence {}, required by {}: {}",
                    pkg.label(),
                    graph.lock,
                    pkg.license.as_deref().unwrap_or("none"),
                    if pkg.dependents.is_empty() {
                        "nothing (a workspace member)".to_owned()
                    } else {
                        pkg.dependents.join(", ")
                    },
                    ban.reason
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} banned package(s) ([bans] deny of deny.toml) are in the tree:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn every_dependency_comes_from_crates_io() {
    let (policy, graphs) = setup();
    let root = root();
    let mut bad = Vec::new();
    for graph in graphs {
        for pkg in &graph.packages {
            if let Err(why) = policy.source(pkg, &root) {
                bad.push(format!(
                    "  {} ({}), licence {}: {why}",
                    pkg.label(),
                    graph.lock,
                    pkg.license.as_deref().unwrap_or("none")
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} package(s) come from a source that [sources] of deny.toml does not allow (only \
         the crates-io registry, and Solace's own crates by path):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

// --- the policy ----------------------------------------------------------------------------

/// What `deny.toml` says, as far as this test checks it.
#[derive(Debug)]
struct Policy {
    /// `[graph] targets`: `--filter-platform` for each; none means every platform.
    targets: Vec<String>,
    /// `[graph] all-features`.
    all_features: bool,
    /// `[licenses] allow`.
    allow: Vec<Licensee>,
    /// `[[licenses.exceptions]]`: licences allowed for one crate only.
    exceptions: Vec<Exception>,
    /// `[[licenses.clarify]]`: the expression of a crate whose own is missing or wrong.
    clarify: Vec<Clarify>,
    /// `[licenses.private] ignore`: skip Solace's own unpublished crates.
    private_ignore: bool,
    /// `[bans] deny`.
    deny: Vec<Ban>,
    /// `[sources] allow-registry` (the crates-io registry when unset).
    registries: Vec<String>,
    /// `[sources] allow-git`.
    git: Vec<String>,
}

#[derive(Debug)]
struct Exception {
    spec: Spec,
    allow: Vec<Licensee>,
}

#[derive(Debug)]
struct Clarify {
    spec: Spec,
    expression: String,
    files: Vec<String>,
}

#[derive(Debug)]
struct Ban {
    spec: Spec,
    reason: String,
}

/// An entry of the policy that the licence check can leave out (to find the unneeded ones).
#[derive(Debug, Clone, Copy)]
enum Omit {
    Nothing,
    Allowed(usize),
    Exception(usize, usize),
}

impl Policy {
    fn read(text: &str) -> Result<Self, String> {
        let doc = toml_subset::parse(text)?;
        let strings = |table: &str, key: &str| -> Result<Option<Vec<String>>, String> {
            doc.get(table, key)
                .map(|v| v.strings().map_err(|e| format!("[{table}] {key}: {e}")))
                .transpose()
        };
        let flag = |table: &str, key: &str| -> Result<bool, String> {
            match doc.get(table, key) {
                None => Ok(false),
                Some(v) => v.bool().map_err(|e| format!("[{table}] {key}: {e}")),
            }
        };
        let licensees = |list: Vec<String>| -> Result<Vec<Licensee>, String> {
            list.iter().map(|s| Licensee::parse(s)).collect()
        };

        let mut targets = Vec::new();
        for target in doc
            .get("graph", "targets")
            .map(|v| v.items())
            .unwrap_or(Ok(&[]))?
        {
            targets.push(match target {
                toml_subset::Value::Table(_) => target.field("triple")?.string()?.to_owned(),
                _ => target.string()?.to_owned(),
            });
        }

        if doc
            .get("licenses", "exceptions")
            .is_some_and(|v| !matches!(v.items(), Ok([])))
        {
            let why =
                "write each as a [[licenses.exceptions]] table, its reason in a comment above";
            return Err(format!("[licenses] exceptions: {why}"));
        }
        let mut exceptions = Vec::new();
        for table in doc.tables("licenses.exceptions") {
            table.keys_only(&["crate", "allow"])?;
            let spec = Spec::parse(table.get("crate")?.string()?)?;
            table.reason(&format!("[[licenses.exceptions]] for {spec}"))?;
            let allow = licensees(table.get("allow")?.strings()?)?;
            exceptions.push(Exception { spec, allow });
        }
        let mut clarify = Vec::new();
        for table in doc.tables("licenses.clarify") {
            table.keys_only(&["crate", "expression", "license-files"])?;
            let spec = Spec::parse(table.get("crate")?.string()?)?;
            table.reason(&format!("[[licenses.clarify]] for {spec}"))?;
            let expression = table.get("expression")?.string()?.to_owned();
            spdx::Expr::parse(&expression)
                .map_err(|e| format!("[[licenses.clarify]] for {spec}: {e}"))?;
            let mut files = Vec::new();
            for file in table.get("license-files")?.items()? {
                files.push(file.field("path")?.string()?.to_owned());
            }
            clarify.push(Clarify {
                spec,
                expression,
                files,
            });
        }

        let mut deny = Vec::new();
        for entry in doc
            .get("bans", "deny")
            .map(|v| v.items())
            .unwrap_or(Ok(&[]))?
        {
            deny.push(match entry {
                toml_subset::Value::Table(fields) => {
                    let unknown = fields.iter().find(|(k, _)| k != "crate" && k != "reason");
                    if let Some((key, _)) = unknown {
                        return Err(format!(
                            "[bans] deny: `{key}` is not supported by this test (crate, reason are)"
                        ));
                    }
                    Ban {
                        spec: Spec::parse(entry.field("crate")?.string()?)?,
                        reason: match fields.iter().find(|(k, _)| k == "reason") {
                            Some((_, reason)) => reason.string()?.to_owned(),
                            None => "banned".into(),
                        },
                    }
                }
                _ => Ban {
                    spec: Spec::parse(entry.string()?)?,
                    reason: "banned".into(),
                },
            });
        }

        Ok(Self {
            targets,
            all_features: flag("graph", "all-features")?,
            allow: licensees(strings("licenses", "allow")?.unwrap_or_default())?,
            exceptions,
            clarify,
            private_ignore: flag("licenses.private", "ignore")?,
            deny,
            registries: strings("sources", "allow-registry")?
                .unwrap_or_else(|| CRATES_IO.iter().map(|s| s.to_string()).collect()),
            git: strings("sources", "allow-git")?.unwrap_or_default(),
        })
    }

    /// True for Solace's own unpublished crates when `[licenses.private] ignore` is set.
    fn skips(&self, pkg: &Package) -> bool {
        self.private_ignore && pkg.source.is_none() && pkg.unpublished
    }

    fn permits(&self, pkg: &Package, licensee: &Licensee, omit: Omit) -> bool {
        let allowed = self
            .allow
            .iter()
            .enumerate()
            .any(|(i, l)| l == licensee && !matches!(omit, Omit::Allowed(o) if o == i));
        allowed
            || self.exceptions.iter().enumerate().any(|(i, e)| {
                e.spec.matches(pkg)
                    && e.allow.iter().enumerate().any(|(j, l)| {
                        l == licensee
                            && !matches!(omit, Omit::Exception(oi, oj) if (oi, oj) == (i, j))
                    })
            })
    }

    /// Ok when the package's licence expression (or its clarification) is allowed; the
    /// reason it is not, otherwise.
    fn licence(&self, pkg: &Package, omit: Omit) -> Result<(), String> {
        let (expression, clarified) = match self.clarify.iter().find(|c| c.spec.matches(pkg)) {
            Some(c) => {
                if let Some(missing) = c.files.iter().find(|f| !pkg.dir.join(f).is_file()) {
                    return Err(format!(
                        "its [[licenses.clarify]] names {missing}, which the crate does not have"
                    ));
                }
                (c.expression.as_str(), " (from [[licenses.clarify]])")
            }
            None => match pkg.license.as_deref() {
                Some(l) => (l, ""),
                None => return Err("no `license` field (see [[licenses.clarify]])".into()),
            },
        };
        let expr = spdx::Expr::parse(expression)
            .map_err(|e| format!("licence `{expression}` is not an SPDX expression: {e}"))?;
        if expr.satisfied_by(&|l| self.permits(pkg, l, omit)) {
            Ok(())
        } else {
            Err(format!("licence `{expression}`{clarified}"))
        }
    }

    /// Ok when the package comes from an allowed source, or is local code of the repository.
    fn source(&self, pkg: &Package, root: &Path) -> Result<(), String> {
        let Some(source) = pkg.source.as_deref() else {
            let dir = pkg.dir.canonicalize().unwrap_or_else(|_| pkg.dir.clone());
            return if dir.starts_with(root) {
                Ok(())
            } else {
                Err("a path dependency outside the repository".into())
            };
        };
        let trim = |url: &str| url.trim_end_matches('/').to_owned();
        if let Some(url) = source
            .strip_prefix("registry+")
            .or_else(|| source.strip_prefix("sparse+"))
        {
            if self.registries.iter().any(|r| trim(r) == trim(url)) {
                return Ok(());
            }
            return Err(format!("registry `{source}`, not an allowed one"));
        }
        if let Some(url) = source.strip_prefix("git+") {
            let repo = url.split(['?', '#']).next().unwrap_or(url);
            if self.git.iter().any(|g| trim(g) == trim(repo)) {
                return Ok(());
            }
            return Err(format!(
                "git repository `{source}`: no git sources are allowed"
            ));
        }
        Err(format!("source `{source}`, not a registry"))
    }
}

/// A package of a policy entry: `name`, or `name@version` for that version alone.
#[derive(Debug, PartialEq)]
struct Spec {
    name: String,
    version: Option<String>,
}

impl Spec {
    fn parse(s: &str) -> Result<Self, String> {
        match s.split_once('@') {
            None => Ok(Self {
                name: s.to_owned(),
                version: None,
            }),
            Some((name, version)) => {
                let version = version.strip_prefix('=').unwrap_or(version);
                if !version.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(format!(
                        "`{s}`: only an exact version (name@1.2.3) is supported by this test"
                    ));
                }
                Ok(Self {
                    name: name.to_owned(),
                    version: Some(version.to_owned()),
                })
            }
        }
    }

    fn matches(&self, pkg: &Package) -> bool {
        self.name == pkg.name && self.version.as_ref().is_none_or(|v| *v == pkg.version)
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            None => write!(f, "{}", self.name),
            Some(v) => write!(f, "{}@{v}", self.name),
        }
    }
}

/// A licence as an allow-list names it: an SPDX identifier, perhaps `WITH` an exception.
/// A licence with an exception is a licence of its own: `Apache-2.0` does not allow
/// `Apache-2.0 WITH LLVM-exception` (as in cargo-deny). Identifiers compare without case.
#[derive(Debug, Clone)]
struct Licensee {
    id: String,
    exception: Option<String>,
}

impl PartialEq for Licensee {
    fn eq(&self, other: &Self) -> bool {
        self.id.eq_ignore_ascii_case(&other.id)
            && match (&self.exception, &other.exception) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }
}

impl Eq for Licensee {}

impl Licensee {
    fn new(id: &str, exception: Option<&str>) -> Self {
        Self {
            id: id.to_owned(),
            exception: exception.map(str::to_owned),
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        match spdx::Expr::parse(s) {
            Ok(spdx::Expr::Licence(l)) => Ok(l),
            Ok(_) => Err(format!(
                "`{s}`: one licence (with an optional WITH exception)"
            )),
            Err(e) => Err(format!("`{s}`: {e}")),
        }
    }
}

impl std::fmt::Display for Licensee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.exception {
            None => write!(f, "{}", self.id),
            Some(e) => write!(f, "{} WITH {e}", self.id),
        }
    }
}

fn setup() -> (&'static Policy, &'static [Graph]) {
    static STATE: OnceLock<Result<(Policy, Vec<Graph>), String>> = OnceLock::new();
    let state = STATE.get_or_init(|| {
        let root = root();
        let text = std::fs::read_to_string(root.join("deny.toml"))
            .map_err(|e| format!("reading deny.toml: {e}"))?;
        let policy = Policy::read(&text).map_err(|e| format!("deny.toml: {e}"))?;
        let mut graphs = Vec::new();
        for (manifest, lock) in WORKSPACES {
            if !root.join(manifest).is_file() {
                eprintln!("{manifest} does not exist: {lock} is not checked");
                continue;
            }
            graphs.push(Graph::load(&root, manifest, lock, &policy)?);
        }
        Ok((policy, graphs))
    });
    match state {
        Ok((policy, graphs)) => (policy, graphs),
        Err(e) => panic!("{e}"),
    }
}

// --- the dependency graphs -------------------------------------------------------------------

/// The packages of one lock file's resolved graph.
struct Graph {
    lock: &'static str,
    packages: Vec<Package>,
}

struct Package {
    name: String,
    version: String,
    /// The `license` field (an SPDX expression); None when missing or empty.
    license: Option<String>,
    /// None for a path dependency or workspace member.
    source: Option<String>,
    /// The directory of its Cargo.toml.
    dir: PathBuf,
    /// `publish = false`.
    unpublished: bool,
    /// The packages that depend on it directly, as "name version".
    dependents: Vec<String>,
}

impl Package {
    fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }
}

impl Graph {
    fn load(
        root: &Path,
        manifest: &str,
        lock: &'static str,
        policy: &Policy,
    ) -> Result<Self, String> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut args = vec![
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
            manifest,
        ];
        if policy.all_features {
            args.push("--all-features");
        }
        for target in &policy.targets {
            args.extend(["--filter-platform", target]);
        }
        let run = |offline: bool| {
            Command::new(&cargo)
                .args(&args)
                .args(offline.then_some("--offline"))
                .current_dir(root)
                .output()
                .map_err(|e| format!("running cargo metadata: {e}"))
        };
        let mut out = run(true)?;
        if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--offline") {
            eprintln!(
                "{lock}: not every crate is downloaded yet; running cargo metadata again \
                 without --offline, so that cargo downloads them"
            );
            out = run(false)?;
        }
        if !out.status.success() {
            return Err(format!(
                "cargo {} failed ({lock} may be out of date):\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let meta: Json = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("cargo metadata printed no JSON: {e}"))?;
        Self::from_metadata(&meta, lock)
    }

    fn from_metadata(meta: &Json, lock: &'static str) -> Result<Self, String> {
        let nodes = meta["resolve"]["nodes"]
            .as_array()
            .ok_or("cargo metadata: no resolve.nodes")?;
        let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
        for node in nodes {
            let id = node["id"].as_str().ok_or("a resolve node without id")?;
            dependents.entry(id).or_default();
            for dep in node["dependencies"].as_array().into_iter().flatten() {
                if let Some(dep) = dep.as_str() {
                    dependents.entry(dep).or_default().push(id);
                }
            }
        }
        let all = meta["packages"]
            .as_array()
            .ok_or("cargo metadata: no packages")?;
        let labels: HashMap<&str, String> = all
            .iter()
            .filter_map(|p| {
                let name = p["name"].as_str()?;
                let version = p["version"].as_str()?;
                Some((p["id"].as_str()?, format!("{name} {version}")))
            })
            .collect();
        let mut packages = Vec::new();
        for p in all {
            let id = p["id"].as_str().ok_or("a package without id")?;
            let Some(parents) = dependents.get(id) else {
                continue; // not in the resolved graph
            };
            let text = |key: &str| p[key].as_str().map(str::to_owned);
            let manifest = text("manifest_path").ok_or("a package without manifest_path")?;
            packages.push(Package {
                name: text("name").ok_or("a package without name")?,
                version: text("version").ok_or("a package without version")?,
                license: text("license").filter(|l| !l.trim().is_empty()),
                source: text("source"),
                dir: Path::new(&manifest)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
                unpublished: p["publish"].as_array().is_some_and(|a| a.is_empty()),
                dependents: {
                    let mut d: Vec<String> = parents
                        .iter()
                        .filter_map(|id| labels.get(id).cloned())
                        .collect();
                    d.sort();
                    d.dedup();
                    d
                },
            });
        }
        if packages.is_empty() {
            return Err(format!("{lock}: cargo metadata listed no package"));
        }
        packages.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        Ok(Self { lock, packages })
    }
}

// --- SPDX license expressions ----------------------------------------------------------------

mod spdx {
    //! SPDX license expressions as crates write them in `license`: identifiers (licence refs
    //! included), `AND`, `OR`, `WITH` exceptions and parentheses, `AND` binding tighter than
    //! `OR`; also the old `A/B` for `A OR B` and lowercase operators, which the registry
    //! accepted once. An identifier with a `+` ("or later") is a licence of its own here.

    use super::Licensee;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Expr {
        Licence(Licensee),
        And(Vec<Expr>),
        Or(Vec<Expr>),
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Token {
        Id(String),
        And,
        Or,
        With,
        Open,
        Close,
    }

    fn tokens(s: &str) -> Result<Vec<Token>, String> {
        let mut out = Vec::new();
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut Vec<Token>| {
            if word.is_empty() {
                return Ok(());
            }
            let token = match word.as_str() {
                "AND" | "and" => Token::And,
                "OR" | "or" => Token::Or,
                "WITH" | "with" => Token::With,
                w if w
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '+' | ':')) =>
                {
                    Token::Id(w.to_owned())
                }
                w => return Err(format!("`{w}` is not a licence identifier")),
            };
            out.push(token);
            word.clear();
            Ok(())
        };
        for c in s.chars() {
            match c {
                '(' | ')' | '/' => {
                    flush(&mut word, &mut out)?;
                    out.push(match c {
                        '(' => Token::Open,
                        ')' => Token::Close,
                        _ => Token::Or,
                    });
                }
                c if c.is_whitespace() => flush(&mut word, &mut out)?,
                c => word.push(c),
            }
        }
        flush(&mut word, &mut out)?;
        Ok(out)
    }

    struct Parser {
        tokens: Vec<Token>,
        pos: usize,
    }

    impl Parser {
        fn peek(&self) -> Option<&Token> {
            self.tokens.get(self.pos)
        }

        fn next(&mut self) -> Option<Token> {
            let t = self.tokens.get(self.pos).cloned();
            self.pos += 1;
            t
        }

        fn or(&mut self) -> Result<Expr, String> {
            let mut terms = vec![self.and()?];
            while self.peek() == Some(&Token::Or) {
                self.pos += 1;
                terms.push(self.and()?);
            }
            Ok(if terms.len() == 1 {
                terms.remove(0)
            } else {
                Expr::Or(terms)
            })
        }

        fn and(&mut self) -> Result<Expr, String> {
            let mut terms = vec![self.primary()?];
            while self.peek() == Some(&Token::And) {
                self.pos += 1;
                terms.push(self.primary()?);
            }
            Ok(if terms.len() == 1 {
                terms.remove(0)
            } else {
                Expr::And(terms)
            })
        }

        fn primary(&mut self) -> Result<Expr, String> {
            match self.next() {
                Some(Token::Id(id)) => {
                    if self.peek() == Some(&Token::With) {
                        self.pos += 1;
                        match self.next() {
                            Some(Token::Id(exception)) => {
                                Ok(Expr::Licence(Licensee::new(&id, Some(&exception))))
                            }
                            _ => Err(format!("`{id} WITH` needs an exception identifier")),
                        }
                    } else {
                        Ok(Expr::Licence(Licensee::new(&id, None)))
                    }
                }
                Some(Token::Open) => {
                    let inner = self.or()?;
                    match self.next() {
                        Some(Token::Close) => Ok(inner),
                        _ => Err("a `(` is not closed".into()),
                    }
                }
                Some(t) => Err(format!("expected a licence, found {t:?}")),
                None => Err("expected a licence, found the end".into()),
            }
        }
    }

    impl Expr {
        pub fn parse(s: &str) -> Result<Self, String> {
            let mut parser = Parser {
                tokens: tokens(s)?,
                pos: 0,
            };
            let expr = parser.or()?;
            match parser.peek() {
                None => Ok(expr),
                Some(t) => Err(format!("unexpected {t:?} after a complete expression")),
            }
        }

        /// True when the licences `allowed` accepts meet the expression: one side of each
        /// OR, every side of each AND.
        pub fn satisfied_by(&self, allowed: &dyn Fn(&Licensee) -> bool) -> bool {
            match self {
                Expr::Licence(l) => allowed(l),
                Expr::And(terms) => terms.iter().all(|t| t.satisfied_by(allowed)),
                Expr::Or(terms) => terms.iter().any(|t| t.satisfied_by(allowed)),
            }
        }
    }
}

// --- the part of TOML that deny.toml uses --------------------------------------------------

mod toml_subset {
    //! Tables (`[a.b]`) and arrays of tables (`[[a.b]]`), each with the comment lines
    //! directly above its header; `key = value` lines with bare keys; values that are
    //! one-line "strings", arrays (over several lines, with comments), inline tables, and
    //! anything else (booleans, numbers) kept as its bare text. What else TOML has (dotted or
    //! quoted keys, literal or multi-line strings, ...) is refused, not misread.

    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Str(String),
        Bare(String),
        Array(Vec<Value>),
        Table(Vec<(String, Value)>),
    }

    #[derive(Debug)]
    pub struct Section {
        pub name: String,
        pub array: bool,
        /// The comment lines directly above the header (no blank line between), `#` removed.
        pub comment: String,
        pub entries: Vec<(String, Value)>,
    }

    #[derive(Debug)]
    pub struct Document {
        pub sections: Vec<Section>,
    }

    impl Value {
        pub fn string(&self) -> Result<&str, String> {
            match self {
                Value::Str(s) => Ok(s),
                other => Err(format!("expected a string, found {other:?}")),
            }
        }

        pub fn bool(&self) -> Result<bool, String> {
            match self {
                Value::Bare(b) if b == "true" => Ok(true),
                Value::Bare(b) if b == "false" => Ok(false),
                other => Err(format!("expected true or false, found {other:?}")),
            }
        }

        pub fn items(&self) -> Result<&[Value], String> {
            match self {
                Value::Array(items) => Ok(items),
                other => Err(format!("expected an array, found {other:?}")),
            }
        }

        pub fn strings(&self) -> Result<Vec<String>, String> {
            self.items()?
                .iter()
                .map(|v| v.string().map(str::to_owned))
                .collect()
        }

        /// A key of an inline table.
        pub fn field(&self, key: &str) -> Result<&Value, String> {
            match self {
                Value::Table(entries) => entries
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
                    .ok_or_else(|| format!("`{key}` is missing in {self:?}")),
                other => Err(format!("expected an inline table, found {other:?}")),
            }
        }
    }

    impl Section {
        pub fn get(&self, key: &str) -> Result<&Value, String> {
            self.entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .ok_or_else(|| format!("[[{}]]: `{key}` is missing", self.name))
        }

        /// Fails on a key this test does not understand (and would otherwise ignore).
        pub fn keys_only(&self, known: &[&str]) -> Result<(), String> {
            match self
                .entries
                .iter()
                .find(|(k, _)| !known.contains(&k.as_str()))
            {
                Some((k, _)) => Err(format!(
                    "[[{}]]: `{k}` is not supported by this test (only {})",
                    self.name,
                    known.join(", ")
                )),
                None => Ok(()),
            }
        }

        /// Fails unless a comment directly above the header gives the entry's reason.
        pub fn reason(&self, what: &str) -> Result<(), String> {
            if self.comment.trim().is_empty() {
                return Err(format!(
                    "{what}: say why in a comment directly above its header"
                ));
            }
            Ok(())
        }
    }

    impl Document {
        /// A key of a table (`""` for the keys before the first header).
        pub fn get(&self, table: &str, key: &str) -> Option<&Value> {
            self.sections
                .iter()
                .filter(|s| s.name == table && !s.array)
                .flat_map(|s| &s.entries)
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
        }

        /// The tables of an array of tables, in order.
        pub fn tables<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
            self.sections
                .iter()
                .filter(move |s| s.name == name && s.array)
        }
    }

    pub fn parse(text: &str) -> Result<Document, String> {
        let mut parser = Parser {
            chars: text.chars().collect(),
            pos: 0,
            line: 1,
        };
        parser.document()
    }

    struct Parser {
        chars: Vec<char>,
        pos: usize,
        line: usize,
    }

    impl Parser {
        fn peek(&self) -> Option<char> {
            self.chars.get(self.pos).copied()
        }

        fn bump(&mut self) -> Option<char> {
            let c = self.peek()?;
            self.pos += 1;
            if c == '\n' {
                self.line += 1;
            }
            Some(c)
        }

        fn err<T>(&self, what: impl std::fmt::Display) -> Result<T, String> {
            Err(format!("line {}: {what}", self.line))
        }

        fn expect(&mut self, c: char) -> Result<(), String> {
            match self.peek() {
                Some(found) if found == c => {
                    self.bump();
                    Ok(())
                }
                found => self.err(format!("expected `{c}`, found {found:?}")),
            }
        }

        fn skip_spaces(&mut self) {
            while matches!(self.peek(), Some(' ' | '\t')) {
                self.bump();
            }
        }

        /// At `#`: the comment's text, up to (not including) the line's end.
        fn comment(&mut self) -> String {
            self.bump();
            let mut text = String::new();
            while let Some(c) = self.peek().filter(|c| !matches!(c, '\n' | '\r')) {
                text.push(c);
                self.bump();
            }
            text.trim().to_owned()
        }

        /// Spaces, line ends and comments (between the items of an array).
        fn skip_blank(&mut self) {
            loop {
                match self.peek() {
                    Some(' ' | '\t' | '\r' | '\n') => {
                        self.bump();
                    }
                    Some('#') => {
                        self.comment();
                    }
                    _ => return,
                }
            }
        }

        /// After a header, a key's value or a comment: spaces, maybe a comment, the line's end.
        fn end_of_line(&mut self) -> Result<(), String> {
            self.skip_spaces();
            if self.peek() == Some('#') {
                self.comment();
            }
            if self.peek() == Some('\r') {
                self.bump();
            }
            match self.peek() {
                None => Ok(()),
                Some('\n') => {
                    self.bump();
                    Ok(())
                }
                Some(c) => self.err(format!("unexpected `{c}` at the end of a line")),
            }
        }

        fn document(&mut self) -> Result<Document, String> {
            let mut sections = vec![Section {
                name: String::new(),
                array: false,
                comment: String::new(),
                entries: Vec::new(),
            }];
            let mut comment: Vec<String> = Vec::new();
            loop {
                self.skip_spaces();
                match self.peek() {
                    None => break,
                    Some('\r' | '\n') => {
                        // A blank line: the comment above it belongs to nothing below.
                        comment.clear();
                        self.end_of_line()?;
                    }
                    Some('#') => {
                        comment.push(self.comment());
                        self.end_of_line()?;
                    }
                    Some('[') => {
                        self.bump();
                        let array = self.peek() == Some('[');
                        if array {
                            self.bump();
                        }
                        let mut name = String::new();
                        while let Some(c) = self.peek().filter(|&c| c != ']' && c != '\n') {
                            name.push(c);
                            self.bump();
                        }
                        let name = name.trim().to_owned();
                        if name.is_empty() || name.contains(['"', '\'', ' ']) {
                            return self.err(format!("table name `{name}` is not supported"));
                        }
                        self.expect(']')?;
                        if array {
                            self.expect(']')?;
                        } else if sections.iter().any(|s| s.name == name && !s.array) {
                            return self.err(format!("[{name}] is defined twice"));
                        }
                        sections.push(Section {
                            name,
                            array,
                            comment: comment.join("\n"),
                            entries: Vec::new(),
                        });
                        comment.clear();
                        self.end_of_line()?;
                    }
                    Some(_) => {
                        let (key, value) = self.key_value()?;
                        let section = sections.last_mut().expect("the root section");
                        if section.entries.iter().any(|(k, _)| *k == key) {
                            return self.err(format!("`{key}` is set twice"));
                        }
                        section.entries.push((key, value));
                        comment.clear();
                        self.end_of_line()?;
                    }
                }
            }
            Ok(Document { sections })
        }

        fn key_value(&mut self) -> Result<(String, Value), String> {
            let key = self.key()?;
            self.skip_spaces();
            self.expect('=')?;
            self.skip_spaces();
            Ok((key, self.value()?))
        }

        fn key(&mut self) -> Result<String, String> {
            let mut key = String::new();
            while let Some(c) = self
                .peek()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            {
                key.push(c);
                self.bump();
            }
            if key.is_empty() {
                return self.err(format!("expected a (bare) key, found {:?}", self.peek()));
            }
            self.skip_spaces();
            if self.peek() == Some('.') {
                return self.err(format!("dotted key `{key}.` is not supported"));
            }
            Ok(key)
        }

        fn value(&mut self) -> Result<Value, String> {
            match self.peek() {
                Some('"') => self.string(),
                Some('[') => self.array(),
                Some('{') => self.inline_table(),
                Some('\'') => self.err("literal ('...') strings are not supported"),
                _ => self.bare(),
            }
        }

        /// A one-line basic string, with the escapes \" \\ \n \t.
        fn string(&mut self) -> Result<Value, String> {
            self.bump();
            if self.peek() == Some('"') && self.chars.get(self.pos + 1) == Some(&'"') {
                return self.err("multi-line strings are not supported");
            }
            let mut s = String::new();
            loop {
                match self.bump() {
                    Some('"') => return Ok(Value::Str(s)),
                    Some('\\') => match self.bump() {
                        Some('"') => s.push('"'),
                        Some('\\') => s.push('\\'),
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        other => return self.err(format!("unsupported escape {other:?}")),
                    },
                    Some('\n') | None => return self.err("a string is not closed"),
                    Some(c) => s.push(c),
                }
            }
        }

        fn array(&mut self) -> Result<Value, String> {
            self.bump();
            let mut items = Vec::new();
            loop {
                self.skip_blank();
                match self.peek() {
                    Some(']') => {
                        self.bump();
                        return Ok(Value::Array(items));
                    }
                    None => return self.err("an array is not closed"),
                    _ => items.push(self.value()?),
                }
                self.skip_blank();
                match self.peek() {
                    Some(',') => {
                        self.bump();
                    }
                    Some(']') => {}
                    found => return self.err(format!("expected `,` or `]`, found {found:?}")),
                }
            }
        }

        fn inline_table(&mut self) -> Result<Value, String> {
            self.bump();
            let mut entries: Vec<(String, Value)> = Vec::new();
            loop {
                self.skip_spaces();
                if self.peek() == Some('}') {
                    self.bump();
                    return Ok(Value::Table(entries));
                }
                let (key, value) = self.key_value()?;
                if entries.iter().any(|(k, _)| *k == key) {
                    return self.err(format!("`{key}` is set twice"));
                }
                entries.push((key, value));
                self.skip_spaces();
                match self.peek() {
                    Some(',') => {
                        self.bump();
                    }
                    Some('}') => {}
                    found => return self.err(format!("expected `,` or `}}`, found {found:?}")),
                }
            }
        }

        /// Anything else up to a delimiter (true, false, numbers), kept as its text.
        fn bare(&mut self) -> Result<Value, String> {
            let mut bare = String::new();
            while let Some(c) = self
                .peek()
                .filter(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}' | '#'))
            {
                bare.push(c);
                self.bump();
            }
            if bare.is_empty() {
                return self.err(format!("expected a value, found {:?}", self.peek()));
            }
            Ok(Value::Bare(bare))
        }
    }
}

// --- unit tests of the parsers ---------------------------------------------------------------

fn allows(expression: &str, allowed: &[&str]) -> bool {
    let allowed: Vec<Licensee> = allowed
        .iter()
        .map(|l| Licensee::parse(l).expect("an allowed licence"))
        .collect();
    spdx::Expr::parse(expression)
        .unwrap_or_else(|e| panic!("`{expression}`: {e}"))
        .satisfied_by(&|l| allowed.contains(l))
}

#[test]
fn spdx_one_licence_is_allowed_only_when_listed() {
    assert!(allows("MIT", &["MIT"]));
    assert!(!allows("MIT", &["Apache-2.0"]));
    assert!(!allows("GPL-3.0-only", &["MIT", "Apache-2.0"]));
    // SPDX identifiers compare without case.
    assert!(allows("mit", &["MIT"]));
    assert!(allows("Apache-2.0", &["apache-2.0"]));
}

#[test]
fn spdx_or_needs_any_side_and_needs_every_side() {
    assert!(allows("MIT OR Apache-2.0", &["Apache-2.0"]));
    assert!(allows("MIT OR Apache-2.0", &["MIT"]));
    assert!(!allows("MIT OR Apache-2.0", &["Zlib"]));
    assert!(allows("Apache-2.0 AND ISC", &["ISC", "Apache-2.0"]));
    assert!(!allows("Apache-2.0 AND ISC", &["Apache-2.0"]));
    assert!(!allows("Apache-2.0 AND ISC", &["ISC"]));
    assert!(allows("Apache-2.0 OR ISC OR MIT", &["ISC"]));
    assert!(
        allows("mit or apache-2.0", &["Apache-2.0"]),
        "lowercase operators"
    );
}

#[test]
fn spdx_and_binds_tighter_than_or() {
    // MIT OR (Apache-2.0 AND GPL-3.0-only)
    assert!(allows("MIT OR Apache-2.0 AND GPL-3.0-only", &["MIT"]));
    assert!(!allows(
        "MIT OR Apache-2.0 AND GPL-3.0-only",
        &["Apache-2.0"]
    ));
    // (ISC AND MIT) OR Zlib
    assert!(allows("ISC AND MIT OR Zlib", &["Zlib"]));
    assert!(!allows("ISC AND MIT OR Zlib", &["ISC"]));
}

#[test]
fn spdx_parentheses_group() {
    assert!(allows(
        "(MIT OR Apache-2.0) AND Unicode-3.0",
        &["Apache-2.0", "Unicode-3.0"]
    ));
    assert!(!allows("(MIT OR Apache-2.0) AND Unicode-3.0", &["MIT"]));
    assert!(allows("MIT OR (Apache-2.0 AND GPL-3.0-only)", &["MIT"]));
    assert!(!allows("(MIT OR Apache-2.0) AND GPL-3.0-only", &["MIT"]));
    assert!(allows("((MIT))", &["MIT"]));
    // aws-lc-sys's expression, whole.
    let aws_lc_sys = "ISC AND (Apache-2.0 OR ISC) AND Apache-2.0 AND MIT AND BSD-3-Clause AND \
                      (Apache-2.0 OR ISC OR MIT) AND (Apache-2.0 OR ISC OR MIT-0)";
    assert!(allows(
        aws_lc_sys,
        &["ISC", "Apache-2.0", "MIT", "BSD-3-Clause"]
    ));
    assert!(!allows(aws_lc_sys, &["ISC", "Apache-2.0", "MIT"]));
}

#[test]
fn spdx_slash_is_the_old_spelling_of_or() {
    assert!(allows("MIT/Apache-2.0", &["Apache-2.0"]));
    assert!(allows("Apache-2.0 / MIT", &["MIT"]));
    assert!(allows("Unlicense/MIT", &["MIT"]));
    assert!(!allows("Unlicense/MIT", &["Apache-2.0"]));
}

#[test]
fn spdx_a_licence_with_an_exception_is_a_licence_of_its_own() {
    let llvm = "Apache-2.0 WITH LLVM-exception";
    assert!(!allows(llvm, &["Apache-2.0"]));
    assert!(allows(llvm, &["Apache-2.0 WITH LLVM-exception"]));
    assert!(!allows("Apache-2.0", &["Apache-2.0 WITH LLVM-exception"]));
    // rustix's: the exception binds tighter than OR.
    let rustix = "Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT";
    assert!(allows(rustix, &["MIT"]));
    assert!(allows(rustix, &["Apache-2.0"]));
    assert!(!allows(rustix, &["ISC"]));
    assert!(allows("(MIT WITH x) OR Zlib", &["Zlib"]));
}

#[test]
fn spdx_malformed_expressions_are_refused() {
    for bad in [
        "",
        "   ",
        "MIT OR",
        "OR MIT",
        "MIT AND AND Zlib",
        "(MIT",
        "MIT)",
        "()",
        "MIT Apache-2.0",
        "Apache 2.0",
        "MIT, Apache-2.0",
        "Apache-2.0 WITH",
        "WITH LLVM-exception",
        "(MIT) WITH LLVM-exception",
    ] {
        assert!(
            spdx::Expr::parse(bad).is_err(),
            "`{bad}` should not parse: {:?}",
            spdx::Expr::parse(bad)
        );
    }
    assert!(Licensee::parse("MIT OR Apache-2.0").is_err(), "one licence");
}

#[test]
fn toml_subset_reads_tables_arrays_and_the_comment_above_a_header() {
    let doc = toml_subset::parse(
        r#"top = 1
        # not attached: a blank line follows

        [a]
        list = [
          "x", # a comment
          "y",
        ]
        flag = true # trailing
        escaped = "q \"t\" \\"
        # first line
        # second line
        [[b]]
        t = { crate = "c", n = 0xff }
        [[b]]
        empty = []
        "#,
    )
    .expect("parses");
    use toml_subset::Value::{Array, Bare, Str, Table};
    assert_eq!(doc.get("", "top"), Some(&Bare("1".into())));
    assert_eq!(
        doc.get("a", "list"),
        Some(&Array(vec![Str("x".into()), Str("y".into())]))
    );
    assert_eq!(doc.get("a", "flag").map(|v| v.bool()), Some(Ok(true)));
    assert_eq!(doc.get("a", "escaped"), Some(&Str(r#"q "t" \"#.into())));
    let a = doc.sections.iter().find(|s| s.name == "a").expect("[a]");
    assert_eq!(a.comment, "");
    let b: Vec<_> = doc.tables("b").collect();
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].comment, "first line\nsecond line");
    assert_eq!(b[1].comment, "");
    assert_eq!(
        b[0].get("t"),
        Ok(&Table(vec![
            ("crate".into(), Str("c".into())),
            ("n".into(), Bare("0xff".into()))
        ]))
    );
    assert_eq!(b[1].get("empty"), Ok(&Array(vec![])));
    // Windows line ends.
    let crlf = toml_subset::parse("# why\r\n[[t]]\r\nk = \"v\"\r\n").expect("parses");
    assert_eq!(
        crlf.tables("t").next().map(|t| t.comment.as_str()),
        Some("why")
    );
}

#[test]
fn toml_subset_refuses_what_it_would_misread() {
    for bad in [
        "a.b = 1",
        "\"quoted\" = 1",
        "k = 'literal'",
        "k = \"\"\"multi\nline\"\"\"",
        "k = \"open",
        "k = \"\\u00e9\"",
        "k = [1, 2",
        "k = 1\nk = 2",
        "k = { a = 1, a = 2 }",
        "[t]\n[t]",
        "[\"quoted\"]",
        "k = 1 2",
        "= 1",
    ] {
        assert!(
            toml_subset::parse(bad).is_err(),
            "`{bad}` should be refused: {:?}",
            toml_subset::parse(bad)
        );
    }
}

#[test]
fn policy_reads_every_key_the_checks_use() {
    let policy = Policy::read(
        r#"
        [graph]
        targets = ["x86_64-unknown-linux-gnu", { triple = "aarch64-apple-darwin" }]
        all-features = true
        [licenses]
        allow = ["MIT", "Apache-2.0 WITH LLVM-exception"]
        [licenses.private]
        ignore = true
        # Reason: it says so
        [[licenses.exceptions]]
        crate = "libfuzzer-sys"
        allow = ["NCSA"]
        # Reason: its LICENSE file is MIT
        [[licenses.clarify]]
        crate = "old@0.1.0"
        expression = "MIT"
        license-files = [{ path = "LICENSE", hash = 0x1 }]
        [bans]
        multiple-versions = "allow"
        deny = ["openssl", { crate = "native-tls@=0.2.1", reason = "rustls" }]
        [sources]
        allow-git = []
        "#,
    )
    .expect("reads");
    assert_eq!(
        policy.targets,
        ["x86_64-unknown-linux-gnu", "aarch64-apple-darwin"]
    );
    assert!(policy.all_features && policy.private_ignore);
    assert_eq!(
        policy.allow,
        [
            Licensee::new("MIT", None),
            Licensee::new("Apache-2.0", Some("LLVM-exception"))
        ]
    );
    assert_eq!(
        policy.exceptions[0].spec,
        Spec::parse("libfuzzer-sys").expect("spec")
    );
    assert_eq!(policy.exceptions[0].allow, [Licensee::new("NCSA", None)]);
    assert_eq!(
        policy.clarify[0].spec,
        Spec {
            name: "old".into(),
            version: Some("0.1.0".into())
        }
    );
    assert_eq!(policy.clarify[0].files, ["LICENSE"]);
    assert_eq!(policy.deny.len(), 2);
    assert_eq!(policy.deny[1].spec.version.as_deref(), Some("0.2.1"));
    assert_eq!(policy.deny[1].reason, "rustls");
    assert_eq!(
        policy.registries.len(),
        CRATES_IO.len(),
        "the crates-io registry by default"
    );
    assert!(policy.git.is_empty());

    // A package: allowed, by an exception, with a missing licence, from elsewhere.
    let pkg = |name: &str, license: Option<&str>, source: Option<&str>| Package {
        name: name.into(),
        version: "1.0.0".into(),
        license: license.map(Into::into),
        source: source.map(Into::into),
        dir: PathBuf::from("/nonexistent"),
        unpublished: false,
        dependents: Vec::new(),
    };
    let crates_io = format!("registry+{}", CRATES_IO[0]);
    let ok = pkg("a", Some("MIT OR Zlib"), Some(&crates_io));
    assert_eq!(policy.licence(&ok, Omit::Nothing), Ok(()));
    assert!(policy.licence(&ok, Omit::Allowed(0)).is_err());
    assert_eq!(policy.source(&ok, Path::new("/repo")), Ok(()));
    let fuzz = pkg("libfuzzer-sys", Some("(MIT OR Apache-2.0) AND NCSA"), None);
    assert_eq!(policy.licence(&fuzz, Omit::Nothing), Ok(()));
    assert!(policy.licence(&fuzz, Omit::Exception(0, 0)).is_err());
    assert!(
        policy
            .licence(&pkg("b", Some("NCSA"), None), Omit::Nothing)
            .is_err()
    );
    assert!(
        policy
            .licence(&pkg("c", None, None), Omit::Nothing)
            .is_err()
    );
    let git = pkg(
        "d",
        Some("MIT"),
        Some("git+https://example.invalid/d?rev=1#abc"),
    );
    assert!(policy.source(&git, Path::new("/repo")).is_err());
    let other = pkg(
        "e",
        Some("MIT"),
        Some("registry+https://example.invalid/index"),
    );
    assert!(policy.source(&other, Path::new("/repo")).is_err());
    assert!(
        policy
            .source(&pkg("f", Some("MIT"), None), Path::new("/repo"))
            .is_err()
    );

    // An exception or clarification without its reason is refused.
    let no_reason = "[[licenses.exceptions]]\ncrate = \"x\"\nallow = [\"NCSA\"]\n";
    assert!(Policy::read(no_reason).is_err());
    let detached = "# Reason\n\n[[licenses.exceptions]]\ncrate = \"x\"\nallow = [\"NCSA\"]\n";
    assert!(Policy::read(detached).is_err());
    assert!(
        Policy::read("[licenses]\nexceptions = [{ crate = \"x\", allow = [\"NCSA\"] }]\n").is_err()
    );
    assert!(Policy::read("[bans]\ndeny = [{ crate = \"x\", wrappers = [\"y\"] }]\n").is_err());
    assert!(Policy::read("[bans]\ndeny = [\"x@^1\"]\n").is_err());
}
