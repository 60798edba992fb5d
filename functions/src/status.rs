//! The status tables: one item per task, each segment counted exactly once
//! (docs/status.md). [`StatusStore`] is the seam the handlers call; [`DynamoStatus`] is the
//! real one, and `crate::mem` (feature `mem`) holds an in-memory one for unit tests.
//!
//! Each segment's name goes into a `completed` or `failed` string set in the same conditional
//! update that adds to its counter, and the condition refuses a segment already in either
//! set: however often and in whatever order messages arrive, a segment is counted once.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use solace_codec::SegmentId;

use crate::error::StatusError;
use crate::message::Request;

/// How a segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentEnd {
    Completed { items: u64, bytes: u64 },
    Failed { reason: String },
}

/// What counting a segment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// This call counted it.
    Counted,
    /// It was counted before (a duplicate delivery, an earlier attempt).
    AlreadyCounted,
    /// There is no such task in this table: the message is not this deployment's.
    NoTask,
}

/// A task's counters, read for progress displays and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskStatus {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub items: u64,
    pub bytes: u64,
    /// The last error of each segment that had one (a completed segment may have one too).
    pub errors: HashMap<String, String>,
    /// The names of the failed segments (`0x5`).
    pub failed_names: BTreeSet<String>,
    /// What the request function noted about the task (an unverified or incomplete source).
    pub notes: Vec<String>,
}

impl TaskStatus {
    /// Done when every segment is counted one way or the other (docs/status.md#predicates).
    pub fn is_done(&self) -> bool {
        self.completed + self.failed == self.total
    }
    pub fn succeeded(&self) -> bool {
        self.completed == self.total
    }
    pub fn failed(&self) -> bool {
        self.failed > 0
    }
}

/// The status tables, as the handlers use them. `table` is a status table's name.
pub trait StatusStore: Send + Sync + 'static {
    /// Records a new task; a redelivered request finds it there and changes nothing.
    /// Returns whether the item was created now.
    fn create_task(
        &self,
        table: &str,
        task_id: &str,
        request: &Request,
        created_at: &str,
        notes: &[String],
    ) -> impl Future<Output = Result<bool, StatusError>> + Send;

    /// Counts a segment as completed or failed, once.
    fn end_segment(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
        end: &SegmentEnd,
    ) -> impl Future<Output = Result<Count, StatusError>> + Send;

    /// Records the last error of a segment that will be retried, for the operator and for
    /// the redrive function's final verdict.
    fn note_segment_error(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
        reason: &str,
    ) -> impl Future<Output = Result<(), StatusError>> + Send;

    /// A task's status (strongly consistent); `None` if there is no such task.
    fn read_task(
        &self,
        table: &str,
        task_id: &str,
    ) -> impl Future<Output = Result<Option<TaskStatus>, StatusError>> + Send;
}

/// The status tables in DynamoDB, in the function's own region.
#[derive(Debug, Clone)]
pub struct DynamoStatus {
    client: Client,
}

impl DynamoStatus {
    pub fn new(client: Client) -> Self {
        DynamoStatus { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The attributes of a new task's item.
pub fn task_item(
    task_id: &str,
    request: &Request,
    created_at: &str,
    notes: &[String],
) -> HashMap<String, AttributeValue> {
    let mut item: HashMap<String, AttributeValue> = [
        ("task-id", s(task_id)),
        ("action", s(request.action.as_str())),
        ("total-segments", n(request.total_segments)),
        ("completed-segments", n(0)),
        ("failed-segments", n(0)),
        ("table-region", s(&request.table_region)),
        ("table-name", s(&request.table_name)),
        ("bucket-region", s(&request.bucket_region)),
        ("bucket-name", s(&request.bucket_name)),
        ("bucket-prefix", s(&request.bucket_prefix)),
        ("created-at", s(created_at)),
        ("items", n(0)),
        ("bytes", n(0)),
        ("segment-errors", AttributeValue::M(HashMap::new())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (flag, on) in [
        ("allow-non-empty-table", request.allow_non_empty_table),
        ("allow-incomplete-backup", request.allow_incomplete_backup),
    ] {
        if on {
            item.insert(flag.to_owned(), AttributeValue::Bool(true));
        }
    }
    if !notes.is_empty() {
        item.insert(
            "notes".to_owned(),
            AttributeValue::L(notes.iter().map(s).collect()),
        );
    }
    item
}

fn status_error<E, R>(table: &str, e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> StatusError
where
    E: std::error::Error
        + Send
        + Sync
        + 'static
        + aws_smithy_types::error::metadata::ProvideErrorMetadata,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::SdkError;
    let retryable = match e {
        SdkError::ServiceError(se) => matches!(
            se.err().code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "LimitExceededException"
                    | "TransactionConflictException"
            )
        ),
        // Timeouts, dispatch and response failures: the call may not have happened.
        _ => true,
    };
    StatusError {
        table: table.to_owned(),
        message: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
        retryable,
    }
}

/// `Ok(true)` when a conditional write happened, `Ok(false)` when its condition refused it.
fn conditional<T, E>(
    table: &str,
    out: Result<
        T,
        aws_sdk_dynamodb::error::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    >,
) -> Result<bool, StatusError>
where
    E: std::error::Error
        + Send
        + Sync
        + 'static
        + ConditionFailed
        + aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    match out {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(ConditionFailed::condition_failed) =>
        {
            Ok(false)
        }
        Err(e) => Err(status_error(table, &e)),
    }
}

/// The service errors of the conditional writes above.
trait ConditionFailed {
    fn condition_failed(&self) -> bool;
}

impl ConditionFailed for aws_sdk_dynamodb::operation::put_item::PutItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionFailed for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl StatusStore for DynamoStatus {
    async fn create_task(
        &self,
        table: &str,
        task_id: &str,
        request: &Request,
        created_at: &str,
        notes: &[String],
    ) -> Result<bool, StatusError> {
        let out = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(task_item(task_id, request, created_at, notes)))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", "task-id")
            .send()
            .await;
        conditional(table, out)
    }

    async fn end_segment(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
        end: &SegmentEnd,
    ) -> Result<Count, StatusError> {
        let name = segment.to_string();
        let mut update = self
            .client
            .update_item()
            .table_name(table)
            .key("task-id", s(task_id))
            .condition_expression(
                "attribute_exists(#id) AND NOT contains(#done, :seg) AND NOT contains(#failed, :seg)",
            )
            .expression_attribute_names("#id", "task-id")
            .expression_attribute_names("#done", "completed")
            .expression_attribute_names("#failed", "failed")
            .expression_attribute_values(":seg", s(&name))
            .expression_attribute_values(":set", AttributeValue::Ss(vec![name.clone()]))
            .expression_attribute_values(":one", n(1));
        update = match end {
            SegmentEnd::Completed { items, bytes } => update
                .update_expression(
                    "ADD #done :set, #count :one, #items :items, #bytes :bytes SET #updated = :now",
                )
                .expression_attribute_names("#count", "completed-segments")
                .expression_attribute_names("#items", "items")
                .expression_attribute_names("#bytes", "bytes")
                .expression_attribute_values(":items", n(items))
                .expression_attribute_values(":bytes", n(bytes)),
            SegmentEnd::Failed { reason } => update
                .update_expression(
                    "ADD #failed :set, #count :one SET #errs.#segname = :reason, #updated = :now",
                )
                .expression_attribute_names("#count", "failed-segments")
                .expression_attribute_names("#errs", "segment-errors")
                .expression_attribute_names("#segname", name.clone())
                .expression_attribute_values(":reason", s(truncate(reason))),
        };
        let out = update
            .expression_attribute_names("#updated", "updated-at")
            .expression_attribute_values(":now", s(now_rfc3339()))
            .send()
            .await;
        if conditional(table, out)? {
            return Ok(Count::Counted);
        }
        // Refused: counted before, or no such task here at all (a message sent to the wrong
        // deployment, a status item deleted by hand). The second must not pass for the first.
        Ok(match self.read_task(table, task_id).await? {
            Some(_) => Count::AlreadyCounted,
            None => Count::NoTask,
        })
    }

    async fn note_segment_error(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
        reason: &str,
    ) -> Result<(), StatusError> {
        self.client
            .update_item()
            .table_name(table)
            .key("task-id", s(task_id))
            .condition_expression("attribute_exists(#id)")
            .update_expression("SET #errs.#segname = :reason")
            .expression_attribute_names("#id", "task-id")
            .expression_attribute_names("#errs", "segment-errors")
            .expression_attribute_names("#segname", segment.to_string())
            .expression_attribute_values(":reason", s(truncate(reason)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| status_error(table, &e))
    }

    async fn read_task(
        &self,
        table: &str,
        task_id: &str,
    ) -> Result<Option<TaskStatus>, StatusError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key("task-id", s(task_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| status_error(table, &e))?;
        Ok(out.item.map(|item| task_status(&item)))
    }
}

/// The counters of a status item.
pub fn task_status(item: &HashMap<String, AttributeValue>) -> TaskStatus {
    let num = |k: &str| match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
        _ => 0,
    };
    let errors = match item.get("segment-errors") {
        Some(AttributeValue::M(m)) => m
            .iter()
            .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
            .collect(),
        _ => HashMap::new(),
    };
    let failed_names = match item.get("failed") {
        Some(AttributeValue::Ss(names)) => names.iter().cloned().collect(),
        _ => BTreeSet::new(),
    };
    let notes = match item.get("notes") {
        Some(AttributeValue::L(notes)) => notes
            .iter()
            .filter_map(|n| n.as_s().ok().cloned())
            .collect(),
        _ => Vec::new(),
    };
    TaskStatus {
        total: num("total-segments"),
        completed: num("completed-segments"),
        failed: num("failed-segments"),
        items: num("items"),
        bytes: num("bytes"),
        errors,
        failed_names,
        notes,
    }
}

/// A reason as stored: a status item stays far under DynamoDB's 400 KB with a thousand
/// failed segments.
pub fn truncate(reason: &str) -> String {
    const MAX: usize = 300;
    match reason.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &reason[..i]),
        None => reason.to_owned(),
    }
}

/// The current time as RFC 3339 (UTC, seconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_follow_the_seed() {
        let t = TaskStatus {
            total: 4,
            completed: 3,
            failed: 1,
            ..TaskStatus::default()
        };
        assert!(t.is_done() && !t.succeeded() && t.failed());
        let t = TaskStatus {
            total: 4,
            completed: 4,
            ..TaskStatus::default()
        };
        assert!(t.is_done() && t.succeeded() && !t.failed());
        let t = TaskStatus {
            total: 4,
            completed: 2,
            ..TaskStatus::default()
        };
        assert!(!t.is_done());
    }

    #[test]
    fn stored_reasons_are_cut_at_300_characters() {
        assert_eq!(truncate("short"), "short");
        let long = "é".repeat(400);
        let cut = truncate(&long);
        assert_eq!(cut.chars().count(), 301);
        assert!(cut.ends_with('…'));
    }
}
