//! The Terraform in `infra/` agrees with the code, read with `solace_testkit::hcl` (an HCL
//! parser and a structural evaluator of its expressions: locals, `each`, `dynamic` blocks,
//! `merge`, conditionals, templates, `jsonencode`), no provider and no AWS account:
//!
//! - each function's Lambda sets exactly the environment variables the function reads
//!   (`config::ENV_VARS`, which `config`'s own tests tie to the loader);
//! - the queue and table variables name queues and tables defined here, under the names the
//!   code uses locally, and each function's event sources are its trigger queues;
//! - each function's role allows exactly the IAM actions its code calls
//!   (`operations::CALLS`, which the SDK interceptor checks at run time) plus the event
//!   source, logging, key and tracing actions `docs/settings.md` lists, each on exactly the
//!   resources the function uses;
//! - `docs/settings.md`'s tables name the same variables and actions as the code.
//!
//! Conditional parts (`dynamic` blocks, `cond ? a : b`) count as present: the check holds
//! for every setting of the variables.

use std::collections::{BTreeMap, BTreeSet};

use solace_functions::config::{self, Config, names};
use solace_functions::{Function, operations};
use solace_testkit::hcl::syntax::{self, Block, Expression};
use solace_testkit::hcl::{
    Module, Scope, Seg, Value, address, attr, iam, instance, render_ref, with_attr,
};

const INFRA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra");
const CONTRACT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/settings.md");

/// What the SQS event source mapping needs on the trigger queue (docs/settings.md).
const EVENT_SOURCE_ACTIONS: &[&str] = &[
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
];
/// Writing logs to the function's own log group (docs/settings.md).
const LOG_ACTIONS: &[&str] = &["logs:CreateLogStream", "logs:PutLogEvents"];
/// X-Ray when tracing is Active (docs/settings.md); no resource-level permissions.
const XRAY_ACTIONS: &[&str] = &["xray:PutTelemetryRecords", "xray:PutTraceSegments"];
const KMS_DECRYPT: &str = "kms:Decrypt";
const KMS_GENERATE: &str = "kms:GenerateDataKey";

/// The queues that trigger each function, by their local names (docs/settings.md's trigger column;
/// `solace local` feeds the functions from the same queues).
fn triggers(function: Function) -> BTreeSet<&'static str> {
    match function {
        Function::Request => [names::REQUEST_QUEUE].into(),
        Function::Backup => [names::BACKUP_QUEUE].into(),
        Function::Restore => [names::RESTORE_QUEUE].into(),
        Function::Redrive => [names::BACKUP_DLQ, names::RESTORE_DLQ].into(),
    }
}

/// The variables that name a queue or table: the resource type, the attribute the variable
/// holds, and the name the code uses locally (the Terraform name is `<name_prefix>` + it).
fn resource_variable(name: &str) -> Option<(&'static str, &'static str, String)> {
    let defaults = Config::from_lookup(|_| None).expect("defaults");
    Some(match name {
        "SOLACE_REQUEST_QUEUE_URL" => ("aws_sqs_queue", "url", names::REQUEST_QUEUE.into()),
        "SOLACE_BACKUP_QUEUE_URL" => ("aws_sqs_queue", "url", names::BACKUP_QUEUE.into()),
        "SOLACE_RESTORE_QUEUE_URL" => ("aws_sqs_queue", "url", names::RESTORE_QUEUE.into()),
        "SOLACE_REJECTED_QUEUE_URL" => ("aws_sqs_queue", "url", names::REJECTED_QUEUE.into()),
        "SOLACE_BACKUP_STATUS_TABLE" => {
            ("aws_dynamodb_table", "name", defaults.backup_status_table)
        }
        "SOLACE_RESTORE_STATUS_TABLE" => {
            ("aws_dynamodb_table", "name", defaults.restore_status_table)
        }
        _ => return None,
    })
}

// --- infra/ and the functions' resources in it ---------------------------------------------

/// The module in `infra/`.
fn load() -> Module {
    let tf = Module::load(INFRA).unwrap_or_else(|e| panic!("infra/: {e:#}"));
    assert!(
        tf.files().len() >= 5,
        "too few .tf files in infra/: {:?}",
        tf.files()
    );
    tf
}

/// The Lambda resource instance of `function`: its block and scope.
fn lambda(tf: &Module, function: Function) -> (&Block, Scope) {
    let mut found = Vec::new();
    for block in tf.resources("aws_lambda_function") {
        for (key, scope) in tf.instances(block) {
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
fn environment(tf: &Module, function: Function) -> Result<BTreeMap<String, Value>, String> {
    let (block, scope) = lambda(tf, function);
    let env = block
        .body
        .blocks()
        .find(|b| b.identifier.as_str() == "environment")
        .and_then(|b| attr(&b.body, "variables"))
        .map(|e| tf.eval(e, &scope));
    match env.as_ref().map(Value::resolved) {
        Some(Value::Map(m)) => Ok(m.clone()),
        other => Err(format!(
            "{}: environment.variables is not a map this test can read: {}",
            function.name(),
            other.map_or("none".into(), Value::render)
        )),
    }
}

/// The role instance of `function`'s Lambda (`aws_iam_role.fn["backup"]`).
fn role(tf: &Module, function: Function) -> Option<String> {
    let (block, scope) = lambda(tf, function);
    let role = attr(&block.body, "role").map(|e| tf.eval(e, &scope))?;
    role.reference().map(instance)
}

/// The queues (references to them) of `function`'s SQS event sources.
fn event_sources(tf: &Module, function: Function) -> Vec<Vec<Seg>> {
    let mut out = Vec::new();
    for block in tf.resources("aws_lambda_event_source_mapping") {
        for (_, scope) in tf.instances(block) {
            let get = |k| attr(&block.body, k).map(|e| tf.eval(e, &scope));
            let target = get("function_name");
            let target = target.as_ref().and_then(Value::reference).and_then(address);
            if target
                .is_some_and(|a| a.ty == "aws_lambda_function" && a.key == Some(function.name()))
            {
                if let Some(queue) = get("event_source_arn").as_ref().and_then(Value::reference) {
                    out.push(queue.to_vec());
                }
            }
        }
    }
    out
}

/// The `name` of the resource instance `segs` refers to, without `${var.name_prefix}`.
fn resource_name(tf: &Module, segs: &[Seg]) -> Result<String, String> {
    let name = tf.resource_attr(segs, "name")?.render();
    Ok(name
        .strip_prefix("${var.name_prefix}")
        .unwrap_or(&name)
        .to_owned())
}

// --- the checks ------------------------------------------------------------------------

fn assert_none(problems: Vec<String>) {
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// The resources each action of `function` must be allowed on, and only there.
fn expected_permissions(
    tf: &Module,
    function: Function,
    calls: &[&str],
    problems: &mut Vec<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let f = function.name();
    let env = environment(tf, function).unwrap_or_else(|e| {
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
    let triggers: BTreeSet<String> = event_sources(tf, function)
        .iter()
        .map(|segs| render_ref(segs))
        .collect();
    let (lambda, scope) = lambda(tf, function);
    let log_group = lambda
        .body
        .blocks()
        .find(|b| b.identifier.as_str() == "logging_config")
        .and_then(|b| attr(&b.body, "log_group"))
        .map(|e| tf.eval(e, &scope));
    let log_group = match log_group.as_ref().and_then(Value::reference) {
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
            "dynamodb:Scan"
            | "dynamodb:BatchWriteItem"
            | "dynamodb:DescribeTable"
            | "dynamodb:DescribeTimeToLive"
            | "dynamodb:DescribeContinuousBackups"
            | "dynamodb:ListTagsOfResource"
            | "dynamodb:CreateTable"
            | "dynamodb:TagResource"
            | "dynamodb:UpdateTimeToLive"
            | "dynamodb:UpdateContinuousBackups"
            | "dynamodb:ExportTableToPointInTime" => one("local.data_table_arns"),
            "dynamodb:DescribeExport" => one("local.data_table_export_arns"),
            a if a.starts_with("dynamodb:") => tables.clone(),
            "s3:ListBucket" | "s3:GetBucketObjectLockConfiguration" => {
                one("local.data_bucket_arns")
            }
            "s3:GetObject"
            | "s3:PutObject"
            | "s3:PutObjectRetention"
            | "s3:PutObjectAcl"
            | "s3:AbortMultipartUpload" => one("local.data_object_arns"),
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
        allow(KMS_DECRYPT, one("local.data_kms_keys"));
    }
    if calls.contains(&"s3:PutObject") {
        allow(KMS_GENERATE, one("local.data_kms_keys"));
    }
    for action in XRAY_ACTIONS {
        allow(action, one("*"));
    }
    expected
}

/// Each role allows exactly what its function needs, on exactly its resources.
fn check_iam(tf: &Module, calls: impl Fn(Function) -> Vec<&'static str>) -> Vec<String> {
    let mut problems = Vec::new();
    for function in Function::ALL {
        let f = function.name();
        let Some(role) = role(tf, function) else {
            problems.push(format!("{f}: the Lambda's role is not a role resource"));
            continue;
        };
        let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut origins: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for s in iam::role_statements(tf, &role, &mut problems) {
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
                     (operations::CALLS) and docs/settings.md does not list",
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
    assert_none(check_iam(&load(), calls));
}

#[test]
fn each_lambda_sets_exactly_the_variables_its_function_reads() {
    let tf = load();
    let mut problems = Vec::new();
    for function in Function::ALL {
        let f = function.name();
        let env = match environment(&tf, function) {
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
    let tf = load();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for function in Function::ALL {
        let f = function.name();
        for (name, value) in environment(&tf, function).unwrap_or_default() {
            let is_resource = name.ends_with("_QUEUE_URL") || name.ends_with("_STATUS_TABLE");
            let Some((ty, attribute, local_name)) = resource_variable(&name) else {
                if is_resource {
                    problems.push(format!("{f}: {name}: unknown queue or table variable"));
                }
                continue;
            };
            seen.insert(name.clone());
            let Some(a) = value.reference().and_then(address) else {
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
            match resource_name(&tf, value.reference().unwrap_or_default()) {
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
    let tf = load();
    let mut problems = Vec::new();
    for function in Function::ALL {
        let queues: Result<BTreeSet<String>, String> = event_sources(&tf, function)
            .iter()
            .map(|segs| {
                if address(segs).is_some_and(|a| a.ty == "aws_sqs_queue" && a.attr == Some("arn")) {
                    resource_name(&tf, segs)
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
    let contract = std::fs::read_to_string(CONTRACT).expect("docs/settings.md");
    let mut problems = Vec::new();
    for function in Function::ALL {
        let f = function.name();
        let Some(row) = contract
            .lines()
            .find(|l| l.starts_with(&format!("| {f} |")))
        else {
            problems.push(format!("docs/settings.md: no row for {f}"));
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // ["", function, trigger, variables, operations, ""]
        let (Some(vars), Some(ops)) = (cells.get(3), cells.get(4)) else {
            problems.push(format!("docs/settings.md: {f}'s row has too few columns"));
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
                "docs/settings.md: {f} reads {read:?}, the table lists {listed:?}"
            ));
        }
        let listed = actions_in(ops, &["dynamodb", "s3", "sqs"]);
        let called: BTreeSet<String> = calls(function).iter().map(|a| (*a).to_owned()).collect();
        if listed != called {
            problems.push(format!(
                "docs/settings.md: {f} calls {called:?} (operations::CALLS), the table lists {listed:?}"
            ));
        }
    }
    assert!(
        contract.contains(config::LOG_LEVEL_VAR),
        "docs/settings.md names the log level variable"
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
            "docs/settings.md: the permissions table lists {listed:?}, infra.rs checks {needed:?}"
        ));
    }
    assert_none(problems);
}

// --- the checks catch what they should ----------------------------------------------

/// `data "aws_iam_policy_document" "<name>"`, to edit.
fn document_block<'a>(tf: &'a mut Module, name: &str) -> &'a mut Block {
    tf.block_mut("data", "aws_iam_policy_document", name)
        .unwrap_or_else(|| panic!("no data aws_iam_policy_document.{name}"))
}

/// The `actions` lists of the statements of `doc`, to edit.
fn edit_actions(tf: &mut Module, doc: &str, edit: impl Fn(&mut Vec<Expression>)) {
    let block = document_block(tf, doc);
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
fn problems_of(tf: &Module, calls: impl Fn(Function) -> Vec<&'static str>) -> String {
    let before = check_iam(&load(), self::calls);
    check_iam(tf, calls)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_missing_action_is_caught() {
    let mut tf = load();
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
    let mut tf = load();
    edit_actions(&mut tf, "redrive", |items| {
        if items.contains(&Expression::String("sqs:SendMessage".into())) {
            items.push(Expression::String("sqs:PurgeQueue".into()));
        }
    });
    let extra = syntax::parse(
        r#"statement {
  actions   = ["dynamodb:*"]
  resources = ["*"]
}"#,
    )
    .expect("statement");
    document_block(&mut tf, "restore")
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
    let tf = load();
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
    let mut tf = load();
    // The backup role may send to the backup queue only.
    let block = document_block(&mut tf, "backup");
    let extra = syntax::parse(
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

/// The collection a `for` expression (perhaps inside one function call, `distinct(…)`)
/// iterates, and the text of what it yields.
fn for_over(expr: &Expression) -> Option<(String, String)> {
    match expr {
        Expression::ForExpr(f) => Some((
            syntax::format::to_string(&f.collection_expr).ok()?,
            syntax::format::to_string(&f.value_expr).ok()?,
        )),
        Expression::FuncCall(call) if call.args.len() == 1 => for_over(&call.args[0]),
        _ => None,
    }
}

/// The expression of local `name`.
fn local_expr<'a>(tf: &'a Module, name: &str) -> &'a Expression {
    tf.blocks()
        .iter()
        .filter(|b| b.identifier.as_str() == "locals")
        .find_map(|b| attr(&b.body, name))
        .unwrap_or_else(|| panic!("local.{name} is not defined"))
}

#[test]
fn the_request_function_and_the_roles_enforce_the_same_allow_lists() {
    let tf = load();
    // The request function gets the variables themselves…
    let env = environment(&tf, Function::Request).expect("request environment");
    for (var, variable) in [
        ("SOLACE_ALLOWED_TABLES", "allowed_tables"),
        ("SOLACE_ALLOWED_BUCKETS", "allowed_buckets"),
    ] {
        let value = env.get(var).unwrap_or_else(|| panic!("{var} is not set"));
        assert_eq!(
            value.reference().map(render_ref).as_deref(),
            Some(format!("var.{variable}").as_str()),
            "{var} is jsonencode(var.{variable})"
        );
    }
    // …and the roles' data resources are made from the same variables, nothing else.
    for (local, variable, parts) in [
        (
            "data_table_arns",
            "var.allowed_tables",
            &["region", "name"][..],
        ),
        ("data_bucket_arns", "var.allowed_buckets", &["name"][..]),
        (
            "data_object_arns",
            "var.allowed_buckets",
            &["name", "prefix"][..],
        ),
    ] {
        let (collection, value) = for_over(local_expr(&tf, local))
            .unwrap_or_else(|| panic!("local.{local} is not a for expression"));
        assert_eq!(
            collection.trim(),
            variable,
            "local.{local} iterates {variable}"
        );
        for part in parts {
            assert!(
                value.contains(&format!(".{part}}}")),
                "local.{local} uses each entry's {part}: {value}"
            );
        }
    }
    // Neither list has a default, and an empty one is refused with what to set.
    for variable in ["allowed_tables", "allowed_buckets"] {
        let block = tf
            .block("variable", variable, "")
            .or_else(|| {
                tf.blocks().iter().find(|b| {
                    b.identifier.as_str() == "variable"
                        && b.labels.first().map(|l| l.as_str()) == Some(variable)
                })
            })
            .unwrap_or_else(|| panic!("variable {variable}"));
        assert!(
            attr(&block.body, "default").is_none(),
            "{variable} has no default"
        );
        let refuses_empty = block
            .body
            .blocks()
            .filter(|b| b.identifier.as_str() == "validation")
            .any(|v| {
                let condition = attr(&v.body, "condition")
                    .and_then(|c| syntax::format::to_string(c).ok())
                    .unwrap_or_default();
                let message = attr(&v.body, "error_message")
                    .and_then(|c| syntax::format::to_string(c).ok())
                    .unwrap_or_default();
                condition.replace(' ', "") == format!("length(var.{variable})>0")
                    && message.contains(&format!("{variable} is empty"))
                    && message.contains("e.g.")
            });
        assert!(
            refuses_empty,
            "{variable}: a validation refuses an empty list and says what to set"
        );
    }
}

/// The `validation` blocks of `variable`: each condition and error message as written, with
/// no white space in the condition.
fn validations(tf: &Module, variable: &str) -> Vec<(String, String)> {
    let block = tf
        .blocks()
        .iter()
        .find(|b| {
            b.identifier.as_str() == "variable"
                && b.labels.first().map(|l| l.as_str()) == Some(variable)
        })
        .unwrap_or_else(|| panic!("variable {variable}"));
    let text = |body: &syntax::Body, key: &str| {
        attr(body, key)
            .and_then(|e| syntax::format::to_string(e).ok())
            .unwrap_or_default()
    };
    block
        .body
        .blocks()
        .filter(|b| b.identifier.as_str() == "validation")
        .map(|v| {
            let condition: String = text(&v.body, "condition")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            (condition, text(&v.body, "error_message"))
        })
        .collect()
}

/// Settings the functions cannot work with are refused at plan time by a validation, not
/// merely warned about by a `check` block: a deadline margin that leaves no time in the
/// backup or restore timeout, and a batch size past the decoder's cap.
#[test]
fn settings_that_cannot_work_are_refused_by_validations() {
    let tf = load();
    // The rule `solace local` applies to its timeout (cli's check_lambda_timeout): the margin
    // plus 5 s of work fits in the invocation, for both functions that keep the margin.
    let margin = validations(&tf, "deadline_margin_ms");
    for timeout in ["backup_timeout_seconds", "restore_timeout_seconds"] {
        let rule = format!("var.deadline_margin_ms+5000<=1000*var.{timeout}");
        assert!(
            margin
                .iter()
                .any(|(condition, message)| condition.contains(&rule)
                    && message.contains(timeout)
                    && message.contains("deadline_margin_ms + 5000 <= 1000 * timeout")),
            "deadline_margin_ms: a validation requires {rule} and names {timeout}: {margin:#?}"
        );
    }
    let warned = tf
        .blocks()
        .iter()
        .filter(|b| b.identifier.as_str() == "check");
    for check in warned {
        let text = syntax::to_string(&check.body).expect("a check block as text");
        assert!(
            !text.contains("var.deadline_margin_ms"),
            "check {:?} only warns about deadline_margin_ms: its validation refuses it",
            check.labels
        );
    }
    let cap = format!("var.batch_bytes<={}", config::MAX_BATCH_BYTES);
    assert!(
        validations(&tf, "batch_bytes")
            .iter()
            .any(|(condition, message)| condition.contains(&cap)
                && message.contains(&config::MAX_BATCH_BYTES.to_string())),
        "batch_bytes: a validation requires {cap} (config::MAX_BATCH_BYTES)"
    );
}

#[test]
fn no_role_may_scan_or_write_a_status_table_as_data() {
    let tf = load();
    for function in Function::ALL {
        let mut problems = Vec::new();
        let role = format!("aws_iam_role.fn[\"{}\"]", function.name());
        let statements = iam::role_statements(&tf, &role, &mut problems);
        let denied = |action: &str, table: &str| {
            statements.iter().any(|s| {
                s.effect == "Deny"
                    && s.actions.iter().any(|a| a == action)
                    && s.resources
                        .iter()
                        .any(|r| r.contains(&format!("aws_dynamodb_table.status[\"{table}\"]")))
            })
        };
        for action in ["dynamodb:Scan", "dynamodb:BatchWriteItem"] {
            for table in ["backup", "restore"] {
                assert!(
                    denied(action, table),
                    "{function:?}: {action} on the {table} status table is denied: {statements:#?}"
                );
            }
        }
    }
}

/// `map[key]` of an evaluated JSON-like structure.
fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v.resolved() {
        Value::Map(m) => m.get(key),
        _ => None,
    }
}

#[test]
fn every_queue_refuses_plain_http_and_any_sender_but_its_own() {
    let tf = load();
    let block = tf
        .block("resource", "aws_sqs_queue_policy", "queue")
        .expect("the queue policies");
    let role = |f: &str| format!("aws_iam_role.fn[\"{f}\"].arn");
    let want: BTreeMap<String, BTreeSet<String>> = [
        (
            "work-request",
            vec!["var.request_senders".to_owned(), role("request")],
        ),
        (
            "work-backup",
            vec![role("request"), role("backup"), role("redrive")],
        ),
        (
            "work-restore",
            vec![role("request"), role("restore"), role("redrive")],
        ),
        ("dlq-request", vec![]),
        ("dlq-backup", vec![]),
        ("dlq-restore", vec![]),
        ("rejected", vec![role("request")]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().collect()))
    .collect();
    let instances = tf.instances(block);
    let keys: BTreeSet<String> = instances.iter().filter_map(|(k, _)| k.clone()).collect();
    assert_eq!(
        keys,
        want.keys().cloned().collect(),
        "a policy for every queue"
    );
    let policy = attr(&block.body, "policy").expect("policy");
    for (key, scope) in &instances {
        let key = key.clone().unwrap_or_default();
        let doc = tf.eval(policy, scope);
        let Some(Value::List(statements)) = field(&doc, "Statement").map(Value::resolved) else {
            panic!("{key}: no Statement list");
        };
        let text = |v: Option<&Value>| v.map(|v| v.resolved().render()).unwrap_or_default();
        let deny_all =
            |s: &Value| text(field(s, "Effect")) == "Deny" && text(field(s, "Principal")) == "*";
        let tls = statements.iter().any(|s| {
            deny_all(s)
                && text(field(s, "Action")) == "sqs:*"
                && text(
                    field(s, "Condition")
                        .and_then(|c| field(c, "Bool"))
                        .and_then(|b| field(b, "aws:SecureTransport")),
                ) == "false"
        });
        assert!(tls, "{key}: denies every call without TLS");
        let senders: Vec<BTreeSet<String>> = statements
            .iter()
            .filter(|s| deny_all(s) && text(field(s, "Action")) == "sqs:SendMessage")
            .filter_map(|s| {
                let arns = field(s, "Condition")
                    .and_then(|c| field(c, "ArnNotEquals"))
                    .and_then(|c| field(c, "aws:PrincipalArn"))?;
                match arns.resolved() {
                    Value::List(items) => Some(
                        items
                            .iter()
                            .map(|i| i.reference().map(render_ref).unwrap_or_else(|| i.render()))
                            .collect(),
                    ),
                    _ => None,
                }
            })
            .collect();
        assert_eq!(
            senders,
            [want[&key].clone()],
            "{key}: SendMessage denied to all but its senders"
        );
    }
}
