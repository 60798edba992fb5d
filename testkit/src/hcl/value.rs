//! What an expression evaluates to ([`Value`]), references ([`Seg`]) and resource addresses
//! ([`Address`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One step of a reference: `.name` or `["key"]` (a number index is a key too: `[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// `.name`, and the root of a reference (`var`, `aws_sqs_queue`).
    Attr(String),
    /// `["key"]`, `[0]` or the legacy `.0`.
    Key(String),
}

/// What an expression evaluates to, as far as it can be known without a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written (`3`, `1.5`).
    Num(String),
    /// A string, or a template whose parts are all known.
    Str(String),
    /// A list or tuple (also a set: `toset` keeps the elements as they are).
    List(Vec<Value>),
    /// An object or map.
    Map(BTreeMap<String, Value>),
    /// Known at plan or apply only: `var.x`, `aws_sqs_queue.work["backup"].arn`, and any
    /// reference this evaluator does not resolve.
    Ref(Vec<Seg>),
    /// A local's value, with its name: a resource list such as `local.data_table_arns` can
    /// be compared by name ([`Value::resources`]) or by what it holds ([`Value::resolved`]).
    Local(String, Box<Value>),
    /// Not evaluated (operators, `for` expressions, splats, unsupported functions), with a
    /// description of what it was.
    Opaque(String),
}

impl Value {
    /// The value under any [`Value::Local`] wrappers.
    pub fn resolved(&self) -> &Value {
        match self {
            Value::Local(_, v) => v.resolved(),
            v => v,
        }
    }

    /// HCL-like text for messages: strings unquoted, references as written, locals by name
    /// (`local.x`), maps as `{k = v}`.
    pub fn render(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Num(n) | Value::Str(n) | Value::Opaque(n) => n.clone(),
            Value::List(items) => {
                let items: Vec<_> = items.iter().map(Value::render).collect();
                format!("[{}]", items.join(", "))
            }
            Value::Map(m) => {
                let items: Vec<_> = m
                    .iter()
                    .map(|(k, v)| format!("{k} = {}", v.render()))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
            Value::Ref(segs) => render_ref(segs),
            Value::Local(name, _) => format!("local.{name}"),
        }
    }

    /// The strings of a value, flattening lists and locals (an IAM `actions` list); any other
    /// element is rendered.
    pub fn strings(&self) -> Vec<String> {
        match self.resolved() {
            Value::List(items) => items.iter().flat_map(Value::strings).collect(),
            Value::Str(s) => vec![s.clone()],
            v => vec![v.render()],
        }
    }

    /// Resource names: the elements of a list literal, each rendered; a local or a reference
    /// stays one name (`local.data_table_arns`, `var.data_kms_key_arns`).
    pub fn resources(&self) -> Vec<String> {
        match self {
            Value::List(items) => items.iter().flat_map(Value::resources).collect(),
            v => vec![v.render()],
        }
    }

    /// The reference this value is (under any locals), if it is one.
    pub fn reference(&self) -> Option<&[Seg]> {
        match self.resolved() {
            Value::Ref(segs) => Some(segs),
            _ => None,
        }
    }
}

/// A reference as written: `aws_iam_role.fn["backup"].arn`.
pub fn render_ref(segs: &[Seg]) -> String {
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

/// Both branches of a conditional as one value, so that whatever either branch may hold is
/// checked: maps merged (the second wins on a shared key), lists concatenated, `null`
/// giving way to the other branch, equal values kept; anything else is
/// [`Value::Opaque`] `"a | b"`.
pub fn union(a: Value, b: Value) -> Value {
    match (a.resolved(), b.resolved()) {
        (Value::Map(x), Value::Map(y)) => {
            let mut m = x.clone();
            m.extend(y.clone());
            Value::Map(m)
        }
        (Value::List(x), Value::List(y)) => Value::List(x.iter().chain(y).cloned().collect()),
        (Value::Null, _) => b,
        (_, Value::Null) => a,
        _ if a == b => a,
        _ => Value::Opaque(format!("{} | {}", a.render(), b.render())),
    }
}

/// A reference to a resource (`type.name`, then an optional instance key and attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address<'a> {
    /// The resource type: `aws_sqs_queue`.
    pub ty: &'a str,
    /// The resource name: `work`.
    pub name: &'a str,
    /// The `for_each` key: `backup` in `aws_sqs_queue.work["backup"]`.
    pub key: Option<&'a str>,
    /// The attribute after the instance: `arn`.
    pub attr: Option<&'a str>,
}

/// The resource `segs` refers to, if it refers to a managed resource (not `data`, `var`,
/// `local`, `each`, `path` or `module`).
pub fn address(segs: &[Seg]) -> Option<Address<'_>> {
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
    Some(Address {
        ty,
        name,
        key,
        attr: attr(segs.get(rest)),
    })
}

/// `segs` with its last step replaced by attribute `attr`, rendered
/// (`aws_sqs_queue.work["backup"].url` → `aws_sqs_queue.work["backup"].arn`).
pub fn with_attr(segs: &[Seg], attr: &str) -> String {
    let mut segs = segs.to_vec();
    segs.pop();
    segs.push(Seg::Attr(attr.into()));
    render_ref(&segs)
}

/// `segs` without its last step, rendered (`aws_iam_role.fn["x"].arn` →
/// `aws_iam_role.fn["x"]`).
pub fn instance(segs: &[Seg]) -> String {
    render_ref(&segs[..segs.len().saturating_sub(1)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(s: &str) -> Seg {
        Seg::Attr(s.into())
    }

    fn key(s: &str) -> Seg {
        Seg::Key(s.into())
    }

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    #[test]
    fn references_render_as_written() {
        let segs = [attr("aws_iam_role"), attr("fn"), key("backup"), attr("arn")];
        assert_eq!(render_ref(&segs), r#"aws_iam_role.fn["backup"].arn"#);
        assert_eq!(instance(&segs), r#"aws_iam_role.fn["backup"]"#);
        assert_eq!(
            with_attr(&segs, "name"),
            r#"aws_iam_role.fn["backup"].name"#
        );
        assert_eq!(instance(&[]), "");
    }

    #[test]
    fn values_render_hcl_like() {
        let map = Value::Map(BTreeMap::from([
            ("a".to_owned(), Value::Num("1".into())),
            (
                "b".to_owned(),
                Value::List(vec![s("x"), Value::Bool(true), Value::Null]),
            ),
        ]));
        assert_eq!(map.render(), "{a = 1, b = [x, true, null]}");
        let local = Value::Local("names".into(), Box::new(s("x")));
        assert_eq!(local.render(), "local.names");
        assert_eq!(local.resolved(), &s("x"));
    }

    #[test]
    fn strings_flatten_lists_and_locals() {
        let v = Value::List(vec![
            s("a"),
            Value::Local("more".into(), Box::new(Value::List(vec![s("b"), s("c")]))),
            Value::Ref(vec![attr("var"), attr("x")]),
        ]);
        assert_eq!(v.strings(), ["a", "b", "c", "var.x"]);
    }

    #[test]
    fn resources_keep_locals_and_references_whole() {
        let v = Value::List(vec![
            s("arn:aws:s3:::b"),
            Value::Local("arns".into(), Box::new(Value::List(vec![s("x"), s("y")]))),
            Value::Ref(vec![attr("var"), attr("keys")]),
        ]);
        assert_eq!(v.resources(), ["arn:aws:s3:::b", "local.arns", "var.keys"]);
    }

    #[test]
    fn reference_sees_through_locals() {
        let r = Value::Ref(vec![attr("var"), attr("x")]);
        let local = Value::Local("l".into(), Box::new(r.clone()));
        assert_eq!(local.reference(), r.reference());
        assert_eq!(s("x").reference(), None);
    }

    #[test]
    fn union_merges_what_either_branch_may_hold() {
        let m = |k: &str, v: &str| Value::Map(BTreeMap::from([(k.to_owned(), s(v))]));
        assert_eq!(union(m("a", "1"), m("b", "2")).render(), "{a = 1, b = 2}");
        assert_eq!(
            union(Value::List(vec![s("a")]), Value::List(vec![s("b")])),
            Value::List(vec![s("a"), s("b")])
        );
        assert_eq!(union(Value::Null, s("a")), s("a"));
        assert_eq!(union(s("a"), Value::Null), s("a"));
        assert_eq!(union(s("a"), s("a")), s("a"));
        assert_eq!(union(s("a"), s("b")), Value::Opaque("a | b".into()));
    }

    #[test]
    fn addresses_of_resources_only() {
        let segs = [
            attr("aws_sqs_queue"),
            attr("work"),
            key("backup"),
            attr("url"),
        ];
        assert_eq!(
            address(&segs),
            Some(Address {
                ty: "aws_sqs_queue",
                name: "work",
                key: Some("backup"),
                attr: Some("url"),
            })
        );
        let plain = [attr("aws_sqs_queue"), attr("rejected"), attr("arn")];
        let a = address(&plain).expect("a resource");
        assert_eq!((a.key, a.attr), (None, Some("arn")));
        for root in ["data", "var", "local", "each", "path", "module"] {
            assert_eq!(address(&[attr(root), attr("x"), attr("y")]), None, "{root}");
        }
        assert_eq!(address(&[attr("aws_sqs_queue")]), None);
    }
}
