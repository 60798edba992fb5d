//! The request function: validates a request (docs/request.md#validation), records the task, writes the
//! backup's manifest, and fans out one message per segment.
//!
//! A rejected request is consumed (it must not loop), fans out nothing, is logged as a
//! structured error, leaves its reason in a rejection item of the status table (where
//! `solace … --wait` finds it, docs/status.md#rejection-items) and is sent with its reason
//! to the rejected-requests queue, where an operator finds it.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use solace_codec::SegmentId;
use solace_codec::layout::{Completion, Manifest};
use solace_codec::schema::SchemaRecord;
use solace_pipeline::{ErrorKind, ObjectMeta, Objects, PutNew, StoreError, Table};
use tokio::time::Instant;
use tracing::{error, info};

use crate::context::{Context, Services};
use crate::error::Error;
use crate::function::Function;
use crate::message::{
    Action, BillingMode, ConvertFields, Request, SegmentMessage, Unreadable, VerifyFields,
    json_error_reason,
};
use crate::queues::{MAX_BATCH, Queues};
use crate::status::CancelOutcome;
use crate::status::{self, StatusStore};
use crate::{allow, metrics, records};

/// Why a request is refused; the text is the reason an operator reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("the request is not JSON: {0}")]
    NotJson(String),
    #[error("the request must be a JSON object")]
    NotAnObject,
    /// A missing, unknown or mistyped field.
    #[error("bad request: {0}")]
    Fields(String),
    #[error("total-segments must be 1 to {max}, got {got}")]
    Segments { max: u32, got: u32 },
    #[error("{field} {value:?} is not an AWS region name")]
    Region { field: &'static str, value: String },
    #[error("table-name {0:?} is not a DynamoDB table name (3-255 of A-Za-z0-9_.-)")]
    TableName(String),
    #[error("bucket-name {name:?} is not an S3 bucket name: {why}")]
    BucketName { name: String, why: &'static str },
    #[error("bucket-prefix {0}")]
    Prefix(&'static str),
    #[error("{0} is a restore field; a backup or verify does not take it")]
    RestoreOnly(&'static str),
    #[error("{0} is a backup field; a restore or verify does not take it")]
    BackupOnly(&'static str),
    #[error("retention: {0}")]
    Retention(String),
    #[error("create-table: {0}")]
    CreateTable(String),
    #[error(
        "method export: the export is one DynamoDB job, run as one segment: total-segments must be 1, got {0}"
    )]
    ExportSegments(u32),
    #[error("convert: {0}")]
    ToBucket(String),
    #[error("{0} {1}")]
    PrefixText(&'static str, &'static str),
}

/// Checks a request body against docs/request.md#validation. The error names what was wrong.
pub fn validate(body: &str, max_segments: u32) -> Result<Request, InvalidRequest> {
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| InvalidRequest::NotJson(json_error_reason(&e, QUOTED)))?;
    if !value.is_object() {
        return Err(InvalidRequest::NotAnObject);
    }
    check_duplicate_fields(body)?;
    let fields = |e: serde_json::Error| InvalidRequest::Fields(json_error_reason(&e, QUOTED));
    let action = value.get("action").and_then(|a| a.as_str());
    let request: Request = if action == Some("verify") {
        serde_json::from_value::<VerifyFields>(value)
            .map_err(fields)?
            .into()
    } else if action == Some("convert") {
        serde_json::from_value::<ConvertFields>(value)
            .map_err(fields)?
            .into()
    } else {
        for field in ["to-bucket-name", "to-bucket-prefix"] {
            if value.get(field).is_some() {
                return Err(InvalidRequest::Fields(format!(
                    "unknown field `{field}`: only a convert takes it"
                )));
            }
        }
        // Backup and restore name their table: without one it is a missing field.
        for field in ["table-region", "table-name"] {
            if value.get(field).is_none() {
                return Err(InvalidRequest::Fields(format!("missing field `{field}`")));
            }
        }
        serde_json::from_value(value).map_err(fields)?
    };
    if request.total_segments == 0 || request.total_segments > max_segments {
        return Err(InvalidRequest::Segments {
            max: max_segments,
            got: request.total_segments,
        });
    }
    if !matches!(request.action, Action::Verify | Action::Convert) {
        check_region("table-region", &request.table_region)?;
        check_table_name(&request.table_name)?;
    }
    if let (Some(name), Some(prefix)) = (&request.to_bucket_name, &request.to_bucket_prefix) {
        check_bucket_name(name).map_err(|e| match e {
            InvalidRequest::BucketName { name, why } => InvalidRequest::ToBucket(format!(
                "to-bucket-name {name:?} is not an S3 bucket name: {why}"
            )),
            other => other,
        })?;
        if prefix.len() > 512 || prefix.starts_with('/') {
            return Err(InvalidRequest::ToBucket(
                "to-bucket-prefix must be at most 512 bytes and not start with `/`".into(),
            ));
        }
        let from = solace_codec::normalized_prefix(&request.bucket_prefix);
        let to = solace_codec::normalized_prefix(prefix);
        if *name == request.bucket_name && (to.starts_with(&from) || from.starts_with(&to)) {
            return Err(InvalidRequest::ToBucket(format!(
                "to-bucket-prefix {:?} overlaps the backup's bucket-prefix {:?}: the copy goes beside the backup, not inside it",
                shown(prefix),
                shown(&request.bucket_prefix)
            )));
        }
    }
    check_region("bucket-region", &request.bucket_region)?;
    check_bucket_name(&request.bucket_name)?;
    if request.bucket_prefix.len() > 512 {
        return Err(InvalidRequest::Prefix("is longer than 512 bytes"));
    }
    if request.bucket_prefix.starts_with('/') {
        return Err(InvalidRequest::Prefix("must not start with `/`"));
    }
    check_prefix_text("bucket-prefix", &request.bucket_prefix)?;
    if let Some(to) = &request.to_bucket_prefix {
        check_prefix_text("to-bucket-prefix", to)?;
    }
    if request.action != Action::Backup {
        for (field, on) in [
            ("retention-mode", request.retention_mode.is_some()),
            ("retention-days", request.retention_days.is_some()),
            ("method", request.method.is_some()),
        ] {
            if on {
                return Err(InvalidRequest::BackupOnly(field));
            }
        }
    }
    match (request.retention_mode, request.retention_days) {
        (Some(_), Some(days)) if !(1..=crate::config::MAX_RETENTION_DAYS).contains(&days) => {
            return Err(InvalidRequest::Retention(format!(
                "retention-days must be 1 to {}, got {days}",
                crate::config::MAX_RETENTION_DAYS
            )));
        }
        (Some(_), None) => {
            return Err(InvalidRequest::Retention(
                "retention-mode needs retention-days".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(InvalidRequest::Retention(
                "retention-days needs retention-mode (GOVERNANCE or COMPLIANCE)".into(),
            ));
        }
        _ => {}
    }
    if request.action != Action::Restore {
        for (field, on) in [
            ("allow-non-empty-table", request.allow_non_empty_table),
            ("allow-incomplete-backup", request.allow_incomplete_backup),
            ("create-table", request.create_table),
        ] {
            if on {
                return Err(InvalidRequest::RestoreOnly(field));
            }
        }
    }
    check_create_table(&request)?;
    if request.by_export() && request.total_segments != 1 {
        return Err(InvalidRequest::ExportSegments(request.total_segments));
    }
    if request.by_export() && request.retention().is_some() {
        // DynamoDB writes the export's data files, with no Object Lock retention of ours: the
        // backup would claim a lock its data does not have.
        return Err(InvalidRequest::Retention(
            "method export: DynamoDB writes the export's data files and sets no retention on them; use the bucket's default Object Lock retention instead".into(),
        ));
    }
    Ok(request)
}

/// The largest capacity a created table may ask for: DynamoDB's default per-table quota.
pub const MAX_CREATE_CAPACITY: u32 = 40_000;

/// The `create-table-…` options need `create-table`, and go together as
/// docs/request.md#second-wave-fields says.
fn check_create_table(request: &Request) -> Result<(), InvalidRequest> {
    let bad = |why: String| Err(InvalidRequest::CreateTable(why));
    let options = [
        (
            "create-table-billing-mode",
            request.create_table_billing_mode.is_some(),
        ),
        (
            "create-table-read-capacity",
            request.create_table_read_capacity.is_some(),
        ),
        (
            "create-table-write-capacity",
            request.create_table_write_capacity.is_some(),
        ),
        (
            "create-table-skip-indexes",
            request.create_table_skip_indexes,
        ),
    ];
    if !request.create_table {
        if let Some((field, _)) = options.iter().find(|(_, on)| *on) {
            return bad(format!("{field} needs \"create-table\": true"));
        }
        return Ok(());
    }
    let capacities = [
        request.create_table_read_capacity,
        request.create_table_write_capacity,
    ];
    match request.create_table_billing_mode {
        Some(BillingMode::Provisioned) => {
            if capacities.iter().any(Option::is_none) {
                return bad(
                    "create-table-billing-mode PROVISIONED needs create-table-read-capacity and create-table-write-capacity".into(),
                );
            }
            if let Some(c) = capacities
                .iter()
                .flatten()
                .find(|c| !(1..=MAX_CREATE_CAPACITY).contains(*c))
            {
                return bad(format!(
                    "a created table's capacity must be 1 to {MAX_CREATE_CAPACITY}, got {c}"
                ));
            }
        }
        _ if capacities.iter().any(Option::is_some) => {
            return bad(
                "create-table-read-capacity and create-table-write-capacity go with create-table-billing-mode PROVISIONED".into(),
            );
        }
        _ => {}
    }
    Ok(())
}

/// The most of a value a reason quotes, in characters.
const QUOTED: usize = 100;

/// A value as a reason quotes it: its first [`QUOTED`] characters, so a huge field does not
/// make a huge reason (or log line).
fn shown(value: &str) -> String {
    match value.char_indices().nth(QUOTED) {
        Some((at, _)) => format!("{}…", &value[..at]),
        None => value.to_owned(),
    }
}

/// Refuses a JSON object that names a field twice: a JSON reader keeps one of the two
/// (serde_json the last), so the request would not mean what its sender may have read.
fn check_duplicate_fields(body: &str) -> Result<(), InvalidRequest> {
    use serde::de::{Deserializer as _, Error as _, IgnoredAny, MapAccess, Visitor};
    struct Fields;
    impl<'de> Visitor<'de> for Fields {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(A::Error::custom(format!(
                        "duplicate field `{}`",
                        shown(&key)
                    )));
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_str(body);
    de.deserialize_map(Fields)
        .map_err(|e| InvalidRequest::Fields(json_error_reason(&e, QUOTED)))
}

/// A prefix's characters: no control characters (NUL included), and no `.` or `..` path
/// segment, which S3's consoles and many tools resolve as a path.
fn check_prefix_text(field: &'static str, prefix: &str) -> Result<(), InvalidRequest> {
    if prefix.chars().any(char::is_control) {
        return Err(InvalidRequest::PrefixText(
            field,
            "must not hold control characters",
        ));
    }
    if prefix
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(InvalidRequest::PrefixText(
            field,
            "must not have a `.` or `..` segment",
        ));
    }
    Ok(())
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-7`…
pub fn check_region(field: &'static str, region: &str) -> Result<(), InvalidRequest> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts.len() <= 4
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1]
            .parse::<u8>()
            .is_ok_and(|n| n > 0 && !parts[parts.len() - 1].starts_with('0'));
    if ok {
        Ok(())
    } else {
        Err(InvalidRequest::Region {
            field,
            value: shown(region),
        })
    }
}

pub fn check_table_name(name: &str) -> Result<(), InvalidRequest> {
    let ok = (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidRequest::TableName(shown(name)))
    }
}

pub fn check_bucket_name(name: &str) -> Result<(), InvalidRequest> {
    let bad = |why: &'static str| {
        Err(InvalidRequest::BucketName {
            name: shown(name),
            why,
        })
    };
    if !(3..=63).contains(&name.len()) {
        return bad("3 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return bad("only lower-case letters, digits, `.` and `-`");
    }
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edge(name.bytes().next()) || !edge(name.bytes().last()) {
        return bad("must begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad("no `..`, `.-` or `-.`");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("must not look like an IP address");
    }
    if name.starts_with("xn--") || name.starts_with("sthree-") || name.ends_with("-s3alias") {
        return bad("reserved prefix or suffix");
    }
    Ok(())
}

/// Handles a batch of request messages; a fan-out stops taking new segments at `deadline`
/// less the configured margin and continues in a new message.
pub async fn handle<S: Services>(
    ctx: &Context<S>,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse {
    let stop_at = deadline
        .checked_sub(ctx.config.deadline_margin)
        .unwrap_or_else(Instant::now);
    records::each(Function::Request, event, |record| {
        process(ctx, record, stop_at)
    })
    .await
}

/// A cancel request (docs/request.md#cancel).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct CancelFields {
    #[allow(dead_code)]
    action: String,
    task_id: String,
}

/// The task id a cancel request names, or why it is rejected.
pub(crate) fn parse_cancel(body: &str) -> Result<String, String> {
    let fields: CancelFields = serde_json::from_str(body)
        .map_err(|e| format!("bad request: {}", json_error_reason(&e, QUOTED)))?;
    status::check_task_id(&fields.task_id)?;
    Ok(fields.task_id)
}

/// The request function's own continuation of a fan-out (docs/status.md#fan-out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FanOutFields {
    pub(crate) action: String,
    pub(crate) task_id: String,
    pub(crate) request: Request,
}

impl FanOutFields {
    pub(crate) fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string(self).map_err(|e| Error::Internal(e.to_string()))
    }
}

/// Reads a fan-out continuation; anything else (a task id the status tables cannot hold
/// included) is [`Unreadable`], consumed, as retrying cannot change it.
pub(crate) fn parse_fan_out(body: &str) -> Result<FanOutFields, Unreadable> {
    let unreadable =
        |why: String| Unreadable::new(body, format!("not a fan-out continuation: {why}"));
    let fields: FanOutFields =
        serde_json::from_str(body).map_err(|e| unreadable(json_error_reason(&e, QUOTED)))?;
    status::check_task_id(&fields.task_id).map_err(unreadable)?;
    Ok(fields)
}

async fn process<S: Services>(
    ctx: &Context<S>,
    record: SqsMessage,
    stop_at: Instant,
) -> Result<(), Error> {
    let task_id = record.message_id.clone().unwrap_or_default();
    records::record_task(&task_id, None);
    // Who sent it, as SQS says (an IAM principal's unique id, or an account id).
    let sender = record
        .attributes
        .get("SenderId")
        .cloned()
        .unwrap_or_default();
    let body = record.body.unwrap_or_default();
    let action = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("action")?.as_str().map(str::to_owned));
    match action.as_deref() {
        Some("cancel") => return cancel(ctx, &task_id, &body).await,
        Some("fan-out") => return continue_fan_out(ctx, &body, stop_at).await,
        _ => {}
    }
    let mut request = match validate(&body, ctx.config.max_segments) {
        Ok(r) => r,
        Err(invalid) => return reject(ctx, &task_id, &body, &invalid.to_string()).await,
    };
    let status_tables = [
        ctx.config.backup_status_table.as_str(),
        ctx.config.restore_status_table.as_str(),
    ];
    if let Some(reason) = allow::refusal(
        ctx.config.allowed_tables.as_deref(),
        ctx.config.allowed_buckets.as_deref(),
        &status_tables,
        &request,
    ) {
        return reject(ctx, &task_id, &body, &reason).await;
    }
    if request.action == Action::Backup && request.retention().is_none() {
        if let Some(r) = ctx.config.default_retention {
            request.retention_mode = Some(r.mode);
            request.retention_days = Some(r.days);
        }
    }
    let bucket = ctx
        .services
        .bucket(&request.bucket_region, &request.bucket_name);
    let created_at = status::now_rfc3339();
    let table = ctx.config.status_table(request.action);
    // A redelivery of a request whose task is recorded was admitted then: its checks are
    // not made again, since what its own segments did since (a restore's first items in
    // the destination) would refuse it and leave the rest of its fan-out unsent.
    let recorded = ctx.services.status().read_task(table, &task_id).await?;
    let admitted = match (&recorded, request.action) {
        (Some(_), _) => Ok(Vec::new()),
        (None, Action::Restore | Action::Verify) => {
            admit_restore(ctx, &task_id, &request, &bucket, stop_at).await
        }
        (None, Action::Convert) => admit_convert(&request, &bucket).await,
        (None, Action::Backup) => admit_backup(ctx, &task_id, &request, &bucket, &created_at).await,
    };
    let notes = match admitted {
        Ok(notes) => notes,
        Err(Refused::Reject(reason)) => return reject(ctx, &task_id, &body, &reason).await,
        Err(Refused::Retry(e)) => return Err(e),
    };
    let created = ctx
        .services
        .status()
        .create_task(table, &task_id, &request, &created_at, &sender, &notes)
        .await?;
    // A redelivered request goes on from the task's fan-out cursor: a crash may have cut
    // the first fan-out short.
    let finished = fan_out(ctx, &task_id, &request, stop_at).await?;
    info!(action = request.action.as_str(), segments = request.total_segments,
          table = %request.table_name, bucket = %request.bucket_name, prefix = %request.bucket_prefix,
          redelivered = !created, finished, "task fanned out");
    if created {
        metrics::emit("request", &[("Tasks", 1.0)]);
    }
    if !finished {
        send_fan_out(ctx, &task_id, &request).await?;
    }
    Ok(())
}

/// Sends the continuation of a fan-out to the request queue.
async fn send_fan_out<S: Services>(
    ctx: &Context<S>,
    task_id: &str,
    request: &Request,
) -> Result<(), Error> {
    if ctx.config.request_queue_url.is_empty() {
        return Err(Error::Internal(
            "the fan-out needs another invocation but no request queue is configured".into(),
        ));
    }
    let body = FanOutFields {
        action: "fan-out".to_owned(),
        task_id: task_id.to_owned(),
        request: request.clone(),
    }
    .to_json()?;
    ctx.services
        .queues()
        .send(&ctx.config.request_queue_url, body)
        .await
        .map_err(|source| Error::Queue {
            what: "continuing the fan-out",
            source,
        })
}

/// A fan-out's continuation: goes on from the task's cursor.
async fn continue_fan_out<S: Services>(
    ctx: &Context<S>,
    body: &str,
    stop_at: Instant,
) -> Result<(), Error> {
    let fields = match parse_fan_out(body) {
        Ok(f) => f,
        Err(u) => {
            error!(reason = %u.reason, bytes = u.bytes, sha256 = %u.sha256, "unreadable fan-out continuation consumed");
            return Ok(());
        }
    };
    records::record_task(&fields.task_id, None);
    let table = ctx.config.status_table(fields.request.action);
    let Some(task) = ctx
        .services
        .status()
        .read_task(table, &fields.task_id)
        .await?
    else {
        error!(
            error = "no such task in the status table",
            "fan-out continuation for a task that does not exist consumed"
        );
        return Ok(());
    };
    // Only the task's own request fans out: a continuation naming anything else would mark
    // segments sent whose messages every worker then refuses, and the task would never end.
    let differ = status::mismatches(&task, &fields.request, 0);
    if !differ.is_empty() {
        error!(error = "the continuation does not match its task", fields = ?differ, "fan-out continuation consumed");
        return Ok(());
    }
    if !fan_out(ctx, &fields.task_id, &fields.request, stop_at).await? {
        send_fan_out(ctx, &fields.task_id, &fields.request).await?;
    }
    info!("fan-out continued");
    Ok(())
}

/// Cancels a running task (docs/request.md#cancel): records it on the task's item, where
/// every run of its segments sees it at its next step. Cancelling an unknown or finished
/// task is rejected with the reason.
async fn cancel<S: Services>(ctx: &Context<S>, cancel_id: &str, body: &str) -> Result<(), Error> {
    let id = &match parse_cancel(body) {
        Ok(id) => id,
        Err(reason) => return reject(ctx, cancel_id, body, &reason).await,
    };
    let status = ctx.services.status();
    let mut found = None;
    for table in [
        &ctx.config.backup_status_table,
        &ctx.config.restore_status_table,
    ] {
        if let Some(task) = status.read_task(table, id).await? {
            found = Some((table, task));
            break;
        }
    }
    let Some((table, task)) = found else {
        let reason = format!("task-id {id:?}: no such task in either status table");
        return reject(ctx, cancel_id, body, &reason).await;
    };
    if task.is_done() && task.cancelled_at.is_none() {
        let reason = format!(
            "task {id} has finished ({} segments completed, {} failed): there is nothing to cancel",
            task.completed, task.failed
        );
        return reject(ctx, cancel_id, body, &reason).await;
    }
    match status.cancel_task(table, id, cancel_id).await? {
        CancelOutcome::Recorded | CancelOutcome::Redelivered => {
            info!(task = %id, table = %table, "task cancelled");
            metrics::emit("request", &[("Cancels", 1.0)]);
            Ok(())
        }
        CancelOutcome::AlreadyCancelled => {
            let reason = format!(
                "task {id} was cancelled already (at {})",
                task.cancelled_at.as_deref().unwrap_or("an earlier request")
            );
            reject(ctx, cancel_id, body, &reason).await
        }
        CancelOutcome::NoTask => {
            let reason = format!("task-id {id:?}: no such task in either status table");
            reject(ctx, cancel_id, body, &reason).await
        }
    }
}

/// Why a request that passed validation is not run.
enum Refused {
    /// Consumed, with this reason on the rejected-requests queue.
    Reject(String),
    /// Handed back: a later delivery may get through.
    Retry(Error),
}

/// A permanent store error refuses the request with `what` and the error; any other is
/// retried.
fn refused(bucket: &str, what: String, e: StoreError) -> Refused {
    if e.kind == ErrorKind::Permanent {
        Refused::Reject(format!("{what}: {e}"))
    } else {
        Refused::Retry(Error::Bucket {
            bucket: bucket.to_owned(),
            source: e,
        })
    }
}

/// A backup starts by creating its manifest, only if there is none: a second backup to the
/// same prefix (`p` and `p/` are one folder) is refused and writes nothing. A manifest of
/// this very task is a redelivery of this request. Then the table's schema is captured
/// ([`capture_schema`]); the notes say what of it could not be read.
async fn admit_backup<S: Services>(
    ctx: &Context<S>,
    task_id: &str,
    request: &Request,
    bucket: &S::Objects,
    created_at: &str,
) -> Result<Vec<String>, Refused> {
    let key = solace_codec::manifest_key(&request.bucket_prefix);
    let manifest = Manifest {
        format: Manifest::FORMAT,
        task_id: task_id.to_owned(),
        total_segments: request.total_segments,
        table_region: request.table_region.clone(),
        table_name: request.table_name.clone(),
        created_at: created_at.to_owned(),
        method: request.by_export().then(|| "export".to_owned()),
    };
    let name = &request.bucket_name;
    let retention = request.retention();
    if retention.is_some() {
        let locked = bucket
            .object_lock_enabled()
            .await
            .map_err(|e| refused(name, format!("cannot read bucket {name}'s Object Lock"), e))?;
        if !locked {
            return Err(Refused::Reject(format!(
                "bucket {name} does not have Object Lock enabled: a backup with a retention needs a versioned bucket created with Object Lock"
            )));
        }
    }
    let meta = ObjectMeta {
        retention,
        ..ObjectMeta::default()
    };
    let written = bucket
        .put_new(&key, Bytes::from(manifest.to_json()), &meta)
        .await
        .map_err(|e| refused(name, format!("cannot write to bucket {name}"), e))?;
    if let PutNew::Exists { .. } = written {
        let existing = bucket
            .get(&key)
            .await
            .map_err(|e| refused(name, format!("cannot read {key}"), e))?
            .and_then(|body| Manifest::from_json(&body).ok());
        match existing {
            Some(m) if m.task_id == task_id => {}
            Some(m) => {
                return Err(Refused::Reject(format!(
                    "bucket-prefix {:?} already holds a backup (task {}, created {}): use a new prefix",
                    request.bucket_prefix, m.task_id, m.created_at
                )));
            }
            None => {
                return Err(Refused::Reject(format!(
                    "bucket-prefix {:?} already holds a backup manifest that is not readable: use a new prefix",
                    request.bucket_prefix
                )));
            }
        }
    }
    capture_schema(ctx, task_id, request, bucket, created_at, &meta).await
}

/// Writes `<prefix>solace-meta/schema.json` (docs/schema.md) after the manifest and before
/// any segment is sent, with a conditional create: a redelivery finds the first capture and
/// keeps it. A schema that cannot be read (access denied) does not stop the backup: the
/// record says what is missing and why, and so do the returned notes. An error a retry may
/// fix (a throttle) hands the request back.
async fn capture_schema<S: Services>(
    ctx: &Context<S>,
    task_id: &str,
    request: &Request,
    bucket: &S::Objects,
    captured_at: &str,
    meta: &ObjectMeta,
) -> Result<Vec<String>, Refused> {
    let key = solace_codec::schema_key(&request.bucket_prefix);
    let name = &request.bucket_name;
    let table = ctx
        .services
        .table(&request.table_region, &request.table_name);
    let (schema, not_captured) = match table.describe().await {
        Ok(d) => (Some(d.schema), d.not_captured),
        Err(e) if e.is_retryable() => {
            return Err(Refused::Retry(Error::Table {
                table: request.table_name.clone(),
                source: e,
            }));
        }
        Err(e) => (None, BTreeMap::from([(e.operation.to_owned(), e.message)])),
    };
    let record = SchemaRecord {
        format: SchemaRecord::FORMAT,
        task_id: task_id.to_owned(),
        table_region: request.table_region.clone(),
        table_name: request.table_name.clone(),
        captured_at: captured_at.to_owned(),
        table: schema,
        not_captured,
    };
    let written = bucket
        .put_new(&key, Bytes::from(record.to_json()), meta)
        .await
        .map_err(|e| refused(name, format!("cannot write {key}"), e))?;
    let kept = match written {
        PutNew::Created => record,
        PutNew::Exists { .. } => {
            let body = bucket
                .get(&key)
                .await
                .map_err(|e| refused(name, format!("cannot read {key}"), e))?;
            match body.map(|b| SchemaRecord::from_json(&b)) {
                Some(Ok(existing)) if existing.task_id == task_id => existing,
                _ => {
                    return Err(Refused::Reject(format!(
                        "bucket-prefix {:?} already holds a schema record that is not this backup's: use a new prefix",
                        request.bucket_prefix
                    )));
                }
            }
        }
    };
    Ok(schema_notes(&kept))
}

/// The task notes of a schema record: one per call that could not be read.
pub fn schema_notes(record: &SchemaRecord) -> Vec<String> {
    record
        .not_captured
        .iter()
        .map(|(operation, reason)| {
            let part = match operation.as_str() {
                "DescribeTable" => "the table's schema",
                "DescribeTimeToLive" => "the table's time to live",
                "DescribeContinuousBackups" => "the table's point-in-time recovery setting",
                "ListTagsOfResource" => "the table's tags",
                _ => "a part of the table's schema",
            };
            format!("schema: {part} was not captured ({operation}: {reason})")
        })
        .collect()
}

/// What a restore checks before anything is written (docs/protocol.md#refusals). Returns
/// the notes the task's status item carries (an unverified or incomplete source).
async fn admit_restore<S: Services>(
    ctx: &Context<S>,
    task_id: &str,
    request: &Request,
    bucket: &S::Objects,
    stop_at: Instant,
) -> Result<Vec<String>, Refused> {
    let name = &request.bucket_name;
    let prefix = &request.bucket_prefix;
    let verify = request.action == Action::Verify;
    if !verify
        && [
            &ctx.config.backup_status_table,
            &ctx.config.restore_status_table,
        ]
        .contains(&&request.table_name)
    {
        return Err(Refused::Reject(format!(
            "table-name {:?} is a Solace status table: it is never a restore destination",
            request.table_name
        )));
    }
    let mut notes = Vec::new();
    let manifest_key = solace_codec::manifest_key(prefix);
    let manifest = bucket
        .get(&manifest_key)
        .await
        .map_err(|e| refused(name, format!("cannot read bucket {name}"), e))?;
    match manifest {
        Some(body) => {
            let manifest = Manifest::from_json(&body).map_err(|e| {
                Refused::Reject(format!(
                    "the backup's manifest {manifest_key} is unreadable: {e}"
                ))
            })?;
            // A backup by export is data files, which any number of segments splits
            // (docs/export.md#backup-by-export); a scan's batches are in its segments.
            let by_export = manifest.method.as_deref() == Some("export");
            if !by_export && manifest.total_segments != request.total_segments {
                return Err(Refused::Reject(format!(
                    "total-segments is {} but the backup at {manifest_key} was made with {}",
                    request.total_segments, manifest.total_segments
                )));
            }
            let completion_key = solace_codec::completion_key(prefix);
            let completion = bucket
                .get(&completion_key)
                .await
                .map_err(|e| refused(name, format!("cannot read {completion_key}"), e))?
                .map(|body| Completion::from_json(&body));
            let incomplete = match completion {
                Some(Ok(c)) if c.failed_segments == 0 => None,
                Some(Ok(c)) => Some(format!(
                    "{} of its {} segments failed",
                    c.failed_segments, c.total_segments
                )),
                Some(Err(e)) => Some(format!("its completion record is unreadable: {e}")),
                None => Some(
                    "it has no completion record (still running, failed or cut short)".to_owned(),
                ),
            };
            if let Some(why) = incomplete {
                if verify {
                    notes.push(format!("incomplete backup: {why}"));
                } else if !request.allow_incomplete_backup {
                    return Err(Refused::Reject(format!(
                        "the backup at {prefix:?} is not complete: {why}; set \"allow-incomplete-backup\": true to restore what it committed"
                    )));
                } else {
                    notes.push(format!("incomplete backup restored: {why}"));
                }
            }
            if by_export {
                let key = solace_codec::export_record_key(prefix);
                let record = bucket
                    .get(&key)
                    .await
                    .map_err(|e| refused(name, format!("cannot read {key}"), e))?
                    .map(|body| solace_codec::export::ExportRecord::from_json(&body));
                match record {
                    Some(Ok(r)) if !r.verified => notes.push(format!(
                        "unverified: the backup's export {} wrote no manifest-files.json; its {} data files were listed when it completed, and are read without MD5 or item-count checks",
                        r.export_arn,
                        r.files.len()
                    )),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        return Err(Refused::Reject(format!(
                            "the backup's export record {key} is unreadable: {e}"
                        )));
                    }
                    None => notes.push(format!(
                        "the backup by export has no {key}: its export never completed, so nothing is restored"
                    )),
                }
            }
        }
        None if let Some(notes_of_export) = admit_export(request, bucket).await? => {
            notes.extend(notes_of_export);
        }
        None => {
            // No manifest: a Solace v3 backup, whose segment folders are its only structure.
            let folders = segment_folders(bucket, prefix)
                .await
                .map_err(|e| refused(name, format!("cannot list bucket {name}"), e))?;
            if folders == 0 {
                return Err(Refused::Reject(format!(
                    "no backup at {prefix:?} in bucket {name}: no manifest and no segment folder"
                )));
            }
            if folders != u64::from(request.total_segments) {
                return Err(Refused::Reject(format!(
                    "total-segments is {} but the backup at {prefix:?} has {folders} segment folders",
                    request.total_segments
                )));
            }
            notes.push(
                "unverified: a Solace v3 backup (no manifest, markers or checksums)".to_owned(),
            );
        }
    }
    if request.create_table {
        notes.extend(create_destination(ctx, task_id, request, bucket, stop_at).await?);
    }
    if !verify {
        notes.extend(check_destination_key(ctx, request, bucket).await?);
    }
    if !verify && !request.allow_non_empty_table {
        let table = ctx
            .services
            .table(&request.table_region, &request.table_name);
        let has_items = table
            .has_items()
            .await
            .map_err(|e| refused(name, format!("cannot read table {}", request.table_name), e))?;
        if has_items {
            return Err(Refused::Reject(format!(
                "table {} already holds items; set \"allow-non-empty-table\": true to restore into it",
                request.table_name
            )));
        }
    }
    Ok(notes)
}

/// A DynamoDB export under the request's prefix (docs/export.md): `Some(notes)` when there is
/// one this code restores (a full export in DynamoDB JSON), refused when there is one it does
/// not (ION, incremental, an unreadable manifest), `None` when there is none. Its
/// `total-segments` is the operator's choice: the data files are dealt out across them.
async fn admit_export<O: Objects>(
    request: &Request,
    bucket: &O,
) -> Result<Option<Vec<String>>, Refused> {
    use solace_codec::export::{ExportSummary, parse_manifest_files};
    let name = &request.bucket_name;
    let prefix = solace_codec::normalized_prefix(&request.bucket_prefix);
    let summary_key = format!("{prefix}manifest-summary.json");
    let Some(body) = bucket
        .get(&summary_key)
        .await
        .map_err(|e| refused(name, format!("cannot read {summary_key}"), e))?
    else {
        return Ok(None);
    };
    let summary = ExportSummary::from_json(&body)
        .map_err(|e| Refused::Reject(format!("the export at {prefix:?}: {e}")))?;
    let arn = summary.export_arn.as_deref().unwrap_or("no export ARN");
    let files_key = format!("{prefix}manifest-files.json");
    let files = bucket
        .get(&files_key)
        .await
        .map_err(|e| refused(name, format!("cannot read {files_key}"), e))?;
    let note = match files {
        Some(body) => {
            let files = parse_manifest_files(&body)
                .map_err(|e| Refused::Reject(format!("the export at {prefix:?}: {e}")))?;
            let items: u64 = files.iter().map(|f| f.item_count).sum();
            format!(
                "a DynamoDB export ({arn}): {} data files, {items} items, each checked by its MD5 and item count",
                files.len()
            )
        }
        None => format!(
            "unverified: a DynamoDB export ({arn}) without manifest-files.json: its data files are what data/ lists, unchecked"
        ),
    };
    Ok(Some(vec![note]))
}

/// A restore into a table whose key (names, roles, types) differs from the backup's is
/// refused before anything is written; other differences (global secondary indexes, TTL)
/// become notes (docs/schema.md#restore-checks). A backup without a schema record (made
/// before it existed, or by Solace v3) is not checked; nor is one whose capture could not
/// read DescribeTable, and a destination whose DescribeTable is refused, each with a note.
async fn check_destination_key<S: Services>(
    ctx: &Context<S>,
    request: &Request,
    bucket: &S::Objects,
) -> Result<Vec<String>, Refused> {
    let name = &request.bucket_name;
    let key = solace_codec::schema_key(&request.bucket_prefix);
    let Some(body) = bucket
        .get(&key)
        .await
        .map_err(|e| refused(name, format!("cannot read {key}"), e))?
    else {
        return Ok(Vec::new());
    };
    let backup = match SchemaRecord::from_json(&body) {
        Ok(SchemaRecord {
            table: Some(table), ..
        }) => table,
        Ok(_) => {
            return Ok(vec![
                "the destination's key was not checked: the backup's schema was not captured"
                    .to_owned(),
            ]);
        }
        Err(e) => {
            return Ok(vec![format!(
                "the destination's key was not checked: the backup's {key} is unreadable: {e}"
            )]);
        }
    };
    let table = ctx
        .services
        .table(&request.table_region, &request.table_name);
    let destination = match table.describe().await {
        Ok(d) => d.schema,
        Err(e) if e.is_retryable() => {
            return Err(Refused::Retry(Error::Table {
                table: request.table_name.clone(),
                source: e,
            }));
        }
        Err(e) if e.message.contains("ResourceNotFoundException") => {
            return Err(Refused::Reject(format!(
                "table {} does not exist in {}: set \"create-table\": true to create it from the backup's schema ({key})",
                request.table_name, request.table_region
            )));
        }
        Err(e) => {
            return Ok(vec![format!(
                "the destination's key was not checked against the backup's ({}: {})",
                e.operation, e.message
            )]);
        }
    };
    if let Some(difference) = solace_codec::schema::key_difference(&backup, &destination) {
        return Err(Refused::Reject(format!(
            "table {} cannot take this backup's items: {difference}",
            request.table_name
        )));
    }
    Ok(
        solace_codec::schema::other_differences(&backup, &destination)
            .into_iter()
            .map(|d| format!("destination: {d}"))
            .collect(),
    )
}

/// The tag a table created by a restore carries: the restore's task id. A redelivered request
/// that finds the table knows by it that the table is its own, and finishes its settings.
pub const CREATED_BY_TAG: &str = "solace:restore-task";

/// How long to wait between looks at a table being created.
const CREATE_POLL: Duration = Duration::from_secs(2);

/// `"create-table": true` (docs/schema.md#table-creation): creates the destination from the
/// backup's schema record when it does not exist, waits until it is ACTIVE, then turns on its
/// TTL and PITR. A destination that exists is left as it is (the restore's other checks
/// apply), unless it carries this task's [`CREATED_BY_TAG`]: then an earlier delivery created
/// it, and its settings are finished. A table still being created when the invocation's time
/// runs out hands the request back; its redelivery waits on.
async fn create_destination<S: Services>(
    ctx: &Context<S>,
    task_id: &str,
    request: &Request,
    bucket: &S::Objects,
    stop_at: Instant,
) -> Result<Vec<String>, Refused> {
    let name = &request.bucket_name;
    let destination = &request.table_name;
    let key = solace_codec::schema_key(&request.bucket_prefix);
    let body = bucket
        .get(&key)
        .await
        .map_err(|e| refused(name, format!("cannot read {key}"), e))?
        .ok_or_else(|| {
            Refused::Reject(format!(
                "create-table needs the backup's schema and the backup at {:?} has none ({key}): it was made before backups kept their schema, or by Solace v3; create the table first",
                request.bucket_prefix
            ))
        })?;
    let record = SchemaRecord::from_json(&body).map_err(|e| {
        Refused::Reject(format!(
            "create-table: the backup's {key} is unreadable: {e}"
        ))
    })?;
    let Some(schema) = record.table else {
        let why: Vec<String> = record
            .not_captured
            .iter()
            .map(|(op, reason)| format!("{op}: {reason}"))
            .collect();
        return Err(Refused::Reject(format!(
            "create-table: the backup's schema was not captured ({}); create the table first",
            why.join("; ")
        )));
    };
    let mut wanted = schema.for_create(&request.create_options());
    let mut tags = wanted.tags.take().unwrap_or_default();
    tags.retain(|t| t.key != CREATED_BY_TAG);
    tags.push(solace_codec::schema::Tag {
        key: CREATED_BY_TAG.to_owned(),
        value: task_id.to_owned(),
    });
    wanted.tags = Some(tags);
    let table = ctx.services.table(&request.table_region, destination);
    let table_error = |e: StoreError| {
        if e.is_retryable() {
            Refused::Retry(Error::Table {
                table: destination.clone(),
                source: e,
            })
        } else {
            Refused::Reject(format!("create-table: table {destination}: {e}"))
        }
    };
    let mut notes = Vec::new();
    if table.create(&wanted).await.map_err(table_error)? {
        info!(table = %destination, "table created from the backup's schema");
        notes.push(format!(
            "table {destination} created from the backup's schema (captured {})",
            record.captured_at
        ));
    }
    loop {
        let current = table.describe().await.map_err(table_error)?;
        let ours = current
            .schema
            .tags
            .iter()
            .flatten()
            .any(|t| t.key == CREATED_BY_TAG && t.value == task_id);
        if !ours {
            // Someone else's table: the restore's other checks decide.
            return Ok(notes);
        }
        if current.status.as_deref() == Some("ACTIVE") {
            let not_set = table
                .apply_settings(&wanted, &current.schema)
                .await
                .map_err(table_error)?;
            notes.extend(
                not_set
                    .into_iter()
                    .map(|what| format!("created table {destination}: {what} was not set")),
            );
            return Ok(notes);
        }
        if Instant::now() + CREATE_POLL >= stop_at {
            return Err(Refused::Retry(Error::Table {
                table: destination.clone(),
                source: StoreError::new(
                    ErrorKind::Transient,
                    "DescribeTable",
                    format!(
                        "the created table is {}, not yet ACTIVE",
                        current.status.as_deref().unwrap_or("of no status")
                    ),
                ),
            }));
        }
        tokio::time::sleep(CREATE_POLL).await;
    }
}

/// ImportTable reads at most this many data files; a convert writes one per batch.
pub const MAX_EXPORT_FILES: u64 = 50_000;

/// A convert (docs/export.md#convert) copies a complete Solace backup: its manifest, its
/// completion record with no failed segment, and a segment marker per segment, whose batches
/// (one data file each) number at most [`MAX_EXPORT_FILES`].
async fn admit_convert<O: Objects>(request: &Request, bucket: &O) -> Result<Vec<String>, Refused> {
    let name = &request.bucket_name;
    let prefix = &request.bucket_prefix;
    let read = |key: String| async move {
        bucket
            .get(&key)
            .await
            .map_err(|e| refused(name, format!("cannot read {key}"), e))
    };
    let manifest_key = solace_codec::manifest_key(prefix);
    let manifest = read(manifest_key.clone()).await?.ok_or_else(|| {
        Refused::Reject(format!(
            "no Solace backup at {prefix:?} in bucket {name}: {manifest_key} is missing (a convert copies a backup with a manifest)"
        ))
    })?;
    let manifest = Manifest::from_json(&manifest).map_err(|e| {
        Refused::Reject(format!(
            "the backup's manifest {manifest_key} is unreadable: {e}"
        ))
    })?;
    if manifest.method.as_deref() == Some("export") {
        return Err(Refused::Reject(format!(
            "the backup at {prefix:?} is a backup by export: its data files are in the Export layout already ({})",
            solace_codec::export_record_key(prefix)
        )));
    }
    if manifest.total_segments != request.total_segments {
        return Err(Refused::Reject(format!(
            "total-segments is {} but the backup at {manifest_key} was made with {}",
            request.total_segments, manifest.total_segments
        )));
    }
    let completion_key = solace_codec::completion_key(prefix);
    let complete = read(completion_key.clone())
        .await?
        .map(|b| Completion::from_json(&b));
    match complete {
        Some(Ok(c)) if c.failed_segments == 0 => {}
        Some(Ok(c)) => {
            return Err(Refused::Reject(format!(
                "the backup at {prefix:?} is not complete: {} of its {} segments failed; a convert copies only a complete backup",
                c.failed_segments, c.total_segments
            )));
        }
        Some(Err(e)) => {
            return Err(Refused::Reject(format!(
                "the backup's completion record {completion_key} is unreadable: {e}"
            )));
        }
        None => {
            return Err(Refused::Reject(format!(
                "the backup at {prefix:?} is not complete: it has no completion record; a convert copies only a complete backup"
            )));
        }
    }
    let mut files = 0u64;
    for segment in 0..request.total_segments {
        let key = solace_codec::segment_marker_key(prefix, solace_codec::SegmentId(segment));
        let marker = read(key.clone()).await?.ok_or_else(|| {
            Refused::Reject(format!("the backup's segment marker {key} is missing"))
        })?;
        let marker = solace_pipeline::SegmentMarker::from_json(&marker).map_err(|e| {
            Refused::Reject(format!(
                "the backup's segment marker {key} is unreadable: {e}"
            ))
        })?;
        files += marker.batches;
    }
    if files > MAX_EXPORT_FILES {
        return Err(Refused::Reject(format!(
            "the backup has {files} batches, and a convert writes one data file per batch: ImportTable reads at most {MAX_EXPORT_FILES}"
        )));
    }
    Ok(vec![format!(
        "convert: {files} data files to s3://{}/{}",
        request.to_bucket_name.as_deref().unwrap_or_default(),
        request.to_bucket_prefix.as_deref().unwrap_or_default()
    )])
}

/// The number of `0x…` segment folders directly under `prefix`.
pub async fn segment_folders<O: Objects>(bucket: &O, prefix: &str) -> Result<u64, StoreError> {
    let prefix = solace_codec::normalized_prefix(prefix);
    let folders = bucket.list_folders(&prefix).await?;
    Ok(folders
        .iter()
        .filter_map(|f| f.strip_prefix(&prefix)?.strip_suffix('/'))
        .filter(|name| SegmentId::parse(name).is_ok())
        .count() as u64)
}

/// Consumes a bad request: a structured error in the log, a metric, the reason in the
/// request's rejection item, and the request with its reason on the rejected-requests
/// queue. A failed write of either is retried with the message.
async fn reject<S: Services>(
    ctx: &Context<S>,
    task_id: &str,
    body: &str,
    reason: &str,
) -> Result<(), Error> {
    error!(reason = %reason, "request rejected");
    metrics::emit("request", &[("RejectedRequests", 1.0)]);
    let rejected_at = status::now_rfc3339();
    // Beside the tasks of its action (a cancel's or an unreadable request's: the backup
    // status table), for whoever waits on this task id.
    let action = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::from_value::<Action>(v.get("action")?.clone()).ok())
        .unwrap_or(Action::Backup);
    if status::check_task_id(task_id).is_ok() {
        ctx.services
            .status()
            .record_rejection(
                ctx.config.status_table(action),
                task_id,
                reason,
                &rejected_at,
            )
            .await?;
    }
    if ctx.config.rejected_queue_url.is_empty() {
        return Ok(());
    }
    let record = rejection_record(task_id, reason, body, &rejected_at);
    ctx.services
        .queues()
        .send(&ctx.config.rejected_queue_url, record.to_string())
        .await
        .map_err(|source| Error::Queue {
            what: "recording the rejection",
            source,
        })
}

/// The most of a rejected body its record keeps (docs/request.md#rejected-requests): even all
/// escaped (`\u0000`, 6 bytes each) it stays far inside SQS's 256 KiB message limit.
pub const REJECTED_BODY_KEPT: usize = 16 << 10;

/// The most of a reason a record keeps.
pub const REJECTED_REASON_KEPT: usize = 4 << 10;

/// The rejected-requests queue's record of a rejection: the body's first
/// [`REJECTED_BODY_KEPT`] bytes (cut at a character), its size and SHA-256, so the record
/// always fits in a message whatever was sent.
pub fn rejection_record(task_id: &str, reason: &str, body: &str, rejected_at: &str) -> String {
    let cut = |s: &str, max: usize| -> String {
        let mut end = s.len().min(max);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    };
    serde_json::json!({
        "task-id": cut(task_id, 256),
        "reason": cut(reason, REJECTED_REASON_KEPT),
        "request": cut(body, REJECTED_BODY_KEPT),
        "request-bytes": body.len(),
        "request-sha256": solace_pipeline::sha256_hex(body.as_bytes()),
        "request-truncated": body.len() > REJECTED_BODY_KEPT,
        "rejected-at": rejected_at,
    })
    .to_string()
}

/// Segments claimed and sent at a time (docs/status.md#fan-out).
const FAN_OUT_CHUNK: u64 = 1000;

/// Send calls in flight at once while fanning out.
const FAN_OUT_CONCURRENCY: usize = 10;

/// Fans out the segments not yet sent, from the task's cursor (docs/status.md#fan-out), until
/// all are sent (`Ok(true)`) or this invocation's share is spent (`Ok(false)`: the caller
/// continues in a new message). A cancelled task's unsent segments are counted failed at
/// once instead.
async fn fan_out<S: Services>(
    ctx: &Context<S>,
    task_id: &str,
    request: &Request,
    stop_at: Instant,
) -> Result<bool, Error> {
    let table = ctx.config.status_table(request.action);
    let status = ctx.services.status();
    let mut sent_here = 0u64;
    let mut last_seen = None;
    loop {
        let Some(task) = status.read_task(table, task_id).await? else {
            return Err(Error::Internal(format!(
                "task {task_id} is not in {table}: nothing to fan out"
            )));
        };
        let cursor = (task.fanned_out, task.fanning_out);
        if last_seen == Some(cursor) {
            // A conditional move was refused and nothing moved: not a race but an item this
            // code cannot read (a task recorded by another version).
            return Err(Error::Internal(format!(
                "the fan-out cursor of task {task_id} does not move: {cursor:?}"
            )));
        }
        let (sent, claimed) = cursor;
        if claimed > sent {
            // Claimed by an invocation that may have died before sending them all: sent
            // again (a segment is counted once however many of its messages run).
            send_segments(ctx, task_id, request, sent..claimed).await?;
            last_seen = (!status
                .confirm_fan_out(table, task_id, sent, claimed)
                .await?)
                .then_some(cursor);
            continue;
        }
        if sent >= task.total {
            return Ok(true);
        }
        if task.cancelled_at.is_some() {
            last_seen =
                (!status.fail_unsent(table, task_id, sent, task.total).await?).then_some(cursor);
            if last_seen.is_none() {
                info!(
                    unsent = task.total - sent,
                    "task cancelled during its fan-out: the unsent segments are counted failed"
                );
                // These counts may be a backup's last: its completion record is due.
                crate::complete::record_if_done(ctx, task_id, request).await?;
            }
            continue;
        }
        if sent_here > 0
            && (sent_here >= ctx.config.fan_out_per_invocation || Instant::now() >= stop_at)
        {
            return Ok(false);
        }
        let to = (sent + FAN_OUT_CHUNK).min(task.total);
        if !status.claim_fan_out(table, task_id, sent, to).await? {
            last_seen = Some(cursor);
            continue;
        }
        send_segments(ctx, task_id, request, sent..to).await?;
        last_seen = (!status.confirm_fan_out(table, task_id, sent, to).await?).then_some(cursor);
        sent_here += to - sent;
    }
}

/// Sends the first message of each segment in `segments`, [`MAX_BATCH`] to a call and
/// [`FAN_OUT_CONCURRENCY`] calls at once, retrying failed entries.
async fn send_segments<S: Services>(
    ctx: &Context<S>,
    task_id: &str,
    request: &Request,
    segments: std::ops::Range<u64>,
) -> Result<(), Error> {
    use futures::StreamExt;
    let mut chunks = segments
        .map(|s| u32::try_from(s).unwrap_or(u32::MAX))
        .collect::<Vec<_>>()
        .chunks(MAX_BATCH)
        .map(<[u32]>::to_vec)
        .collect::<Vec<_>>()
        .into_iter();
    let mut calls = futures::stream::FuturesUnordered::new();
    loop {
        while calls.len() < FAN_OUT_CONCURRENCY {
            let Some(chunk) = chunks.next() else { break };
            calls.push(send_chunk(ctx, task_id, request, chunk));
        }
        match calls.next().await {
            Some(result) => result?,
            None => return Ok(()),
        }
    }
}

/// Sends one batch of first messages, retrying the entries that failed.
async fn send_chunk<S: Services>(
    ctx: &Context<S>,
    task_id: &str,
    request: &Request,
    mut pending: Vec<u32>,
) -> Result<(), Error> {
    let queue = ctx.config.work_queue(request.action);
    for attempt in 0..5 {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
        }
        let bodies = pending
            .iter()
            .map(|&segment| {
                SegmentMessage {
                    task_id: task_id.to_owned(),
                    segment,
                    request: request.clone(),
                    checkpoint: None,
                    redrives: 0,
                }
                .to_json()
            })
            .collect();
        let failed = ctx
            .services
            .queues()
            .send_batch(queue, bodies)
            .await
            .map_err(|source| Error::Queue {
                what: "fanning out",
                source,
            })?;
        pending = failed.into_iter().map(|i| pending[i]).collect();
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "fanning out: segments {pending:?} could not be sent"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_names_what_was_wrong() {
        let good = r#"{"action": "backup", "total-segments": 2, "table-region": "us-east-1",
            "table-name": "orders", "bucket-region": "eu-west-1", "bucket-name": "backups",
            "bucket-prefix": "p/"}"#;
        assert!(validate(good, 10).is_ok());
        let with = |k: &str, v: serde_json::Value| {
            let mut r: serde_json::Value = serde_json::from_str(good).expect("json");
            r[k] = v;
            r.to_string()
        };
        let cases = [
            ("{".to_owned(), "the request is not JSON"),
            ("[1]".to_owned(), "the request must be a JSON object"),
            (with("colour", "blue".into()), "unknown field `colour`"),
            (
                with("total-segments", 11.into()),
                "total-segments must be 1 to 10, got 11",
            ),
            (
                with("table-region", "mars".into()),
                "table-region \"mars\" is not an AWS region",
            ),
            (
                with("table-name", "a b".into()),
                "table-name \"a b\" is not a DynamoDB table",
            ),
            (
                with("bucket-name", "A".into()),
                "bucket-name \"A\" is not an S3 bucket name",
            ),
            (
                with("bucket-prefix", "/x".into()),
                "bucket-prefix must not start with `/`",
            ),
        ];
        for (body, reason) in cases {
            let err = validate(&body, 10).expect_err(&body).to_string();
            assert!(err.contains(reason), "{body}: {err}");
        }
    }

    #[test]
    fn duplicate_fields_odd_prefixes_and_huge_values_are_refused_with_short_reasons() {
        let backup = serde_json::json!({"action": "backup", "total-segments": 1,
            "table-region": "us-east-1", "table-name": "orders", "bucket-region": "eu-west-1",
            "bucket-name": "backups", "bucket-prefix": "p/"});
        let twice = backup
            .to_string()
            .replacen('{', "{\"table-name\": \"payroll\", ", 1);
        let err = validate(&twice, 10).expect_err("a field named twice");
        assert!(
            err.to_string().contains("duplicate field `table-name`"),
            "{err}"
        );
        let with_prefix = |p: &str| {
            let mut b = backup.clone();
            b["bucket-prefix"] = p.into();
            validate(&b.to_string(), 10)
        };
        for p in ["a/../b", "..", "./x/", "x/./", "nul\u{0}", "line\nbreak/"] {
            assert!(
                matches!(
                    with_prefix(p),
                    Err(InvalidRequest::PrefixText("bucket-prefix", _))
                ),
                "{p:?}"
            );
        }
        for p in ["a..b/", ".hidden/", "x/.../", "é/", ""] {
            assert!(with_prefix(p).is_ok(), "{p:?}");
        }
        let mut huge = backup.clone();
        huge["table-region"] = "us-east-1".repeat(10_000).into();
        let err = validate(&huge.to_string(), 10).expect_err("not a region");
        assert!(
            err.to_string().len() < 300,
            "{} bytes",
            err.to_string().len()
        );
    }

    #[test]
    fn a_json_library_reason_quotes_at_most_100_characters_and_says_what_was_expected() {
        let backup = serde_json::json!({"action": "backup", "total-segments": 1,
            "table-region": "us-east-1", "table-name": "orders", "bucket-region": "eu-west-1",
            "bucket-name": "backups", "bucket-prefix": "p/"});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = backup.clone();
            b[k] = v;
            validate(&b.to_string(), 10).expect_err(k).to_string()
        };
        let long = with("total-segments", "\u{300}".repeat(50_000).into());
        assert!(long.chars().count() < 300, "{long}");
        assert!(
            long.starts_with("bad request: invalid type: string \"\\u{300}")
                && long.ends_with("…, expected u32"),
            "{long}"
        );
        assert_eq!(
            with("action", "delete".into()),
            "bad request: unknown variant `delete`, expected one of `backup`, `restore`, `verify`, `convert`"
        );
        assert_eq!(
            with("total-segments", 2.5.into()),
            "bad request: invalid type: floating point `2.5`, expected u32"
        );
        let cancel =
            parse_cancel(r#"{"action": "cancel", "task-id": 12345}"#).expect_err("a number");
        assert_eq!(
            cancel,
            "bad request: invalid type: integer `12345`, expected a string at line 1 column 37"
        );
    }

    #[test]
    fn an_overlapping_convert_quotes_at_most_100_characters_of_each_prefix() {
        let convert = |prefix: &str| {
            serde_json::json!({"action": "convert", "total-segments": 1,
                "bucket-region": "eu-west-1", "bucket-name": "backups", "bucket-prefix": prefix,
                "to-bucket-name": "backups", "to-bucket-prefix": ""})
            .to_string()
        };
        let err = validate(&convert("\u{300}".repeat(4_000).as_str()), 10)
            .expect_err("overlaps")
            .to_string();
        assert!(err.contains("overlaps the backup's bucket-prefix"), "{err}");
        assert!(
            err.chars().count() < 1_500,
            "{} characters",
            err.chars().count()
        );
    }

    #[test]
    fn a_rejection_record_fits_in_a_message_whatever_the_body() {
        // 255 KiB of control characters: 6 bytes each once escaped.
        let body = "\u{1}".repeat(255 << 10);
        let record = rejection_record("id", &"r".repeat(300 << 10), &body, "2026-01-01T00:00:00Z");
        assert!(record.len() < 200 << 10, "{} bytes", record.len());
        let v: serde_json::Value = serde_json::from_str(&record).expect("JSON");
        assert_eq!(v["request-bytes"], body.len());
        assert_eq!(v["request-truncated"], true);
        assert_eq!(
            v["request-sha256"],
            solace_pipeline::sha256_hex(body.as_bytes())
        );
        assert_eq!(
            v["request"].as_str().map(str::len),
            Some(REJECTED_BODY_KEPT)
        );
        // Cut at a character, never inside one.
        let wide = "é".repeat(REJECTED_BODY_KEPT);
        let record = rejection_record("id", "r", &wide, "t");
        let v: serde_json::Value = serde_json::from_str(&record).expect("JSON");
        let kept = v["request"].as_str().expect("a string");
        assert!(kept.len() <= REJECTED_BODY_KEPT && wide.starts_with(kept));
        // A small body is kept whole.
        let v: serde_json::Value =
            serde_json::from_str(&rejection_record("id", "r", "{}", "t")).expect("JSON");
        assert_eq!(
            (v["request"].as_str(), v["request-truncated"].as_bool()),
            (Some("{}"), Some(false))
        );
    }

    #[test]
    fn method_is_a_backup_field_and_an_export_runs_as_one_segment() {
        let backup = |segments: u32, method: &str| {
            serde_json::json!({"action": "backup", "total-segments": segments,
                "table-region": "us-east-1", "table-name": "orders", "bucket-region": "eu-west-1",
                "bucket-name": "backups", "bucket-prefix": "p/", "method": method})
            .to_string()
        };
        let export = validate(&backup(1, "export"), 10).expect("valid");
        assert!(export.by_export());
        let scan = validate(&backup(4, "scan"), 10).expect("valid");
        assert!(!scan.by_export() && scan.method == Some(crate::message::Method::Scan));
        assert_eq!(
            validate(&backup(4, "export"), 10),
            Err(InvalidRequest::ExportSegments(4))
        );
        let mut locked: serde_json::Value =
            serde_json::from_str(&backup(1, "export")).expect("JSON");
        locked["retention-mode"] = "COMPLIANCE".into();
        locked["retention-days"] = 30.into();
        let err = validate(&locked.to_string(), 10).expect_err("a lock the data would not have");
        assert!(
            err.to_string().contains("default Object Lock retention"),
            "{err}"
        );
        let unknown = validate(&backup(1, "copy"), 10).expect_err("unknown method");
        assert!(unknown.to_string().contains("copy"), "{unknown}");
        let restore = serde_json::json!({"action": "restore", "total-segments": 1,
            "table-region": "us-east-1", "table-name": "orders", "bucket-region": "eu-west-1",
            "bucket-name": "backups", "bucket-prefix": "p/", "method": "export"});
        assert_eq!(
            validate(&restore.to_string(), 10),
            Err(InvalidRequest::BackupOnly("method"))
        );
    }

    #[test]
    fn a_convert_names_its_copy_elsewhere_and_only_a_convert_does() {
        let convert = |to_bucket: &str, to_prefix: &str| {
            serde_json::json!({"action": "convert", "total-segments": 2,
                "bucket-region": "eu-west-1", "bucket-name": "backups", "bucket-prefix": "orders/",
                "to-bucket-name": to_bucket, "to-bucket-prefix": to_prefix})
            .to_string()
        };
        let ok = validate(&convert("backups", "exports/"), 10).expect("valid");
        assert_eq!(
            ok.convert_folder("t-1"),
            Some(("backups", "exports/AWSDynamoDB/t-1/".to_owned()))
        );
        assert!(
            validate(&convert("other", "orders/"), 10).is_ok(),
            "another bucket"
        );
        for (bucket, prefix) in [
            ("backups", "orders/copy/"),
            ("backups", ""),
            ("backups", "orders"),
        ] {
            let err = validate(&convert(bucket, prefix), 10).expect_err("overlaps");
            assert!(err.to_string().contains("overlaps"), "{prefix:?}: {err}");
        }
        let err = validate(&convert("Bad_Bucket", "x/"), 10).expect_err("bad name");
        assert!(err.to_string().contains("to-bucket-name"), "{err}");
        let backup = serde_json::json!({"action": "backup", "total-segments": 1,
            "table-region": "us-east-1", "table-name": "orders", "bucket-region": "eu-west-1",
            "bucket-name": "backups", "bucket-prefix": "p/", "to-bucket-name": "x"});
        let err = validate(&backup.to_string(), 10).expect_err("a backup takes no to-bucket");
        assert!(err.to_string().contains("to-bucket-name"), "{err}");
        let with_table = serde_json::json!({"action": "convert", "total-segments": 1,
            "table-name": "orders", "bucket-region": "eu-west-1", "bucket-name": "backups",
            "bucket-prefix": "p/", "to-bucket-name": "x1x", "to-bucket-prefix": ""});
        assert!(
            validate(&with_table.to_string(), 10).is_err(),
            "a convert names no table"
        );
    }

    #[test]
    fn create_table_options_need_create_table_and_go_together() {
        let restore = serde_json::json!({"action": "restore", "total-segments": 2,
            "table-region": "us-east-1", "table-name": "orders", "bucket-region": "eu-west-1",
            "bucket-name": "backups", "bucket-prefix": "p/"});
        let with = |fields: &[(&str, serde_json::Value)]| {
            let mut r = restore.clone();
            for (k, v) in fields {
                r[*k] = v.clone();
            }
            r.to_string()
        };
        let provisioned = [
            ("create-table", true.into()),
            ("create-table-billing-mode", "PROVISIONED".into()),
            ("create-table-read-capacity", 5.into()),
            ("create-table-write-capacity", 2.into()),
            ("create-table-skip-indexes", true.into()),
        ];
        let request = validate(&with(&provisioned), 10).expect("valid");
        assert_eq!(
            request.create_options(),
            solace_codec::schema::CreateOptions {
                billing: Some(solace_codec::schema::Billing::Provisioned { read: 5, write: 2 }),
                skip_indexes: true,
            }
        );
        let on_demand = [
            ("create-table", true.into()),
            ("create-table-billing-mode", "PAY_PER_REQUEST".into()),
        ];
        assert!(validate(&with(&on_demand), 10).is_ok());
        let cases: [(&[(&str, serde_json::Value)], &str); 6] = [
            (
                &[("create-table-skip-indexes", true.into())],
                "create-table-skip-indexes needs \"create-table\": true",
            ),
            (
                &[
                    ("create-table", true.into()),
                    ("create-table-billing-mode", "PROVISIONED".into()),
                ],
                "PROVISIONED needs create-table-read-capacity and create-table-write-capacity",
            ),
            (
                &[
                    ("create-table", true.into()),
                    ("create-table-read-capacity", 5.into()),
                ],
                "go with create-table-billing-mode PROVISIONED",
            ),
            (
                &[
                    ("create-table", true.into()),
                    ("create-table-billing-mode", "PROVISIONED".into()),
                    ("create-table-read-capacity", 0.into()),
                    ("create-table-write-capacity", 2.into()),
                ],
                "capacity must be 1 to 40000, got 0",
            ),
            (
                &[
                    ("create-table", true.into()),
                    ("create-table-billing-mode", "ON_DEMAND".into()),
                ],
                "unknown variant `ON_DEMAND`",
            ),
            (
                &[("action", "backup".into()), ("create-table", true.into())],
                "create-table is a restore field",
            ),
        ];
        for (fields, reason) in cases {
            let body = with(fields);
            let err = validate(&body, 10).expect_err(&body).to_string();
            assert!(err.contains(reason), "{body}: {err}");
        }
    }

    #[test]
    fn region_names() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-7",
            "cn-north-1",
        ] {
            assert!(check_region("r", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us-east-01",
            "useast1",
            "us_east_1",
            "us-east-1-x-y",
            "us-east-0",
        ] {
            assert!(check_region("r", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bucket_names() {
        for ok in ["my-bucket", "a.b.c", "abc", "123bucket"] {
            assert!(check_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "My-Bucket",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
