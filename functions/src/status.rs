//! The status tables: one item per task, and one per segment of a task, each segment
//! counted exactly once (docs/status.md). [`StatusStore`] is the seam the handlers call;
//! [`DynamoStatus`] is the real one, and `crate::mem` (feature `mem`) holds an in-memory one
//! for unit tests.
//!
//! A segment is counted by one transaction: the segment's item gets its `ended` outcome on
//! condition it has none, and the task's counters move in the same write. However often and
//! in whatever order messages arrive, a segment is counted once, and the task item stays the
//! same size for a million segments as for one.

use std::collections::HashMap;
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
    /// There is no such task in this table, or it has no such segment: the message is not
    /// the task's.
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
    /// The reasons of the first failed segments ([`ERROR_SAMPLE`] of them at most), by
    /// segment name (`0x5`); each segment's own item holds its last error.
    pub errors: HashMap<String, String>,
    /// What the request function noted about the task (an unverified or incomplete source).
    pub notes: Vec<String>,
    /// When a cancel was recorded (docs/request.md#cancel).
    pub cancelled_at: Option<String>,
    /// Segments whose first message is sent, and segments claimed for sending
    /// (docs/status.md#fan-out): `fanned_out <= fanning_out <= total`.
    pub fanned_out: u64,
    pub fanning_out: u64,
    /// Who sent the request (its SQS `SenderId`), when known.
    pub requested_by: Option<String>,
    /// The request the task runs, as recorded; `None` when the item does not hold one this
    /// code can read.
    pub request: Option<Request>,
    /// When the request was accepted, and when a segment was last counted (RFC 3339).
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
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

/// Whether a run of a segment may go on writing (docs/protocol.md#gates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateState {
    Open,
    /// The task is cancelled: the segment is to be counted failed, `cancelled`.
    Cancelled,
    /// The segment is counted already: another run finished it.
    Ended,
    /// No such task in this table.
    NoTask,
}

/// What recording a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// This call recorded it.
    Recorded,
    /// This very cancel request was recorded before (a redelivery).
    Redelivered,
    /// Another cancel request came first.
    AlreadyCancelled,
    NoTask,
}

/// The reason an unfinished segment of a cancelled task is counted failed with.
pub const CANCELLED: &str = "cancelled";

/// How many failed segments' reasons the task item keeps (the segment items keep all).
pub const ERROR_SAMPLE: u64 = 100;

/// The status tables, as the handlers use them. `table` is a status table's name.
pub trait StatusStore: Send + Sync + 'static {
    /// Records a new task; a redelivered request finds it there and changes nothing.
    /// Returns whether the item was created now. `requested_by` is the request's SQS
    /// `SenderId` (empty when unknown).
    fn create_task(
        &self,
        table: &str,
        task_id: &str,
        request: &Request,
        created_at: &str,
        requested_by: &str,
        notes: &[String],
    ) -> impl Future<Output = Result<bool, StatusError>> + Send;

    /// Records that the request `task_id` was rejected, and why, in the rejection's own
    /// item `<task-id>#rejected` (docs/status.md#rejection-items), where `solace … --wait`
    /// finds it with one read. An item already there is left as it is.
    fn record_rejection(
        &self,
        table: &str,
        task_id: &str,
        reason: &str,
        rejected_at: &str,
    ) -> impl Future<Output = Result<(), StatusError>> + Send;

    /// The reason the request `task_id` was rejected, if it was.
    fn rejection(
        &self,
        table: &str,
        task_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StatusError>> + Send;

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

    /// The last error recorded for a segment, from its own item.
    fn segment_error(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
    ) -> impl Future<Output = Result<Option<String>, StatusError>> + Send;

    /// A task's status (strongly consistent); `None` if there is no such task.
    fn read_task(
        &self,
        table: &str,
        task_id: &str,
    ) -> impl Future<Output = Result<Option<TaskStatus>, StatusError>> + Send;

    /// Whether a run of `segment` may write its next step (strongly consistent).
    fn gate(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
    ) -> impl Future<Output = Result<GateState, StatusError>> + Send;

    /// Adds `note` to the task's `notes` unless it is there already (a redelivery adds it
    /// once). A task that does not exist is left alone.
    fn add_note(
        &self,
        table: &str,
        task_id: &str,
        note: &str,
    ) -> impl Future<Output = Result<(), StatusError>> + Send;

    /// Records a cancel of `task_id` by the cancel request `by`.
    fn cancel_task(
        &self,
        table: &str,
        task_id: &str,
        by: &str,
    ) -> impl Future<Output = Result<CancelOutcome, StatusError>> + Send;

    /// Claims segments `from..to` for sending, on condition that every segment before `from`
    /// is sent and none after is claimed. `Ok(false)`: the cursor is elsewhere.
    fn claim_fan_out(
        &self,
        table: &str,
        task_id: &str,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<bool, StatusError>> + Send;

    /// Records segments `from..to`, claimed, as sent.
    fn confirm_fan_out(
        &self,
        table: &str,
        task_id: &str,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<bool, StatusError>> + Send;

    /// A cancelled task's segments `from..total`, never sent, counted failed at once.
    fn fail_unsent(
        &self,
        table: &str,
        task_id: &str,
        from: u64,
        total: u64,
    ) -> impl Future<Output = Result<bool, StatusError>> + Send;
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

/// Which of a segment message's task fields differ from its task's (docs/messages.md#handling-a-segment-message),
/// by request field name, and `segment` when it is not below `total-segments`. Empty: the
/// message is the task's.
pub fn mismatches(task: &TaskStatus, request: &Request, segment: u32) -> Vec<&'static str> {
    let Some(recorded) = &task.request else {
        return vec!["task"];
    };
    let mut differ = Vec::new();
    for (field, same) in [
        ("action", recorded.action == request.action),
        (
            "total-segments",
            recorded.total_segments == request.total_segments,
        ),
        (
            "table-region",
            recorded.table_region == request.table_region,
        ),
        ("table-name", recorded.table_name == request.table_name),
        ("method", recorded.by_export() == request.by_export()),
        (
            "to-bucket-name",
            recorded.to_bucket_name == request.to_bucket_name,
        ),
        (
            "to-bucket-prefix",
            recorded.to_bucket_prefix == request.to_bucket_prefix,
        ),
        (
            "bucket-region",
            recorded.bucket_region == request.bucket_region,
        ),
        ("bucket-name", recorded.bucket_name == request.bucket_name),
        (
            "bucket-prefix",
            recorded.bucket_prefix == request.bucket_prefix,
        ),
        (
            "allow-non-empty-table",
            recorded.allow_non_empty_table == request.allow_non_empty_table,
        ),
        (
            "allow-incomplete-backup",
            recorded.allow_incomplete_backup == request.allow_incomplete_backup,
        ),
        (
            "retention-mode",
            recorded.retention_mode == request.retention_mode,
        ),
        (
            "retention-days",
            recorded.retention_days == request.retention_days,
        ),
        ("segment", segment < recorded.total_segments),
    ] {
        if !same {
            differ.push(field);
        }
    }
    differ
}

/// The attributes of a new task's item.
pub fn task_item(
    task_id: &str,
    request: &Request,
    created_at: &str,
    requested_by: &str,
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
        ("fanned-out", n(0)),
        ("fanning-out", n(0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (flag, on) in [
        ("allow-non-empty-table", request.allow_non_empty_table),
        ("allow-incomplete-backup", request.allow_incomplete_backup),
        ("create-table", request.create_table),
    ] {
        if on {
            item.insert(flag.to_owned(), AttributeValue::Bool(true));
        }
    }
    if let Some(m) = request.method {
        item.insert("method".to_owned(), s(m.as_str()));
    }
    for (field, value) in [
        ("to-bucket-name", &request.to_bucket_name),
        ("to-bucket-prefix", &request.to_bucket_prefix),
    ] {
        if let Some(v) = value {
            item.insert(field.to_owned(), s(v));
        }
    }
    if let Some(r) = request.retention() {
        item.insert("retention-mode".to_owned(), s(r.mode.as_str()));
        item.insert("retention-days".to_owned(), n(r.days));
    }
    if !requested_by.is_empty() {
        item.insert("requested-by".to_owned(), s(requested_by));
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
                    | "TransactionInProgressException"
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
        requested_by: &str,
        notes: &[String],
    ) -> Result<bool, StatusError> {
        let out = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(task_item(
                task_id,
                request,
                created_at,
                requested_by,
                notes,
            )))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", "task-id")
            .send()
            .await;
        conditional(table, out)
    }

    async fn record_rejection(
        &self,
        table: &str,
        task_id: &str,
        reason: &str,
        rejected_at: &str,
    ) -> Result<(), StatusError> {
        let out = self
            .client
            .put_item()
            .table_name(table)
            .item("task-id", s(rejection_item_key(task_id)))
            .item("kind", s("rejection"))
            .item("reason", s(truncate(reason)))
            .item("rejected-at", s(rejected_at))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", "task-id")
            .send()
            .await;
        conditional(table, out).map(|_| ())
    }

    async fn rejection(&self, table: &str, task_id: &str) -> Result<Option<String>, StatusError> {
        let item = self.item(table, rejection_item_key(task_id)).await?;
        Ok(item.and_then(|i| i.get("reason").and_then(|r| r.as_s().ok()).cloned()))
    }

    async fn end_segment(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
        end: &SegmentEnd,
    ) -> Result<Count, StatusError> {
        use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
        let name = segment.to_string();
        let now = now_rfc3339();
        let build = |e: aws_sdk_dynamodb::error::BuildError| StatusError {
            table: table.to_owned(),
            message: e.to_string(),
            retryable: false,
        };
        let mut mark = Update::builder()
            .table_name(table)
            .key("task-id", s(segment_item_key(task_id, segment)))
            .condition_expression("attribute_not_exists(#ended)")
            .expression_attribute_names("#ended", "ended")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#at", "ended-at")
            .expression_attribute_values(":segment", s("segment"))
            .expression_attribute_values(":now", s(&now));
        let mut count = Update::builder()
            .table_name(table)
            .key("task-id", s(task_id))
            .condition_expression(
                "attribute_exists(#id) AND attribute_not_exists(#kind) AND #total > :segnum",
            )
            .expression_attribute_names("#id", "task-id")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#total", "total-segments")
            .expression_attribute_values(":segnum", n(segment.0))
            .expression_attribute_names("#updated", "updated-at")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", s(&now));
        match end {
            SegmentEnd::Completed { items, bytes } => {
                mark = mark
                    .update_expression(
                        "SET #ended = :end, #kind = :segment, #at = :now, #items = :items, #bytes = :bytes",
                    )
                    .expression_attribute_values(":end", s("completed"));
                count = count
                    .update_expression(
                        "ADD #count :one, #items :items, #bytes :bytes SET #updated = :now",
                    )
                    .expression_attribute_names("#count", "completed-segments");
                for update in [&mut mark, &mut count] {
                    *update = std::mem::take(update)
                        .expression_attribute_names("#items", "items")
                        .expression_attribute_names("#bytes", "bytes")
                        .expression_attribute_values(":items", n(items))
                        .expression_attribute_values(":bytes", n(bytes));
                }
            }
            SegmentEnd::Failed { reason } => {
                mark = mark
                    .update_expression(
                        "SET #ended = :end, #kind = :segment, #at = :now, #err = :reason",
                    )
                    .expression_attribute_names("#err", "error")
                    .expression_attribute_values(":end", s("failed"))
                    .expression_attribute_values(":reason", s(truncate(reason)));
                count = count
                    .update_expression("ADD #count :one SET #updated = :now")
                    .expression_attribute_names("#count", "failed-segments");
            }
        }
        let out = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .update(mark.build().map_err(build)?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .update(count.build().map_err(build)?)
                    .build(),
            )
            .send()
            .await;
        match out {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_transaction_canceled_exception()) =>
            {
                // Refused: counted before, or no such task here at all (a message sent to
                // the wrong deployment, a status item deleted by hand), or a conflict with
                // another transaction on these items, which a retry settles.
                if self
                    .segment_item(table, task_id, segment)
                    .await?
                    .contains_key("ended")
                {
                    return Ok(Count::AlreadyCounted);
                }
                // A segment the task does not have is not the task's either.
                match self.read_task(table, task_id).await? {
                    None => return Ok(Count::NoTask),
                    Some(task) if u64::from(segment.0) >= task.total => return Ok(Count::NoTask),
                    Some(_) => {}
                }
                return Err(StatusError {
                    table: table.to_owned(),
                    message: format!(
                        "counting segment {name} conflicted with another write: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                    ),
                    retryable: true,
                });
            }
            Err(e) => return Err(status_error(table, &e)),
        }
        if let SegmentEnd::Failed { reason } = end {
            // The task item keeps the reasons of the first failed segments only, so that it
            // stays far under DynamoDB's 400 KB however many fail; the count is exact.
            let sampled = self
                .client
                .update_item()
                .table_name(table)
                .key("task-id", s(task_id))
                .condition_expression(
                    "attribute_exists(#id) AND (attribute_not_exists(#sampled) OR #sampled < :max)",
                )
                .update_expression("SET #errs.#segname = :reason ADD #sampled :one")
                .expression_attribute_names("#id", "task-id")
                .expression_attribute_names("#errs", "segment-errors")
                .expression_attribute_names("#segname", name.clone())
                .expression_attribute_names("#sampled", "sampled-errors")
                .expression_attribute_values(":reason", s(truncate(reason)))
                .expression_attribute_values(":max", n(ERROR_SAMPLE))
                .expression_attribute_values(":one", n(1))
                .send()
                .await;
            conditional(table, sampled)?;
        }
        Ok(Count::Counted)
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
            .key("task-id", s(segment_item_key(task_id, segment)))
            .update_expression("SET #err = :reason, #kind = :segment")
            .expression_attribute_names("#err", "error")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":reason", s(truncate(reason)))
            .expression_attribute_values(":segment", s("segment"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| status_error(table, &e))
    }

    async fn segment_error(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
    ) -> Result<Option<String>, StatusError> {
        let item = self.segment_item(table, task_id, segment).await?;
        Ok(item.get("error").and_then(|v| v.as_s().ok()).cloned())
    }

    async fn read_task(
        &self,
        table: &str,
        task_id: &str,
    ) -> Result<Option<TaskStatus>, StatusError> {
        let item = self.item(table, task_id.to_owned()).await?;
        // A segment's or a rejection's item is not a task, whatever its key.
        Ok(item
            .filter(|item| !item.contains_key("kind"))
            .map(|item| task_status(&item)))
    }

    async fn gate(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
    ) -> Result<GateState, StatusError> {
        let Some(task) = self.read_task(table, task_id).await? else {
            return Ok(GateState::NoTask);
        };
        if task.cancelled_at.is_some() {
            return Ok(GateState::Cancelled);
        }
        if self
            .segment_item(table, task_id, segment)
            .await?
            .contains_key("ended")
        {
            return Ok(GateState::Ended);
        }
        Ok(GateState::Open)
    }

    async fn add_note(&self, table: &str, task_id: &str, note: &str) -> Result<(), StatusError> {
        let out = self
            .client
            .update_item()
            .table_name(table)
            .key("task-id", s(task_id))
            .condition_expression(
                "attribute_exists(#id) AND attribute_not_exists(#kind) AND (attribute_not_exists(#notes) OR NOT contains(#notes, :note))",
            )
            .update_expression("SET #notes = list_append(if_not_exists(#notes, :none), :one)")
            .expression_attribute_names("#id", "task-id")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#notes", "notes")
            .expression_attribute_values(":note", s(note))
            .expression_attribute_values(":one", AttributeValue::L(vec![s(note)]))
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            // There already, or no such task.
            Err(e)
                if e.as_service_error()
                    .is_some_and(ConditionFailed::condition_failed) =>
            {
                Ok(())
            }
            Err(e) => Err(status_error(table, &e)),
        }
    }

    async fn cancel_task(
        &self,
        table: &str,
        task_id: &str,
        by: &str,
    ) -> Result<CancelOutcome, StatusError> {
        let out = self
            .client
            .update_item()
            .table_name(table)
            .key("task-id", s(task_id))
            .condition_expression(
                "attribute_exists(#id) AND attribute_not_exists(#kind) AND (attribute_not_exists(#at) OR #by = :by)",
            )
            .update_expression("SET #at = if_not_exists(#at, :now), #by = :by")
            .expression_attribute_names("#id", "task-id")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#at", "cancelled-at")
            .expression_attribute_names("#by", "cancelled-by")
            .expression_attribute_values(":now", s(now_rfc3339()))
            .expression_attribute_values(":by", s(by))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .send()
            .await;
        match out {
            Ok(old) => Ok(
                if old
                    .attributes
                    .is_some_and(|a| a.contains_key("cancelled-at"))
                {
                    CancelOutcome::Redelivered
                } else {
                    CancelOutcome::Recorded
                },
            ),
            Err(e)
                if e.as_service_error()
                    .is_some_and(ConditionFailed::condition_failed) =>
            {
                Ok(match self.read_task(table, task_id).await? {
                    None => CancelOutcome::NoTask,
                    Some(_) => CancelOutcome::AlreadyCancelled,
                })
            }
            Err(e) => Err(status_error(table, &e)),
        }
    }

    async fn claim_fan_out(
        &self,
        table: &str,
        task_id: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StatusError> {
        self.cursor(
            table,
            task_id,
            "#sent = :from AND #claimed = :from",
            "SET #claimed = :to",
            from,
            to,
            None,
        )
        .await
    }

    async fn confirm_fan_out(
        &self,
        table: &str,
        task_id: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StatusError> {
        self.cursor(
            table,
            task_id,
            "#sent = :from AND #claimed = :to",
            "SET #sent = :to",
            from,
            to,
            None,
        )
        .await
    }

    async fn fail_unsent(
        &self,
        table: &str,
        task_id: &str,
        from: u64,
        total: u64,
    ) -> Result<bool, StatusError> {
        self.cursor(
            table,
            task_id,
            "#sent = :from AND #claimed = :from",
            "SET #sent = :to, #claimed = :to ADD #failed :unsent",
            from,
            total,
            Some(total - from),
        )
        .await
    }
}

impl DynamoStatus {
    /// A segment's own item (empty when it has none yet), strongly consistent.
    async fn segment_item(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
    ) -> Result<HashMap<String, AttributeValue>, StatusError> {
        let item = self.item(table, segment_item_key(task_id, segment)).await?;
        Ok(item.unwrap_or_default())
    }

    /// The item under `key`, read consistently.
    async fn item(
        &self,
        table: &str,
        key: String,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StatusError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key("task-id", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| status_error(table, &e))?;
        Ok(out.item)
    }

    /// One conditional move of the fan-out cursor (`#sent`, `#claimed`).
    #[allow(clippy::too_many_arguments)]
    async fn cursor(
        &self,
        table: &str,
        task_id: &str,
        condition: &str,
        update: &str,
        from: u64,
        to: u64,
        unsent: Option<u64>,
    ) -> Result<bool, StatusError> {
        let mut call = self
            .client
            .update_item()
            .table_name(table)
            .key("task-id", s(task_id))
            .condition_expression(format!(
                "attribute_exists(#id) AND attribute_not_exists(#kind) AND {condition}"
            ))
            .update_expression(update)
            .expression_attribute_names("#id", "task-id")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#sent", "fanned-out")
            .expression_attribute_names("#claimed", "fanning-out")
            .expression_attribute_values(":from", n(from))
            .expression_attribute_values(":to", n(to));
        if let Some(unsent) = unsent {
            call = call
                .expression_attribute_names("#failed", "failed-segments")
                .expression_attribute_values(":unsent", n(unsent));
        }
        conditional(table, call.send().await)
    }
}

/// The key of `task_id`'s `segment`'s own item, beside the task's: `<task-id>#0x<segment>`.
/// It holds how the segment ended, its last error, and its backup chain's fence.
pub fn segment_item_key(task_id: &str, segment: SegmentId) -> String {
    format!("{task_id}#{segment}")
}

/// The key of the item that says request `task_id` was rejected: `<task-id>#rejected`.
pub fn rejection_item_key(task_id: &str) -> String {
    format!("{task_id}#rejected")
}

/// Whether `id` can be a task id (kept beside the messages that carry one).
pub use crate::message::check_task_id;

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
    let notes = match item.get("notes") {
        Some(AttributeValue::L(notes)) => notes
            .iter()
            .filter_map(|n| n.as_s().ok().cloned())
            .collect(),
        _ => Vec::new(),
    };
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let flag = |k: &str| matches!(item.get(k), Some(AttributeValue::Bool(true)));
    let request = (|| {
        Some(Request {
            action: serde_json::from_value(text("action")?.into()).ok()?,
            total_segments: u32::try_from(num("total-segments")).ok()?,
            table_region: text("table-region").unwrap_or_default(),
            table_name: text("table-name").unwrap_or_default(),
            bucket_region: text("bucket-region")?,
            bucket_name: text("bucket-name")?,
            bucket_prefix: text("bucket-prefix")?,
            allow_non_empty_table: flag("allow-non-empty-table"),
            allow_incomplete_backup: flag("allow-incomplete-backup"),
            retention_mode: match text("retention-mode") {
                Some(m) => Some(serde_json::from_value(m.into()).ok()?),
                None => None,
            },
            retention_days: match item.get("retention-days") {
                Some(AttributeValue::N(d)) => Some(d.parse().ok()?),
                _ => None,
            },
            // Admission options: only `create-table` is kept on the item, as a flag.
            create_table: flag("create-table"),
            create_table_billing_mode: None,
            create_table_read_capacity: None,
            create_table_write_capacity: None,
            create_table_skip_indexes: false,
            method: match text("method") {
                Some(m) => Some(serde_json::from_value(m.into()).ok()?),
                None => None,
            },
            to_bucket_name: text("to-bucket-name"),
            to_bucket_prefix: text("to-bucket-prefix"),
        })
    })();
    TaskStatus {
        requested_by: text("requested-by"),
        request,
        created_at: text("created-at"),
        updated_at: text("updated-at"),
        cancelled_at: text("cancelled-at"),
        fanned_out: num("fanned-out"),
        fanning_out: num("fanning-out"),
        total: num("total-segments"),
        completed: num("completed-segments"),
        failed: num("failed-segments"),
        items: num("items"),
        bytes: num("bytes"),
        errors,
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
