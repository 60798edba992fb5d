//! IAM statements as a [`Module`] defines them: `data "aws_iam_policy_document"` blocks
//! (with `dynamic "statement"` blocks and `source_policy_documents` /
//! `override_policy_documents`), `jsonencode()` policies, and the `aws_iam_role_policy`
//! resources that attach them to a role.
//!
//! What this cannot account for is reported as a problem (a message in `problems`) rather
//! than skipped, so that a check built on it cannot pass on permissions it did not see:
//! `not_actions`/`not_resources`, roles with `managed_policy_arns` or `inline_policy`, other
//! `aws_iam_*` resources (policies, attachments), and policies it cannot read.

use ::hcl::Body;

use super::module::{Module, Scope, attr, labels};
use super::value::{Seg, Value, instance, render_ref};

/// One IAM statement, with where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Where it is defined, for messages: `data.aws_iam_policy_document.backup.json
    /// statement "Sid"`.
    pub origin: String,
    /// `Allow` (the default) or `Deny`, or what else it says.
    pub effect: String,
    /// Its actions ([`Value::strings`]: a local is expanded).
    pub actions: Vec<String>,
    /// Its resources ([`Value::resources`]: a local or a variable stays one name).
    pub resources: Vec<String>,
}

/// The statements of the policy document `segs` refers to
/// (`data.aws_iam_policy_document.<name>.json` or `….<name>["key"].json`), those of the
/// documents its `source_policy_documents` and `override_policy_documents` name included
/// (all of them: an override is counted as an addition). Conditional statements
/// (`dynamic`, `cond ? a : b`) count as present.
pub fn document(module: &Module, segs: &[Seg], problems: &mut Vec<String>) -> Vec<Statement> {
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
    let Some(block) = module.block("data", "aws_iam_policy_document", name) else {
        problems.push(format!("{origin}: no such policy document"));
        return Vec::new();
    };
    let Some(scope) = module.instance_scope(block, key) else {
        problems.push(format!("{origin}: no such instance"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for list in ["source_policy_documents", "override_policy_documents"] {
        let Some(e) = attr(&block.body, list) else {
            continue;
        };
        match module.eval(e, &scope).resolved() {
            Value::List(items) => {
                for item in items {
                    match item.reference() {
                        Some(segs) => out.extend(document(module, segs, problems)),
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
                out.push(statement(module, &inner.body, &scope, &origin, problems));
            }
            ("dynamic", ["statement"]) => {
                let iterator = attr(&inner.body, "iterator")
                    .map(|e| module.eval(e, &scope).render())
                    .unwrap_or_else(|| "statement".into());
                let items: Vec<(Value, Value)> = match attr(&inner.body, "for_each")
                    .map(|e| module.eval(e, &scope))
                    .as_ref()
                    .map(Value::resolved)
                {
                    Some(Value::List(items)) => items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (Value::Num(i.to_string()), v.clone()))
                        .collect(),
                    Some(Value::Map(m)) => m
                        .iter()
                        .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
                        .collect(),
                    // Unknown entries: one statement whose iterator is unknown.
                    other => {
                        let what = other.map_or("nothing".into(), Value::render);
                        vec![(Value::Opaque(what.clone()), Value::Opaque(what))]
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
                    out.push(statement(module, &content.body, &scope, &origin, problems));
                }
            }
            _ => {}
        }
    }
    out
}

/// The `statement` block `body` of document `doc`.
fn statement(
    module: &Module,
    body: &Body,
    scope: &Scope,
    doc: &str,
    problems: &mut Vec<String>,
) -> Statement {
    let get = |k: &str| attr(body, k).map(|e| module.eval(e, scope));
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

/// The statements of a policy given as a structure (the value of
/// `jsonencode({ Statement = [...] })`; one statement object is read as a list of one).
/// `origin` names it in the statements and the problems.
pub fn json_policy(policy: &Value, origin: &str, problems: &mut Vec<String>) -> Vec<Statement> {
    let statements = match policy.resolved() {
        Value::Map(m) => match m.get("Statement").map(Value::resolved) {
            Some(Value::List(items)) => items.clone(),
            Some(one @ Value::Map(_)) => vec![one.clone()],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    statements
        .iter()
        .map(|s| {
            let get = |k: &str| match s.resolved() {
                Value::Map(m) => m.get(k).cloned(),
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

/// Every statement of every `aws_iam_role_policy` (instance) whose `role` is the role
/// instance `role` (`aws_iam_role.fn["backup"]`, as [`instance`] renders it), its policy a
/// policy document ([`document`]) or a `jsonencode()` structure ([`json_policy`]).
///
/// Any `aws_iam_role` with `managed_policy_arns` or `inline_policy`, and any other
/// `aws_iam_*` resource, is a problem whichever role it concerns: it could grant what is
/// not read here.
pub fn role_statements(module: &Module, role: &str, problems: &mut Vec<String>) -> Vec<Statement> {
    let mut out = Vec::new();
    for block in module
        .blocks()
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
                for (key, scope) in module.instances(block) {
                    let origin = match &key {
                        Some(k) => format!("{ty}.{name}[\"{k}\"]"),
                        None => format!("{ty}.{name}"),
                    };
                    let target = attr(&block.body, "role").map(|e| module.eval(e, &scope));
                    let target = target.as_ref().and_then(Value::reference).map(instance);
                    if target.as_deref() != Some(role) {
                        continue;
                    }
                    let Some(policy) = attr(&block.body, "policy").map(|e| module.eval(e, &scope))
                    else {
                        problems.push(format!("{origin}: no policy"));
                        continue;
                    };
                    match (policy.reference(), policy.resolved()) {
                        (Some(segs), _) => out.extend(document(module, segs, problems)),
                        (None, Value::Map(_)) => {
                            out.extend(json_policy(&policy, &origin, problems));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hcl::Seg;

    fn module(text: &str) -> Module {
        Module::parse(text).unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn doc_ref(name: &str, key: Option<&str>) -> Vec<Seg> {
        let mut segs = vec![
            Seg::Attr("data".into()),
            Seg::Attr("aws_iam_policy_document".into()),
            Seg::Attr(name.into()),
        ];
        segs.extend(key.map(|k| Seg::Key(k.into())));
        segs.push(Seg::Attr("json".into()));
        segs
    }

    /// (effect, actions, resources) of each statement.
    fn summary(statements: &[Statement]) -> Vec<(String, Vec<String>, Vec<String>)> {
        statements
            .iter()
            .map(|s| (s.effect.clone(), s.actions.clone(), s.resources.clone()))
            .collect()
    }

    fn owned(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    const DOCUMENTS: &str = r#"
locals {
  reads = ["s3:GetObject", "s3:ListBucket"]
  arns  = ["arn:aws:s3:::a", "arn:aws:s3:::a/*"]
  queues = { backup = "q-backup", restore = "q-restore" }
}

data "aws_iam_policy_document" "base" {
  statement {
    sid       = "Logs"
    actions   = ["logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.fn.arn}:*"]
  }
}

data "aws_iam_policy_document" "fn" {
  for_each                = local.queues
  source_policy_documents = [data.aws_iam_policy_document.base.json]

  statement {
    actions   = local.reads
    resources = local.arns
  }
  statement {
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.work[each.key].arn, var.extra_arn]
  }
  dynamic "statement" {
    for_each = var.encrypted ? ["kms:Decrypt", "kms:GenerateDataKey"] : []
    iterator = act
    content {
      sid       = "Kms${act.key}"
      actions   = [act.value]
      resources = [each.value]
    }
  }
}
"#;

    #[test]
    fn documents_with_sources_locals_each_and_dynamic_statements() {
        let m = module(DOCUMENTS);
        let mut problems = Vec::new();
        let statements = document(&m, &doc_ref("fn", Some("restore")), &mut problems);
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(
            summary(&statements),
            [
                (
                    "Allow".into(),
                    owned(&["logs:PutLogEvents"]),
                    owned(&["${aws_cloudwatch_log_group.fn.arn}:*"])
                ),
                (
                    "Allow".into(),
                    owned(&["s3:GetObject", "s3:ListBucket"]),
                    owned(&["local.arns"])
                ),
                (
                    "Deny".into(),
                    owned(&["sqs:SendMessage"]),
                    owned(&[r#"aws_sqs_queue.work["restore"].arn"#, "var.extra_arn"])
                ),
                (
                    "Allow".into(),
                    owned(&["kms:Decrypt"]),
                    owned(&["q-restore"])
                ),
                (
                    "Allow".into(),
                    owned(&["kms:GenerateDataKey"]),
                    owned(&["q-restore"])
                ),
            ]
        );
        let origins: Vec<_> = statements.iter().map(|s| s.origin.as_str()).collect();
        assert_eq!(
            origins,
            [
                r#"data.aws_iam_policy_document.base.json statement "Logs""#,
                r#"data.aws_iam_policy_document.fn["restore"].json statement """#,
                r#"data.aws_iam_policy_document.fn["restore"].json statement """#,
                r#"data.aws_iam_policy_document.fn["restore"].json statement "Kms${0}""#,
                r#"data.aws_iam_policy_document.fn["restore"].json statement "Kms${1}""#,
            ]
        );
    }

    #[test]
    fn a_dynamic_statement_over_unknown_entries_counts_once() {
        let m = module(
            r#"
data "aws_iam_policy_document" "d" {
  dynamic "statement" {
    for_each = var.grants
    content {
      actions   = statement.value.actions
      resources = ["*"]
    }
  }
  dynamic "statement" {
    for_each = { a = "sqs:SendMessage" }
    content {
      actions   = [statement.value]
      resources = [statement.key]
    }
  }
}
"#,
        );
        let mut problems = Vec::new();
        let statements = document(&m, &doc_ref("d", None), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            summary(&statements),
            [
                ("Allow".into(), owned(&["var.grants.?"]), owned(&["*"])),
                ("Allow".into(), owned(&["sqs:SendMessage"]), owned(&["a"])),
            ]
        );
    }

    #[test]
    fn what_a_document_cannot_account_for_is_a_problem() {
        let m = module(
            r#"
data "aws_iam_policy_document" "d" {
  source_policy_documents   = var.more
  override_policy_documents = ["{}"]
  statement {
    sid         = "Wide"
    not_actions = ["s3:DeleteObject"]
    resources   = ["*"]
  }
  dynamic "statement" {
    for_each = ["x"]
  }
}
"#,
        );
        let mut problems = Vec::new();
        let statements = document(&m, &doc_ref("d", None), &mut problems);
        let origin = "data.aws_iam_policy_document.d.json";
        assert_eq!(
            problems,
            [
                format!("{origin}: source_policy_documents = var.more is not a list"),
                format!("{origin}: override_policy_documents holds {{}}, not a document reference"),
                format!(r#"{origin} statement "Wide": not_actions allows what it does not name"#),
                format!("{origin}: dynamic statement without content"),
            ]
        );
        assert_eq!(statements.len(), 1);

        let mut problems = Vec::new();
        assert!(document(&m, &doc_ref("missing", None), &mut problems).is_empty());
        assert!(document(&m, &doc_ref("d", Some("k")), &mut problems).is_empty());
        let policy_arn = [Seg::Attr("aws_iam_policy".into()), Seg::Attr("p".into())];
        assert!(document(&m, &policy_arn, &mut problems).is_empty());
        assert_eq!(
            problems,
            [
                "data.aws_iam_policy_document.missing.json: no such policy document",
                r#"data.aws_iam_policy_document.d["k"].json: no such instance"#,
                "aws_iam_policy.p: not a policy document this test can read",
            ]
        );
    }

    #[test]
    fn jsonencode_policies_are_read_as_structures() {
        let m = module(r#"locals { objects = ["arn:aws:s3:::a/*"] }"#);
        let body = ::hcl::parse(
            r#"x = jsonencode({
  Version = "2012-10-17"
  Statement = [
    { Sid = "Read", Effect = "Allow", Action = ["s3:GetObject"], Resource = local.objects },
    { Effect = "Deny", Action = "s3:PutObject", NotResource = ["x"] },
  ]
})
one = jsonencode({ Statement = { Action = "sqs:SendMessage", Resource = "*" } })
"#,
        )
        .expect("policy");
        let eval = |k: &str| m.eval(attr(&body, k).expect("attribute"), &Scope::default());
        let mut problems = Vec::new();
        let statements = json_policy(&eval("x"), "p", &mut problems);
        assert_eq!(
            summary(&statements),
            [
                (
                    "Allow".into(),
                    owned(&["s3:GetObject"]),
                    owned(&["local.objects"])
                ),
                ("Deny".into(), owned(&["s3:PutObject"]), vec![]),
            ]
        );
        assert_eq!(statements[0].origin, r#"p statement "Read""#);
        assert_eq!(
            problems,
            [r#"p statement "": NotResource allows what it does not name"#]
        );
        let statements = json_policy(&eval("one"), "p", &mut problems);
        assert_eq!(
            summary(&statements),
            [("Allow".into(), owned(&["sqs:SendMessage"]), owned(&["*"]))]
        );
        assert!(json_policy(&Value::Str("{}".into()), "p", &mut problems).is_empty());
    }

    #[test]
    fn a_roles_statements_come_from_its_role_policies() {
        let text = format!(
            r#"{DOCUMENTS}
resource "aws_iam_role" "fn" {{
  for_each = local.queues
  name     = each.key
}}
resource "aws_iam_role_policy" "fn" {{
  for_each = local.queues
  role     = aws_iam_role.fn[each.key].id
  policy   = data.aws_iam_policy_document.fn[each.key].json
}}
resource "aws_iam_role_policy" "extra" {{
  role   = aws_iam_role.fn["backup"].name
  policy = jsonencode({{ Statement = [{{ Action = ["s3:PutObject"], Resource = ["*"] }}] }})
}}
"#
        );
        let m = module(&text);
        let mut problems = Vec::new();
        let backup = role_statements(&m, r#"aws_iam_role.fn["backup"]"#, &mut problems);
        let restore = role_statements(&m, r#"aws_iam_role.fn["restore"]"#, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(backup.len(), 6);
        assert_eq!(restore.len(), 5);
        let last = backup.last().expect("the jsonencode statement");
        assert_eq!(last.origin, r#"aws_iam_role_policy.extra statement """#);
        assert_eq!(last.actions, ["s3:PutObject"]);
        assert!(
            role_statements(&m, "aws_iam_role.other", &mut problems).is_empty()
                && problems.is_empty()
        );
    }

    #[test]
    fn permissions_outside_role_policies_are_problems() {
        let m = module(
            r#"
resource "aws_iam_role" "managed" {
  managed_policy_arns = ["arn:aws:iam::aws:policy/AdministratorAccess"]
}
resource "aws_iam_role" "inline" {
  inline_policy {
    name = "x"
  }
}
resource "aws_iam_role_policy_attachment" "a" {
  role = aws_iam_role.managed.name
}
resource "aws_iam_role_policy" "p" {
  role   = aws_iam_role.managed.name
  policy = var.policy_json
}
resource "aws_iam_role_policy" "none" {
  role = aws_iam_role.managed.name
}
"#,
        );
        let mut problems = Vec::new();
        assert!(role_statements(&m, "aws_iam_role.managed", &mut problems).is_empty());
        assert_eq!(
            problems,
            [
                "aws_iam_role.managed: managed_policy_arns or inline_policy (keep policies in \
                 aws_iam_role_policy)",
                "aws_iam_role.inline: managed_policy_arns or inline_policy (keep policies in \
                 aws_iam_role_policy)",
                "aws_iam_role_policy_attachment.a: permissions outside the roles' inline policies",
                "var.policy_json: not a policy document this test can read",
                "aws_iam_role_policy.none: no policy",
            ]
        );
    }
}
