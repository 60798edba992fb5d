//! The system as operators meet it, on the AWS emulator: requests on the request queue become
//! finished backups and restores, counted exactly in the status tables, whatever fails.
//!
//! Each test runs its own `solace local` (in process) with its own status tables and queues
//! (names prefixed per test), so the tests share one emulator without seeing each other.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use solace_cli::demo::{Running, contents, create_table, fill, request};
use solace_cli::local::LocalOptions;
use solace_functions::Function;
use solace_functions::allow::{BucketRule, TableRule};
use solace_functions::config::Config;
use solace_functions::context::Services;
use solace_functions::status::{StatusStore, TaskStatus};
use solace_testkit::{Emulator, create_bucket, s3_client, unique_name};

const REGION: &str = "us-east-1";

async fn sdk() -> SdkConfig {
    Emulator::shared().sdk_config(REGION).await
}

fn config(tag: &str) -> Config {
    Config {
        request_queue_url: String::new(),
        backup_queue_url: String::new(),
        restore_queue_url: String::new(),
        rejected_queue_url: String::new(),
        backup_status_table: format!("{tag}-backup-table"),
        restore_status_table: format!("{tag}-restore-table"),
        max_segments: 64,
        batch_bytes: 8 << 10,
        compression_level: 1,
        redrive_limit: 2,
        // Stop starting new work after 0.2 s of a 10 s "Lambda": a continuation every page
        // or two, and 9 s for a loaded machine to finish what is in flight. Every run moves
        // its checkpoint (at least one page or batch), so short windows cannot stall.
        deadline_margin: Duration::from_millis(9800),
        read_capacity_limit: None,
        // Each write call reserves a unit per item before it starts (the emulator then
        // reports one unit per call): 40 units a second spreads a segment's restore over a
        // few seconds, so the short deadline forces several continuations, with the
        // limiter at work.
        write_capacity_limit: Some(40.0),
        expected_bucket_owner: None,
        backup_kms_key: None,
        default_retention: None,
        // The names `world` makes: its source and destination tables and its bucket.
        allowed_tables: Some(
            ["src-*", "dst-*"]
                .map(|name| TableRule {
                    region: REGION.into(),
                    name: name.into(),
                })
                .to_vec(),
        ),
        allowed_buckets: Some(vec![BucketRule {
            name: "bkt-*".into(),
            prefix: String::new(),
        }]),
        // Pages of 4 items, and so batches of 4 items (a batch closes on the first page
        // boundary past 8 KB): ~55 batches a segment, each step far inside the margin.
        scan_page_limit: Some(4),
        fan_out_per_invocation: 200_000,
    }
}

fn options() -> LocalOptions {
    LocalOptions {
        // Short enough to force several continuations per segment.
        lambda_timeout: Duration::from_secs(10),
        visibility_timeout: Duration::from_secs(12),
        max_receive_count: 2,
        concurrency: 3,
        batch_size: 10,
        wait: Duration::from_secs(1),
        duplicate: false,
        chaos: None,
        stats: Arc::default(),
        queue_prefix: String::new(),
    }
}

struct World {
    sdk: SdkConfig,
    dynamodb: aws_sdk_dynamodb::Client,
    source: String,
    bucket: String,
}

/// A string every source table holds in keys and values, and nothing else may ever show:
/// no log line (at debug level, every crate), no status item outside a `checkpoint`
/// attribute ([`assert_no_canary`]).
const CANARY: &str = "CANARY-7f3b";

/// Items whose keys and values hold [`CANARY`], in every source table.
const CANARY_ITEMS: u64 = 5;

/// Log lines that held [`CANARY`], from every scenario of this process.
static CANARY_SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Where the functions' logs go: a line holding [`CANARY`] is kept for [`assert_no_canary`];
/// with `RUST_LOG` set every line is echoed to stderr.
struct CanaryWriter;

impl std::io::Write for CanaryWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        if text.contains(CANARY) {
            CANARY_SEEN
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(text.chars().take(600).collect());
        }
        if std::env::var_os("RUST_LOG").is_some() {
            eprint!("{text}");
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Debug level for every crate (or `RUST_LOG`), through [`CanaryWriter`].
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("debug"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| CanaryWriter)
        .try_init();
}

/// No log line and no status item of `local`'s tables held the canary (checkpoints aside:
/// they must carry scan keys, and live only in attributes named for them).
async fn assert_no_canary(local: &Running) {
    let seen = CANARY_SEEN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    assert!(seen.is_empty(), "item data reached the logs: {seen:#?}");
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk().await);
    for table in [
        &local.ctx.config.backup_status_table,
        &local.ctx.config.restore_status_table,
    ] {
        let mut start = None;
        loop {
            let page = dynamodb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan a status table");
            for item in page.items() {
                for (name, value) in item {
                    if !name.contains("checkpoint") {
                        assert!(
                            !format!("{value:?}").contains(CANARY),
                            "item data in status table {table}, attribute {name}"
                        );
                    }
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
    }
}

/// Writes the [`CANARY_ITEMS`]: the canary in the key, in a string, a set and a map.
async fn put_canary_items(dynamodb: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    for i in 0..CANARY_ITEMS {
        let item = std::collections::HashMap::from([
            ("pk".to_owned(), A::S(format!("{CANARY}-key-{i}"))),
            ("note".to_owned(), A::S(format!("a value holding {CANARY}"))),
            (
                "tags".to_owned(),
                A::Ss(vec![CANARY.to_owned(), "other".into()]),
            ),
            (
                "nested".to_owned(),
                A::M(std::collections::HashMap::from([(
                    "deep".to_owned(),
                    A::S(CANARY.to_owned()),
                )])),
            ),
        ]);
        dynamodb
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .expect("a canary item");
    }
}

async fn world(items: u64) -> World {
    let sdk = sdk().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let source = unique_name("src");
    create_table(&dynamodb, &source).await.expect("table");
    fill(&dynamodb, &source, items - CANARY_ITEMS)
        .await
        .expect("filled");
    put_canary_items(&dynamodb, &source).await;
    let bucket = unique_name("bkt");
    create_bucket(&s3_client(&sdk), &bucket)
        .await
        .expect("bucket");
    World {
        sdk,
        dynamodb,
        source,
        bucket,
    }
}

/// Queue names are per process in SQS, so each test's runner gets its own by a unique
/// endpoint-level prefix: we run tests of this binary one after another on the shared queues
/// but with their own status tables, and drain the queues first.
async fn start(tag: &str, options: LocalOptions) -> Running {
    start_with(tag, options, config(tag)).await
}

async fn start_with(tag: &str, options: LocalOptions, config: Config) -> Running {
    // `RUST_LOG=info cargo test ... -- --nocapture` shows what the functions did.
    init_logs();
    let options = LocalOptions {
        queue_prefix: format!("{tag}-"),
        ..options
    };
    let local = Running::start(&sdk().await, options, config)
        .await
        .expect("solace local starts");
    // What an earlier scenario left queued (a late duplicate, a dead letter) is not this one's.
    for url in local.queues.urls.values() {
        let _ = local
            .ctx
            .services
            .sqs()
            .purge_queue()
            .queue_url(url)
            .send()
            .await;
    }
    local
}

async fn backup_and_restore(
    w: &World,
    local: &Running,
    segments: u32,
    prefix: &str,
) -> (TaskStatus, TaskStatus, String) {
    let id = local
        .send(&request(
            "backup", segments, &w.source, &w.bucket, prefix, REGION,
        ))
        .await
        .expect("sent");
    let backup = local
        .wait(
            &local.ctx.config.backup_status_table,
            &id,
            Duration::from_secs(300),
            |_| {},
        )
        .await
        .expect("backup done");
    let target = unique_name("dst");
    create_table(&w.dynamodb, &target).await.expect("target");
    let id = local
        .send(&request(
            "restore", segments, &target, &w.bucket, prefix, REGION,
        ))
        .await
        .expect("sent");
    let restore = local
        .wait(
            &local.ctx.config.restore_status_table,
            &id,
            Duration::from_secs(300),
            |_| {},
        )
        .await
        .expect("restore done");
    (backup, restore, target)
}

async fn assert_equal_tables(w: &World, target: &str) {
    let a = contents(&w.dynamodb, &w.source).await.expect("scan source");
    let b = contents(&w.dynamodb, target).await.expect("scan target");
    assert_eq!(a.len(), b.len(), "item counts");
    assert!(a == b, "the restored table equals the source");
}

/// Every AWS operation the functions really called (recorded by the SDK interceptor) is one
/// their IAM roles allow: `operations::CALLS`, which `tests/infra.rs` holds against the
/// Terraform.
fn assert_calls_declared() {
    let undeclared = solace_functions::operations::undeclared();
    assert!(
        undeclared.is_empty(),
        "calls missing from operations::CALLS (and so from IAM): {undeclared:?}"
    );
}

fn assert_exact(label: &str, s: &TaskStatus, segments: u64, items: u64) {
    assert_eq!(
        (s.total, s.completed, s.failed, s.items),
        (segments, segments, 0, items),
        "{label}: every segment completed once, every item counted once: {s:?}"
    );
    assert!(s.is_done() && s.succeeded() && !s.failed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_rejected_with_their_reason_and_fan_out_nothing() {
    let w = world(60).await;
    assert!(bad_requests(&w).await >= 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_with_continuations_are_exact() {
    let w = world(900).await;
    continuations(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_delivered_twice_is_exact() {
    let w = world(900).await;
    duplicates(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_at_random_points_finish_exactly() {
    crashes().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_that_cannot_be_trusted_are_refused_and_leave_the_destination_untouched() {
    let w = world(60).await;
    refusals(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_that_cannot_succeed_is_counted_failed_once() {
    let w = world(300).await;
    failing_segment(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changing_table_backed_up_with_duplicates_and_kills_restores_each_stable_item_once() {
    let w = world(240).await;
    changing_table(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_a_backup_and_a_restore_and_nothing_is_written_once_they_end() {
    let w = world(600).await;
    cancels(&w).await;
}

/// A writer that keeps inserting, growing, shrinking and deleting the items `churn-0` to
/// `churn-39` until stopped; returns every version of each it wrote (codec items by key).
fn start_writer(
    w: &World,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::collections::HashMap<String, Vec<solace_codec::Item>>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let client = w.dynamodb.clone();
    let table = w.source.clone();
    tokio::spawn(async move {
        let mut history: std::collections::HashMap<String, Vec<solace_codec::Item>> =
            std::collections::HashMap::new();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut generation = 0u64;
        while !*stop.borrow() {
            let pk = format!("churn-{}", rng.u32(0..40));
            let key = AttributeValue::S(pk.clone());
            if rng.u8(0..4) == 0 {
                let _ = client
                    .delete_item()
                    .table_name(&table)
                    .key("pk", key)
                    .send()
                    .await;
            } else {
                generation += 1;
                let item: std::collections::HashMap<String, AttributeValue> = [
                    ("pk".to_owned(), key),
                    ("gen".to_owned(), AttributeValue::N(generation.to_string())),
                    (
                        "pad".to_owned(),
                        AttributeValue::S("x".repeat(rng.usize(0..3000))),
                    ),
                ]
                .into();
                let codec = solace_codec::sdk::from_sdk_item(&item).expect("codec item");
                // Recorded before the write: a write whose reply is lost may have happened.
                history
                    .entry(format!("{:?}", codec.get("pk")))
                    .or_default()
                    .push(codec);
                let _ = client
                    .put_item()
                    .table_name(&table)
                    .set_item(Some(item))
                    .send()
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        history
    })
}

/// Scenario 6: a backup of a table a writer keeps changing, every message delivered twice and
/// invocations killed at random; then a restore under the same faults. Every item present
/// throughout is restored once with its value; a changed item at most once, with a value it
/// had; the committed batches hold each key once (the items the restore wrote, counted per
/// batch, equal the keys in the restored table).
async fn changing_table(w: &World) {
    let stable = contents(&w.dynamodb, &w.source).await.expect("scan");
    let (stop_writer, stopped) = tokio::sync::watch::channel(false);
    let writer = start_writer(w, stopped);
    let rng = Arc::new(std::sync::Mutex::new(fastrand::Rng::with_seed(11)));
    let chaos: solace_cli::local::Chaos = Arc::new(move |f| {
        let mut r = rng.lock().expect("rng");
        (matches!(f, Function::Backup | Function::Restore) && r.u8(0..3) == 0)
            .then(|| Duration::from_millis(r.u64(0..600)))
    });
    let opts = LocalOptions {
        duplicate: true,
        chaos: Some(chaos),
        max_receive_count: 20,
        visibility_timeout: Duration::from_secs(3),
        ..options()
    };
    let stats = opts.stats.clone();
    let config = Config {
        deadline_margin: Duration::from_secs(9),
        scan_page_limit: Some(10),
        write_capacity_limit: None,
        ..config("live")
    };
    let local = start_with("live", opts, config).await;
    let backup = request("backup", 2, &w.source, &w.bucket, "live/", REGION);
    let backup = run_task(&local, &backup, &local.ctx.config.backup_status_table).await;
    let _ = stop_writer.send(true);
    let history = writer.await.expect("writer");
    assert!(
        history.len() > 10,
        "the writer changed the table during the backup"
    );
    assert!(backup.succeeded(), "{backup:?}");

    let target = unique_name("dst");
    create_table(&w.dynamodb, &target).await.expect("target");
    let restore = request("restore", 2, &target, &w.bucket, "live/", REGION);
    let restore = run_task(&local, &restore, &local.ctx.config.restore_status_table).await;
    assert_no_canary(&local).await;
    local.stop().await;
    assert!(restore.succeeded(), "{restore:?}");
    assert!(stats.killed() > 0, "invocations were killed");

    let restored = contents(&w.dynamodb, &target).await.expect("scan target");
    for (key, item) in &stable {
        assert_eq!(
            restored.get(key),
            Some(item),
            "stable item {key} restored as it was"
        );
    }
    for (key, item) in &restored {
        if stable.contains_key(key) {
            continue;
        }
        let versions = history.get(key).map(Vec::as_slice).unwrap_or_default();
        assert!(
            versions.contains(item),
            "{key}: restored with a value the writer never wrote"
        );
    }
    assert_eq!(
        (backup.items, restore.items),
        (restored.len() as u64, restored.len() as u64),
        "every key in exactly one committed batch"
    );
    assert_calls_declared();
}

/// Scenario 7: cancel mid-backup and mid-restore through the request queue; each task ends
/// done and failed with its unfinished segments `cancelled`, and once it has ended nothing is
/// written: no object under the prefix, no item in the destination.
async fn cancels(w: &World) {
    let local = start("cancel", options()).await;
    let status = local.ctx.services.status();
    let backups = &local.ctx.config.backup_status_table;
    let restores = &local.ctx.config.restore_status_table;
    let s3 = s3_client(&w.sdk);
    let keys = |prefix: &'static str| {
        let s3 = s3.clone();
        let bucket = w.bucket.clone();
        async move {
            let out = s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .send()
                .await
                .expect("list");
            let mut keys: Vec<String> = out
                .contents()
                .iter()
                .filter_map(|o| o.key.clone())
                .collect();
            keys.sort();
            keys
        }
    };

    // A full backup to restore from later.
    let full = backup_only(w, &local, "cancel-full/").await;
    assert!(full.succeeded(), "{full:?}");

    let id = local
        .send(&request(
            "backup", 4, &w.source, &w.bucket, "cancel/", REGION,
        ))
        .await
        .expect("sent");
    wait_for_progress(status, backups, &id).await;
    local
        .send(&serde_json::json!({"action": "cancel", "task-id": id}))
        .await
        .expect("cancel sent");
    let backup = local
        .wait(backups, &id, Duration::from_secs(300), |_| {})
        .await
        .expect("the cancelled backup ends");
    assert!(backup.cancelled_at.is_some(), "{backup:?}");
    assert!(backup.is_done() && backup.failed(), "{backup:?}");
    assert!(
        backup.errors.values().any(|r| r == "cancelled"),
        "{backup:?}"
    );
    // The function that counted the last segment writes the completion record just after.
    let mut ended = keys("cancel/").await;
    for _ in 0..60 {
        if ended
            .iter()
            .any(|k| k.ends_with("solace-meta/complete.json"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        ended = keys("cancel/").await;
    }
    assert!(
        ended
            .iter()
            .any(|k| k.ends_with("solace-meta/complete.json")),
        "the cancelled backup has its completion record: {ended:?}"
    );

    let target = unique_name("dst");
    create_table(&w.dynamodb, &target).await.expect("target");
    let id = local
        .send(&request(
            "restore",
            4,
            &target,
            &w.bucket,
            "cancel-full/",
            REGION,
        ))
        .await
        .expect("sent");
    wait_for_progress(status, restores, &id).await;
    local
        .send(&serde_json::json!({"action": "cancel", "task-id": id}))
        .await
        .expect("cancel sent");
    let restore = local
        .wait(restores, &id, Duration::from_secs(300), |_| {})
        .await
        .expect("the cancelled restore ends");
    assert!(restore.is_done() && restore.failed(), "{restore:?}");
    let items = contents(&w.dynamodb, &target).await.expect("scan").len();
    assert!(
        (items as u64) < 600,
        "the restore stopped short: {items} items"
    );

    // Late duplicates and redeliveries run on: nothing more is written.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        keys("cancel/").await,
        ended,
        "no object after the backup ended"
    );
    let later = contents(&w.dynamodb, &target).await.expect("scan").len();
    assert_eq!(later, items, "no item after the restore ended");
    let again = status
        .read_task(restores, &id)
        .await
        .expect("read")
        .expect("task");
    assert_eq!(
        (again.completed, again.failed),
        (restore.completed, restore.failed)
    );
    assert_no_canary(&local).await;
    local.stop().await;
    assert_calls_declared();
}

/// Waits until a task has counted some items or a segment (it is under way).
async fn wait_for_progress(status: &solace_functions::status::DynamoStatus, table: &str, id: &str) {
    for _ in 0..600 {
        let s = status.read_task(table, id).await.expect("read");
        if s.is_some_and(|s| s.fanned_out > 0) {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("task {id} never started");
}

/// Sends `request` and waits (up to 300 s) until its task in `table` is done.
async fn run_task(local: &Running, request: &serde_json::Value, table: &str) -> TaskStatus {
    let id = local.send(request).await.expect("sent");
    local
        .wait(table, &id, Duration::from_secs(300), |_| {})
        .await
        .expect("the task ends")
}

/// A 4-segment backup of the source to `prefix`, waited for.
async fn backup_only(w: &World, local: &Running, prefix: &str) -> TaskStatus {
    let backup = request("backup", 4, &w.source, &w.bucket, prefix, REGION);
    run_task(local, &backup, &local.ctx.config.backup_status_table).await
}

/// Scenario 1: several segments, a deadline short enough to force continuations.
async fn continuations(w: &World) {
    let opts = options();
    let stats = opts.stats.clone();
    // This deployment encrypts its backups with a KMS key of its own.
    let key = "arn:aws:kms:us-east-1:123456789012:key/5e1f0000-0000-4000-8000-00000000c0de";
    let config = Config {
        backup_kms_key: Some(key.to_owned()),
        ..config("cont")
    };
    let local = start_with("cont", opts, config).await;
    let (backup, restore, target) = backup_and_restore(w, &local, 4, "cont/").await;
    // Every object the backup wrote is SSE-KMS with that key (S3 bucket key on), and the
    // restore read them.
    let s3 = s3_client(&w.sdk);
    for object in [
        "cont/0x0/0x0",
        "cont/0x3/0x0",
        "cont/solace-meta/manifest.json",
        "cont/solace-meta/segments/0x0.json",
        "cont/solace-meta/complete.json",
    ] {
        let head = s3
            .head_object()
            .bucket(&w.bucket)
            .key(object)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{object}: {e:?}"));
        assert_eq!(
            head.server_side_encryption,
            Some(aws_sdk_s3::types::ServerSideEncryption::AwsKms),
            "{object}"
        );
        assert_eq!(head.ssekms_key_id.as_deref(), Some(key), "{object}");
        assert_eq!(head.bucket_key_enabled, Some(true), "{object}");
    }
    assert_no_canary(&local).await;
    local.stop().await;
    assert_equal_tables(w, &target).await;
    assert_exact("backup", &backup, 4, 900);
    assert_exact("restore", &restore, 4, 900);
    tracing::info!(
        backup = stats.invocations(Function::Backup),
        restore = stats.invocations(Function::Restore),
        "scenario 1: invocations"
    );
    for f in [Function::Backup, Function::Restore] {
        // No failures here: every invocation past the first of a segment is a continuation.
        let n = stats.invocations(f);
        assert!(
            n >= 3 * 4,
            "{f:?}: {n} invocations for 4 segments; the deadline should force continuations"
        );
    }
    assert_eq!(
        stats.killed(),
        0,
        "no invocation reached the Lambda timeout"
    );
    assert_calls_declared();
    let recorded = solace_functions::operations::recorded();
    for (f, op) in [
        (Function::Request, "sqs:SendMessage"),
        (Function::Request, "dynamodb:PutItem"),
        (Function::Backup, "dynamodb:Scan"),
        (Function::Backup, "s3:PutObject"),
        (Function::Restore, "s3:GetObject"),
        (Function::Restore, "dynamodb:BatchWriteItem"),
    ] {
        assert!(
            recorded.get(&f).is_some_and(|ops| ops.contains(op)),
            "the interceptor saw {f:?} call {op}: {recorded:?}"
        );
    }
}

/// Scenario 3: every message delivered twice.
async fn duplicates(w: &World) {
    let opts = LocalOptions {
        duplicate: true,
        ..options()
    };
    // Both runs of a continuation send the next one, so a chain of k continuations runs
    // 2^k times when every delivery is doubled (exact all the same: the runs write identical
    // batches and the segment is counted once). Long windows keep k small here.
    let config = Config {
        deadline_margin: Duration::from_secs(4),
        scan_page_limit: Some(100),
        write_capacity_limit: None,
        ..config("dup")
    };
    let local = start_with("dup", opts, config).await;
    let (backup, restore, target) = backup_and_restore(w, &local, 4, "dup/").await;
    assert_no_canary(&local).await;
    local.stop().await;
    assert_exact("backup", &backup, 4, 900);
    assert_exact("restore", &restore, 4, 900);
    assert_equal_tables(w, &target).await;
}

/// Scenario 2: workers killed at random points; redelivery finishes with exact data and counters.
/// Twelve schedules on a small table, alternating backup and restore.
async fn crashes() {
    let w = world(240).await;
    let clean = start("crash-base", options()).await;
    let id = clean
        .send(&request(
            "backup",
            2,
            &w.source,
            &w.bucket,
            "crash-base/",
            REGION,
        ))
        .await
        .expect("sent");
    clean
        .wait(
            &clean.ctx.config.backup_status_table,
            &id,
            Duration::from_secs(300),
            |_| {},
        )
        .await
        .expect("the base backup completes");
    clean.stop().await;
    let mut killed = 0;
    for schedule in 0..12u64 {
        let rng = Arc::new(std::sync::Mutex::new(fastrand::Rng::with_seed(schedule)));
        let chaos: solace_cli::local::Chaos = Arc::new(move |_f| {
            let mut r = rng.lock().expect("rng");
            // Half of the invocations die somewhere in their first 0.5 s (a run's work
            // window is 0.2 s, plus what is in flight at its end).
            (r.bool()).then(|| Duration::from_millis(r.u64(0..500)))
        });
        let opts = LocalOptions {
            chaos: Some(chaos),
            max_receive_count: 20,
            visibility_timeout: Duration::from_secs(3),
            ..options()
        };
        let stats = opts.stats.clone();
        let local = start(&format!("crash{schedule}"), opts).await;
        if schedule % 2 == 0 {
            let prefix = format!("crash{schedule}/");
            let id = local
                .send(&request("backup", 2, &w.source, &w.bucket, &prefix, REGION))
                .await
                .expect("sent");
            let s = local
                .wait(
                    &local.ctx.config.backup_status_table,
                    &id,
                    Duration::from_secs(300),
                    |_| {},
                )
                .await
                .expect("done");
            assert_exact("backup", &s, 2, 240);
        } else {
            let target = unique_name("dst");
            create_table(&w.dynamodb, &target).await.expect("target");
            let id = local
                .send(&request(
                    "restore",
                    2,
                    &target,
                    &w.bucket,
                    "crash-base/",
                    REGION,
                ))
                .await
                .expect("sent");
            let s = local
                .wait(
                    &local.ctx.config.restore_status_table,
                    &id,
                    Duration::from_secs(300),
                    |_| {},
                )
                .await
                .expect("done");
            assert_exact("restore", &s, 2, 240);
            if schedule % 4 == 1 {
                assert_equal_tables(&w, &target).await;
            }
        }
        assert_no_canary(&local).await;
        local.stop().await;
        killed += stats.killed();
        tracing::info!(schedule, killed, "scenario 2: crash schedule passed");
    }
    assert!(
        killed >= 12,
        "the schedules really killed workers mid-run: {killed} kills in 12 schedules"
    );
}

/// Scenario 4: a segment that cannot succeed (a corrupt batch: a permanent error) ends counted
/// failed exactly once, with its reason, in the invocation that met it, while the others
/// complete.
async fn failing_segment(w: &World) {
    let stats = Arc::new(solace_cli::local::Stats::default());
    let local = start(
        "fail",
        LocalOptions {
            stats: stats.clone(),
            ..options()
        },
    )
    .await;
    let id = local
        .send(&request("backup", 3, &w.source, &w.bucket, "fail/", REGION))
        .await
        .expect("sent");
    let backup = local
        .wait(
            &local.ctx.config.backup_status_table,
            &id,
            Duration::from_secs(300),
            |_| {},
        )
        .await
        .expect("backup");
    assert_exact("backup", &backup, 3, 300);
    // Corrupt one batch of segment 1.
    let s3 = s3_client(&w.sdk);
    s3.put_object()
        .bucket(&w.bucket)
        .key("fail/0x1/0x0")
        .body(b"this is not a zlib stream".to_vec().into())
        .send()
        .await
        .expect("corrupted");
    let target = unique_name("dst");
    create_table(&w.dynamodb, &target).await.expect("target");
    let id = local
        .send(&request("restore", 3, &target, &w.bucket, "fail/", REGION))
        .await
        .expect("sent");
    let restore = local
        .wait(
            &local.ctx.config.restore_status_table,
            &id,
            Duration::from_secs(300),
            |_| {},
        )
        .await
        .expect("restore ends");
    // Let any late duplicate of the dead segment run: it must not be counted again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = local
        .ctx
        .services
        .status()
        .read_task(&local.ctx.config.restore_status_table, &id)
        .await
        .expect("read")
        .expect("task");
    assert_no_canary(&local).await;
    local.stop().await;
    assert_eq!(
        (restore.total, restore.completed, restore.failed),
        (3, 2, 1),
        "{restore:?}"
    );
    assert!(restore.is_done() && !restore.succeeded() && restore.failed());
    assert_calls_declared();
    assert_eq!((later.completed, later.failed), (2, 1), "counted once");
    let reason = &restore.errors["0x1"];
    // Its checksum no longer matches the marker's: refused before it is even inflated.
    assert!(reason.contains("fail/0x1/0x0"), "{reason}");
    // A permanent error is not retried: one restore invocation met it and ended the segment,
    // and the dead-letter path never saw it (before: every receive and redrive ran it again).
    for function in Function::ALL {
        let n = stats.segment_invocations(function, &id, 1);
        assert!(n <= 2, "{function:?} ran the corrupt segment {n} times");
    }
    assert_eq!(stats.segment_invocations(Function::Restore, &id, 1), 1);
    assert_eq!(stats.segment_invocations(Function::Redrive, &id, 1), 0);
}

/// Sends `bodies` to the request queue and waits for each one's rejection: their reasons,
/// in order.
async fn rejected(local: &Running, bodies: &[serde_json::Value]) -> Vec<String> {
    let sqs = local.ctx.services.sqs();
    let mut ids = Vec::new();
    for body in bodies {
        ids.push(local.send(body).await.expect("sent"));
    }
    let url = local.queues.url(solace_cli::local::REJECTED_QUEUE);
    let mut reasons = std::collections::HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while ids.iter().any(|id| !reasons.contains_key(id)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rejections: {reasons:?}"
        );
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for m in out.messages() {
            let v: serde_json::Value =
                serde_json::from_str(m.body().unwrap_or_default()).expect("json");
            reasons.insert(
                v["task-id"].as_str().unwrap_or_default().to_owned(),
                v["reason"].as_str().unwrap_or_default().to_owned(),
            );
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
    ids.iter().map(|id| reasons[id].clone()).collect()
}

/// Scenario 6: each restore the backup cannot vouch for is refused through the request
/// queue, with its reason, and writes nothing; a batch with one item changed (valid zlib and
/// JSON) fails its segment, naming the batch, and none of its items reaches the table.
async fn refusals(w: &World) {
    use std::io::{Read, Write};
    let local = start("refuse", options()).await;
    let id = local
        .send(&request(
            "backup", 2, &w.source, &w.bucket, "refuse/", REGION,
        ))
        .await
        .expect("sent");
    let backup = local
        .wait(
            &local.ctx.config.backup_status_table,
            &id,
            Duration::from_secs(300),
            |_| {},
        )
        .await
        .expect("backup");
    assert_exact("backup", &backup, 2, 60);
    let target = unique_name("dst");
    create_table(&w.dynamodb, &target).await.expect("target");
    let restore = |table: &str, segments: u32| {
        request("restore", segments, table, &w.bucket, "refuse/", REGION)
    };
    let status_table = local.ctx.config.backup_status_table.clone();
    let reasons = rejected(
        &local,
        &[
            request("backup", 2, &w.source, &w.bucket, "refuse", REGION),
            restore(&target, 3),
            restore(&w.source, 2),
            restore(&status_table, 2),
        ],
    )
    .await;
    for (reason, expected) in reasons.iter().zip([
        "already holds a backup",
        "was made with 2",
        "already holds items",
        "status table",
    ]) {
        assert!(
            reason.contains(expected),
            "{reason:?} should say {expected:?}"
        );
    }
    // Without its completion record the backup is not complete.
    let s3 = s3_client(&w.sdk);
    let completion = "refuse/solace-meta/complete.json";
    let record = s3
        .get_object()
        .bucket(&w.bucket)
        .key(completion)
        .send()
        .await
        .expect("the completion record exists")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    s3.delete_object()
        .bucket(&w.bucket)
        .key(completion)
        .send()
        .await
        .expect("deleted");
    let reasons = rejected(&local, &[restore(&target, 2)]).await;
    assert!(reasons[0].contains("not complete"), "{reasons:?}");
    s3.put_object()
        .bucket(&w.bucket)
        .key(completion)
        .body(record.to_vec().into())
        .send()
        .await
        .expect("restored record");
    assert!(
        contents(&w.dynamodb, &target)
            .await
            .expect("scan")
            .is_empty(),
        "no refused restore wrote anything"
    );
    assert_eq!(
        contents(&w.dynamodb, &w.source).await.expect("scan").len(),
        60
    );

    // One item of batch 0x0/0x0 changed: valid zlib, valid JSON, a different checksum.
    let key = "refuse/0x0/0x0";
    let stored = s3
        .get_object()
        .bucket(&w.bucket)
        .key(key)
        .send()
        .await
        .expect("batch")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    let mut json = String::new();
    flate2::read::ZlibDecoder::new(&stored[..])
        .read_to_string(&mut json)
        .expect("zlib");
    let marker_value = "\"S\":\"";
    let changed = json.replacen(marker_value, "\"S\":\"CHANGED-", 1);
    assert_ne!(changed, json, "the batch has a string attribute to change");
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(changed.as_bytes()).expect("deflate");
    s3.put_object()
        .bucket(&w.bucket)
        .key(key)
        .body(encoder.finish().expect("deflate").into())
        .send()
        .await
        .expect("replaced");
    let id = local.send(&restore(&target, 2)).await.expect("sent");
    let status = local
        .wait(
            &local.ctx.config.restore_status_table,
            &id,
            Duration::from_secs(300),
            |_| {},
        )
        .await
        .expect("restore ends");
    assert_no_canary(&local).await;
    local.stop().await;
    assert_eq!((status.completed, status.failed), (1, 1), "{status:?}");
    assert!(status.errors["0x0"].contains(key), "{:?}", status.errors);
    let restored = contents(&w.dynamodb, &target).await.expect("scan");
    assert!(
        restored
            .values()
            .all(|item| !format!("{item:?}").contains("CHANGED-")),
        "nothing of the damaged batch was written"
    );
}

/// Scenario 5: a catalog of bad requests: each rejected with its reason, nothing fanned out.
async fn bad_requests(w: &World) -> usize {
    let local = start("bad", options()).await;
    let good = request("backup", 2, &w.source, &w.bucket, "bad/", REGION);
    let with = |k: &str, v: serde_json::Value| {
        let mut r = good.clone();
        r[k] = v;
        r.to_string()
    };
    let without = |k: &str| {
        let mut r = good.clone();
        r.as_object_mut().expect("object").remove(k);
        r.to_string()
    };
    use serde_json::json;
    let catalog: Vec<(String, &str)> = vec![
        ("not json".into(), "not JSON"),
        ("".into(), "not JSON"),
        ("[1,2]".into(), "JSON object"),
        ("42".into(), "JSON object"),
        ("{\"action\": \"backup\"".into(), "not JSON"),
        (without("action"), "missing field `action`"),
        (without("total-segments"), "missing field `total-segments`"),
        (without("table-region"), "missing field `table-region`"),
        (without("table-name"), "missing field `table-name`"),
        (without("bucket-region"), "missing field `bucket-region`"),
        (without("bucket-name"), "missing field `bucket-name`"),
        (without("bucket-prefix"), "missing field `bucket-prefix`"),
        (with("extra", json!(1)), "unknown field `extra`"),
        (with("action", json!("delete")), "unknown variant `delete`"),
        (with("action", json!(1)), "invalid type"),
        (
            with("total-segments", json!(0)),
            "total-segments must be 1 to 64",
        ),
        (with("total-segments", json!(-1)), "invalid value"),
        (
            with("total-segments", json!(65)),
            "total-segments must be 1 to 64",
        ),
        (with("total-segments", json!(1e12)), "invalid type"),
        (with("total-segments", json!("4")), "invalid type"),
        (with("total-segments", json!(2.5)), "invalid type"),
        (with("table-region", json!("mars-1")), "not an AWS region"),
        (with("table-region", json!("")), "not an AWS region"),
        (
            with("bucket-region", json!("US-EAST-1")),
            "not an AWS region",
        ),
        (with("table-name", json!("ab")), "not a DynamoDB table name"),
        (
            with("table-name", json!("bad name!")),
            "not a DynamoDB table name",
        ),
        (
            with("table-name", json!("x".repeat(256))),
            "not a DynamoDB table name",
        ),
        (
            with("bucket-name", json!("Bad_Bucket")),
            "not an S3 bucket name",
        ),
        (with("bucket-name", json!("ab")), "not an S3 bucket name"),
        (
            with("bucket-name", json!("192.168.0.1")),
            "not an S3 bucket name",
        ),
        (with("bucket-prefix", json!(7)), "invalid type"),
        (with("bucket-prefix", json!("/abs")), "must not start with"),
        (with("table-name", json!(null)), "invalid type"),
        // Outside the deployment's allow-lists (`src-*`, `dst-*` tables in us-east-1 and
        // `bkt-*` buckets): the attacks a request could try.
        (
            with("table-name", json!("payroll")),
            "not in this deployment's allowed tables",
        ),
        (
            with("table-region", json!("eu-west-1")),
            "not in this deployment's allowed tables",
        ),
        (
            with("bucket-name", json!("someone-elses-bucket")),
            "not in this deployment's allowed buckets",
        ),
        (
            with("table-name", json!("bad-backup-table")),
            "is a Solace status table",
        ),
        (
            with("retention-mode", json!("COMPLIANCE")),
            "retention-mode needs retention-days",
        ),
        (
            json!({"action": "cancel", "task-id": "no-such-task"}).to_string(),
            "no such task",
        ),
        // The wider catalogue: text that is not what it looks like, sizes at and past every
        // limit, types that are almost right.
        ("null".into(), "JSON object"),
        ("{}".into(), "missing field `table-region`"),
        (
            good.to_string()
                .replacen('{', "{\"action\": \"restore\", ", 1),
            "duplicate field `action`",
        ),
        (with("bucket-prefix", json!("a/../b/")), "`..` segment"),
        (with("bucket-prefix", json!("./")), "`..` segment"),
        (
            with("bucket-prefix", json!("bad\u{0}nul/")),
            "control characters",
        ),
        (
            with("bucket-prefix", json!("tab\there/")),
            "control characters",
        ),
        (
            with("bucket-prefix", json!("p".repeat(513))),
            "longer than 512 bytes",
        ),
        (
            with("bucket-prefix", json!("é".repeat(257))),
            "longer than 512 bytes",
        ),
        (
            with("table-region", json!("us-east-1".repeat(20_000))),
            "not an AWS region",
        ),
        (with("table-region", json!("us-east-1 ")), "not an AWS region"),
        (with("table-name", json!("src\u{0}x")), "not a DynamoDB table name"),
        (
            with("table-name", json!("ｓｒｃ-fullwidth")),
            "not a DynamoDB table name",
        ),
        (
            with("bucket-name", json!("bkt-\u{0430}lias")),
            "not an S3 bucket name",
        ),
        (with("bucket-name", json!("bkt..x")), "not an S3 bucket name"),
        (with("bucket-name", json!("-bkt")), "not an S3 bucket name"),
        (with("total-segments", json!(2.0)), "invalid type"),
        (with("total-segments", json!(-0.0)), "invalid type"),
        (with("total-segments", json!(u64::MAX)), "invalid value"),
        (
            good.to_string()
                .replace("\"total-segments\":2", "\"total-segments\":18446744073709551616"),
            "invalid type",
        ),
        (with("total-segments", json!(null)), "invalid type"),
        (with("total-segments", json!([2])), "invalid type"),
        (with("action", json!({"backup": true})), "invalid type"),
        (with("action", json!("BACKUP")), "unknown variant `BACKUP`"),
        (
            r#"{"action":"backup","bucket-prefix":"\ud800"}"#.into(),
            "hex escape",
        ),
        (with("retention-days", json!("5")), "invalid type"),
        (
            with("retention-mode", json!("FOREVER")),
            "unknown variant `FOREVER`",
        ),
        (
            with("create-table", json!(true)),
            "create-table is a restore field",
        ),
        (with("method", json!("copy")), "unknown variant `copy`"),
        (with("to-bucket-name", json!("x")), "only a convert takes it"),
        (
            with("pad", json!("x".repeat(250_000))),
            "unknown field `pad`",
        ),
        (
            json!({"action": "verify", "total-segments": 2, "bucket-region": REGION,
                "bucket-name": w.bucket, "bucket-prefix": "bad/", "table-name": w.source})
            .to_string(),
            "unknown field `table-name`",
        ),
        (
            json!({"action": "cancel", "task-id": "a#b"}).to_string(),
            "task-id",
        ),
        (
            json!({"action": "cancel", "task-id": "x", "table-name": "y"}).to_string(),
            "unknown field `table-name`",
        ),
        (
            json!({"action": "convert", "total-segments": 2, "bucket-region": REGION,
                "bucket-name": w.bucket, "bucket-prefix": "bad/",
                "to-bucket-name": w.bucket, "to-bucket-prefix": "bad/copy/"})
            .to_string(),
            "overlaps",
        ),
        // Every field at its largest, and a table outside the allow-lists.
        (
            json!({"action": "backup", "total-segments": 64,
                "table-region": "us-gov-west-255", "table-name": "p".repeat(255),
                "bucket-region": "us-gov-west-255", "bucket-name": format!("bkt-{}", "a".repeat(59)),
                "bucket-prefix": "q".repeat(512), "retention-mode": "GOVERNANCE",
                "retention-days": 36_500})
            .to_string(),
            "not in this deployment's allowed tables",
        ),
    ];
    // A restore whose segment count differs from the backup's manifest.
    let id = local.send(&good).await.expect("sent");
    local
        .wait(
            &local.ctx.config.backup_status_table,
            &id,
            Duration::from_secs(300),
            |_| {},
        )
        .await
        .expect("the good backup completes");
    let mut restore = request("restore", 3, &w.source, &w.bucket, "bad/", REGION);
    restore["table-name"] = json!(unique_name("dst"));
    let mut catalog = catalog;
    catalog.push((restore.to_string(), "was made with 2"));

    let sqs = local.ctx.services.sqs();
    // Forged work messages sent straight to the backup queue (skipping the request queue's
    // checks): one naming another table and prefix under the good task, one a segment the task
    // does not have, one a task that does not exist. Each is consumed and changes nothing.
    let forged = json!({"task-id": id, "segment": 0, "action": "backup", "total-segments": 2,
        "table-region": REGION, "table-name": "payroll", "bucket-region": REGION,
        "bucket-name": w.bucket, "bucket-prefix": "forged/"});
    let mut beyond = json!({"task-id": id, "segment": 7, "action": "backup", "total-segments": 2,
        "table-region": REGION, "table-name": w.source, "bucket-region": REGION,
        "bucket-name": w.bucket, "bucket-prefix": "bad/"});
    let mut unknown = beyond.clone();
    unknown["task-id"] = json!("no-such-task");
    unknown["segment"] = json!(0);
    unknown["bucket-prefix"] = json!("forged/");
    beyond["bucket-prefix"] = json!("bad/");
    for body in [&forged, &beyond, &unknown] {
        sqs.send_message()
            .queue_url(local.queues.url(solace_cli::local::BACKUP_QUEUE))
            .message_body(body.to_string())
            .send()
            .await
            .expect("sent");
    }
    let mut ids = Vec::new();
    for (body, _) in &catalog {
        let out = sqs
            .send_message()
            .queue_url(local.queues.url(solace_cli::local::REQUEST_QUEUE))
            .message_body(if body.is_empty() { " " } else { body })
            .send()
            .await
            .expect("sent");
        ids.push(out.message_id.expect("id"));
    }
    // Collect the rejections with their reasons.
    let mut reasons = std::collections::HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while reasons.len() < catalog.len() && tokio::time::Instant::now() < deadline {
        let out = sqs
            .receive_message()
            .queue_url(local.queues.url(solace_cli::local::REJECTED_QUEUE))
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for m in out.messages() {
            let v: serde_json::Value =
                serde_json::from_str(m.body().unwrap_or_default()).expect("json");
            reasons.insert(
                v["task-id"].as_str().unwrap_or_default().to_owned(),
                v["reason"].as_str().unwrap_or_default().to_owned(),
            );
            sqs.delete_message()
                .queue_url(local.queues.url(solace_cli::local::REJECTED_QUEUE))
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
    // Every wrong reason at once, each body cut short.
    let wrong: Vec<String> = catalog
        .iter()
        .zip(&ids)
        .filter_map(|((body, expected), id)| {
            let shown: String = body.chars().take(120).collect();
            match reasons.get(id) {
                None => Some(format!("no rejection for {shown}")),
                Some(r) if !r.contains(expected) => {
                    Some(format!("{shown}: {r:?} should say {expected:?}"))
                }
                Some(_) => None,
            }
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for ((body, _), id) in catalog.iter().zip(&ids) {
        for table in [
            &local.ctx.config.backup_status_table,
            &local.ctx.config.restore_status_table,
        ] {
            let task = local
                .ctx
                .services
                .status()
                .read_task(table, id)
                .await
                .expect("read");
            assert!(task.is_none(), "{body} recorded no task");
        }
    }
    // The forged messages were consumed and wrote nothing; the task's counts did not move.
    let listed = s3_client(&w.sdk)
        .list_objects_v2()
        .bucket(&w.bucket)
        .prefix("forged/")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(0), "nothing under forged/");
    let task = local
        .ctx
        .services
        .status()
        .read_task(&local.ctx.config.backup_status_table, &id)
        .await
        .expect("read")
        .expect("the good task");
    assert_eq!((task.total, task.completed, task.failed), (2, 2, 0));
    // Nothing was fanned out: the work queues are empty.
    for q in [
        solace_cli::local::BACKUP_QUEUE,
        solace_cli::local::RESTORE_QUEUE,
    ] {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(local.queues.url(q))
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .expect("attributes");
        let n = |name: aws_sdk_sqs::types::QueueAttributeName| {
            attrs
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        use aws_sdk_sqs::types::QueueAttributeName as A;
        assert_eq!(
            n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible),
            0,
            "{q} is empty"
        );
    }
    assert_no_canary(&local).await;
    local.stop().await;
    catalog.len()
}

/// How long a client waits for an answer in [`faults`]: the proxy's delays are longer.
const FAULT_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Segments of the fault scenario's tasks.
const FAULT_SEGMENTS: u32 = 8;

/// Scenario: every AWS call the functions make goes through the fault proxy, which faults 10%
/// of each service's calls with every kind of fault (throttles, 500, 503, resets before and
/// after the request took effect, answers past the read timeout, bodies cut short). The same
/// backup and restore run first with the proxy passing everything, then faulted: both exact,
/// and the faulted run takes at most twice the invocations.
///
/// Each invocation has room for its whole segment, so the fault-free run is one invocation
/// per task and per segment whatever the emulator's speed, and what the faulted run takes
/// beyond that is what faults cost: calls that failed past every retry, messages delivered
/// again, runs that ran out of time. (With continuations driven by the clock, the count
/// followed how fast the machine was: 12 to 28 invocations fault-free for the same work.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_every_aws_call_leave_backups_and_restores_exact() {
    use solace_testkit::faults::{FaultProxy, Plan, Service};
    let w = world(1500).await;
    let proxy = FaultProxy::start(
        solace_testkit::Emulator::shared().endpoint(),
        Plan::uniform(0x5eed, 0.10, FAULT_READ_TIMEOUT * 2),
    )
    .await
    .expect("the fault proxy starts");
    let through_proxy = proxy.sdk_config(REGION, FAULT_READ_TIMEOUT).await;
    let opts = LocalOptions {
        // A message whose ReceiveMessage answer is lost is received again after the
        // visibility timeout; faults make that common, so allow more receives.
        max_receive_count: 6,
        lambda_timeout: Duration::from_secs(20),
        visibility_timeout: Duration::from_secs(22),
        ..options()
    };
    let stats = opts.stats.clone();
    let config = Config {
        // 12 s of work per 20 s invocation, several times what a segment of 190 items
        // takes, and 4 s of grace for the retries of a call in flight at the stop.
        deadline_margin: Duration::from_secs(8),
        scan_page_limit: Some(50),
        batch_bytes: 32 << 10,
        write_capacity_limit: None,
        ..config("flt")
    };
    init_logs();
    let opts = LocalOptions {
        queue_prefix: "flt-".into(),
        ..opts
    };
    let local = Running::start(&through_proxy, opts, config)
        .await
        .expect("solace local starts");
    // Requests are sent and statuses read past the proxy: the operator's side is not tested
    // here (a request sent twice is two tasks).
    let direct = sdk().await;
    let invocations = || stats.total_invocations();
    let per_function = || Function::ALL.map(|f| stats.invocations(f));

    // Fault-free: the baseline.
    let backup = run_past(&direct, &local, &w, "backup", &w.source, "clean/").await;
    let target = unique_name("dst");
    create_table(&w.dynamodb, &target).await.expect("target");
    let restore = run_past(&direct, &local, &w, "restore", &target, "clean/").await;
    assert_exact("fault-free backup", &backup, FAULT_SEGMENTS.into(), 1500);
    assert_exact("fault-free restore", &restore, FAULT_SEGMENTS.into(), 1500);
    assert_equal_tables(&w, &target).await;
    let clean = invocations();
    let clean_per_function = per_function();

    // The same under faults.
    proxy.set_active(true);
    let backup = run_past(&direct, &local, &w, "backup", &w.source, "faulted/").await;
    let target = unique_name("dst");
    create_table(&w.dynamodb, &target).await.expect("target");
    let restore = run_past(&direct, &local, &w, "restore", &target, "faulted/").await;
    proxy.set_active(false);
    let faulted = invocations() - clean;
    assert_no_canary(&local).await;
    local.stop().await;
    let faulted_per_function: Vec<_> = Function::ALL
        .iter()
        .zip(per_function().iter().zip(clean_per_function))
        .map(|(f, (after, before))| format!("{} {}/{before}", f.name(), after - before))
        .collect();
    eprintln!(
        "fault proxy:\n{}invocations: fault-free {clean}, faulted {faulted} (faulted/fault-free: {}); killed at the deadline {}",
        proxy.report(),
        faulted_per_function.join(", "),
        stats.killed()
    );
    assert_exact("faulted backup", &backup, FAULT_SEGMENTS.into(), 1500);
    assert_exact("faulted restore", &restore, FAULT_SEGMENTS.into(), 1500);
    assert_equal_tables(&w, &target).await;
    assert!(
        faulted <= 2 * clean,
        "faults cost {faulted} invocations against {clean} without them"
    );
    let counts = proxy.counts();
    for fault in solace_testkit::Fault::ALL {
        assert!(
            counts.get(&fault).is_some_and(|&n| n > 0),
            "no {fault:?} injected: {counts:?}"
        );
    }
    let seen = proxy.seen();
    let injected = proxy.injected();
    for service in [Service::DynamoDb, Service::S3, Service::Sqs] {
        let calls: u64 = seen
            .iter()
            .filter(|(c, _)| c.service == service)
            .map(|(_, n)| n)
            .sum();
        let faulted = injected
            .iter()
            .filter(|i| i.call.service == service)
            .count() as u64;
        assert!(
            calls >= 50 && faulted * 20 >= calls,
            "{service:?}: {faulted} of {calls} calls faulted, fewer than 5%"
        );
    }
}

/// Sends a [`FAULT_SEGMENTS`]-segment `action` of `table` at `prefix` and waits for it (a backup, for its
/// completion record too), all through `direct`: past any proxy.
async fn run_past(
    direct: &SdkConfig,
    local: &Running,
    w: &World,
    action: &str,
    table: &str,
    prefix: &str,
) -> TaskStatus {
    let body = request(action, FAULT_SEGMENTS, table, &w.bucket, prefix, REGION);
    let id = solace_testkit::sqs_client(direct)
        .send_message()
        .queue_url(local.queues.url(solace_cli::local::REQUEST_QUEUE))
        .message_body(body.to_string())
        .send()
        .await
        .expect("sent")
        .message_id
        .expect("an id");
    let status = solace_functions::status::DynamoStatus::new(aws_sdk_dynamodb::Client::new(direct));
    let table = match action {
        "backup" => &local.ctx.config.backup_status_table,
        _ => &local.ctx.config.restore_status_table,
    };
    let end = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        let s = status.read_task(table, &id).await.expect("status");
        assert!(std::time::Instant::now() < end, "task {id} not done: {s:?}");
        if let Some(s) = s.filter(TaskStatus::is_done) {
            let key = solace_codec::completion_key(prefix);
            let recorded = action != "backup"
                || !s.succeeded()
                || s3_client(direct)
                    .head_object()
                    .bucket(&w.bucket)
                    .key(&key)
                    .send()
                    .await
                    .is_ok();
            if recorded {
                return s;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `solace local` as its own process on `emulator`: a 10 s Lambda timeout with a 1 s margin,
/// 8 KB batches and capacity limits, so a segment takes several runs. Killed when dropped.
async fn local_process(emulator: &solace_testkit::Emulator) -> tokio::process::Child {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_solace"))
        .args(["local", "--lambda-timeout-secs", "10", "--concurrency", "2"])
        .env("AWS_ENDPOINT_URL", emulator.endpoint())
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("SOLACE_DEADLINE_MARGIN_MS", "1000")
        .env("SOLACE_BATCH_BYTES", "8192")
        // Slow enough for kills to meet work: the emulator reports a unit per scan page
        // (a page is up to 1 MB: a few per segment), so one page every 4 s; and 40 items
        // written a second by each segment's run (a batch of a page's ~300 items must fit
        // in one invocation: much slower, and no run would ever finish one).
        .env("SOLACE_READ_CAPACITY_LIMIT", "0.25")
        .env("SOLACE_WRITE_CAPACITY_LIMIT", "40")
        .env_remove("AWS_PROFILE")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(match std::env::var_os("SOLACE_LOCAL_LOG") {
            // `SOLACE_LOCAL_LOG=<file>` keeps what every start logged (at RUST_LOG's level).
            Some(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_or_else(|_| std::process::Stdio::null(), std::process::Stdio::from),
            None => std::process::Stdio::null(),
        })
        .kill_on_drop(true)
        .spawn()
        .expect("solace local starts");
    let stdout = child.stdout.take().expect("its stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("reading its stdout") {
            if line.contains("solace local: ready") {
                return true;
            }
        }
        false
    })
    .await
    .expect("ready within a minute");
    assert!(ready, "solace local ended before it was ready");
    child
}

/// Scenario: the whole `solace local` process is killed (SIGKILL: no invocation finishes, no
/// message is handed back, whatever was in flight stays invisible until its visibility
/// timeout) at seeded random points, 3 times during a backup and 3 times during a restore
/// (each kill soon after the runner is seen making progress), and started again after a pause
/// each time. The tasks finish exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_runner_killed_at_random_points_finishes_exact_once_restarted() {
    // 6 MB: hundreds of 8 KB batches to scan and write.
    const ITEMS: u64 = 1800;
    // An emulator of its own: the process uses the default queue and table names.
    let emulator = solace_testkit::Emulator::start().expect("an emulator");
    let sdk = emulator.sdk_config(REGION).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let source = unique_name("src");
    create_table(&dynamodb, &source).await.expect("table");
    fill(&dynamodb, &source, ITEMS).await.expect("filled");
    let bucket = unique_name("bkt");
    create_bucket(&s3_client(&sdk), &bucket)
        .await
        .expect("bucket");
    let defaults = Config::from_lookup(|_| None).expect("the defaults");
    let sqs = solace_testkit::sqs_client(&sdk);
    let status = solace_functions::status::DynamoStatus::new(dynamodb.clone());
    let mut rng = fastrand::Rng::with_seed(0x6b11);
    let target = unique_name("dst");
    create_table(&dynamodb, &target).await.expect("target");
    let mut child = local_process(&emulator).await;
    let queue = sqs
        .get_queue_url()
        .queue_name(solace_cli::local::REQUEST_QUEUE)
        .send()
        .await
        .expect("the request queue")
        .queue_url
        .expect("a url");
    for (action, table, status_table) in [
        ("backup", &source, &defaults.backup_status_table),
        ("restore", &target, &defaults.restore_status_table),
    ] {
        let body = request(action, 3, table, &bucket, "killed/", REGION);
        let id = sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body.to_string())
            .send()
            .await
            .expect("sent")
            .message_id
            .expect("an id");
        // Each kill comes at a random moment (0 to 1.5 s) after the runner is seen making
        // progress since it last started (a batch object more in the bucket, items more in
        // the destination), so every kill meets a run at work, and none the task finished.
        let progress = || async {
            if action == "backup" {
                s3_client(&sdk)
                    .list_objects_v2()
                    .bucket(&bucket)
                    .prefix("killed/")
                    .send()
                    .await
                    .expect("listed")
                    .key_count
                    .unwrap_or(0) as i64
            } else {
                dynamodb
                    .describe_table()
                    .table_name(table)
                    .send()
                    .await
                    .expect("described")
                    .table
                    .and_then(|t| t.item_count)
                    .unwrap_or(0)
            }
        };
        let mut kills = 0;
        let mut since = progress().await;
        let end = std::time::Instant::now() + Duration::from_secs(240);
        let done = loop {
            if std::time::Instant::now() > end {
                let s = status.read_task(status_table, &id).await;
                panic!("{action} {id} not done after {kills} kills: {s:?}");
            }
            let read = status.read_task(status_table, &id).await.expect("status");
            if let Some(s) = read.filter(TaskStatus::is_done) {
                break s;
            }
            if kills < 3 && progress().await > since {
                tokio::time::sleep(Duration::from_millis(rng.u64(0..1500))).await;
                child.start_kill().expect("SIGKILL");
                let _ = child.wait().await;
                kills += 1;
                tokio::time::sleep(Duration::from_millis(rng.u64(200..1500))).await;
                since = progress().await;
                child = local_process(&emulator).await;
                continue;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        assert_eq!(kills, 3, "{action}: three kills, each of a run at work");
        assert_exact(&format!("{action} after 3 kills"), &done, 3, ITEMS);
        if action == "backup" {
            // The restore refuses a backup without its completion record: wait for it.
            let key = solace_codec::completion_key("killed/");
            let s3 = s3_client(&sdk);
            let end = std::time::Instant::now() + Duration::from_secs(60);
            while s3
                .head_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
                .is_err()
            {
                assert!(std::time::Instant::now() < end, "{key} never written");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    let a = contents(&dynamodb, &source).await.expect("scan source");
    let b = contents(&dynamodb, &target).await.expect("scan target");
    assert_eq!(a.len() as u64, ITEMS);
    assert!(a == b, "the restored table equals the source");
}

/// Scenario: an idle runner long-polls each queue with one poller, not with all of them:
/// with four pollers per queue allowed, the five queues cost about one receive each per
/// wait. (Every poller on every queue would be four times as many.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_runner_polls_each_queue_once_per_wait() {
    let opts = LocalOptions {
        concurrency: 4,
        wait: Duration::from_secs(1),
        ..options()
    };
    let stats = opts.stats.clone();
    let local = start("idle", opts).await;
    let feeds = 5;
    let window = Duration::from_secs(4);
    let before = stats.receives();
    tokio::time::sleep(window).await;
    let receives = stats.receives() - before;
    local.stop().await;
    // Each poller is in at most window/wait + 1 receives over the window.
    let most = feeds * (window.as_secs() as usize + 1);
    assert!(
        (feeds..=most).contains(&receives),
        "{receives} receives in {window:?} from an idle runner, expected {feeds} to {most} (one poller per queue)"
    );
}
