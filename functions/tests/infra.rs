//! The Terraform in `infra/` agrees with the code, read with an HCL parser (hcl-rs) and a
//! small structural evaluator of its expressions (locals, `each`, `dynamic` blocks,
//! `merge`, conditionals, templates, `jsonencode`), no provider and no AWS account:
//!
//! - each function's Lambda sets exactly the environment variables the function reads
//!   (`config::ENV_VARS`, which `config`'s own tests tie to the loader);
//! - the queue and table variables name queues and tables defined here, under the names the
//!   code uses locally, and each function's event sources are its trigger queues;
//! - each function's role allows exactly the IAM actions its code calls
//!   (`operations::CALLS`, which the SDK interceptor checks at run time) plus the event
//!   source, logging, key and tracing actions `CONTRACT.md` lists, each on exactly the
//!   resources the function uses;
//! - `CONTRACT.md`'s tables name the same variables and actions as the code.
//!
//! Conditional parts (`dynamic` blocks, `cond ? a : b`) count as present: the check holds
//! for every setting of the variables.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use hcl::expr::{Expression, ObjectKey, TraversalOperator};
use hcl::template::{Element, Template};
use hcl::{Block, Body, Structure};
use solace_functions::config::{self, Config};
use solace_functions::lambda::Function;
use solace_functions::{local, operations};

const INFRA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra");
const CONTRACT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/CONTRACT.md");

/// What the SQS event source mapping needs on the trigger queue (CONTRACT.md).
const EVENT_SOURCE_ACTIONS: &[&str] = &[
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
];
/// Writing logs to the function's own log group (CONTRACT.md).
const LOG_ACTIONS: &[&str] = &["logs:CreateLogStream", "logs:PutLogEvents"];
/// X-Ray when tracing is Active (CONTRACT.md); no resource-level permissions.
const XRAY_ACTIONS: &[&str] = &["xray:PutTelemetryRecords", "xray:PutTraceSegments"];
const KMS_DECRYPT: &str = "kms:Decrypt";
const KMS_GENERATE: &str = "kms:GenerateDataKey";

/// The queues that trigger each function, by their local names (CONTRACT.md's trigger column;
/// `solace local` feeds the functions from the same queues).
fn triggers(function: Function) -> BTreeSet<&'static str> {
    match function {
        Function::Request => [local::REQUEST_QUEUE].into(),
        Function::Backup => [local::BACKUP_QUEUE].into(),
        Function::Restore => [local::RESTORE_QUEUE].into(),
        Function::Redrive => [local::BACKUP_DLQ, local::RESTORE_DLQ].into(),
    }
}

/// The variables that name a queue or table: the resource type, the attribute the variable
/// holds, and the name the code uses locally (the Terraform name is `<name_prefix>` + it).
fn resource_variable(name: &str) -> Option<(&'static str, &'static str, String)> {
    let defaults = Config::from_lookup(|_| None).expect("defaults");
    Some(match name {
        "SOLACE_BACKUP_QUEUE_URL" => ("aws_sqs_queue", "url", local::BACKUP_QUEUE.into()),
        "SOLACE_RESTORE_QUEUE_URL" => ("aws_sqs_queue", "url", local::RESTORE_QUEUE.into()),
        "SOLACE_REJECTED_QUEUE_URL" => ("aws_sqs_queue", "url", local::REJECTED_QUEUE.into()),
        "SOLACE_BACKUP_STATUS_TABLE" => {
            ("aws_dynamodb_table", "name", defaults.backup_status_table)
        }
        "SOLACE_RESTORE_STATUS_TABLE" => {
            ("aws_dynamodb_table", "name", defaults.restore_status_table)
        }
        _ => return None,
    })
}

// --- values --------------------------------------------------------------------------------

/// One step of a reference: `.name` or `["key"]`.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Attr(String),
    Key(String),
}

/// What an expression evaluates to, as far as it can be known without a plan.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    List(Vec<V>),
    Map(BTreeMap<String, V>),
    /// Known at plan or apply only: `var.x`, `aws_sqs_queue.work["backup"].arn`.
    Ref(Vec<Seg>),
    /// A local's value, with its name (a resource list such as `local.data_table_arns`
    /// compares by name).
    Local(String, Box<V>),
    /// Not evaluated here (operators, `for` expressions, other functions).
    Opaque(String),
}

impl V {
    /// The value under any `Local` wrappers.
    fn value(&self) -> &V {
        match self {
            V::Local(_, v) => v.value(),
            v => v,
        }
    }

    fn render(&self) -> String {
        match self {
            V::Null => "null".into(),
            V::Bool(b) => b.to_string(),
            V::Num(n) | V::Str(n) | V::Opaque(n) => n.clone(),
            V::List(items) => {
                let items: Vec<_> = items.iter().map(V::render).collect();
                format!("[{}]", items.join(", "))
            }
            V::Map(m) => {
                let items: Vec<_> = m
                    .iter()
                    .map(|(k, v)| format!("{k} = {}", v.render()))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
            V::Ref(segs) => render_ref(segs),
            V::Local(name, _) => format!("local.{name}"),
        }
    }

    /// Strings, flattening lists and locals (an `actions` list).
    fn strings(&self) -> Vec<String> {
        match self.value() {
            V::List(items) => items.iter().flat_map(V::strings).collect(),
            V::Str(s) => vec![s.clone()],
            v => vec![v.render()],
        }
    }

    /// Resource names: the elements of a list literal, each rendered; a local or reference
    /// stays one name (`local.data_table_arns`, `var.data_kms_key_arns`).
    fn resources(&self) -> Vec<String> {
        match self {
            V::List(items) => items.iter().flat_map(V::resources).collect(),
            v => vec![v.render()],
        }
    }

    fn reference(&self) -> Option<&[Seg]> {
        match self.value() {
            V::Ref(segs) => Some(segs),
            _ => None,
        }
    }
}

fn render_ref(segs: &[Seg]) -> String {
    let mut out = String::new();
    for (i, seg) in segs.iter().enumerate() {
        match seg {
            Seg::Attr(a) if i == 0 => out.push_str(a),
            Seg::Attr(a) => {
                let _ = write!(out, ".{a}");
            }
            Seg::Key(k) => {
                let _ = write!(out, "[\"{k}\"]");
            }
        }
    }
    out
}

/// Both branches of a conditional, as one value: maps and lists merged, so that whatever
/// either branch may hold is checked.
fn union(a: V, b: V) -> V {
    match (a.value(), b.value()) {
        (V::Map(x), V::Map(y)) => {
            let mut m = x.clone();
            m.extend(y.clone());
            V::Map(m)
        }
        (V::List(x), V::List(y)) => V::List(x.iter().chain(y).cloned().collect()),
        (V::Null, _) => b,
        (_, V::Null) => a,
        _ if a == b => a,
        _ => V::Opaque(format!("{} | {}", a.render(), b.render())),
    }
}

/// `resource "type" "name"` → (type, name, optional key, attribute after it).
struct Addr<'a> {
    ty: &'a str,
    name: &'a str,
    key: Option<&'a str>,
    attr: Option<&'a str>,
}

fn addr(segs: &[Seg]) -> Option<Addr<'_>> {
    fn attr(s: Option<&Seg>) -> Option<&str> {
        match s {
            Some(Seg::Attr(a)) => Some(a.as_str()),
            _ => None,
        }
    }
    let (ty, name) = (attr(segs.first())?, attr(segs.get(1))?);
    if matches!(ty, "data" | "var" | "local" | "each" | "path" | "module") {
        return None;
    }
    let (key, rest) = match segs.get(2) {
        Some(Seg::Key(k)) => (Some(k.as_str()), 3),
        _ => (None, 2),
    };
    Some(Addr {
        ty,
        name,
        key,
        attr: attr(segs.get(rest)),
    })
}

/// `segs` with its last attribute replaced (`….url` → `….arn`).
fn with_attr(segs: &[Seg], attr: &str) -> String {
    let mut segs = segs.to_vec();
    segs.pop();
    segs.push(Seg::Attr(attr.into()));
    render_ref(&segs)
}

/// `segs` without its last attribute (`aws_iam_role.fn["x"].arn` → `aws_iam_role.fn["x"]`).
fn instance(segs: &[Seg]) -> String {
    render_ref(&segs[..segs.len().saturating_sub(1)])
}

// --- the configuration ---------------------------------------------------------------------

/// Values of `each` and of a `dynamic` block's iterator.
#[derive(Debug, Clone, Default)]
struct Scope {
    each: Option<(V, V)>,
    iterator: Option<(String, V, V)>,
}

/// One IAM statement, with where it comes from.
#[derive(Debug, Clone)]
struct Statement {
    origin: String,
    effect: String,
    actions: Vec<String>,
    resources: Vec<String>,
}

/// Every top-level block of `infra/*.tf`, and the locals.
struct Tf {
    blocks: Vec<Block>,
    locals: BTreeMap<String, Expression>,
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes()
        .find(|a| a.key.as_str() == key)
        .map(|a| &a.expr)
}

fn labels(block: &Block) -> Vec<&str> {
    block.labels.iter().map(|l| l.as_str()).collect()
}

impl Tf {
    fn load() -> Tf {
        let mut files: Vec<_> = std::fs::read_dir(INFRA)
            .expect("infra/")
            .map(|e| e.expect("infra/ entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "tf"))
            .collect();
        files.sort();
        assert!(files.len() >= 5, "too few .tf files in infra/: {files:?}");
        let mut blocks = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).expect("read .tf");
            let body = hcl::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for structure in body.into_inner() {
                match structure {
                    Structure::Block(b) => blocks.push(b),
                    Structure::Attribute(a) => {
                        panic!("{}: top-level attribute {}", file.display(), a.key)
                    }
                }
            }
        }
        let mut locals = BTreeMap::new();
        for block in blocks.iter().filter(|b| b.identifier.as_str() == "locals") {
            for a in block.body.attributes() {
                let previous = locals.insert(a.key.to_string(), a.expr.clone());
                assert!(previous.is_none(), "local.{} defined twice", a.key);
            }
        }
        Tf { blocks, locals }
    }

    /// The block `kind "label0" "label1"`.
    fn block(&self, kind: &str, ty: &str, name: &str) -> Option<&Block> {
        self.blocks
            .iter()
            .find(|b| b.identifier.as_str() == kind && labels(b) == [ty, name])
    }

    fn block_mut(&mut self, kind: &str, ty: &str, name: &str) -> &mut Block {
        self.blocks
            .iter_mut()
            .find(|b| b.identifier.as_str() == kind && labels(b) == [ty, name])
            .unwrap_or_else(|| panic!("no {kind} {ty}.{name}"))
    }

    fn resources<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.blocks
            .iter()
            .filter(move |b| b.identifier.as_str() == "resource" && labels(b).first() == Some(&ty))
    }

    /// The instances of a resource or data block: (key, scope) per `for_each` entry, or one
    /// without a key.
    fn instances(&self, block: &Block) -> Vec<(Option<String>, Scope)> {
        let Some(for_each) = attr(&block.body, "for_each") else {
            return vec![(None, Scope::default())];
        };
        let each = |k: String, v: V| {
            (
                Some(k.clone()),
                Scope {
                    each: Some((V::Str(k), v)),
                    iterator: None,
                },
            )
        };
        match self.eval(for_each, &Scope::default()).value() {
            V::Map(m) => m.iter().map(|(k, v)| each(k.clone(), v.clone())).collect(),
            V::List(items) => items
                .iter()
                .map(|v| each(v.value().render(), v.clone()))
                .collect(),
            v => panic!(
                "for_each of {:?} is not a map or set: {}",
                labels(block),
                v.render()
            ),
        }
    }

    /// The scope of instance `key` of `block`.
    fn instance_scope(&self, block: &Block, key: Option<&str>) -> Option<Scope> {
        self.instances(block)
            .into_iter()
            .find(|(k, _)| k.as_deref() == key)
            .map(|(_, scope)| scope)
    }

    fn local(&self, name: &str) -> V {
        match self.locals.get(name) {
            Some(e) => V::Local(name.into(), Box::new(self.eval(e, &Scope::default()))),
            None => V::Opaque(format!("local.{name} (undefined)")),
        }
    }

    fn eval(&self, expr: &Expression, scope: &Scope) -> V {
        match expr {
            Expression::Null => V::Null,
            Expression::Bool(b) => V::Bool(*b),
            Expression::Number(n) => V::Num(n.to_string()),
            Expression::String(s) => V::Str(s.clone()),
            Expression::Array(items) => {
                V::List(items.iter().map(|e| self.eval(e, scope)).collect())
            }
            Expression::Object(object) => V::Map(
                object
                    .iter()
                    .map(|(k, v)| {
                        let key = match k {
                            ObjectKey::Identifier(id) => id.to_string(),
                            ObjectKey::Expression(e) => self.eval(e, scope).value().render(),
                            _ => "(key)".into(),
                        };
                        (key, self.eval(v, scope))
                    })
                    .collect(),
            ),
            Expression::TemplateExpr(t) => match Template::from_expr(t) {
                Ok(template) => self.template(&template, scope),
                Err(e) => V::Opaque(format!("bad template: {e}")),
            },
            Expression::Variable(v) => V::Ref(vec![Seg::Attr(v.to_string())]),
            Expression::Traversal(t) => {
                let mut ops = t.operators.iter();
                let base = match &t.expr {
                    Expression::Variable(v) => {
                        let root = v.as_str();
                        let mut bound = |key: &V, value: &V| match ops.next() {
                            Some(TraversalOperator::GetAttr(a)) if a.as_str() == "key" => {
                                key.clone()
                            }
                            Some(TraversalOperator::GetAttr(a)) if a.as_str() == "value" => {
                                value.clone()
                            }
                            _ => V::Opaque(format!("{root}.?")),
                        };
                        match (root, &scope.each, &scope.iterator) {
                            ("local", _, _) => match ops.next() {
                                Some(TraversalOperator::GetAttr(name)) => self.local(name),
                                _ => V::Opaque("local.?".into()),
                            },
                            ("each", Some((k, v)), _) => bound(k, v),
                            (_, _, Some((name, k, v))) if name == root => bound(k, v),
                            _ => V::Ref(vec![Seg::Attr(root.into())]),
                        }
                    }
                    other => self.eval(other, scope),
                };
                ops.fold(base, |v, op| self.apply(v, op, scope))
            }
            Expression::FuncCall(call) => {
                let args: Vec<V> = call.args.iter().map(|e| self.eval(e, scope)).collect();
                let name = call.name.name.as_str();
                let lists = || -> Option<Vec<V>> {
                    let mut out = Vec::new();
                    for a in &args {
                        match a.value() {
                            V::List(items) => out.extend(items.iter().cloned()),
                            _ => return None,
                        }
                    }
                    Some(out)
                };
                let opaque = || V::Opaque(format!("{name}(…)"));
                match name {
                    "merge" => {
                        let mut out = BTreeMap::new();
                        for a in &args {
                            match a.value() {
                                V::Map(m) => out.extend(m.clone()),
                                _ => return opaque(),
                            }
                        }
                        V::Map(out)
                    }
                    "concat" | "toset" | "tolist" | "distinct" | "compact" | "sort" => {
                        lists().map_or_else(opaque, V::List)
                    }
                    // The value itself: a policy in jsonencode() is walked as a structure.
                    "tostring" | "tonumber" | "jsonencode" if args.len() == 1 => args[0].clone(),
                    _ => opaque(),
                }
            }
            Expression::Parenthesis(e) => self.eval(e, scope),
            Expression::Conditional(c) => union(
                self.eval(&c.true_expr, scope),
                self.eval(&c.false_expr, scope),
            ),
            Expression::Operation(_) => V::Opaque("(operation)".into()),
            Expression::ForExpr(_) => V::Opaque("(for expression)".into()),
            _ => V::Opaque("(expression)".into()),
        }
    }

    fn template(&self, template: &Template, scope: &Scope) -> V {
        let mut out = String::new();
        for element in template.elements() {
            match element {
                Element::Literal(s) => out.push_str(s),
                Element::Interpolation(i) => match self.eval(&i.expr, scope) {
                    V::Str(s) => out.push_str(&s),
                    v => {
                        let _ = write!(out, "${{{}}}", v.render());
                    }
                },
                Element::Directive(_) => out.push_str("%{…}"),
            }
        }
        V::Str(out)
    }

    fn apply(&self, v: V, op: &TraversalOperator, scope: &Scope) -> V {
        let key = match op {
            TraversalOperator::GetAttr(a) => Seg::Attr(a.to_string()),
            TraversalOperator::Index(e) => Seg::Key(match self.eval(e, scope).value() {
                V::Str(s) | V::Num(s) => s.clone(),
                other => other.render(),
            }),
            TraversalOperator::LegacyIndex(n) => Seg::Key(n.to_string()),
            _ => return V::Opaque(format!("{}[*]", v.render())),
        };
        match (v.value(), &key) {
            (V::Map(m), Seg::Attr(k) | Seg::Key(k)) => m
                .get(k)
                .cloned()
                .unwrap_or_else(|| V::Opaque(format!("{}.{k} (missing)", v.render()))),
            (V::List(items), Seg::Key(k)) => k
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i).cloned())
                .unwrap_or_else(|| V::Opaque(format!("{}[{k}] (missing)", v.render()))),
            (V::Ref(segs), _) => {
                let mut segs = segs.clone();
                segs.push(key);
                V::Ref(segs)
            }
            _ => V::Opaque(format!("{}.?", v.render())),
        }
    }

    // --- IAM ---------------------------------------------------------------------------

    /// The statements of `data.aws_iam_policy_document.<name>[key]`, following
    /// `source_policy_documents` and `override_policy_documents`.
    fn document(&self, segs: &[Seg], problems: &mut Vec<String>) -> Vec<Statement> {
        let origin = render_ref(segs);
        let (name, key) = match segs {
            [Seg::Attr(d), Seg::Attr(t), Seg::Attr(name), Seg::Attr(json)]
                if d == "data" && t == "aws_iam_policy_document" && json == "json" =>
            {
                (name, None)
            }
            [
                Seg::Attr(d),
                Seg::Attr(t),
                Seg::Attr(name),
                Seg::Key(k),
                Seg::Attr(json),
            ] if d == "data" && t == "aws_iam_policy_document" && json == "json" => {
                (name, Some(k.as_str()))
            }
            _ => {
                problems.push(format!(
                    "{origin}: not a policy document this test can read"
                ));
                return Vec::new();
            }
        };
        let Some(block) = self.block("data", "aws_iam_policy_document", name) else {
            problems.push(format!("{origin}: no such policy document"));
            return Vec::new();
        };
        let Some(scope) = self.instance_scope(block, key) else {
            problems.push(format!("{origin}: no such instance"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for list in ["source_policy_documents", "override_policy_documents"] {
            let Some(e) = attr(&block.body, list) else {
                continue;
            };
            match self.eval(e, &scope).value() {
                V::List(items) => {
                    for item in items {
                        match item.reference() {
                            Some(segs) => out.extend(self.document(segs, problems)),
                            None => problems.push(format!(
                                "{origin}: {list} holds {}, not a document reference",
                                item.render()
                            )),
                        }
                    }
                }
                v => problems.push(format!("{origin}: {list} = {} is not a list", v.render())),
            }
        }
        for inner in block.body.blocks() {
            match (inner.identifier.as_str(), labels(inner).as_slice()) {
                ("statement", []) => {
                    out.push(self.statement(&inner.body, &scope, &origin, problems));
                }
                ("dynamic", ["statement"]) => {
                    let iterator = attr(&inner.body, "iterator")
                        .map(|e| self.eval(e, &scope).render())
                        .unwrap_or_else(|| "statement".into());
                    let items: Vec<(V, V)> = match attr(&inner.body, "for_each")
                        .map(|e| self.eval(e, &scope))
                        .as_ref()
                        .map(V::value)
                    {
                        Some(V::List(items)) => items
                            .iter()
                            .enumerate()
                            .map(|(i, v)| (V::Num(i.to_string()), v.clone()))
                            .collect(),
                        Some(V::Map(m)) => m
                            .iter()
                            .map(|(k, v)| (V::Str(k.clone()), v.clone()))
                            .collect(),
                        other => {
                            let what = other.map_or("nothing".into(), V::render);
                            vec![(V::Opaque(what.clone()), V::Opaque(what))]
                        }
                    };
                    let Some(content) = inner
                        .body
                        .blocks()
                        .find(|b| b.identifier.as_str() == "content")
                    else {
                        problems.push(format!("{origin}: dynamic statement without content"));
                        continue;
                    };
                    for (k, v) in items {
                        let scope = Scope {
                            iterator: Some((iterator.clone(), k, v)),
                            ..scope.clone()
                        };
                        out.push(self.statement(&content.body, &scope, &origin, problems));
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn statement(
        &self,
        body: &Body,
        scope: &Scope,
        doc: &str,
        problems: &mut Vec<String>,
    ) -> Statement {
        let get = |k: &str| attr(body, k).map(|e| self.eval(e, scope));
        let sid = get("sid").map(|v| v.render()).unwrap_or_default();
        let origin = format!("{doc} statement {sid:?}");
        for negated in ["not_actions", "not_resources"] {
            if attr(body, negated).is_some() {
                problems.push(format!("{origin}: {negated} allows what it does not name"));
            }
        }
        Statement {
            effect: get("effect").map_or("Allow".into(), |v| v.render()),
            actions: get("actions").map(|v| v.strings()).unwrap_or_default(),
            resources: get("resources").map(|v| v.resources()).unwrap_or_default(),
            origin,
        }
    }

    /// The statements of a policy given as a structure (`jsonencode({ Statement = [...] })`).
    fn json_policy(&self, policy: &V, origin: &str, problems: &mut Vec<String>) -> Vec<Statement> {
        let statements = match policy.value() {
            V::Map(m) => match m.get("Statement").map(V::value) {
                Some(V::List(items)) => items.clone(),
                Some(one @ V::Map(_)) => vec![one.clone()],
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        statements
            .iter()
            .map(|s| {
                let get = |k: &str| match s.value() {
                    V::Map(m) => m.get(k).cloned(),
                    _ => None,
                };
                let sid = get("Sid").map(|v| v.render()).unwrap_or_default();
                let origin = format!("{origin} statement {sid:?}");
                for negated in ["NotAction", "NotResource"] {
                    if get(negated).is_some() {
                        problems.push(format!("{origin}: {negated} allows what it does not name"));
                    }
                }
                Statement {
                    effect: get("Effect").map_or("Allow".into(), |v| v.render()),
                    actions: get("Action").map(|v| v.strings()).unwrap_or_default(),
                    resources: get("Resource").map(|v| v.resources()).unwrap_or_default(),
                    origin,
                }
            })
            .collect()
    }

    /// Every statement of every policy on the role instance `role` (`aws_iam_role.fn["x"]`).
    fn role_statements(&self, role: &str, problems: &mut Vec<String>) -> Vec<Statement> {
        let mut out = Vec::new();
        for block in self
            .blocks
            .iter()
            .filter(|b| b.identifier.as_str() == "resource")
        {
            let [ty, name] = labels(block)[..] else {
                continue;
            };
            match ty {
                "aws_iam_role"
                    if attr(&block.body, "managed_policy_arns").is_some()
                        || block
                            .body
                            .blocks()
                            .any(|b| b.identifier.as_str() == "inline_policy") =>
                {
                    problems.push(format!(
                        "{ty}.{name}: managed_policy_arns or inline_policy \
                         (keep policies in aws_iam_role_policy)"
                    ));
                }
                "aws_iam_role" => {}
                "aws_iam_role_policy" => {
                    for (key, scope) in self.instances(block) {
                        let origin = match &key {
                            Some(k) => format!("{ty}.{name}[\"{k}\"]"),
                            None => format!("{ty}.{name}"),
                        };
                        let target = attr(&block.body, "role").map(|e| self.eval(e, &scope));
                        let target = target.as_ref().and_then(V::reference).map(instance);
                        if target.as_deref() != Some(role) {
                            continue;
                        }
                        let Some(policy) =
                            attr(&block.body, "policy").map(|e| self.eval(e, &scope))
                        else {
                            problems.push(format!("{origin}: no policy"));
                            continue;
                        };
                        match (policy.reference(), policy.value()) {
                            (Some(segs), _) => out.extend(self.document(segs, problems)),
                            (None, V::Map(_)) => {
                                out.extend(self.json_policy(&policy, &origin, problems));
                            }
                            _ => problems.push(format!(
                                "{origin}: policy {} is neither a policy document nor jsonencode()",
                                policy.render()
                            )),
                        }
                    }
                }
                t if t.starts_with("aws_iam_") => problems.push(format!(
                    "{ty}.{name}: permissions outside the roles' inline policies"
                )),
                _ => {}
            }
        }
        out
    }

    // --- functions ---------------------------------------------------------------------

    /// The Lambda resource instance of `function`: its block and scope.
    fn lambda(&self, function: Function) -> (&Block, Scope) {
        let mut found = Vec::new();
        for block in self.resources("aws_lambda_function") {
            for (key, scope) in self.instances(block) {
                if key.as_deref() == Some(function.name()) {
                    found.push((block, scope));
                }
            }
        }
        assert_eq!(
            found.len(),
            1,
            "one aws_lambda_function instance \"{}\"",
            function.name()
        );
        found.remove(0)
    }

    /// The environment variables `function`'s Lambda sets.
    fn environment(&self, function: Function) -> Result<BTreeMap<String, V>, String> {
        let (block, scope) = self.lambda(function);
        let env = block
            .body
            .blocks()
            .find(|b| b.identifier.as_str() == "environment")
            .and_then(|b| attr(&b.body, "variables"))
            .map(|e| self.eval(e, &scope));
        match env.as_ref().map(V::value) {
            Some(V::Map(m)) => Ok(m.clone()),
            other => Err(format!(
                "{}: environment.variables is not a map this test can read: {}",
                function.name(),
                other.map_or("none".into(), V::render)
            )),
        }
    }

    /// The role instance of `function`'s Lambda (`aws_iam_role.fn["backup"]`).
    fn role(&self, function: Function) -> Option<String> {
        let (block, scope) = self.lambda(function);
        let role = attr(&block.body, "role").map(|e| self.eval(e, &scope))?;
        role.reference().map(instance)
    }

    /// The queues (references to them) of `function`'s SQS event sources.
    fn event_sources(&self, function: Function) -> Vec<Vec<Seg>> {
        let mut out = Vec::new();
        for block in self.resources("aws_lambda_event_source_mapping") {
            for (_, scope) in self.instances(block) {
                let get = |k| attr(&block.body, k).map(|e| self.eval(e, &scope));
                let target = get("function_name");
                let target = target.as_ref().and_then(V::reference).and_then(addr);
                if target.is_some_and(|a| {
                    a.ty == "aws_lambda_function" && a.key == Some(function.name())
                }) {
                    if let Some(queue) = get("event_source_arn").as_ref().and_then(V::reference) {
                        out.push(queue.to_vec());
                    }
                }
            }
        }
        out
    }

    /// The `name` of the resource instance `segs` refers to, without `${var.name_prefix}`.
    fn resource_name(&self, segs: &[Seg]) -> Result<String, String> {
        let what = render_ref(segs);
        let a = addr(segs).ok_or_else(|| format!("{what} is not a resource"))?;
        let block = self
            .block("resource", a.ty, a.name)
            .ok_or_else(|| format!("{what}: no resource {}.{}", a.ty, a.name))?;
        let scope = self
            .instance_scope(block, a.key)
            .ok_or_else(|| format!("{what}: {}.{} has no instance {:?}", a.ty, a.name, a.key))?;
        let name = attr(&block.body, "name")
            .map(|e| self.eval(e, &scope).render())
            .ok_or_else(|| format!("{what}: no name"))?;
        Ok(name
            .strip_prefix("${var.name_prefix}")
            .unwrap_or(&name)
            .to_owned())
    }

    fn variable_declared(&self, name: &str) -> bool {
        self.blocks
            .iter()
            .any(|b| b.identifier.as_str() == "variable" && labels(b) == [name])
    }
}

// --- the checks ------------------------------------------------------------------------

fn assert_none(problems: Vec<String>) {
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// The resources each action of `function` must be allowed on, and only there.
fn expected_permissions(
    tf: &Tf,
    function: Function,
    calls: &[&str],
    problems: &mut Vec<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let f = function.name();
    let env = tf.environment(function).unwrap_or_else(|e| {
        problems.push(e);
        BTreeMap::new()
    });
    // The queues and status tables the function is configured with.
    let of = |suffix: &str, attr: &str| -> BTreeSet<String> {
        env.iter()
            .filter(|(k, _)| k.starts_with("SOLACE_") && k.ends_with(suffix))
            .filter_map(|(_, v)| v.reference().map(|segs| with_attr(segs, attr)))
            .collect()
    };
    let queues = of("_QUEUE_URL", "arn");
    let tables = of("_STATUS_TABLE", "arn");
    let triggers: BTreeSet<String> = tf
        .event_sources(function)
        .iter()
        .map(|segs| render_ref(segs))
        .collect();
    let (lambda, scope) = tf.lambda(function);
    let log_group = lambda
        .body
        .blocks()
        .find(|b| b.identifier.as_str() == "logging_config")
        .and_then(|b| attr(&b.body, "log_group"))
        .map(|e| tf.eval(e, &scope));
    let log_group = match log_group.as_ref().and_then(V::reference) {
        Some(segs) => format!("${{{}}}:*", with_attr(segs, "arn")),
        None => {
            problems.push(format!(
                "{f}: no logging_config.log_group naming its log group"
            ));
            String::new()
        }
    };

    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut allow = |action: &str, resources: BTreeSet<String>| {
        expected.entry(action.into()).or_default().extend(resources);
    };
    let one = |r: &str| BTreeSet::from([r.to_owned()]);
    for &action in calls {
        let resources = match action {
            "sqs:SendMessage" => queues.clone(),
            "dynamodb:Scan" | "dynamodb:BatchWriteItem" => one("local.data_table_arns"),
            a if a.starts_with("dynamodb:") => tables.clone(),
            "s3:ListBucket" => one("local.data_bucket_arns"),
            "s3:GetObject" | "s3:PutObject" => one("local.data_object_arns"),
            a => {
                problems.push(format!("{f}: no rule here for the resources of {a}"));
                BTreeSet::new()
            }
        };
        allow(action, resources);
    }
    for action in EVENT_SOURCE_ACTIONS {
        allow(action, triggers.clone());
    }
    for action in LOG_ACTIONS {
        allow(action, one(&log_group));
    }
    // The deployment key: reading the encrypted trigger queue and environment, and
    // sending to encrypted queues.
    allow(KMS_DECRYPT, one("local.kms_key_arn"));
    if calls.contains(&"sqs:SendMessage") {
        allow(KMS_GENERATE, one("local.kms_key_arn"));
    }
    // The data buckets' keys, for SSE-KMS objects.
    if calls.contains(&"s3:GetObject") {
        allow(KMS_DECRYPT, one("var.data_kms_key_arns"));
    }
    if calls.contains(&"s3:PutObject") {
        allow(KMS_GENERATE, one("var.data_kms_key_arns"));
    }
    for action in XRAY_ACTIONS {
        allow(action, one("*"));
    }
    expected
}

/// Each role allows exactly what its function needs, on exactly its resources.
fn check_iam(tf: &Tf, calls: impl Fn(Function) -> Vec<&'static str>) -> Vec<String> {
    let mut problems = Vec::new();
    for function in Function::ALL {
        let f = function.name();
        let Some(role) = tf.role(function) else {
            problems.push(format!("{f}: the Lambda's role is not a role resource"));
            continue;
        };
        let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut origins: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for s in tf.role_statements(&role, &mut problems) {
            match s.effect.as_str() {
                "Allow" => {
                    for a in &s.actions {
                        allowed
                            .entry(a.clone())
                            .or_default()
                            .extend(s.resources.iter().cloned());
                        origins
                            .entry(a.clone())
                            .or_default()
                            .insert(s.origin.clone());
                    }
                }
                "Deny" => {}
                other => problems.push(format!("{}: effect {other}", s.origin)),
            }
        }
        if allowed.is_empty() {
            problems.push(format!("{f}: {role} has no policy this test can read"));
        }
        let expected = expected_permissions(tf, function, &calls(function), &mut problems);
        for (action, resources) in &expected {
            match allowed.get(action) {
                None => problems.push(format!(
                    "{f}: the role ({role}) does not allow {action}, which the function needs"
                )),
                Some(got) if got != resources => problems.push(format!(
                    "{f}: {action} is allowed on {got:?}, but the function uses {resources:?}"
                )),
                Some(_) => {}
            }
        }
        for (action, from) in &origins {
            if !expected.contains_key(action) {
                problems.push(format!(
                    "{f}: the role allows {action} ({}), which the function does not call \
                     (operations::CALLS) and CONTRACT.md does not list",
                    from.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    problems
}

fn calls(function: Function) -> Vec<&'static str> {
    operations::declared(function).to_vec()
}

#[test]
fn each_role_allows_exactly_what_its_function_calls() {
    assert_none(check_iam(&Tf::load(), calls));
}

#[test]
fn each_lambda_sets_exactly_the_variables_its_function_reads() {
    let tf = Tf::load();
    let mut problems = Vec::new();
    for function in Function::ALL {
        let f = function.name();
        let env = match tf.environment(function) {
            Ok(env) => env,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let set: BTreeSet<&str> = env.keys().map(String::as_str).collect();
        let read: BTreeSet<&str> = config::env_vars(function).iter().copied().collect();
        for name in read.difference(&set) {
            problems.push(format!("{f}: reads {name}, which its Lambda does not set"));
        }
        for name in set.difference(&read) {
            problems.push(format!(
                "{f}: its Lambda sets {name}, which the function does not read"
            ));
        }
        for (name, value) in &env {
            if let Some([Seg::Attr(root), Seg::Attr(var)]) = value.reference() {
                if root == "var" && !tf.variable_declared(var) {
                    problems.push(format!("{f}: {name} = var.{var}, which is not declared"));
                }
            }
        }
    }
    assert_none(problems);
}

#[test]
fn queues_and_tables_exist_and_the_variables_point_at_them() {
    let tf = Tf::load();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for function in Function::ALL {
        let f = function.name();
        for (name, value) in tf.environment(function).unwrap_or_default() {
            let is_resource = name.ends_with("_QUEUE_URL") || name.ends_with("_STATUS_TABLE");
            let Some((ty, attribute, local_name)) = resource_variable(&name) else {
                if is_resource {
                    problems.push(format!("{f}: {name}: unknown queue or table variable"));
                }
                continue;
            };
            seen.insert(name.clone());
            let Some(a) = value.reference().and_then(addr) else {
                problems.push(format!(
                    "{f}: {name} = {}, not a {ty} attribute",
                    value.render()
                ));
                continue;
            };
            if (a.ty, a.attr) != (ty, Some(attribute)) {
                problems.push(format!(
                    "{f}: {name} = {}, expected the {attribute} of an {ty}",
                    value.render()
                ));
                continue;
            }
            match tf.resource_name(value.reference().unwrap_or_default()) {
                Ok(n) if n == local_name => {}
                Ok(n) => problems.push(format!(
                    "{f}: {name} = {} is <name_prefix>{n}, expected <name_prefix>{local_name}",
                    value.render()
                )),
                Err(e) => problems.push(format!("{f}: {name}: {e}")),
            }
        }
    }
    let wanted: BTreeSet<String> = config::ENV_VARS
        .iter()
        .flat_map(|(_, vars)| vars.iter())
        .filter(|v| resource_variable(v).is_some())
        .map(|v| (*v).to_owned())
        .collect();
    assert_eq!(seen, wanted, "every queue and table variable was checked");
    assert_none(problems);
}

#[test]
fn the_event_sources_are_the_trigger_queues() {
    let tf = Tf::load();
    let mut problems = Vec::new();
    for function in Function::ALL {
        let queues: Result<BTreeSet<String>, String> = tf
            .event_sources(function)
            .iter()
            .map(|segs| {
                if addr(segs).is_some_and(|a| a.ty == "aws_sqs_queue" && a.attr == Some("arn")) {
                    tf.resource_name(segs)
                } else {
                    Err(format!("{} is not a queue's arn", render_ref(segs)))
                }
            })
            .collect();
        match queues {
            Ok(q) => {
                let want: BTreeSet<String> =
                    triggers(function).into_iter().map(str::to_owned).collect();
                if q != want {
                    problems.push(format!(
                        "{}: event sources {q:?}, expected {want:?}",
                        function.name()
                    ));
                }
            }
            Err(e) => problems.push(format!("{}: {e}", function.name())),
        }
    }
    assert_none(problems);
}

/// `service:Action` tokens in `text` for the given services.
fn actions_in(text: &str, services: &[&str]) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == ':' || c == '_'))
        .filter(|t| {
            t.split_once(':').is_some_and(|(s, a)| {
                services.contains(&s) && a.starts_with(|c: char| c.is_ascii_uppercase())
            })
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn contract_md_lists_what_the_code_does() {
    let contract = std::fs::read_to_string(CONTRACT).expect("CONTRACT.md");
    let mut problems = Vec::new();
    for function in Function::ALL {
        let f = function.name();
        let Some(row) = contract
            .lines()
            .find(|l| l.starts_with(&format!("| {f} |")))
        else {
            problems.push(format!("CONTRACT.md: no row for {f}"));
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // ["", function, trigger, variables, operations, ""]
        let (Some(vars), Some(ops)) = (cells.get(3), cells.get(4)) else {
            problems.push(format!("CONTRACT.md: {f}'s row has too few columns"));
            continue;
        };
        let listed: BTreeSet<String> = vars
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|t| t.starts_with("SOLACE_"))
            .map(str::to_owned)
            .collect();
        let read: BTreeSet<String> = config::env_vars(function)
            .iter()
            .filter(|v| v.starts_with("SOLACE_"))
            .map(|v| (*v).to_owned())
            .collect();
        if listed != read {
            problems.push(format!(
                "CONTRACT.md: {f} reads {read:?}, the table lists {listed:?}"
            ));
        }
        let listed = actions_in(ops, &["dynamodb", "s3", "sqs"]);
        let called: BTreeSet<String> = calls(function).iter().map(|a| (*a).to_owned()).collect();
        if listed != called {
            problems.push(format!(
                "CONTRACT.md: {f} calls {called:?} (operations::CALLS), the table lists {listed:?}"
            ));
        }
    }
    assert!(
        contract.contains(config::LOG_LEVEL_VAR),
        "CONTRACT.md names the log level variable"
    );
    // The table of permissions besides the calls.
    let extra: String = contract
        .lines()
        .skip_while(|l| !l.starts_with("| permission |"))
        .take_while(|l| l.starts_with('|'))
        .collect::<Vec<_>>()
        .join("\n");
    let listed = actions_in(&extra, &["logs", "sqs", "kms", "xray"]);
    let needed: BTreeSet<String> = EVENT_SOURCE_ACTIONS
        .iter()
        .chain(LOG_ACTIONS)
        .chain(XRAY_ACTIONS)
        .chain(&[KMS_DECRYPT, KMS_GENERATE])
        .map(|a| (*a).to_owned())
        .collect();
    if listed != needed {
        problems.push(format!(
            "CONTRACT.md: the permissions table lists {listed:?}, infra.rs checks {needed:?}"
        ));
    }
    assert_none(problems);
}

// --- the checks catch what they should ----------------------------------------------

/// The `actions` lists of the statements of `doc`, to edit.
fn edit_actions(tf: &mut Tf, doc: &str, edit: impl Fn(&mut Vec<Expression>)) {
    let block = tf.block_mut("data", "aws_iam_policy_document", doc);
    for s in block.body.blocks_mut() {
        let body = if s.identifier.as_str() == "statement" {
            &mut s.body
        } else {
            continue;
        };
        for a in body.attributes_mut() {
            if a.key.as_str() == "actions" {
                if let Expression::Array(items) = &mut a.expr {
                    edit(items);
                }
            }
        }
    }
}

/// The problems `check_iam` finds in `tf` and not in `infra/` as it is.
fn problems_of(tf: &Tf, calls: impl Fn(Function) -> Vec<&'static str>) -> String {
    let before = check_iam(&Tf::load(), self::calls);
    check_iam(tf, calls)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_missing_action_is_caught() {
    let mut tf = Tf::load();
    edit_actions(&mut tf, "backup", |items| {
        items.retain(|e| *e != Expression::String("s3:PutObject".into()))
    });
    let problems = problems_of(&tf, calls);
    assert!(
        problems
            .contains("backup: the role (aws_iam_role.fn[\"backup\"]) does not allow s3:PutObject"),
        "{problems}"
    );
}

#[test]
fn a_wider_role_is_caught() {
    let mut tf = Tf::load();
    edit_actions(&mut tf, "redrive", |items| {
        if items.contains(&Expression::String("sqs:SendMessage".into())) {
            items.push(Expression::String("sqs:PurgeQueue".into()));
        }
    });
    let extra = hcl::parse(
        r#"statement {
  actions   = ["dynamodb:*"]
  resources = ["*"]
}"#,
    )
    .expect("statement");
    tf.block_mut("data", "aws_iam_policy_document", "restore")
        .body
        .0
        .extend(extra.into_inner());
    let problems = problems_of(&tf, calls);
    for wanted in [
        "redrive: the role allows sqs:PurgeQueue",
        "restore: the role allows dynamodb:*",
    ] {
        assert!(problems.contains(wanted), "{wanted}:\n{problems}");
    }
    assert_eq!(problems.lines().count(), 2, "{problems}");
}

#[test]
fn a_call_the_role_does_not_allow_is_caught() {
    let tf = Tf::load();
    let problems = problems_of(&tf, |f| {
        let mut c = calls(f);
        if f == Function::Restore {
            c.push("dynamodb:Query");
        }
        c
    });
    assert!(
        problems.contains(
            "restore: the role (aws_iam_role.fn[\"restore\"]) does not allow dynamodb:Query"
        ),
        "{problems}"
    );
}

#[test]
fn a_resource_outside_the_function_is_caught() {
    let mut tf = Tf::load();
    // The backup role may send to the backup queue only.
    let block = tf.block_mut("data", "aws_iam_policy_document", "backup");
    let extra = hcl::parse(
        r#"statement {
  actions   = ["sqs:SendMessage"]
  resources = [aws_sqs_queue.rejected.arn]
}"#,
    )
    .expect("statement");
    block.body.0.extend(extra.into_inner());
    let problems = problems_of(&tf, calls);
    assert!(
        problems.contains("backup: sqs:SendMessage is allowed on")
            && problems.contains("aws_sqs_queue.rejected.arn"),
        "{problems}"
    );
}

#[test]
fn the_evaluator_reads_jsonencode_policies() {
    let tf = Tf::load();
    let policy = hcl::parse(
        r#"x = jsonencode({
  Version = "2012-10-17"
  Statement = [{ Effect = "Allow", Action = ["s3:GetObject"], Resource = local.data_object_arns }]
})"#,
    )
    .expect("policy");
    let expr = attr(&policy, "x").expect("x");
    let mut problems = Vec::new();
    let statements = tf.json_policy(&tf.eval(expr, &Scope::default()), "test", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0].actions, ["s3:GetObject"]);
    assert_eq!(statements[0].resources, ["local.data_object_arns"]);
}
