//! A Terraform module's blocks ([`Module`]) and the evaluation of their expressions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ::hcl::expr::{Expression, ObjectKey, TraversalOperator};
use ::hcl::template::{Element, Template};
use ::hcl::{Block, Body, Structure};
use anyhow::{Context, bail};

use super::value::{Seg, Value, address, render_ref, union};

/// The bindings an expression is evaluated with: `each` inside a `for_each` resource or data
/// block, and a `dynamic` block's iterator inside its `content`.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// `each.key` and `each.value`.
    pub each: Option<(Value, Value)>,
    /// A `dynamic` block's iterator: its name (the block's label, or its `iterator`), then
    /// `<name>.key` and `<name>.value`.
    pub iterator: Option<(String, Value, Value)>,
}

/// The top-level blocks of a Terraform module (every `.tf` file of one directory), whose
/// expressions [`Module::eval`] evaluates.
#[derive(Debug, Clone)]
pub struct Module {
    blocks: Vec<Block>,
    files: Vec<PathBuf>,
}

/// The expression of attribute `key` of `body`.
pub fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes()
        .find(|a| a.key.as_str() == key)
        .map(|a| &a.expr)
}

/// The labels of `block`: `["aws_sqs_queue", "work"]` for `resource "aws_sqs_queue" "work"`.
pub fn labels(block: &Block) -> Vec<&str> {
    block.labels.iter().map(|l| l.as_str()).collect()
}

impl Module {
    /// Reads every `*.tf` file of directory `dir` (not its subdirectories), in name order.
    ///
    /// # Errors
    ///
    /// If the directory or a file cannot be read, a file is not HCL, a file has a top-level
    /// attribute, or a local is defined twice.
    pub fn load(dir: impl AsRef<Path>) -> anyhow::Result<Module> {
        let dir = dir.as_ref();
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry
                .with_context(|| format!("reading {}", dir.display()))?
                .path();
            if path.extension().is_some_and(|e| e == "tf") {
                files.push(path);
            }
        }
        files.sort();
        let mut blocks = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            blocks.extend(top_level_blocks(&text).with_context(|| file.display().to_string())?);
        }
        let module = Module { blocks, files };
        module.check_locals()?;
        Ok(module)
    }

    /// The module made of the blocks in `text`, as one `.tf` file.
    ///
    /// # Errors
    ///
    /// As [`Module::load`].
    pub fn parse(text: &str) -> anyhow::Result<Module> {
        let module = Module {
            blocks: top_level_blocks(text)?,
            files: Vec::new(),
        };
        module.check_locals()?;
        Ok(module)
    }

    fn check_locals(&self) -> anyhow::Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for a in self.locals_blocks().flat_map(|b| b.body.attributes()) {
            if !seen.insert(a.key.as_str()) {
                bail!("local.{} defined twice", a.key);
            }
        }
        Ok(())
    }

    fn locals_blocks(&self) -> impl Iterator<Item = &Block> {
        self.blocks
            .iter()
            .filter(|b| b.identifier.as_str() == "locals")
    }

    /// The files [`Module::load`] read, in the order it read them (none for
    /// [`Module::parse`]).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Every top-level block, in file order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The block `kind "ty" "name"` (`resource "aws_sqs_queue" "work"`).
    pub fn block(&self, kind: &str, ty: &str, name: &str) -> Option<&Block> {
        self.blocks
            .iter()
            .find(|b| b.identifier.as_str() == kind && labels(b) == [ty, name])
    }

    /// The block `kind "ty" "name"`, to edit (a test changing the configuration to see that
    /// a check catches it). Later evaluations see the edit, locals included.
    pub fn block_mut(&mut self, kind: &str, ty: &str, name: &str) -> Option<&mut Block> {
        self.blocks
            .iter_mut()
            .find(|b| b.identifier.as_str() == kind && labels(b) == [ty, name])
    }

    /// The `resource` blocks of type `ty`.
    pub fn resources<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.blocks
            .iter()
            .filter(move |b| b.identifier.as_str() == "resource" && labels(b).first() == Some(&ty))
    }

    /// Whether `variable "name"` is declared.
    pub fn variable_declared(&self, name: &str) -> bool {
        self.blocks
            .iter()
            .any(|b| b.identifier.as_str() == "variable" && labels(b) == [name])
    }

    /// The instances of a resource or data block: its key and the scope binding `each`, per
    /// entry of its `for_each` (a map's keys; a list's or set's elements, rendered), or one
    /// instance without a key when it has no `for_each`.
    ///
    /// # Panics
    ///
    /// If `for_each` evaluates to neither a map nor a list (a variable, say): the instances
    /// cannot be known here.
    pub fn instances(&self, block: &Block) -> Vec<(Option<String>, Scope)> {
        let Some(for_each) = attr(&block.body, "for_each") else {
            return vec![(None, Scope::default())];
        };
        let each = |k: String, v: Value| {
            (
                Some(k.clone()),
                Scope {
                    each: Some((Value::Str(k), v)),
                    iterator: None,
                },
            )
        };
        match self.eval(for_each, &Scope::default()).resolved() {
            Value::Map(m) => m.iter().map(|(k, v)| each(k.clone(), v.clone())).collect(),
            Value::List(items) => items
                .iter()
                .map(|v| each(v.resolved().render(), v.clone()))
                .collect(),
            v => panic!(
                "for_each of {} {:?} is not a map or set: {}",
                block.identifier,
                labels(block),
                v.render()
            ),
        }
    }

    /// The scope of instance `key` of `block` (`None` for a block without `for_each`).
    pub fn instance_scope(&self, block: &Block, key: Option<&str>) -> Option<Scope> {
        self.instances(block)
            .into_iter()
            .find(|(k, _)| k.as_deref() == key)
            .map(|(_, scope)| scope)
    }

    /// `local.name`: [`Value::Local`] with its evaluated expression, or [`Value::Opaque`] if
    /// no `locals` block defines it. (A local that refers to itself, which Terraform
    /// rejects, recurses without end.)
    pub fn local(&self, name: &str) -> Value {
        let expr = self
            .locals_blocks()
            .flat_map(|b| b.body.attributes())
            .find(|a| a.key.as_str() == name)
            .map(|a| &a.expr);
        match expr {
            Some(e) => Value::Local(name.into(), Box::new(self.eval(e, &Scope::default()))),
            None => Value::Opaque(format!("local.{name} (undefined)")),
        }
    }

    /// The value of attribute `attr` of the resource instance `segs` refers to
    /// (`aws_sqs_queue.work["backup"].url` with `"name"`: that queue's `name`), evaluated in
    /// that instance's scope.
    ///
    /// # Errors
    ///
    /// If `segs` is not a resource reference, the resource or the instance does not exist,
    /// or it has no such attribute.
    pub fn resource_attr(&self, segs: &[Seg], attr_name: &str) -> Result<Value, String> {
        let what = render_ref(segs);
        let a = address(segs).ok_or_else(|| format!("{what} is not a resource"))?;
        let block = self
            .block("resource", a.ty, a.name)
            .ok_or_else(|| format!("{what}: no resource {}.{}", a.ty, a.name))?;
        let scope = self
            .instance_scope(block, a.key)
            .ok_or_else(|| format!("{what}: {}.{} has no instance {:?}", a.ty, a.name, a.key))?;
        attr(&block.body, attr_name)
            .map(|e| self.eval(e, &scope))
            .ok_or_else(|| format!("{what}: no {attr_name}"))
    }

    /// Evaluates `expr` structurally, without a plan:
    ///
    /// - literals, lists and objects (object keys that are expressions are rendered);
    /// - templates: parts that evaluate to a string inlined, any other part kept as
    ///   `${…}` ([`Value::render`]: a bare local by its name, `${local.x}`); directives
    ///   (`%{…}`) are not evaluated;
    /// - `local.x` ([`Value::Local`]), `each.key`/`each.value` and a `dynamic` block's
    ///   `<iterator>.key`/`.value` from `scope`; every other reference (`var.x`,
    ///   `aws_sqs_queue.work["backup"].arn`, `data.…`) is a [`Value::Ref`];
    /// - attribute and index steps into known maps and lists (a missing entry is
    ///   [`Value::Opaque`]) and onto references;
    /// - `cond ? a : b` as [`union`] of both branches, since either may hold;
    /// - functions: `merge` of maps; `concat`, `toset`, `tolist`, `distinct`, `compact` and
    ///   `sort` of lists as the concatenation of their elements, in order, duplicates kept
    ///   (a reference argument, `var.x`, is one element standing for its own);
    ///   `tostring`, `tonumber` and `jsonencode` of one value as that value (a policy in
    ///   `jsonencode()` is read as a structure). Any other function, or one of these on
    ///   arguments it cannot combine, is [`Value::Opaque`];
    /// - operators, `for` expressions and splats are [`Value::Opaque`].
    pub fn eval(&self, expr: &Expression, scope: &Scope) -> Value {
        match expr {
            Expression::Null => Value::Null,
            Expression::Bool(b) => Value::Bool(*b),
            Expression::Number(n) => Value::Num(n.to_string()),
            Expression::String(s) => Value::Str(s.clone()),
            Expression::Array(items) => {
                Value::List(items.iter().map(|e| self.eval(e, scope)).collect())
            }
            Expression::Object(object) => Value::Map(
                object
                    .iter()
                    .map(|(k, v)| {
                        let key = match k {
                            ObjectKey::Identifier(id) => id.to_string(),
                            ObjectKey::Expression(e) => self.eval(e, scope).resolved().render(),
                            _ => "(key)".into(),
                        };
                        (key, self.eval(v, scope))
                    })
                    .collect(),
            ),
            Expression::TemplateExpr(t) => match Template::from_expr(t) {
                Ok(template) => self.template(&template, scope),
                Err(e) => Value::Opaque(format!("bad template: {e}")),
            },
            Expression::Variable(v) => Value::Ref(vec![Seg::Attr(v.to_string())]),
            Expression::Traversal(t) => {
                let mut ops = t.operators.iter();
                let base = match &t.expr {
                    Expression::Variable(v) => {
                        let root = v.as_str();
                        let mut bound = |key: &Value, value: &Value| match ops.next() {
                            Some(TraversalOperator::GetAttr(a)) if a.as_str() == "key" => {
                                key.clone()
                            }
                            Some(TraversalOperator::GetAttr(a)) if a.as_str() == "value" => {
                                value.clone()
                            }
                            _ => Value::Opaque(format!("{root}.?")),
                        };
                        match (root, &scope.each, &scope.iterator) {
                            ("local", _, _) => match ops.next() {
                                Some(TraversalOperator::GetAttr(name)) => self.local(name),
                                _ => Value::Opaque("local.?".into()),
                            },
                            ("each", Some((k, v)), _) => bound(k, v),
                            (_, _, Some((name, k, v))) if name == root => bound(k, v),
                            _ => Value::Ref(vec![Seg::Attr(root.into())]),
                        }
                    }
                    other => self.eval(other, scope),
                };
                ops.fold(base, |v, op| self.step(v, op, scope))
            }
            Expression::FuncCall(call) => {
                let args: Vec<Value> = call.args.iter().map(|e| self.eval(e, scope)).collect();
                let name = call.name.name.as_str();
                let lists = || -> Option<Vec<Value>> {
                    let mut out = Vec::new();
                    for a in &args {
                        match a.resolved() {
                            Value::List(items) => out.extend(items.iter().cloned()),
                            // A variable's list stays one element that stands for its own.
                            Value::Ref(_) => out.push(a.clone()),
                            _ => return None,
                        }
                    }
                    Some(out)
                };
                let opaque = || Value::Opaque(format!("{name}(…)"));
                match name {
                    "merge" => {
                        let mut out = BTreeMap::new();
                        for a in &args {
                            match a.resolved() {
                                Value::Map(m) => out.extend(m.clone()),
                                _ => return opaque(),
                            }
                        }
                        Value::Map(out)
                    }
                    "concat" | "toset" | "tolist" | "distinct" | "compact" | "sort" => {
                        lists().map_or_else(opaque, Value::List)
                    }
                    "tostring" | "tonumber" | "jsonencode" if args.len() == 1 => args[0].clone(),
                    _ => opaque(),
                }
            }
            Expression::Parenthesis(e) => self.eval(e, scope),
            Expression::Conditional(c) => union(
                self.eval(&c.true_expr, scope),
                self.eval(&c.false_expr, scope),
            ),
            Expression::Operation(_) => Value::Opaque("(operation)".into()),
            Expression::ForExpr(_) => Value::Opaque("(for expression)".into()),
            _ => Value::Opaque("(expression)".into()),
        }
    }

    fn template(&self, template: &Template, scope: &Scope) -> Value {
        let mut out = String::new();
        for element in template.elements() {
            match element {
                Element::Literal(s) => out.push_str(s),
                Element::Interpolation(i) => match self.eval(&i.expr, scope) {
                    Value::Str(s) => out.push_str(&s),
                    v => {
                        let _ = write!(out, "${{{}}}", v.render());
                    }
                },
                Element::Directive(_) => out.push_str("%{…}"),
            }
        }
        Value::Str(out)
    }

    /// One traversal step (`.name`, `[index]`) applied to `v`.
    fn step(&self, v: Value, op: &TraversalOperator, scope: &Scope) -> Value {
        let key = match op {
            TraversalOperator::GetAttr(a) => Seg::Attr(a.to_string()),
            TraversalOperator::Index(e) => Seg::Key(match self.eval(e, scope).resolved() {
                Value::Str(s) | Value::Num(s) => s.clone(),
                other => other.render(),
            }),
            TraversalOperator::LegacyIndex(n) => Seg::Key(n.to_string()),
            _ => return Value::Opaque(format!("{}[*]", v.render())),
        };
        match (v.resolved(), &key) {
            (Value::Map(m), Seg::Attr(k) | Seg::Key(k)) => m
                .get(k)
                .cloned()
                .unwrap_or_else(|| Value::Opaque(format!("{}.{k} (missing)", v.render()))),
            (Value::List(items), Seg::Key(k)) => k
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i).cloned())
                .unwrap_or_else(|| Value::Opaque(format!("{}[{k}] (missing)", v.render()))),
            (Value::Ref(segs), _) => {
                let mut segs = segs.clone();
                segs.push(key);
                Value::Ref(segs)
            }
            _ => Value::Opaque(format!("{}.?", v.render())),
        }
    }
}

/// The top-level blocks of one file.
fn top_level_blocks(text: &str) -> anyhow::Result<Vec<Block>> {
    let body = ::hcl::parse(text)?;
    let mut blocks = Vec::new();
    for structure in body.into_inner() {
        match structure {
            Structure::Block(b) => blocks.push(b),
            Structure::Attribute(a) => bail!("top-level attribute {}", a.key),
        }
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(text: &str) -> Module {
        Module::parse(text).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The value of `x = <expr>` in a module that also holds `rest`.
    fn eval_in(rest: &str, expr: &str) -> Value {
        let m = module(rest);
        let body = ::hcl::parse(&format!("x = {expr}\n")).expect("expression");
        m.eval(attr(&body, "x").expect("x"), &Scope::default())
    }

    fn eval(expr: &str) -> Value {
        eval_in("", expr)
    }

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|i| s(i)).collect())
    }

    #[test]
    fn literals() {
        assert_eq!(eval("null"), Value::Null);
        assert_eq!(eval("true"), Value::Bool(true));
        assert_eq!(eval("42"), Value::Num("42".into()));
        assert_eq!(eval("1.5"), Value::Num("1.5".into()));
        assert_eq!(eval(r#""text""#), s("text"));
        assert_eq!(eval(r#"["a", "b"]"#), list(&["a", "b"]));
        assert_eq!(eval(r#"{ a = "1", "b" = 2 }"#).render(), "{a = 1, b = 2}");
    }

    #[test]
    fn object_keys_that_are_expressions_are_rendered() {
        assert_eq!(
            eval_in(r#"locals { k = "key" }"#, r#"{ (local.k) = 1 }"#).render(),
            "{key = 1}"
        );
    }

    #[test]
    fn variables_stay_references() {
        let v = eval("var.name_prefix");
        assert_eq!(
            v,
            Value::Ref(vec![
                Seg::Attr("var".into()),
                Seg::Attr("name_prefix".into())
            ])
        );
        assert_eq!(eval("path.module").render(), "path.module");
        assert_eq!(
            eval(r#"aws_sqs_queue.work["backup"].arn"#).render(),
            r#"aws_sqs_queue.work["backup"].arn"#
        );
        // A variable's default is not its value: the checks hold for every setting.
        assert_eq!(
            eval_in(r#"variable "x" { default = "d" }"#, "var.x").render(),
            "var.x"
        );
    }

    #[test]
    fn variables_declared() {
        let m = module(
            r#"
variable "name_prefix" {
  type    = string
  default = "solace-"
}
"#,
        );
        assert!(m.variable_declared("name_prefix"));
        assert!(!m.variable_declared("region"));
    }

    #[test]
    fn locals_evaluate_with_their_name() {
        let rest = r#"
locals {
  prefix = "solace-"
  names  = ["a", local.prefix]
}
locals {
  by_name = { first = local.names[0] }
}
"#;
        let v = eval_in(rest, "local.names");
        assert_eq!(
            v,
            Value::Local(
                "names".into(),
                Box::new(Value::List(vec![
                    s("a"),
                    Value::Local("prefix".into(), Box::new(s("solace-"))),
                ]))
            )
        );
        assert_eq!(v.render(), "local.names");
        assert_eq!(v.strings(), ["a", "solace-"]);
        assert_eq!(eval_in(rest, "local.by_name.first"), s("a"));
        assert_eq!(
            eval_in(rest, "local.nothing"),
            Value::Opaque("local.nothing (undefined)".into())
        );
    }

    #[test]
    fn a_local_defined_twice_is_an_error() {
        let e =
            Module::parse("locals {\n a = 1\n}\nlocals {\n a = 2\n}\n").expect_err("defined twice");
        assert_eq!(e.to_string(), "local.a defined twice");
    }

    #[test]
    fn top_level_attributes_and_syntax_errors_are_errors() {
        let e = Module::parse("a = 1\n").expect_err("top-level attribute");
        assert_eq!(e.to_string(), "top-level attribute a");
        assert!(Module::parse("resource {").is_err());
    }

    #[test]
    fn templates() {
        let rest = r#"locals {
  name = "backup"
  fns  = { backup = { queue = "backup-queue" } }
}"#;
        assert_eq!(eval_in(rest, r#""plain""#), s("plain"));
        assert_eq!(eval_in(rest, r#""q-${"x"}""#), s("q-x"));
        // A string reached through a local is inlined; a bare local keeps its name.
        assert_eq!(
            eval_in(rest, r#""${local.fns["backup"].queue}-dlq""#),
            s("backup-queue-dlq")
        );
        assert_eq!(eval_in(rest, r#""q-${local.name}""#), s("q-${local.name}"));
        assert_eq!(
            eval_in(rest, r#""${var.name_prefix}${each.key}:*""#),
            s("${var.name_prefix}${each.key}:*")
        );
        assert_eq!(eval(r#""n=${1}""#), s("n=${1}"));
        assert_eq!(eval(r#""%{ if true }a%{ endif }""#), s("%{…}"));
    }

    #[test]
    fn steps_into_maps_lists_and_references() {
        let rest = r#"
locals {
  m = { a = { b = "deep" } }
  l = ["zero", "one"]
}
"#;
        assert_eq!(eval_in(rest, "local.m.a.b"), s("deep"));
        assert_eq!(eval_in(rest, r#"local.m["a"]["b"]"#), s("deep"));
        assert_eq!(eval_in(rest, "local.l[1]"), s("one"));
        assert_eq!(eval_in(rest, "local.l.0"), s("zero"));
        assert_eq!(
            eval_in(rest, "local.m.c"),
            Value::Opaque("local.m.c (missing)".into())
        );
        assert_eq!(
            eval_in(rest, "local.l[5]"),
            Value::Opaque("local.l[5] (missing)".into())
        );
        assert_eq!(
            eval_in(rest, r#"aws_sqs_queue.work[local.l[0]].url"#).render(),
            r#"aws_sqs_queue.work["zero"].url"#
        );
        assert_eq!(eval("var.xs[*].id"), Value::Opaque("var.xs[*].?".into()));
    }

    #[test]
    fn conditionals_hold_both_branches() {
        assert_eq!(
            eval(r#"var.on ? { a = "1" } : { b = "2" }"#).render(),
            "{a = 1, b = 2}"
        );
        assert_eq!(eval(r#"var.on ? ["a"] : []"#), list(&["a"]));
        assert_eq!(eval(r#"var.on ? "a" : null"#), s("a"));
        assert_eq!(
            eval(r#"(var.on ? "a" : "b")"#),
            Value::Opaque("a | b".into())
        );
    }

    #[test]
    fn merge_and_list_functions() {
        let rest = r#"locals { base = { a = "1", b = "1" } }"#;
        assert_eq!(
            eval_in(rest, r#"merge(local.base, { b = "2" }, { c = "3" })"#).render(),
            "{a = 1, b = 2, c = 3}"
        );
        assert_eq!(eval("merge(var.m)"), Value::Opaque("merge(…)".into()));
        for f in ["concat", "toset", "tolist", "distinct", "compact", "sort"] {
            assert_eq!(
                eval(&format!(r#"{f}(["b", "a"], ["a"])"#)),
                list(&["b", "a", "a"]),
                "{f}"
            );
        }
        // A variable's list is one element standing for its own; anything else unknown is
        // opaque.
        assert_eq!(
            eval(r#"concat(["a"], var.more)"#),
            Value::List(vec![
                s("a"),
                Value::Ref(vec![Seg::Attr("var".into()), Seg::Attr("more".into())])
            ])
        );
        assert_eq!(
            eval(r#"concat(["a"], merge(var.m))"#),
            Value::Opaque("concat(…)".into())
        );
    }

    #[test]
    fn conversions_and_jsonencode_are_the_value_itself() {
        assert_eq!(eval(r#"tostring("a")"#), s("a"));
        assert_eq!(eval("tonumber(1)"), Value::Num("1".into()));
        assert_eq!(
            eval(r#"jsonencode({ Action = ["s3:GetObject"] })"#).render(),
            "{Action = [s3:GetObject]}"
        );
        assert_eq!(
            eval(r#"tostring("a", "b")"#),
            Value::Opaque("tostring(…)".into())
        );
        assert_eq!(
            eval(r#"format("%s", "a")"#),
            Value::Opaque("format(…)".into())
        );
    }

    #[test]
    fn operators_and_for_expressions_are_opaque() {
        assert_eq!(eval("1 + 2"), Value::Opaque("(operation)".into()));
        assert_eq!(eval("!var.on"), Value::Opaque("(operation)".into()));
        assert_eq!(
            eval(r#"[for s in ["a"] : upper(s)]"#),
            Value::Opaque("(for expression)".into())
        );
        assert_eq!(
            eval(r#"{ for s in ["a"] : s => s }"#),
            Value::Opaque("(for expression)".into())
        );
    }

    #[test]
    fn for_each_instances_bind_each() {
        let m = module(
            r#"
locals {
  fns = { backup = { timeout = 900 }, restore = { timeout = 600 } }
}
resource "aws_sqs_queue" "work" {
  for_each = local.fns
  name     = "${var.name_prefix}${each.key}-queue"
  delay    = each.value.timeout
}
resource "aws_sqs_queue" "set" {
  for_each = toset(["x", "y"])
  name     = each.value
}
resource "aws_sqs_queue" "one" {
  name = "one"
}
"#,
        );
        let work = m.block("resource", "aws_sqs_queue", "work").expect("work");
        let keys: Vec<_> = m.instances(work).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [Some("backup".into()), Some("restore".into())]);
        let scope = m.instance_scope(work, Some("restore")).expect("restore");
        assert_eq!(
            m.eval(attr(&work.body, "name").expect("name"), &scope),
            s("${var.name_prefix}restore-queue")
        );
        assert_eq!(
            m.eval(attr(&work.body, "delay").expect("delay"), &scope),
            Value::Num("600".into())
        );
        assert!(m.instance_scope(work, Some("redrive")).is_none());
        assert!(m.instance_scope(work, None).is_none());

        let set = m.block("resource", "aws_sqs_queue", "set").expect("set");
        let scope = m.instance_scope(set, Some("y")).expect("y");
        assert_eq!(
            m.eval(attr(&set.body, "name").expect("name"), &scope),
            s("y")
        );

        let one = m.block("resource", "aws_sqs_queue", "one").expect("one");
        assert_eq!(m.instances(one).len(), 1);
        assert!(m.instance_scope(one, None).is_some());
        assert_eq!(m.resources("aws_sqs_queue").count(), 3);
        assert_eq!(m.resources("aws_sns_topic").count(), 0);
    }

    #[test]
    #[should_panic(expected = "is not a map or set: var.fns")]
    fn for_each_over_a_variable_cannot_be_known() {
        let m = module(
            r#"
resource "aws_sqs_queue" "work" {
  for_each = var.fns
}
"#,
        );
        let work = m.block("resource", "aws_sqs_queue", "work").expect("work");
        m.instances(work);
    }

    #[test]
    fn a_dynamic_iterator_is_bound_by_its_scope() {
        let m = module("");
        let body = ::hcl::parse("x = \"${stmt.key}=${stmt.value}\"\n").expect("x");
        let scope = Scope {
            each: None,
            iterator: Some(("stmt".into(), Value::Num("0".into()), s("v"))),
        };
        // A number is not a string: it is rendered into the template with `${…}`.
        assert_eq!(m.eval(attr(&body, "x").expect("x"), &scope), s("${0}=v"));
        assert_eq!(
            m.eval(attr(&body, "x").expect("x"), &Scope::default()),
            s("${stmt.key}=${stmt.value}")
        );
    }

    #[test]
    fn resource_attributes_through_references() {
        let m = module(
            r#"
resource "aws_sqs_queue" "work" {
  for_each = toset(["backup"])
  name     = "${var.name_prefix}${each.key}-queue"
}
"#,
        );
        let r = |text: &str| eval(text).reference().expect("a reference").to_vec();
        assert_eq!(
            m.resource_attr(&r(r#"aws_sqs_queue.work["backup"].url"#), "name"),
            Ok(s("${var.name_prefix}backup-queue"))
        );
        assert_eq!(
            m.resource_attr(&r(r#"aws_sqs_queue.work["restore"].url"#), "name"),
            Err(r#"aws_sqs_queue.work["restore"].url: aws_sqs_queue.work has no instance Some("restore")"#.into())
        );
        assert_eq!(
            m.resource_attr(&r("aws_sqs_queue.other.url"), "name"),
            Err("aws_sqs_queue.other.url: no resource aws_sqs_queue.other".into())
        );
        assert_eq!(
            m.resource_attr(&r(r#"aws_sqs_queue.work["backup"].url"#), "delay"),
            Err(r#"aws_sqs_queue.work["backup"].url: no delay"#.into())
        );
        assert_eq!(
            m.resource_attr(&r("var.x"), "name"),
            Err("var.x is not a resource".into())
        );
    }

    #[test]
    fn edits_are_seen_by_later_evaluations() {
        let mut m = module("locals {\n a = \"1\"\n}\nresource \"t\" \"n\" {\n x = 1\n}\n");
        assert!(m.block_mut("resource", "t", "missing").is_none());
        let locals = m
            .blocks
            .iter_mut()
            .find(|b| b.identifier.as_str() == "locals")
            .expect("locals");
        for a in locals.body.attributes_mut() {
            a.expr = Expression::String("2".into());
        }
        assert_eq!(m.local("a").resolved(), &s("2"));
        assert_eq!(
            labels(m.block_mut("resource", "t", "n").expect("t.n")),
            ["t", "n"]
        );
    }

    #[test]
    fn load_reads_the_tf_files_of_a_directory_in_order() {
        let dir = std::env::temp_dir().join(format!(
            "solace-testkit-hcl-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        std::fs::write(dir.join("b.tf"), "variable \"b\" {}\n").expect("b.tf");
        std::fs::write(dir.join("a.tf"), "variable \"a\" {}\n").expect("a.tf");
        std::fs::write(dir.join("notes.md"), "not = hcl {").expect("notes.md");
        std::fs::write(dir.join("sub/c.tf"), "variable \"c\" {}\n").expect("c.tf");
        let loaded = Module::load(&dir);
        std::fs::write(dir.join("bad.tf"), "x = 1\n").expect("bad.tf");
        let bad = Module::load(&dir).map(|_| ());
        std::fs::remove_dir_all(&dir).expect("clean up");

        let m = loaded.expect("load");
        let names: Vec<_> = m
            .files()
            .iter()
            .map(|f| f.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.tf", "b.tf"]);
        let vars: Vec<_> = m.blocks().iter().map(labels).collect();
        assert_eq!(vars, [["a"], ["b"]]);
        let e = bad.expect_err("a top-level attribute");
        assert!(
            format!("{e:#}").ends_with("bad.tf: top-level attribute x"),
            "{e:#}"
        );
        assert!(Module::load(dir.join("gone")).is_err());
    }
}
