//! The handlers, driven by SQS event fixtures (`tests/fixtures/*.json`) against in-memory
//! services: what each message does to the status tables, the queues and the bucket, with
//! no emulator. The emulator system tests (`solace-cli`'s `tests/system.rs`) stay the proof
//! against real wire protocols.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::AttributeValue;
use solace_codec::SegmentId;
use solace_functions::Function;
use solace_functions::allow::{BucketRule, TableRule};
use solace_functions::config::Config;
use solace_functions::context::{Context, Services};
use solace_functions::dispatch::dispatch;
use solace_functions::mem::{MemServices, PutFaults};
use solace_functions::message::{Checkpoint, SegmentMessage};
use solace_functions::status::{Count, SegmentEnd, StatusStore};
use solace_pipeline::sim::{MemObjects, MemTable};
use solace_pipeline::{BackupConfig, RestoreConfig, RetryPolicy};
use tokio::time::Instant;

const REQUEST_QUEUE: &str = "mem://request-queue";
const BACKUP_QUEUE: &str = "mem://backup-queue";
const RESTORE_QUEUE: &str = "mem://restore-queue";
const REJECTED_QUEUE: &str = "mem://request-rejected";
const BACKUP_TASK: &str = "1f0c7a52-0000-4000-8000-000000000001";
const RESTORE_TASK: &str = "1f0c7a52-0000-4000-8000-000000000002";
const PREFIX: &str = "orders/2026-12-01/";

fn fixture(name: &str) -> SqsEvent {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn config() -> Config {
    Config {
        request_queue_url: REQUEST_QUEUE.into(),
        backup_queue_url: BACKUP_QUEUE.into(),
        restore_queue_url: RESTORE_QUEUE.into(),
        rejected_queue_url: REJECTED_QUEUE.into(),
        batch_bytes: 2 << 10,
        deadline_margin: Duration::from_millis(100),
        allowed_tables: Some(vec![TableRule {
            region: "us-east-1".into(),
            name: "orders*".into(),
        }]),
        allowed_buckets: Some(vec![BucketRule {
            name: "backups".into(),
            prefix: "orders/".into(),
        }]),
        ..Config::from_lookup(|_| None).expect("defaults")
    }
}

/// Fast retries: a persistent transient error exhausts them in milliseconds.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        max_attempts: 3,
        ..RetryPolicy::default()
    }
}

fn context(services: MemServices) -> Arc<Context<MemServices>> {
    let config = config();
    let base = Context::new(config.clone(), MemServices::default());
    Arc::new(Context {
        progress: None,
        config,
        backup: BackupConfig {
            retry: quick_retries(),
            ..base.backup.clone()
        },
        restore: RestoreConfig {
            retry: quick_retries(),
            ..base.restore.clone()
        },
        services,
    })
}

/// A source table `orders` (us-east-1) of `n` items, small scan pages so a segment spans
/// several batches.
fn services_with_items(n: u64) -> MemServices {
    services_with_slow_items(n, Duration::ZERO)
}

fn services_with_slow_items(n: u64, scan_latency: Duration) -> MemServices {
    let services = MemServices::default();
    let table = MemTable::new("pk", None)
        .with_page_bytes(1 << 10)
        .with_latency(scan_latency, Duration::ZERO);
    for i in 0..n {
        let mut item = std::collections::HashMap::new();
        item.insert("pk".to_owned(), AttributeValue::S(format!("item-{i:06}")));
        item.insert("n".to_owned(), AttributeValue::N(i.to_string()));
        item.insert("pad".to_owned(), AttributeValue::S("x".repeat(100)));
        table.insert(item);
    }
    services.add_table("us-east-1", "orders", table);
    services.add_bucket("eu-west-1", "backups", MemObjects::new());
    services
}

async fn invoke(
    ctx: &Arc<Context<MemServices>>,
    function: Function,
    event: SqsEvent,
) -> SqsBatchResponse {
    dispatch(
        ctx,
        function,
        event,
        Instant::now() + Duration::from_secs(60),
    )
    .await
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// An event of one record holding `message`.
fn event_of(message: &SegmentMessage) -> SqsEvent {
    let mut event = fixture("segment-backup.json");
    event.records[0].body = Some(message.to_json());
    event
}

fn messages(ctx: &Context<MemServices>, queue: &str) -> Vec<SegmentMessage> {
    ctx.services
        .queues
        .drain(queue)
        .iter()
        .map(|b| serde_json::from_str(b).expect("a segment message"))
        .collect()
}

/// Runs `first` and every continuation it leads to on `queue` until the segment ends;
/// returns the invocations it took.
async fn run_segment(
    ctx: &Arc<Context<MemServices>>,
    function: Function,
    queue: &str,
    first: SegmentMessage,
) -> usize {
    let mut pending = vec![first];
    let mut invocations = 0;
    while let Some(message) = pending.pop() {
        invocations += 1;
        assert!(invocations < 1000, "the segment never ends");
        let response = invoke(ctx, function, event_of(&message)).await;
        assert!(failed_ids(&response).is_empty(), "{response:?}");
        pending.extend(messages(ctx, queue));
    }
    invocations
}

async fn backed_up(n: u64) -> Arc<Context<MemServices>> {
    let ctx = context(services_with_items(n));
    let response = invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    assert!(failed_ids(&response).is_empty());
    for message in messages(&ctx, BACKUP_QUEUE) {
        run_segment(&ctx, Function::Backup, BACKUP_QUEUE, message).await;
    }
    ctx
}

#[tokio::test]
async fn a_backup_request_records_the_task_writes_the_manifest_and_fans_out_each_segment() {
    let ctx = context(services_with_items(10));
    let response = invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    assert!(failed_ids(&response).is_empty());
    let task = ctx
        .services
        .status
        .task("backup-table", BACKUP_TASK)
        .expect("task recorded");
    assert_eq!(task.status.total, 2);
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    assert!(
        bucket
            .objects
            .get_now(&format!("{PREFIX}solace-meta/manifest.json"))
            .is_some()
    );
    let sent = messages(&ctx, BACKUP_QUEUE);
    let mut segments: Vec<u32> = sent.iter().map(|m| m.segment).collect();
    segments.sort_unstable();
    assert_eq!(segments, [0, 1]);
    assert!(
        sent.iter()
            .all(|m| m.task_id == BACKUP_TASK && m.checkpoint.is_none())
    );
}

/// The in-memory table keeps no schema, as a table whose DescribeTable is denied: the backup
/// goes on, its schema record says what is missing, and so do the task's notes.
#[tokio::test]
async fn a_backup_whose_schema_cannot_be_read_records_why_and_still_completes() {
    let ctx = backed_up(10).await;
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    let body = bucket
        .objects
        .get_now(&format!("{PREFIX}solace-meta/schema.json"))
        .expect("a schema record");
    let record = solace_codec::schema::SchemaRecord::from_json(&body).expect("readable");
    assert_eq!(record.task_id, BACKUP_TASK);
    assert!(record.table.is_none());
    assert_eq!(
        record.not_captured.keys().collect::<Vec<_>>(),
        ["DescribeTable"]
    );
    let task = ctx
        .services
        .status
        .task("backup-table", BACKUP_TASK)
        .expect("task recorded");
    assert!(
        task.status
            .notes
            .iter()
            .any(|n| n.starts_with("schema: the table's schema was not captured (DescribeTable:")),
        "{:?}",
        task.status.notes
    );
    assert_eq!(task.status.completed, 2, "the backup completes");
    assert!(bucket.objects.get_now(&completion_key()).is_some());
}

#[tokio::test]
async fn a_redelivered_request_creates_no_second_task_and_sends_no_segment_twice() {
    let ctx = context(services_with_items(10));
    invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    assert_eq!(ctx.services.status.calls("CreateTask"), 2);
    let task = ctx.services.status.task("backup-table", BACKUP_TASK);
    assert_eq!(task.map(|t| t.status.total), Some(2));
    // The fan-out cursor says both are sent: the redelivery sends nothing.
    assert_eq!(messages(&ctx, BACKUP_QUEUE).len(), 2);
}

#[tokio::test]
async fn a_fan_out_cut_short_is_finished_by_the_redelivered_request() {
    let ctx = context(services_with_items(10));
    // Every send fails: the request is handed back with its segments claimed, unsent.
    ctx.services.queues.fail_next(BACKUP_QUEUE, u32::MAX);
    let event = fixture("request-backup.json");
    let id = event.records[0].message_id.clone().expect("id");
    let response = invoke(&ctx, Function::Request, event).await;
    assert_eq!(failed_ids(&response), [id]);
    assert_eq!(ctx.services.queues.len(BACKUP_QUEUE), 0);
    let task = ctx.services.status.task("backup-table", BACKUP_TASK);
    let task = task.expect("task");
    assert_eq!((task.status.fanned_out, task.status.fanning_out), (0, 2));

    ctx.services.queues.fail_next(BACKUP_QUEUE, 0);
    let response = invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    assert!(failed_ids(&response).is_empty());
    let mut segments: Vec<u32> = messages(&ctx, BACKUP_QUEUE)
        .iter()
        .map(|m| m.segment)
        .collect();
    segments.sort_unstable();
    assert_eq!(segments, [0, 1], "each segment's first message once");
}

/// A request event of `body`, with message id `id`.
fn request_event(id: &str, body: serde_json::Value) -> SqsEvent {
    let mut event = fixture("request-backup.json");
    event.records[0].message_id = Some(id.to_owned());
    event.records[0].body = Some(body.to_string());
    event
}

#[tokio::test]
async fn a_million_segment_task_fans_out_across_invocations_and_counts_exactly() {
    const SEGMENTS: u32 = 1_000_000;
    let ctx = context(services_with_items(1));
    let ctx = Arc::new(Context {
        progress: None,
        config: Config {
            max_segments: SEGMENTS,
            fan_out_per_invocation: 300_000,
            ..ctx.config.clone()
        },
        backup: ctx.backup.clone(),
        restore: ctx.restore.clone(),
        services: Arc::try_unwrap(ctx).map(|c| c.services).expect("one owner"),
    });
    let mut body: serde_json::Value = serde_json::from_str(
        fixture("request-backup.json").records[0]
            .body
            .as_deref()
            .unwrap_or_default(),
    )
    .expect("json");
    body["total-segments"] = SEGMENTS.into();
    let mut pending = vec![request_event(BACKUP_TASK, body)];
    let mut invocations = 0;
    let mut first = vec![0u8; SEGMENTS as usize];
    while let Some(event) = pending.pop() {
        invocations += 1;
        assert!(invocations <= 10, "the fan-out never ends");
        let response = invoke(&ctx, Function::Request, event).await;
        assert!(failed_ids(&response).is_empty(), "{response:?}");
        // Only what this test checks is read from each of the million bodies.
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "kebab-case")]
        struct First {
            task_id: String,
            segment: u32,
            checkpoint: Option<serde::de::IgnoredAny>,
        }
        for body in ctx.services.queues.drain(BACKUP_QUEUE) {
            let m: First = serde_json::from_str(&body).expect("a segment message");
            assert!(m.checkpoint.is_none() && m.task_id == BACKUP_TASK);
            first[m.segment as usize] += 1;
        }
        for body in ctx.services.queues.drain(REQUEST_QUEUE) {
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            assert_eq!(v["action"], "fan-out");
            pending.push(request_event("a-continuation", v));
        }
    }
    assert_eq!(invocations, 4, "300,000 segments an invocation");
    assert!(
        first.iter().all(|&n| n == 1),
        "every segment's first message sent exactly once"
    );

    // Every segment counted twice (a duplicate of each), a few failed: counted once each.
    let status = &ctx.services.status;
    let table = "backup-table";
    for round in 0..2 {
        for segment in 0..SEGMENTS {
            let end = if segment % 100_000 == 7 {
                SegmentEnd::Failed {
                    reason: format!("segment {segment} failed"),
                }
            } else {
                SegmentEnd::Completed { items: 2, bytes: 3 }
            };
            let count = status
                .end_segment(table, BACKUP_TASK, SegmentId(segment), &end)
                .await
                .expect("count");
            let want = if round == 0 {
                Count::Counted
            } else {
                Count::AlreadyCounted
            };
            assert_eq!(count, want, "segment {segment}, round {round}");
        }
    }
    let task = status.task(table, BACKUP_TASK).expect("task").status;
    assert_eq!(
        (task.total, task.completed, task.failed),
        (1_000_000, 999_990, 10)
    );
    assert_eq!((task.items, task.bytes), (2 * 999_990, 3 * 999_990));
    assert!(task.is_done() && task.failed());
    assert_eq!(task.errors.len(), 10);
}

/// A backup of `n` items whose segment 0 has written three batches and continues in the
/// returned message, segment 1 not run yet (its first message returned too).
async fn a_backup_under_way(n: u64) -> (Arc<Context<MemServices>>, SegmentMessage, SegmentMessage) {
    let ctx = context(services_with_items(n));
    invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    let mut first = messages(&ctx, BACKUP_QUEUE);
    first.sort_by_key(|m| m.segment);
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    bucket.set_faults(PutFaults {
        succeed: 3,
        fail: u64::MAX,
    });
    let response = invoke(&ctx, Function::Backup, event_of(&first[0])).await;
    assert!(failed_ids(&response).is_empty());
    bucket.set_faults(PutFaults::default());
    let next = messages(&ctx, BACKUP_QUEUE);
    assert_eq!(next.len(), 1, "a continuation");
    (ctx, next[0].clone(), first[1].clone())
}

fn cancel_event(id: &str, task: &str) -> SqsEvent {
    request_event(id, serde_json::json!({"action": "cancel", "task-id": task}))
}

#[tokio::test]
async fn a_cancel_mid_backup_stops_every_segment_and_writes_no_batch_after_it() {
    let (ctx, continuation, segment_1) = a_backup_under_way(80).await;
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    let before = bucket.objects.keys();
    let response = invoke(
        &ctx,
        Function::Request,
        cancel_event("cancel-1", BACKUP_TASK),
    )
    .await;
    assert!(failed_ids(&response).is_empty());
    assert!(rejections(&ctx).is_empty());
    // Redelivered: the same cancel, accepted again.
    invoke(
        &ctx,
        Function::Request,
        cancel_event("cancel-1", BACKUP_TASK),
    )
    .await;
    assert!(rejections(&ctx).is_empty());

    for message in [continuation, segment_1] {
        let response = invoke(&ctx, Function::Backup, event_of(&message)).await;
        assert!(failed_ids(&response).is_empty());
    }
    assert_eq!(ctx.services.queues.len(BACKUP_QUEUE), 0, "no continuation");
    let task = ctx
        .services
        .status
        .task("backup-table", BACKUP_TASK)
        .expect("task")
        .status;
    assert_eq!((task.completed, task.failed), (0, 2));
    assert!(task.is_done() && task.failed());
    assert_eq!(task.errors["0x0"], "cancelled");
    assert_eq!(task.errors["0x1"], "cancelled");
    // Nothing but the completion record was written after the cancel.
    let mut after = bucket.objects.keys();
    after.retain(|k| !before.contains(k));
    assert_eq!(after, [completion_key()]);
    let record: serde_json::Value =
        serde_json::from_slice(&bucket.objects.get_now(&completion_key()).expect("record"))
            .expect("json");
    assert_eq!(record["failed-segments"], 2);

    // A finished task cannot be cancelled; neither can one no deployment knows.
    invoke(
        &ctx,
        Function::Request,
        cancel_event("cancel-2", BACKUP_TASK),
    )
    .await;
    invoke(
        &ctx,
        Function::Request,
        cancel_event("cancel-3", "no-such-task"),
    )
    .await;
    invoke(&ctx, Function::Request, cancel_event("cancel-4", "a#0x1")).await;
    let reasons = rejections(&ctx);
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("cancelled already"), "{reasons:?}");
    assert!(reasons[1].contains("no such task"), "{reasons:?}");
    assert!(reasons[2].contains("is not a task id"), "{reasons:?}");
}

#[tokio::test]
async fn a_cancel_of_a_finished_task_is_rejected_with_the_reason() {
    let ctx = backed_up(20).await;
    invoke(
        &ctx,
        Function::Request,
        cancel_event("cancel-1", BACKUP_TASK),
    )
    .await;
    let reasons = rejections(&ctx);
    assert!(
        reasons.len() == 1 && reasons[0].contains("has finished"),
        "{reasons:?}"
    );
    let task = ctx.services.status.task("backup-table", BACKUP_TASK);
    assert!(task.is_some_and(|t| t.status.cancelled_at.is_none()));
}

#[tokio::test]
async fn a_cancel_mid_restore_stops_its_segments_and_writes_no_item_after_it() {
    let ctx = backed_up(60).await;
    invoke(&ctx, Function::Request, fixture("request-restore.json")).await;
    let mut first = messages(&ctx, RESTORE_QUEUE);
    first.sort_by_key(|m| m.segment);
    run_segment(&ctx, Function::Restore, RESTORE_QUEUE, first[0].clone()).await;
    let target = ctx.services.table("us-east-1", "orders-restored");
    let written = target.len();
    assert!(written > 0, "segment 0 restored");

    invoke(
        &ctx,
        Function::Request,
        cancel_event("cancel-1", RESTORE_TASK),
    )
    .await;
    assert!(rejections(&ctx).is_empty());
    // Segment 1 runs twice (a duplicate): counted failed once, writes nothing.
    for _ in 0..2 {
        let response = invoke(&ctx, Function::Restore, event_of(&first[1])).await;
        assert!(failed_ids(&response).is_empty());
    }
    assert_eq!(target.len(), written, "no item written after the cancel");
    let task = ctx
        .services
        .status
        .task("restore-table", RESTORE_TASK)
        .expect("task")
        .status;
    assert_eq!((task.completed, task.failed), (1, 1));
    assert_eq!(task.errors["0x1"], "cancelled");
    assert!(task.is_done());
}

#[tokio::test]
async fn a_late_duplicate_of_a_counted_restore_segment_writes_nothing() {
    let ctx = backed_up(60).await;
    invoke(&ctx, Function::Request, fixture("request-restore.json")).await;
    let first = messages(&ctx, RESTORE_QUEUE);
    for m in &first {
        run_segment(&ctx, Function::Restore, RESTORE_QUEUE, m.clone()).await;
    }
    let target = ctx.services.table("us-east-1", "orders-restored");
    // The application writes after the restore; a late duplicate must not overwrite it.
    let mut changed = target.items()[0].clone();
    changed.insert("n".to_owned(), AttributeValue::S("changed since".into()));
    target.insert(changed.clone());
    for m in &first {
        let response = invoke(&ctx, Function::Restore, event_of(m)).await;
        assert!(failed_ids(&response).is_empty());
    }
    assert_eq!(target.get(&changed), Some(changed));
    let task = ctx
        .services
        .status
        .task("restore-table", RESTORE_TASK)
        .expect("task")
        .status;
    assert_eq!((task.completed, task.failed), (2, 0));
}

#[tokio::test]
async fn malformed_requests_are_consumed_rejected_with_a_reason_and_fan_out_nothing() {
    let ctx = context(MemServices::default());
    let event = fixture("request-malformed.json");
    let count = event.records.len();
    let response = invoke(&ctx, Function::Request, event).await;
    assert!(
        failed_ids(&response).is_empty(),
        "every bad request is consumed"
    );
    let rejected = ctx.services.queues.drain(REJECTED_QUEUE);
    assert_eq!(rejected.len(), count);
    for record in &rejected {
        let record: serde_json::Value = serde_json::from_str(record).expect("JSON");
        let reason = record["reason"].as_str().expect("a reason");
        assert!(!reason.is_empty());
        assert!(record["task-id"].as_str().is_some_and(|id| !id.is_empty()));
    }
    assert_eq!(ctx.services.queues.len(BACKUP_QUEUE), 0);
    assert_eq!(ctx.services.status.calls("CreateTask"), 0);
}

#[tokio::test]
async fn a_rejection_leaves_its_reason_in_the_status_table_of_its_action() {
    use solace_functions::status::StatusStore;
    let ctx = context(MemServices::default());
    // A restore of a backup that is not there: refused by the request function's checks.
    let mut restore = restore_request(&[]);
    restore.records[0].message_id = Some("refused-restore".into());
    let mut backup = request_with("request-backup.json", &[("total-segments", 0.into())]);
    backup.records[0].message_id = Some("refused-backup".into());
    for event in [restore, backup] {
        let response = invoke(&ctx, Function::Request, event).await;
        assert!(failed_ids(&response).is_empty(), "consumed");
    }
    let status = &ctx.services.status;
    let restore_reason = status
        .rejection("restore-table", "refused-restore")
        .await
        .expect("read")
        .expect("the restore's rejection item");
    assert!(restore_reason.contains("no backup at"), "{restore_reason}");
    let backup_reason = status
        .rejection("backup-table", "refused-backup")
        .await
        .expect("read")
        .expect("the backup's rejection item");
    assert!(
        backup_reason.contains("total-segments must be"),
        "{backup_reason}"
    );
    assert_eq!(
        status
            .rejection("backup-table", "refused-restore")
            .await
            .expect("read"),
        None,
        "in its own action's table only"
    );
    assert_eq!(
        rejections(&ctx),
        vec![restore_reason, backup_reason],
        "the queue gets the same reasons"
    );
    assert!(
        status.task("restore-table", "refused-restore").is_none(),
        "no task"
    );
}

#[tokio::test]
async fn a_segment_message_backs_up_its_segment_and_counts_it_once_however_often_it_runs() {
    let ctx = backed_up(60).await;
    let task = ctx
        .services
        .status
        .task("backup-table", BACKUP_TASK)
        .expect("task");
    assert!(task.status.is_done() && task.status.succeeded(), "{task:?}");
    assert_eq!(task.status.items, 60);
    // The first message of segment 0 again (an SQS duplicate): nothing is counted twice.
    let again = fixture("segment-backup.json");
    let message: SegmentMessage =
        serde_json::from_str(again.records[0].body.as_deref().unwrap_or_default()).expect("json");
    run_segment(&ctx, Function::Backup, BACKUP_QUEUE, message).await;
    let task = ctx
        .services
        .status
        .task("backup-table", BACKUP_TASK)
        .expect("task");
    assert_eq!((task.status.completed, task.status.items), (2, 60));
}

#[tokio::test]
async fn a_continuation_resumes_from_its_checkpoint() {
    let ctx = context(services_with_items(60));
    invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    messages(&ctx, BACKUP_QUEUE);
    let response = invoke(&ctx, Function::Backup, fixture("continuation-backup.json")).await;
    assert!(failed_ids(&response).is_empty());
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    let keys = bucket.objects.keys();
    // Batches 0x0 and 0x1 were the earlier runs': this one starts at 0x2.
    assert!(!keys.contains(&format!("{PREFIX}0x0/0x0")), "{keys:?}");
    assert!(keys.contains(&format!("{PREFIX}0x0/0x2")), "{keys:?}");
}

#[tokio::test]
async fn a_corrupt_batch_fails_its_segment_in_the_invocation_that_met_it() {
    let ctx = backed_up(60).await;
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    let key = format!("{PREFIX}0x0/0x1");
    let mut body = bucket.objects.get_now(&key).expect("batch 0x1").to_vec();
    let mid = body.len() / 2;
    body[mid] ^= 0xff;
    bucket.objects.put_now(&key, body.into());

    let response = invoke(&ctx, Function::Request, fixture("request-restore.json")).await;
    assert!(failed_ids(&response).is_empty());
    let mut invocations = 0;
    for message in messages(&ctx, RESTORE_QUEUE) {
        invocations += run_segment(&ctx, Function::Restore, RESTORE_QUEUE, message).await;
    }
    let task = ctx
        .services
        .status
        .task("restore-table", RESTORE_TASK)
        .expect("task");
    assert!(task.status.is_done(), "{task:?}");
    assert_eq!((task.status.completed, task.status.failed), (1, 1));
    let reason = &task.status.errors["0x0"];
    assert!(
        reason.contains("0x0/0x1"),
        "the reason names the batch: {reason}"
    );
    // Segment 1 in one run, segment 0 ended by the run that met the corrupt batch.
    assert_eq!(invocations, 2, "no retries of a permanent error");
}

#[tokio::test]
async fn a_transient_failure_after_progress_continues_past_the_batches_already_written() {
    let ctx = context(services_with_items(80));
    invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    let first = messages(&ctx, BACKUP_QUEUE)
        .into_iter()
        .find(|m| m.segment == 0)
        .expect("segment 0");
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    // Three batches go through, then every put fails until the retries are spent.
    bucket.set_faults(PutFaults {
        succeed: 3,
        fail: u64::MAX,
    });
    let response = invoke(&ctx, Function::Backup, event_of(&first)).await;
    assert!(failed_ids(&response).is_empty(), "consumed: it continues");
    let next = messages(&ctx, BACKUP_QUEUE);
    assert_eq!(next.len(), 1);
    let Some(Checkpoint::Backup(checkpoint)) = &next[0].checkpoint else {
        panic!("a continuation with a backup checkpoint: {next:?}");
    };
    assert_eq!(checkpoint.next_batch, 3, "the checkpoint the run reached");
    let noted = ctx
        .services
        .status
        .segment_error("backup-table", BACKUP_TASK, SegmentId(0))
        .await
        .expect("read");
    assert!(noted.is_some(), "the segment's item holds its last error");

    bucket.set_faults(PutFaults::default());
    run_segment(&ctx, Function::Backup, BACKUP_QUEUE, next[0].clone()).await;
    for batch in 0..3 {
        let key = format!("{PREFIX}0x0/0x{batch:x}");
        assert_eq!(bucket.puts(&key), 1, "{key} written once");
    }
    let task = ctx
        .services
        .status
        .task("backup-table", BACKUP_TASK)
        .expect("task");
    assert_eq!(task.status.completed, 1);
}

#[tokio::test]
async fn a_transient_failure_before_any_progress_hands_the_message_back() {
    let ctx = context(services_with_items(20));
    invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    messages(&ctx, BACKUP_QUEUE);
    ctx.services
        .bucket("eu-west-1", "backups")
        .set_faults(PutFaults {
            succeed: 0,
            fail: u64::MAX,
        });
    let event = fixture("segment-backup.json");
    let id = event.records[0].message_id.clone().expect("id");
    let response = invoke(&ctx, Function::Backup, event).await;
    assert_eq!(failed_ids(&response), [id]);
    assert_eq!(ctx.services.queues.len(BACKUP_QUEUE), 0, "no continuation");
}

#[tokio::test]
async fn a_dead_letter_is_rerouted_until_the_limit_then_fails_its_segment_once() {
    let ctx = context(services_with_items(10));
    invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    messages(&ctx, BACKUP_QUEUE);

    let response = invoke(&ctx, Function::Redrive, fixture("dead-letter.json")).await;
    assert!(failed_ids(&response).is_empty());
    let rerouted = messages(&ctx, BACKUP_QUEUE);
    assert_eq!(rerouted.len(), 1);
    assert_eq!(rerouted[0].redrives, 1);

    // At the limit (2 in the fixture, the default of 3 set to 2 here): failed, once.
    let ctx = Arc::new(Context {
        progress: None,
        config: Config {
            redrive_limit: 2,
            ..ctx.config.clone()
        },
        backup: ctx.backup.clone(),
        restore: ctx.restore.clone(),
        services: Arc::try_unwrap(ctx).map(|c| c.services).expect("one owner"),
    });
    for _ in 0..2 {
        let response = invoke(&ctx, Function::Redrive, fixture("dead-letter-final.json")).await;
        assert!(failed_ids(&response).is_empty());
    }
    let task = ctx
        .services
        .status
        .task("backup-table", BACKUP_TASK)
        .expect("task");
    assert_eq!(task.status.failed, 1);
    assert!(task.status.errors["0x0"].starts_with("failed after 2 redrives"));
    assert_eq!(ctx.services.queues.len(BACKUP_QUEUE), 0);
}

#[tokio::test]
async fn a_dead_letter_for_a_task_that_does_not_exist_is_consumed() {
    let ctx = Arc::new(Context {
        progress: None,
        config: Config {
            redrive_limit: 2,
            ..config()
        },
        ..Arc::try_unwrap(context(MemServices::default())).expect("one owner")
    });
    let response = invoke(&ctx, Function::Redrive, fixture("dead-letter-final.json")).await;
    assert!(
        failed_ids(&response).is_empty(),
        "consumed, not retried for 14 days"
    );
    assert_eq!(ctx.services.status.calls("EndSegment"), 0);
    // Before the limit too: not re-routed, consumed.
    let response = invoke(&ctx, Function::Redrive, fixture("dead-letter.json")).await;
    assert!(failed_ids(&response).is_empty());
    assert_eq!(ctx.services.queues.len(BACKUP_QUEUE), 0, "not re-routed");
}

#[tokio::test]
async fn unreadable_segment_messages_are_consumed_without_touching_anything() {
    let ctx = context(services_with_items(10));
    let response = invoke(&ctx, Function::Backup, fixture("segment-malformed.json")).await;
    assert!(failed_ids(&response).is_empty());
    assert!(
        ctx.services
            .bucket("eu-west-1", "backups")
            .objects
            .keys()
            .is_empty()
    );
    assert_eq!(ctx.services.status.calls("EndSegment"), 0);
}

#[tokio::test]
async fn a_message_on_the_wrong_queue_is_consumed_and_runs_nothing() {
    let ctx = context(services_with_items(10));
    let response = invoke(&ctx, Function::Restore, fixture("segment-backup.json")).await;
    assert!(failed_ids(&response).is_empty());
    assert!(
        ctx.services
            .bucket("eu-west-1", "backups")
            .objects
            .keys()
            .is_empty()
    );
}

#[tokio::test]
async fn a_message_with_no_time_left_is_handed_back_unrun() {
    let ctx = context(services_with_items(10));
    let event = fixture("segment-backup.json");
    let id = event.records[0].message_id.clone().expect("id");
    // The deadline is inside the margin already.
    let response = dispatch(&ctx, Function::Backup, event, Instant::now()).await;
    assert_eq!(failed_ids(&response), [id]);
    assert!(
        ctx.services
            .bucket("eu-west-1", "backups")
            .objects
            .keys()
            .is_empty()
    );
}

#[tokio::test]
async fn every_record_of_a_work_batch_runs_in_the_invocation() {
    // Each page takes 150 ms to scan: a run takes longer than the 200 ms window.
    let ctx = context(services_with_slow_items(40, Duration::from_millis(150)));
    invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    let sent = messages(&ctx, BACKUP_QUEUE);
    let mut event = fixture("segment-backup.json");
    let template = event.records[0].clone();
    event.records = sent
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut record = template.clone();
            record.message_id = Some(format!("batch-record-{i}"));
            record.body = Some(m.to_json());
            record
        })
        .collect();
    // A deadline that leaves time for one run only if the records ran one after another.
    let response = dispatch(
        &ctx,
        Function::Backup,
        event,
        Instant::now() + ctx.config.deadline_margin + Duration::from_millis(200),
    )
    .await;
    assert!(
        failed_ids(&response).is_empty(),
        "none handed back unrun: {response:?}"
    );
    let task = ctx.services.status.task("backup-table", BACKUP_TASK);
    let continued = messages(&ctx, BACKUP_QUEUE).len() as u64;
    let completed = task.map_or(0, |t| t.status.completed);
    assert_eq!(
        completed + continued,
        2,
        "each segment completed or continued"
    );
}

/// The restore request of the fixture, with `changes` applied to its body.
fn restore_request(changes: &[(&str, serde_json::Value)]) -> SqsEvent {
    request_with("request-restore.json", changes)
}

/// The request of fixture `name`, with `changes` applied to its body.
fn request_with(name: &str, changes: &[(&str, serde_json::Value)]) -> SqsEvent {
    let mut event = fixture(name);
    let mut body: serde_json::Value =
        serde_json::from_str(event.records[0].body.as_deref().unwrap_or_default()).expect("json");
    for (k, v) in changes {
        body[*k] = v.clone();
    }
    event.records[0].body = Some(body.to_string());
    event
}

/// The reasons on the rejected-requests queue.
fn rejections(ctx: &Context<MemServices>) -> Vec<String> {
    ctx.services
        .queues
        .drain(REJECTED_QUEUE)
        .iter()
        .map(|r| {
            let r: serde_json::Value = serde_json::from_str(r).expect("json");
            r["reason"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

fn completion_key() -> String {
    format!("{PREFIX}solace-meta/complete.json")
}

#[tokio::test]
async fn a_finished_backup_gets_its_completion_record() {
    let ctx = backed_up(60).await;
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    let record = bucket
        .objects
        .get_now(&completion_key())
        .expect("complete.json");
    let record: serde_json::Value = serde_json::from_slice(&record).expect("json");
    assert_eq!(record["task-id"], BACKUP_TASK);
    assert_eq!(record["completed-segments"], 2);
    assert_eq!(record["failed-segments"], 0);
    assert_eq!(record["items"], 60);
}

#[tokio::test]
async fn a_second_backup_to_the_same_prefix_is_refused_and_writes_nothing() {
    let ctx = backed_up(20).await;
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    let before = bucket.objects.keys();
    let manifest = bucket
        .objects
        .get_now(&format!("{PREFIX}solace-meta/manifest.json"));
    // The same folder written without its trailing slash, by another request.
    let mut event = fixture("request-backup.json");
    event.records[0].message_id = Some("another-request".into());
    let body = event.records[0].body.take().unwrap_or_default();
    event.records[0].body = Some(body.replace(PREFIX, PREFIX.trim_end_matches('/')));
    let response = invoke(&ctx, Function::Request, event).await;
    assert!(failed_ids(&response).is_empty());
    let reasons = rejections(&ctx);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("already holds a backup"), "{reasons:?}");
    assert_eq!(bucket.objects.keys(), before);
    assert_eq!(
        bucket
            .objects
            .get_now(&format!("{PREFIX}solace-meta/manifest.json")),
        manifest
    );
    assert_eq!(
        ctx.services.queues.len(BACKUP_QUEUE),
        0,
        "nothing fanned out"
    );
    assert!(
        ctx.services
            .status
            .task("backup-table", "another-request")
            .is_none()
    );
}

#[tokio::test]
async fn a_restore_of_an_incomplete_backup_is_refused_unless_the_request_allows_it() {
    let ctx = backed_up(20).await;
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    bucket.objects.remove(&completion_key());
    invoke(&ctx, Function::Request, fixture("request-restore.json")).await;
    let reasons = rejections(&ctx);
    assert!(
        reasons.len() == 1 && reasons[0].contains("not complete"),
        "{reasons:?}"
    );
    assert_eq!(ctx.services.queues.len(RESTORE_QUEUE), 0);

    let allowed = restore_request(&[("allow-incomplete-backup", true.into())]);
    invoke(&ctx, Function::Request, allowed).await;
    assert!(rejections(&ctx).is_empty());
    assert_eq!(ctx.services.queues.len(RESTORE_QUEUE), 2);
    let task = ctx
        .services
        .status
        .task("restore-table", RESTORE_TASK)
        .expect("task");
    assert!(
        task.status.notes.iter().any(|n| n.contains("incomplete")),
        "the status says so: {:?}",
        task.status.notes
    );
}

#[tokio::test]
async fn a_restore_into_a_table_that_holds_items_is_refused_unless_the_request_allows_it() {
    let ctx = backed_up(20).await;
    let mut item = std::collections::HashMap::new();
    item.insert("pk".to_owned(), AttributeValue::S("already-here".into()));
    ctx.services
        .table("us-east-1", "orders-restored")
        .insert(item);
    invoke(&ctx, Function::Request, fixture("request-restore.json")).await;
    let reasons = rejections(&ctx);
    assert!(
        reasons.len() == 1 && reasons[0].contains("already holds items"),
        "{reasons:?}"
    );
    assert_eq!(ctx.services.queues.len(RESTORE_QUEUE), 0);
    let allowed = restore_request(&[("allow-non-empty-table", true.into())]);
    invoke(&ctx, Function::Request, allowed).await;
    assert!(rejections(&ctx).is_empty());
    assert_eq!(ctx.services.queues.len(RESTORE_QUEUE), 2);
}

#[tokio::test]
async fn a_status_table_is_never_a_restore_destination() {
    let ctx = backed_up(20).await;
    for table in ["backup-table", "restore-table"] {
        invoke(
            &ctx,
            Function::Request,
            restore_request(&[("table-name", table.into())]),
        )
        .await;
        let reasons = rejections(&ctx);
        assert!(
            reasons.len() == 1 && reasons[0].contains("status table"),
            "{table}: {reasons:?}"
        );
    }
    assert_eq!(ctx.services.queues.len(RESTORE_QUEUE), 0);
}

#[tokio::test]
async fn a_restore_with_another_segment_count_than_the_backup_is_refused() {
    let ctx = backed_up(20).await;
    invoke(
        &ctx,
        Function::Request,
        restore_request(&[("total-segments", 3.into())]),
    )
    .await;
    let reasons = rejections(&ctx);
    assert!(
        reasons.len() == 1 && reasons[0].contains("was made with 2"),
        "{reasons:?}"
    );
    // A Solace v3 backup (no solace-meta/): its segment folders are counted.
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    for key in bucket.objects.keys() {
        if key.contains("solace-meta/") {
            bucket.objects.remove(&key);
        }
    }
    invoke(
        &ctx,
        Function::Request,
        restore_request(&[("total-segments", 3.into())]),
    )
    .await;
    let reasons = rejections(&ctx);
    assert!(
        reasons.len() == 1 && reasons[0].contains("has 2 segment folders"),
        "{reasons:?}"
    );
    invoke(&ctx, Function::Request, fixture("request-restore.json")).await;
    assert!(rejections(&ctx).is_empty());
    let task = ctx
        .services
        .status
        .task("restore-table", RESTORE_TASK)
        .expect("task");
    assert!(task.status.notes.iter().any(|n| n.contains("unverified")));
}

#[tokio::test]
async fn a_batch_with_one_item_changed_fails_its_segment_and_none_of_it_is_written() {
    use std::io::{Read, Write};
    let ctx = backed_up(60).await;
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    let key = format!("{PREFIX}0x0/0x1");
    let stored = bucket.objects.get_now(&key).expect("batch");
    let mut json = String::new();
    flate2::read::ZlibDecoder::new(&stored[..])
        .read_to_string(&mut json)
        .expect("zlib");
    // Valid zlib and JSON, one item changed: only the checksum can tell.
    let changed = json.replacen("\"x", "\"y", 1);
    assert_ne!(changed, json);
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(changed.as_bytes()).expect("deflate");
    bucket
        .objects
        .put_now(&key, encoder.finish().expect("deflate").into());

    invoke(&ctx, Function::Request, fixture("request-restore.json")).await;
    for message in messages(&ctx, RESTORE_QUEUE) {
        run_segment(&ctx, Function::Restore, RESTORE_QUEUE, message).await;
    }
    let task = ctx
        .services
        .status
        .task("restore-table", RESTORE_TASK)
        .expect("task");
    assert_eq!((task.status.completed, task.status.failed), (1, 1));
    assert!(
        task.status.errors["0x0"].contains("0x0/0x1"),
        "{:?}",
        task.status.errors
    );
    let restored = ctx.services.table("us-east-1", "orders-restored").items();
    let changed_items = restored
        .iter()
        .filter(|i| matches!(i.get("pad"), Some(AttributeValue::S(p)) if p.starts_with('y')))
        .count();
    assert_eq!(changed_items, 0, "nothing of the damaged batch was written");
}

#[tokio::test]
async fn duplicate_runs_of_a_segment_commit_one_chain_and_count_once() {
    let ctx = context(services_with_items(80));
    invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    let first = messages(&ctx, BACKUP_QUEUE);
    // Every first message three times at once, as SQS may deliver them.
    let runs = first
        .iter()
        .flat_map(|m| [m.clone(), m.clone(), m.clone()])
        .map(|m| {
            let ctx = ctx.clone();
            async move { invoke(&ctx, Function::Backup, event_of(&m)).await }
        });
    futures::future::join_all(runs).await;
    // Finish whatever continued.
    let pending = messages(&ctx, BACKUP_QUEUE);
    for message in pending {
        run_segment(&ctx, Function::Backup, BACKUP_QUEUE, message).await;
    }
    let task = ctx
        .services
        .status
        .task("backup-table", BACKUP_TASK)
        .expect("task");
    assert_eq!(
        (task.status.completed, task.status.items),
        (2, 80),
        "{task:?}"
    );
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    for key in bucket.objects.keys() {
        assert!(
            bucket.puts(&key) <= 1,
            "{key} written {} times",
            bucket.puts(&key)
        );
    }
}

const VERIFY_TASK: &str = "1f0c7a52-0000-4000-8000-000000000003";

async fn verified(ctx: &Arc<Context<MemServices>>) -> solace_functions::status::TaskStatus {
    let response = invoke(ctx, Function::Request, fixture("request-verify.json")).await;
    assert!(failed_ids(&response).is_empty());
    assert!(rejections(ctx).is_empty());
    for message in messages(ctx, RESTORE_QUEUE) {
        run_segment(ctx, Function::Restore, RESTORE_QUEUE, message).await;
    }
    ctx.services
        .status
        .task("restore-table", VERIFY_TASK)
        .expect("the verify task")
        .status
}

#[tokio::test]
async fn a_verify_of_a_sound_backup_completes_every_segment_and_writes_no_table() {
    let ctx = backed_up(60).await;
    let source_before = ctx.services.table("us-east-1", "orders").items();
    let status = verified(&ctx).await;
    assert!(status.is_done() && status.succeeded(), "{status:?}");
    assert_eq!(status.items, 60, "every item decoded and counted");
    assert_eq!(
        ctx.services.table("us-east-1", "orders").items(),
        source_before
    );
    assert!(
        ctx.services
            .table("us-east-1", "orders-restored")
            .is_empty()
    );
}

#[tokio::test]
async fn a_verify_finds_a_flipped_byte_and_a_swapped_batch() {
    let ctx = backed_up(60).await;
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    // Segment 0: one byte flipped in batch 0x1.
    let key = format!("{PREFIX}0x0/0x1");
    let mut body = bucket.objects.get_now(&key).expect("batch").to_vec();
    let last = body.len() - 1;
    body[last] ^= 0x01;
    bucket.objects.put_now(&key, body.into());
    // Segment 1: batches 0x0 and 0x1 swapped (each intact, in the wrong place).
    let (a, b) = (format!("{PREFIX}0x1/0x0"), format!("{PREFIX}0x1/0x1"));
    let (body_a, body_b) = (
        bucket.objects.get_now(&a).expect("0x1/0x0"),
        bucket.objects.get_now(&b).expect("0x1/0x1"),
    );
    bucket.objects.put_now(&a, body_b);
    bucket.objects.put_now(&b, body_a);

    let status = verified(&ctx).await;
    assert!(status.is_done(), "{status:?}");
    assert_eq!(status.failed, 2, "{status:?}");
    assert!(
        status.errors["0x0"].contains("0x0/0x1"),
        "{:?}",
        status.errors
    );
    assert!(
        status.errors["0x1"].contains("0x1/0x0"),
        "{:?}",
        status.errors
    );
}

#[tokio::test]
async fn a_verify_request_takes_no_table_and_no_restore_field() {
    let ctx = context(MemServices::default());
    let mut event = fixture("request-verify.json");
    let mut body: serde_json::Value =
        serde_json::from_str(event.records[0].body.as_deref().unwrap_or_default()).expect("json");
    body["allow-non-empty-table"] = true.into();
    event.records[0].body = Some(body.to_string());
    invoke(&ctx, Function::Request, event).await;
    let mut event = fixture("request-verify.json");
    let mut body: serde_json::Value =
        serde_json::from_str(event.records[0].body.as_deref().unwrap_or_default()).expect("json");
    body["table-name"] = "orders".into();
    event.records[0].body = Some(body.to_string());
    invoke(&ctx, Function::Request, event).await;
    let reasons = rejections(&ctx);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("unknown field `allow-non-empty-table`"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("unknown field `table-name`"),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_forged_or_mismatched_work_message_is_consumed_and_changes_nothing() {
    let ctx = context(services_with_items(20));
    invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    let genuine = messages(&ctx, BACKUP_QUEUE)
        .into_iter()
        .find(|m| m.segment == 0)
        .expect("segment 0");
    let bucket = ctx.services.bucket("eu-west-1", "backups");
    let before = bucket.objects.keys();
    let mut forged = Vec::new();
    let mut m = genuine.clone();
    m.task_id = "not-a-task".into();
    forged.push(m);
    let mut m = genuine.clone();
    m.segment = 2;
    forged.push(m);
    let mut m = genuine.clone();
    m.request.table_name = "payroll".into();
    forged.push(m);
    let mut m = genuine.clone();
    m.request.bucket_prefix = "elsewhere/".into();
    forged.push(m);
    let mut m = genuine.clone();
    m.request.total_segments = 3;
    m.segment = 2;
    forged.push(m);
    for m in &forged {
        let response = invoke(&ctx, Function::Backup, event_of(m)).await;
        assert!(failed_ids(&response).is_empty(), "consumed: {m:?}");
        // Dead-lettered, at the limit or not: not re-routed, not counted.
        let response = invoke(&ctx, Function::Redrive, event_of(m)).await;
        assert!(failed_ids(&response).is_empty(), "consumed: {m:?}");
        let mut last = m.clone();
        last.redrives = 99;
        invoke(&ctx, Function::Redrive, event_of(&last)).await;
    }
    assert_eq!(bucket.objects.keys(), before, "nothing written");
    assert_eq!(
        ctx.services.queues.len(BACKUP_QUEUE),
        0,
        "nothing re-routed"
    );
    assert_eq!(ctx.services.status.calls("EndSegment"), 0);
    let task = ctx
        .services
        .status
        .task("backup-table", BACKUP_TASK)
        .expect("task")
        .status;
    assert_eq!((task.completed, task.failed), (0, 0));
    // And a count of a segment the task does not have is refused at the store too.
    let count = ctx
        .services
        .status
        .end_segment(
            "backup-table",
            BACKUP_TASK,
            SegmentId(2),
            &SegmentEnd::Completed { items: 1, bytes: 1 },
        )
        .await
        .expect("count");
    assert_eq!(count, Count::NoTask);

    // The genuine message still runs.
    run_segment(&ctx, Function::Backup, BACKUP_QUEUE, genuine).await;
    let task = ctx
        .services
        .status
        .task("backup-table", BACKUP_TASK)
        .expect("task")
        .status;
    assert_eq!(task.completed, 1);
}

#[tokio::test]
async fn the_task_records_who_sent_the_request() {
    let ctx = context(services_with_items(10));
    invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    let task = ctx.services.status.task("backup-table", BACKUP_TASK);
    assert_eq!(
        task.and_then(|t| t.status.requested_by).as_deref(),
        Some("AIDAEXAMPLE"),
        "the request's SenderId"
    );
}

/// The backup request of the fixture, with `changes` applied to its body.
fn backup_request(changes: &[(&str, serde_json::Value)]) -> SqsEvent {
    request_with("request-backup.json", changes)
}

#[tokio::test]
async fn a_backup_with_a_retention_needs_a_lock_enabled_bucket_and_carries_it_to_every_segment() {
    let retention = [
        ("retention-mode", "COMPLIANCE".into()),
        ("retention-days", 30.into()),
    ];
    // A bucket without Object Lock: rejected before anything is written.
    let ctx = context(services_with_items(10));
    invoke(&ctx, Function::Request, backup_request(&retention)).await;
    let reasons = rejections(&ctx);
    assert!(
        reasons.len() == 1 && reasons[0].contains("does not have Object Lock"),
        "{reasons:?}"
    );
    assert!(
        ctx.services
            .bucket("eu-west-1", "backups")
            .objects
            .keys()
            .is_empty()
    );
    assert_eq!(ctx.services.queues.len(BACKUP_QUEUE), 0);

    // With Object Lock: accepted, recorded, and in each segment's message.
    let services = services_with_items(10);
    services.add_bucket("eu-west-1", "backups", MemObjects::new().with_object_lock());
    let ctx = context(services);
    invoke(&ctx, Function::Request, backup_request(&retention)).await;
    assert!(rejections(&ctx).is_empty());
    let task = ctx
        .services
        .status
        .task("backup-table", BACKUP_TASK)
        .expect("task")
        .status;
    let recorded = task.request.expect("the request");
    let want = Some(solace_pipeline::Retention {
        mode: solace_pipeline::RetentionMode::Compliance,
        days: 30,
    });
    assert_eq!(recorded.retention(), want);
    let sent = messages(&ctx, BACKUP_QUEUE);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|m| m.request.retention() == want));

    // Half a retention, too long a one, or one on a restore: rejected with the reason.
    invoke(&ctx, Function::Request, backup_request(&retention[..1])).await;
    invoke(
        &ctx,
        Function::Request,
        backup_request(&[retention[0].clone(), ("retention-days", 40_000.into())]),
    )
    .await;
    invoke(&ctx, Function::Request, restore_request(&retention)).await;
    let reasons = rejections(&ctx);
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("needs retention-days"), "{reasons:?}");
    assert!(reasons[1].contains("1 to 36500"), "{reasons:?}");
    assert!(reasons[2].contains("is a backup field"), "{reasons:?}");
}

#[tokio::test]
async fn a_restore_fan_out_cut_short_is_finished_though_its_destination_now_holds_items() {
    let ctx = backed_up(20).await;
    ctx.services.queues.fail_next(RESTORE_QUEUE, u32::MAX);
    let response = invoke(&ctx, Function::Request, fixture("request-restore.json")).await;
    assert_eq!(
        failed_ids(&response).len(),
        1,
        "handed back, its task recorded"
    );
    // Meanwhile the destination gained items (say, from a segment sent before the crash).
    let target = ctx.services.table("us-east-1", "orders-restored");
    let mut item = std::collections::HashMap::new();
    item.insert("pk".to_owned(), AttributeValue::S("item-000000".into()));
    target.insert(item);
    ctx.services.queues.fail_next(RESTORE_QUEUE, 0);
    let response = invoke(&ctx, Function::Request, fixture("request-restore.json")).await;
    assert!(failed_ids(&response).is_empty());
    assert!(rejections(&ctx).is_empty(), "the redelivery is not refused");
    assert_eq!(
        ctx.services.queues.len(RESTORE_QUEUE),
        2,
        "the fan-out is finished"
    );
}

#[tokio::test]
async fn a_fan_out_continuation_naming_another_request_is_consumed_and_sends_nothing() {
    let ctx = context(services_with_items(10));
    // A fan-out cut short: both segments claimed, none sent.
    ctx.services.queues.fail_next(BACKUP_QUEUE, u32::MAX);
    invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    ctx.services.queues.fail_next(BACKUP_QUEUE, 0);
    let mut request: serde_json::Value = serde_json::from_str(
        fixture("request-backup.json").records[0]
            .body
            .as_deref()
            .unwrap_or_default(),
    )
    .expect("json");
    request["table-name"] = "orders-other".into();
    let forged =
        serde_json::json!({"action": "fan-out", "task-id": BACKUP_TASK, "request": request});
    let response = invoke(&ctx, Function::Request, request_event("forged", forged)).await;
    assert!(failed_ids(&response).is_empty());
    assert_eq!(ctx.services.queues.len(BACKUP_QUEUE), 0, "nothing sent");
    // The request's own redelivery finishes it.
    invoke(&ctx, Function::Request, fixture("request-backup.json")).await;
    let sent = messages(&ctx, BACKUP_QUEUE);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|m| m.request.table_name == "orders"));
}

/// The log of what runs while it is held: every event as one line of JSON.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(logs.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// The events logged with `message`, as JSON.
    fn events(&self, message: &str) -> Vec<serde_json::Value> {
        let text =
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON log line"))
            .filter(|e| e["fields"]["message"] == message)
            .collect()
    }
}

/// The body of `fixture`'s first record with `changes` made to its JSON.
fn body_with(fixture_name: &str, changes: &[(&str, serde_json::Value)]) -> String {
    let body = fixture(fixture_name).records[0]
        .body
        .clone()
        .expect("a body");
    let mut v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    for (k, value) in changes {
        v[*k] = value.clone();
    }
    v.to_string()
}

fn event_with_body(fixture_name: &str, body: String) -> SqsEvent {
    let mut event = fixture(fixture_name);
    event.records[0].body = Some(body);
    event
}

/// A segment message or dead letter that names no task the status tables can hold (empty,
/// longer than 256 characters, or with the `#` of segment and rejection items) is consumed
/// as unreadable before any status call: DynamoDB refuses such a key on every call, so the
/// backup function would hand it back until it was dead-lettered, and the redrive function,
/// whose queues have no dead-letter queue, until it expired.
#[tokio::test]
async fn a_message_whose_task_id_is_no_key_is_consumed_without_a_status_call() {
    let ctx = context(services_with_items(10));
    let (logs, _guard) = Logs::capture();
    for task_id in ["".to_owned(), "x".repeat(257), format!("{BACKUP_TASK}#0x0")] {
        let segment = body_with(
            "segment-backup.json",
            &[("task-id", task_id.clone().into())],
        );
        for (function, fixture_name) in [
            (Function::Backup, "segment-backup.json"),
            (Function::Redrive, "dead-letter.json"),
        ] {
            let event = event_with_body(fixture_name, segment.clone());
            let response = invoke(&ctx, function, event).await;
            assert!(failed_ids(&response).is_empty(), "{function:?} consumes it");
        }
        // The request function's own continuation of a fan-out, with the same task id.
        let mut request: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&segment).expect("JSON");
        for field in ["task-id", "segment", "redrives"] {
            request.remove(field);
        }
        let fan_out =
            serde_json::json!({"action": "fan-out", "task-id": task_id, "request": request});
        let event = request_event("3c000000-0000-4000-8000-000000000001", fan_out);
        let response = invoke(&ctx, Function::Request, event).await;
        assert!(
            failed_ids(&response).is_empty(),
            "the request function consumes it"
        );
    }
    assert_eq!(ctx.services.status.calls("ReadTask"), 0);
    assert_eq!(ctx.services.queues.len(BACKUP_QUEUE), 0);
    for message in [
        "unreadable segment message dropped",
        "unreadable dead letter dropped",
        "unreadable fan-out continuation consumed",
    ] {
        let events = logs.events(message);
        assert_eq!(events.len(), 3, "{message}: {events:?}");
        for event in events {
            let reason = event["fields"]["reason"].as_str().expect("a reason");
            assert!(reason.contains("is not a task id"), "{reason}");
        }
    }
}

/// A continuation whose checkpoint names a key attribute twice does not say where the
/// segment continues (a reader keeps either): it is consumed as unreadable, and runs nothing.
#[tokio::test]
async fn a_continuation_that_names_a_key_attribute_twice_is_consumed_unrun() {
    let ctx = backed_up(0).await;
    let writes = ctx.services.status.calls("EndSegment");
    let body = body_with("segment-backup.json", &[]);
    let body = format!(
        "{}, \"checkpoint\": {{\"kind\": \"backup\", \"next-batch\": 1, \"start-key\": {{\"pk\": {{\"S\": \"item-000001\"}}, \"pk\": {{\"S\": \"item-000009\"}}}}}}}}",
        body.trim_end_matches('}')
    );
    let (logs, _guard) = Logs::capture();
    let response = invoke(
        &ctx,
        Function::Backup,
        event_with_body("segment-backup.json", body),
    )
    .await;
    assert!(failed_ids(&response).is_empty());
    assert_eq!(
        ctx.services.status.calls("EndSegment"),
        writes,
        "nothing counted"
    );
    assert_eq!(ctx.services.queues.len(BACKUP_QUEUE), 0, "no continuation");
    let events = logs.events("unreadable segment message dropped");
    assert_eq!(events.len(), 1, "{events:?}");
    let reason = events[0]["fields"]["reason"].as_str().expect("a reason");
    assert!(
        reason.starts_with("not a segment message: a key is named twice in one object at line 1"),
        "{reason}"
    );
    assert!(!reason.contains("item-0000"), "{reason}");
}

/// The log of an unreadable message says why, its size and SHA-256, and no value from it: a
/// checkpoint carries the key of an item.
#[tokio::test]
async fn an_unreadable_message_is_logged_with_its_size_and_hash_and_no_key_value() {
    let ctx = context(services_with_items(10));
    let body = body_with(
        "segment-backup.json",
        &[(
            "checkpoint",
            serde_json::json!({"kind": "backup", "next-batch": 1,
                "start-key": {"pk": "customer-4111-1111-1111-1111"}}),
        )],
    );
    let (logs, _guard) = Logs::capture();
    for (function, fixture_name) in [
        (Function::Backup, "segment-backup.json"),
        (Function::Redrive, "dead-letter.json"),
    ] {
        let event = event_with_body(fixture_name, body.clone());
        assert!(failed_ids(&invoke(&ctx, function, event).await).is_empty());
    }
    let events: Vec<_> = [
        "unreadable segment message dropped",
        "unreadable dead letter dropped",
    ]
    .iter()
    .flat_map(|m| logs.events(m))
    .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    for event in events {
        let fields = &event["fields"];
        assert_eq!(fields["bytes"], body.len());
        assert_eq!(
            fields["sha256"].as_str(),
            Some(solace_pipeline::sha256_hex(body.as_bytes()).as_str())
        );
        let reason = fields["reason"].as_str().expect("a reason");
        assert!(
            reason.starts_with("not a segment message: invalid type: string (not shown), expected an attribute value object"),
            "{reason}"
        );
        assert!(!event.to_string().contains("4111"), "{event}");
    }
    assert_eq!(ctx.services.status.calls("ReadTask"), 0);
}
