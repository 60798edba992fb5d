//! The messages: the operator's request (docs/request.md#fields) and the per-segment work
//! messages (docs/messages.md#segment-message).

use serde::{Deserialize, Serialize};
use solace_pipeline::export_backup::ExportCheckpoint;
use solace_pipeline::{BackupCheckpoint, RestoreCheckpoint, Retention, RetentionMode};

/// What a task does: `backup`, `restore`, or `verify` (re-read and check every batch of a
/// backup, writing no table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Backup,
    Restore,
    Verify,
    /// Write a copy of a Solace backup in the DynamoDB Export layout (docs/export.md#convert).
    Convert,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Backup => "backup",
            Action::Restore => "restore",
            Action::Verify => "verify",
            Action::Convert => "convert",
        }
    }
}

/// The fields of a convert request: a backup's place and where its export copy goes (the
/// same bucket region), no table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConvertFields {
    pub action: Action,
    pub total_segments: u32,
    pub bucket_region: String,
    pub bucket_name: String,
    pub bucket_prefix: String,
    pub to_bucket_name: String,
    pub to_bucket_prefix: String,
}

impl From<ConvertFields> for Request {
    fn from(c: ConvertFields) -> Self {
        Request {
            to_bucket_name: Some(c.to_bucket_name),
            to_bucket_prefix: Some(c.to_bucket_prefix),
            ..Request::from(VerifyFields {
                action: c.action,
                total_segments: c.total_segments,
                bucket_region: c.bucket_region,
                bucket_name: c.bucket_name,
                bucket_prefix: c.bucket_prefix,
            })
        }
    }
}

/// The fields of a verify request: a backup's place, no table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VerifyFields {
    pub action: Action,
    pub total_segments: u32,
    pub bucket_region: String,
    pub bucket_name: String,
    pub bucket_prefix: String,
}

impl From<VerifyFields> for Request {
    fn from(v: VerifyFields) -> Self {
        Request {
            action: v.action,
            total_segments: v.total_segments,
            table_region: String::new(),
            table_name: String::new(),
            bucket_region: v.bucket_region,
            bucket_name: v.bucket_name,
            bucket_prefix: v.bucket_prefix,
            allow_non_empty_table: false,
            allow_incomplete_backup: false,
            retention_mode: None,
            retention_days: None,
            create_table: false,
            create_table_billing_mode: None,
            create_table_read_capacity: None,
            create_table_write_capacity: None,
            create_table_skip_indexes: false,
            method: None,
            to_bucket_name: None,
            to_bucket_prefix: None,
        }
    }
}

/// A validated request, with its fields under their request names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Request {
    pub action: Action,
    pub total_segments: u32,
    /// Empty for a verify.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table_region: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table_name: String,
    pub bucket_region: String,
    pub bucket_name: String,
    pub bucket_prefix: String,
    /// Restore only: restore into a table that already holds items (refused otherwise).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_non_empty_table: bool,
    /// Restore only: restore what a backup committed although it never completed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_incomplete_backup: bool,
    /// Backup only: the Object Lock mode of every object it writes (with `retention-days`).
    /// The request function fills in the deployment's default when the request names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_mode: Option<RetentionMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Restore only: create the destination from the backup's schema when it does not exist
    /// (docs/schema.md#table-creation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_table: bool,
    /// With `create-table`: the created table's billing mode instead of the backup's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_table_billing_mode: Option<BillingMode>,
    /// With `create-table-billing-mode` `PROVISIONED`: the capacity of the table and of each
    /// of its global secondary indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_table_read_capacity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_table_write_capacity: Option<u32>,
    /// With `create-table`: create it without the backup's secondary indexes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_table_skip_indexes: bool,
    /// Backup only: how the table is read (absent: `scan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Convert only: where the export copy goes (in `bucket-region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_bucket_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_bucket_prefix: Option<String>,
}

/// How a backup reads its table (docs/export.md#backup-by-export).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Parallel Scan into Solace batches: any table, read capacity consumed.
    Scan,
    /// A DynamoDB point-in-time export: the table needs PITR; no read capacity consumed.
    Export,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Scan => "scan",
            Method::Export => "export",
        }
    }
}

/// The billing modes a restore may create its table with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BillingMode {
    #[serde(rename = "PAY_PER_REQUEST")]
    PayPerRequest,
    #[serde(rename = "PROVISIONED")]
    Provisioned,
}

impl Request {
    /// How a restore with `create-table` creates its table (validated: a provisioned mode
    /// has both capacities).
    pub fn create_options(&self) -> solace_codec::schema::CreateOptions {
        use solace_codec::schema::Billing;
        solace_codec::schema::CreateOptions {
            billing: match self.create_table_billing_mode {
                None => None,
                Some(BillingMode::PayPerRequest) => Some(Billing::OnDemand),
                Some(BillingMode::Provisioned) => Some(Billing::Provisioned {
                    read: i64::from(self.create_table_read_capacity.unwrap_or(1)),
                    write: i64::from(self.create_table_write_capacity.unwrap_or(1)),
                }),
            },
            skip_indexes: self.create_table_skip_indexes,
        }
    }

    /// A convert's export folder (docs/export.md#convert): `(bucket, prefix)`, the prefix
    /// `<to-bucket-prefix>AWSDynamoDB/<task-id>/`. `None` for any other action.
    pub fn convert_folder(&self, task_id: &str) -> Option<(&str, String)> {
        let bucket = self.to_bucket_name.as_deref()?;
        let prefix = solace_codec::normalized_prefix(self.to_bucket_prefix.as_deref()?);
        Some((bucket, format!("{prefix}AWSDynamoDB/{task_id}/")))
    }

    /// Whether this is a backup by DynamoDB export.
    pub fn by_export(&self) -> bool {
        self.method == Some(Method::Export)
    }

    /// The retention the request asks for, when it names both halves.
    pub fn retention(&self) -> Option<Retention> {
        Some(Retention {
            mode: self.retention_mode?,
            days: self.retention_days?,
        })
    }
}

/// Where a segment continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Checkpoint {
    Backup(BackupCheckpoint),
    Restore(RestoreCheckpoint),
    /// A backup by export waiting for its export.
    Export(ExportCheckpoint),
    /// A convert: the next batch to write as a data file.
    Convert(RestoreCheckpoint),
}

/// One segment's work: sent by the request function, continued by the worker before its
/// deadline, re-routed by the redrive function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SegmentMessage {
    pub task_id: String,
    pub segment: u32,
    #[serde(flatten)]
    pub request: Request,
    /// `None` for the first message of a segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// Times the redrive function has re-routed this segment.
    #[serde(default)]
    pub redrives: u32,
}

impl SegmentMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Whether `id` can be a task id: 1 to 256 characters (an SQS message id is 36), no `#`
/// (the separator of segment and rejection item keys). Anything else is not a key the status
/// tables take (DynamoDB refuses an empty key outright).
pub fn check_task_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.chars().count() > 256 || id.contains('#') {
        let shown: String = id.chars().take(100).collect();
        return Err(format!(
            "task-id {shown:?} is not a task id (1-256 characters, no `#`)"
        ));
    }
    Ok(())
}

/// A message body a handler cannot read, as it is logged: why, without quoting the body (a
/// checkpoint holds key values), and the body's size and SHA-256, which name it for whoever
/// holds the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub reason: String,
    pub bytes: usize,
    pub sha256: String,
}

/// The longest reason an [`Unreadable`] gives, in characters.
pub const MAX_UNREADABLE_REASON: usize = 500;

impl Unreadable {
    /// `reason` (cut to [`MAX_UNREADABLE_REASON`] characters) for `body`.
    pub fn new(body: &str, reason: String) -> Self {
        Unreadable {
            reason: cut(&reason, MAX_UNREADABLE_REASON),
            bytes: body.len(),
            sha256: solace_pipeline::sha256_hex(body.as_bytes()),
        }
    }
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} bytes, SHA-256 {})",
            self.reason, self.bytes, self.sha256
        )
    }
}

/// The longest reason [`json_error_reason`] gives, in characters.
pub const MAX_JSON_REASON: usize = 400;

/// Why serde_json refused a body, bounded: at most `quote` characters of any value it quotes
/// from the input (`quote` 0: none, in its place `(not shown)`), and at most
/// [`MAX_JSON_REASON`] characters in all. serde_json's syntax errors quote no input; its data
/// errors quote what they found (`invalid type: string "…", expected u32`), whole.
pub fn json_error_reason(e: &serde_json::Error, quote: usize) -> String {
    use serde_json::error::Category;
    let text = e.to_string();
    let reason = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => text,
        Category::Data => {
            let at = format!(" at line {} column {}", e.line(), e.column());
            let what = match text.strip_suffix(&at) {
                Some(what) if e.line() > 0 => what,
                _ => &text,
            };
            let at = if what.len() < text.len() { &at } else { "" };
            format!("{}{at}", without_values(what, quote))
        }
    };
    cut(&reason, MAX_JSON_REASON)
}

/// A serde error's text with the value it found cut to `quote` characters. The value comes
/// first, quoted (`` `…` `` or `"…"`); what was expected (`, expected …`, from the types,
/// never from the input) is the last part and is kept. A missing or duplicate field is
/// named by the types too (serde passes its static name).
fn without_values(what: &str, quote: usize) -> String {
    if what.starts_with("missing field `") || what.starts_with("duplicate field `") {
        return what.to_owned();
    }
    let (found, expected) = what.split_at(what.rfind(", expected ").unwrap_or(what.len()));
    let Some(q) = found.find(['`', '"']) else {
        return what.to_owned();
    };
    let (before, value) = found.split_at(q);
    if quote == 0 {
        format!("{before}(not shown){expected}")
    } else {
        format!("{before}{}{expected}", cut(value, quote + 1))
    }
}

/// `s` cut to `max` characters, with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// Refuses JSON that names a key twice in one object, at any depth: a reader keeps one of
/// the two (serde_json the last), so the message would not mean one thing. Struct fields
/// named twice are refused by their types already, with the field's name; this finds the
/// rest (the attributes of a checkpoint's key), without naming them.
pub fn check_unique_keys(body: &str) -> Result<(), serde_json::Error> {
    use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
    struct Unique;
    impl<'de> DeserializeSeed<'de> for Unique {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Unique {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if !seen.insert(key) {
                    return Err(A::Error::custom("a key is named twice in one object"));
                }
                map.next_value_seed(Unique)?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Unique)?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_str(body);
    Unique.deserialize(&mut de)?;
    de.end()
}

/// Reads a segment message (docs/messages.md#segment-message): the first message of a
/// segment, a continuation, or a dead letter, which SQS moves unchanged. Anything else is
/// [`Unreadable`]: not JSON, not this shape, a key named twice, or a task id the status
/// tables cannot hold (retrying those would never end: DynamoDB refuses such a key every
/// time).
pub fn parse_segment_message(body: &str) -> Result<SegmentMessage, Unreadable> {
    let unreadable = |why: String| Unreadable::new(body, format!("not a segment message: {why}"));
    let message: SegmentMessage =
        serde_json::from_str(body).map_err(|e| unreadable(json_error_reason(&e, 0)))?;
    check_unique_keys(body).map_err(|e| unreadable(json_error_reason(&e, 0)))?;
    check_task_id(&message.task_id).map_err(unreadable)?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = r#"{"task-id":"1f0c7a52-0000-4000-8000-000000000001","segment":0,"action":"backup","total-segments":2,"table-region":"us-east-1","table-name":"orders","bucket-region":"eu-west-1","bucket-name":"backups","bucket-prefix":"p/""#;

    /// Why `MESSAGE` with `rest` is unreadable, without where.
    fn reason(rest: &str) -> String {
        let reason = parse_segment_message(&format!("{MESSAGE}{rest}}}"))
            .expect_err(rest)
            .reason;
        let (what, at) = reason
            .rsplit_once(" at line 1 column ")
            .expect("a position");
        assert!(at.parse::<u32>().is_ok(), "{reason}");
        what.to_owned()
    }

    #[test]
    fn an_unreadable_message_says_why_without_quoting_it() {
        assert!(parse_segment_message(&format!("{MESSAGE}}}")).is_ok());
        let key = r#","checkpoint":{"kind":"backup","next-batch":1,"start-key":"#;
        assert_eq!(
            reason(&format!(r#"{key}{{"pk":{{"S":5}}}}}}"#)),
            "not a segment message: invalid type: integer (not shown), expected a string"
        );
        assert_eq!(
            reason(r#","checkpoint":{"kind":"sideways"}"#),
            "not a segment message: unknown variant (not shown), expected one of `backup`, `restore`, `export`, `convert`"
        );
        // Names the types give are kept.
        assert_eq!(
            reason(r#","segment":1"#),
            "not a segment message: duplicate field `segment`"
        );
        assert_eq!(
            reason(&format!(r#"{key}{{"pk":{{"S":"a"}},"pk":{{"S":"b"}}}}}}"#)),
            "not a segment message: a key is named twice in one object"
        );
        assert_eq!(
            reason(r#","task-id":"""#),
            "not a segment message: duplicate field `task-id`"
        );
        let empty = MESSAGE.replace("1f0c7a52-0000-4000-8000-000000000001", "");
        let u = parse_segment_message(&format!("{empty}}}")).expect_err("no task id");
        assert!(u.reason.contains("is not a task id"), "{u}");
        assert_eq!(u.bytes, empty.len() + 1);
        // Syntax errors quote nothing; every reason is short.
        assert_eq!(
            parse_segment_message("{\"task-id\": ")
                .expect_err("cut")
                .reason,
            "not a segment message: EOF while parsing a value at line 1 column 12"
        );
        let huge = format!(
            r#"{MESSAGE}{key}{{"{}":{{"Q":1}}}}}}}}"#,
            "k".repeat(10_000)
        );
        let u = parse_segment_message(&huge).expect_err("an unknown type");
        assert!(u.reason.chars().count() <= MAX_UNREADABLE_REASON + 1, "{u}");
    }
}
