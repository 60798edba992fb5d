//! Pipeline logic on in-memory stores: exactness, resumption from any checkpoint, fault
//! injection (throttles, unprocessed items, failed and hung calls) and backpressure.
//! The same pipeline runs against the AWS emulator in `emulator.rs`.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use solace_codec::sample;
use solace_codec::sdk::{SdkItem, to_sdk_item};
use solace_codec::{BatchId, EncoderConfig, SegmentId};
use solace_pipeline::sim::{MemObjects, MemTable};
use solace_pipeline::{
    BackupCheckpoint, BackupConfig, ErrorKind, Fence, ObjectInfo, ObjectMeta, Objects, Outcome,
    Progress, PutNew, RestoreCheckpoint, RestoreConfig, RetryPolicy, ScanPage, SegmentJob,
    SegmentMarker, StoreError, Table, Unfenced, WriteResult, backup_segment, restore_segment,
};
use tokio::time::Instant;

const SEGMENTS: u32 = 3;

fn source(n: u64) -> Arc<MemTable> {
    let table = MemTable::new("pk", None).with_page_bytes(8 << 10);
    for i in 0..n {
        table.insert(to_sdk_item(&sample::mixed(i)));
    }
    Arc::new(table)
}

fn job(segment: u32) -> SegmentJob {
    SegmentJob {
        prefix: "t/2026/".into(),
        segment: SegmentId(segment),
        total_segments: SEGMENTS,
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_attempts: 8,
        budget: 1000,
        call_timeout: Duration::from_secs(5),
        grace: Duration::ZERO,
    }
}

fn backup_config() -> BackupConfig {
    BackupConfig {
        encoder: EncoderConfig {
            target_bytes: 16 << 10,
            max_items: usize::MAX,
            level: 1,
        },
        retry: fast_retry(),
        ..BackupConfig::default()
    }
}

fn restore_config() -> RestoreConfig {
    RestoreConfig {
        retry: fast_retry(),
        ..RestoreConfig::default()
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

async fn backup_all<T: Table, O: Objects>(table: &Arc<T>, objects: &Arc<O>) {
    for s in 0..SEGMENTS {
        let out = backup_segment(
            table.clone(),
            objects.clone(),
            Unfenced,
            &job(s),
            &backup_config(),
            BackupCheckpoint::default(),
            far(),
            Arc::default(),
        )
        .await
        .expect("backup succeeds");
        assert!(matches!(out, Outcome::Completed(_)));
    }
}

async fn restore_all<T: Table, O: Objects>(table: &Arc<T>, objects: &Arc<O>) {
    for s in 0..SEGMENTS {
        let out = restore_segment(
            table.clone(),
            objects.clone(),
            &job(s),
            &restore_config(),
            RestoreCheckpoint::default(),
            far(),
            Arc::default(),
        )
        .await
        .expect("restore succeeds");
        assert!(matches!(out, Outcome::Completed(_)));
    }
}

#[tokio::test]
async fn backup_then_restore_is_exact() {
    let table = source(600);
    let objects = Arc::new(MemObjects::new());
    backup_all(&table, &objects).await;
    let batches = objects
        .keys()
        .iter()
        .filter(|k| solace_codec::parse_batch_key("t/2026/", k).is_ok())
        .count();
    assert!(
        batches > SEGMENTS as usize * 3,
        "several batches per segment: {batches}"
    );
    let target = Arc::new(MemTable::new("pk", None));
    restore_all(&target, &objects).await;
    assert_eq!(target.items(), table.items());
}

#[tokio::test]
async fn an_empty_segment_still_writes_batch_zero_and_restores() {
    let table = Arc::new(MemTable::new("pk", None));
    let objects = Arc::new(MemObjects::new());
    backup_all(&table, &objects).await;
    for s in 0..SEGMENTS {
        let key = solace_codec::batch_key("t/2026/", SegmentId(s), BatchId(0));
        assert!(objects.get_now(&key).is_some(), "{key}");
    }
    let target = Arc::new(MemTable::new("pk", None));
    restore_all(&target, &objects).await;
    assert!(target.is_empty());
}

/// Runs a backup of one segment in slices of `slice` until it completes, each slice resuming
/// from the checkpoint the last one returned. Every paused slice must have moved the
/// checkpoint: a continuation that starts where its predecessor did could loop forever.
async fn backup_in_slices<T: Table, O: Objects>(
    table: &Arc<T>,
    objects: &Arc<O>,
    segment: u32,
    slice: Duration,
) -> (BackupCheckpoint, usize) {
    let mut checkpoint = BackupCheckpoint::default();
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs < 10_000, "a resumed backup makes progress");
        let out = backup_segment(
            table.clone(),
            objects.clone(),
            Unfenced,
            &job(segment),
            &backup_config(),
            checkpoint.clone(),
            Instant::now() + slice,
            Arc::default(),
        )
        .await
        .expect("no error");
        match out {
            Outcome::Completed(c) => return (c, runs),
            Outcome::Paused(c) => {
                assert!(
                    c.next_batch > checkpoint.next_batch && c.items > checkpoint.items,
                    "slice {runs} of segment {segment} made no durable progress: {c:?}"
                );
                checkpoint = c;
            }
            Outcome::Fenced(c) => panic!("an unfenced run cannot lose its chain: {c:?}"),
        }
    }
}

/// The batch keys of one segment, in order, must be exactly 0x0..0xn: restore reads them so.
fn assert_contiguous(objects: &MemObjects, segment: u32, batches: u64) {
    let prefix = solace_codec::segment_prefix("t/2026/", SegmentId(segment));
    let mut ids: Vec<u64> = objects
        .keys()
        .iter()
        .filter(|k| k.starts_with(&prefix))
        .filter_map(|k| solace_codec::parse_batch_key("t/2026/", k).ok())
        .map(|(_, b)| b.0)
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..batches).collect::<Vec<_>>(), "segment {segment}");
}

#[tokio::test]
async fn resuming_from_any_checkpoint_writes_exactly_the_uninterrupted_backup() {
    let table = source(400);
    let whole = Arc::new(MemObjects::new());
    backup_all(&table, &whole).await;
    let slow = Arc::new(MemObjects::new().with_latency(Duration::from_millis(3), Duration::ZERO));
    let mut paused = 0;
    let mut items = 0;
    for s in 0..SEGMENTS {
        let (done, runs) = backup_in_slices(&table, &slow, s, Duration::from_millis(8)).await;
        paused += runs - 1;
        items += done.items;
        assert_contiguous(&slow, s, done.next_batch);
    }
    assert!(
        paused >= SEGMENTS as usize,
        "the slices really interrupted: {paused}"
    );
    assert_eq!(items, 400, "every item backed up once");
    // Byte for byte: two runs of one continuation (a duplicate delivery) cannot disagree.
    assert_eq!(slow.keys(), whole.keys(), "no extra or missing objects");
    for key in whole.keys() {
        assert_eq!(
            slow.get_now(&key),
            whole.get_now(&key),
            "{key} is byte-identical"
        );
    }
    let target = Arc::new(MemTable::new("pk", None));
    restore_all(&target, &slow).await;
    assert_eq!(target.items(), table.items());
}

#[tokio::test]
async fn a_table_too_slow_to_fill_a_batch_in_one_run_still_finishes() {
    // A batch takes several pages, a slice has time for less than one: each run scans past
    // its deadline until it has closed a batch, instead of dropping what it scanned and
    // starting over from the same checkpoint forever.
    let table = Arc::new(
        MemTable::new("pk", None)
            .with_page_bytes(2 << 10)
            .with_latency(Duration::from_millis(30), Duration::ZERO),
    );
    for i in 0..120 {
        // ~2 KB each: a page or two per item.
        table.insert(to_sdk_item(&sample::item(sample::Shape::Medium, i)));
    }
    let objects = Arc::new(MemObjects::new());
    let mut items = 0;
    let mut total_runs = 0;
    for s in 0..SEGMENTS {
        let (done, runs) = backup_in_slices(&table, &objects, s, Duration::from_millis(20)).await;
        // A batch takes ~8 pages (240 ms), a slice 20 ms: exactly one batch per run.
        assert_eq!(runs as u64, done.next_batch, "segment {s}: {done:?}");
        total_runs += runs;
        items += done.items;
        assert_contiguous(&objects, s, done.next_batch);
    }
    assert_eq!(items, 120);
    assert!(total_runs > 2 * SEGMENTS as usize, "{total_runs} runs");
    let target = Arc::new(MemTable::new("pk", None));
    restore_all(&target, &objects).await;
    assert_eq!(target.items(), table.items());
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Throttle,
    Transient,
    Permanent,
    /// BatchWriteItem writes only the first item of the request.
    Unprocessed,
    /// The call never answers.
    Hang,
}

/// Wraps a store; `plan(operation, call number)` says which calls fail and how.
struct Flaky<T> {
    inner: T,
    calls: Mutex<std::collections::HashMap<&'static str, usize>>,
    plan: Box<dyn Fn(&'static str, usize) -> Option<Fault> + Send + Sync>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl<T> Flaky<T> {
    fn new(
        inner: T,
        plan: impl Fn(&'static str, usize) -> Option<Fault> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Flaky {
            inner,
            calls: Mutex::default(),
            plan: Box::new(plan),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        })
    }

    fn next(&self, op: &'static str) -> Option<Fault> {
        let n = {
            let mut calls = self.calls.lock().expect("lock");
            let c = calls.entry(op).or_default();
            *c += 1;
            *c - 1
        };
        (self.plan)(op, n)
    }

    fn calls(&self, op: &'static str) -> usize {
        self.calls
            .lock()
            .expect("lock")
            .get(op)
            .copied()
            .unwrap_or(0)
    }

    async fn inject(&self, op: &'static str) -> Result<Option<Fault>, StoreError> {
        match self.next(op) {
            Some(Fault::Throttle) => Err(StoreError::new(
                ErrorKind::Throttled,
                op,
                "ThrottlingException",
            )),
            Some(Fault::Transient) => Err(StoreError::new(
                ErrorKind::Transient,
                op,
                "InternalServerError (500)",
            )),
            Some(Fault::Permanent) => Err(StoreError::new(
                ErrorKind::Permanent,
                op,
                "AccessDenied: injected",
            )),
            Some(Fault::Hang) => {
                tokio::time::sleep(Duration::from_secs(86_400)).await;
                Ok(None)
            }
            other => Ok(other),
        }
    }
}

impl<T: Table> Table for Flaky<T> {
    async fn scan(
        &self,
        segment: u32,
        total: u32,
        start: Option<SdkItem>,
    ) -> Result<ScanPage, StoreError> {
        self.inject("Scan").await?;
        self.inner.scan(segment, total, start).await
    }

    async fn batch_write(&self, mut items: Vec<SdkItem>) -> Result<WriteResult, StoreError> {
        if let Some(Fault::Unprocessed) = self.inject("BatchWriteItem").await? {
            let rest = items.split_off(1.min(items.len()));
            let mut result = self.inner.batch_write(items).await?;
            result.unprocessed.extend(rest);
            return Ok(result);
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let r = self.inner.batch_write(items).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

impl<O: Objects> Objects for Flaky<O> {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.inject("PutObject").await?;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let r = self.inner.put(key, body).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        r
    }

    async fn put_new(
        &self,
        key: &str,
        body: Bytes,
        meta: &ObjectMeta,
    ) -> Result<PutNew, StoreError> {
        self.inject("PutObject").await?;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let r = self.inner.put_new(key, body, meta).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        r
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.inject("GetObject").await?;
        self.inner.get(key).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.inject("HeadObject").await?;
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inject("ListObjectsV2").await?;
        self.inner.list(prefix).await
    }
}

#[tokio::test]
async fn throttles_unprocessed_items_and_failed_calls_are_retried_to_an_exact_copy() {
    let plain = source(500);
    let table = Flaky::new(source(500), |op, n| match (op, n) {
        ("Scan", 0..=2) => Some(Fault::Throttle),
        ("Scan", 7) => Some(Fault::Transient),
        _ => None,
    });
    let objects = Flaky::new(MemObjects::new(), |op, n| match (op, n % 5) {
        ("PutObject", 1) => Some(Fault::Transient),
        ("PutObject", 3) => Some(Fault::Throttle),
        ("GetObject", 2) => Some(Fault::Throttle),
        _ => None,
    });
    backup_all(&table, &objects).await;
    let target = Flaky::new(MemTable::new("pk", None), |op, n| match (op, n % 4) {
        ("BatchWriteItem", 0) => Some(Fault::Unprocessed),
        ("BatchWriteItem", 1) => Some(Fault::Throttle),
        _ => None,
    });
    restore_all(&target, &objects).await;
    assert_eq!(target.inner.items(), plain.items());
    assert!(target.calls("BatchWriteItem") > 0 && objects.calls("PutObject") > 0);
}

#[tokio::test]
async fn a_hung_call_times_out_and_is_retried() {
    let table = source(100);
    let objects = Flaky::new(MemObjects::new(), |op, n| {
        (op == "PutObject" && n == 0).then_some(Fault::Hang)
    });
    let config = BackupConfig {
        retry: RetryPolicy {
            call_timeout: Duration::from_millis(50),
            ..fast_retry()
        },
        ..backup_config()
    };
    let progress = Arc::new(Progress::default());
    let out = backup_segment(
        table.clone(),
        objects.clone(),
        Unfenced,
        &job(0),
        &config,
        BackupCheckpoint::default(),
        far(),
        progress.clone(),
    )
    .await
    .expect("completes after the timeout");
    assert!(matches!(out, Outcome::Completed(_)));
    assert!(progress.snapshot().retries >= 1);
}

#[tokio::test]
async fn a_permanent_put_failure_ends_the_segment_naming_the_object() {
    let table = source(300);
    let objects = Flaky::new(MemObjects::new(), |op, n| {
        (op == "PutObject" && n == 2).then_some(Fault::Permanent)
    });
    let err = backup_segment(
        table,
        objects.clone(),
        Unfenced,
        &job(0),
        &backup_config(),
        BackupCheckpoint::default(),
        far(),
        Arc::default(),
    )
    .await
    .expect_err("a permanent failure is an error");
    let text = err.to_string();
    assert!(
        text.contains("t/2026/0x0/0x2") && text.contains("AccessDenied"),
        "{text}"
    );
    assert!(!err.error.is_retryable());
    assert!(
        err.checkpoint.next_batch <= 2,
        "no batch after the failed one counted"
    );
    assert_eq!(
        objects.calls("PutObject"),
        3.max(objects.calls("PutObject"))
    );
}

#[tokio::test]
async fn retries_stop_at_the_budget_with_a_retryable_error() {
    let table = Flaky::new(source(50), |op, _| {
        (op == "Scan").then_some(Fault::Throttle)
    });
    let config = BackupConfig {
        retry: RetryPolicy {
            budget: 5,
            ..fast_retry()
        },
        ..backup_config()
    };
    let err = backup_segment(
        table.clone(),
        Arc::new(MemObjects::new()),
        Unfenced,
        &job(0),
        &config,
        BackupCheckpoint::default(),
        far(),
        Arc::default(),
    )
    .await
    .expect_err("a table that always throttles ends the run");
    assert!(err.error.is_retryable(), "{err}");
    assert!(err.to_string().contains("ThrottlingException"), "{err}");
    assert!(table.calls("Scan") <= 8);
}

async fn backed_up() -> (Arc<MemTable>, Arc<MemObjects>) {
    let table = source(300);
    let objects = Arc::new(MemObjects::new());
    backup_all(&table, &objects).await;
    (table, objects)
}

async fn restore_err(objects: Arc<MemObjects>, segment: u32) -> String {
    let target = Arc::new(MemTable::new("pk", None));
    restore_segment(
        target,
        objects,
        &job(segment),
        &restore_config(),
        RestoreCheckpoint::default(),
        far(),
        Arc::default(),
    )
    .await
    .expect_err("restore fails")
    .to_string()
}

#[tokio::test]
async fn a_corrupt_batch_ends_the_restore_naming_it() {
    let (_, objects) = backed_up().await;
    let key = solace_codec::batch_key("t/2026/", SegmentId(1), BatchId(1));
    objects.put_now(&key, Bytes::from_static(b"\x78\x9cnot really zlib"));
    // The marker's checksum refuses it before it is even inflated.
    let err = restore_err(objects.clone(), 1).await;
    assert!(
        err.contains("t/2026/0x1/0x1") && err.contains("SHA-256"),
        "{err}"
    );
    // Without checksums (a format-1 marker), decoding does.
    let marker_key = solace_codec::segment_marker_key("t/2026/", SegmentId(1));
    let marker = SegmentMarker::from_json(&objects.get_now(&marker_key).expect("a marker"))
        .expect("it reads");
    let v1 = SegmentMarker::v1(marker.batches, marker.items, marker.bytes);
    objects.put_now(&marker_key, Bytes::from(v1.to_json()));
    let err = restore_err(objects, 1).await;
    assert!(
        err.contains("t/2026/0x1/0x1") && err.contains("bad zlib"),
        "{err}"
    );
}

/// Restores segment 1 into an empty table, expecting an error: the error and the table.
async fn restore_refused(objects: Arc<MemObjects>) -> (solace_pipeline::PipelineError, MemTable) {
    let target = Arc::new(MemTable::new("pk", None));
    let err = restore_segment(
        target.clone(),
        objects,
        &job(1),
        &restore_config(),
        RestoreCheckpoint::default(),
        far(),
        Arc::default(),
    )
    .await
    .expect_err("the restore is refused");
    let target = Arc::try_unwrap(target).expect("the restore is over");
    (err.error, target)
}

/// A batch of segment 1 after its first, with several items: its key and items.
fn batch_one(objects: &MemObjects) -> (String, Vec<solace_codec::Item>) {
    for n in 1.. {
        let key = solace_codec::batch_key("t/2026/", SegmentId(1), BatchId(n));
        let body = objects.get_now(&key).expect("segment 1 has such a batch");
        let items = solace_codec::decode_items(&body, 1 << 30).expect("it decodes");
        if items.len() > 1 {
            return (key, items);
        }
    }
    unreachable!()
}

fn none_restored(target: &MemTable, items: &[solace_codec::Item]) {
    for item in items {
        assert!(
            target.get(&to_sdk_item(item)).is_none(),
            "an item of the refused batch was written"
        );
    }
}

#[tokio::test]
async fn a_batch_with_one_item_changed_is_refused_before_any_of_it_is_written() {
    let (_, objects) = backed_up().await;
    let (key, items) = batch_one(&objects);
    // Still valid zlib and JSON, one attribute more in one item: only the checksum can tell.
    let mut changed = items.clone();
    changed[0].insert("tampered".into(), solace_codec::Value::Bool(true));
    objects.put_now(&key, Bytes::from(solace_codec::encode_items(&changed, 6)));
    let (err, target) = restore_refused(objects).await;
    assert!(
        matches!(&err, solace_pipeline::PipelineError::ChecksumMismatch { key: k, .. } if *k == key),
        "{err}"
    );
    assert!(!err.is_retryable());
    none_restored(&target, &items);
}

#[tokio::test]
async fn a_batch_with_another_item_count_than_its_marker_entry_is_refused() {
    let (_, objects) = backed_up().await;
    let (key, items) = batch_one(&objects);
    // One item fewer, and a marker whose checksum was made to match: the count still
    // disagrees.
    let body = Bytes::from(solace_codec::encode_items(&items[1..], 6));
    let marker_key = solace_codec::segment_marker_key("t/2026/", SegmentId(1));
    let mut marker = SegmentMarker::from_json(&objects.get_now(&marker_key).expect("a marker"))
        .expect("it reads");
    let (_, n) = solace_codec::parse_batch_key("t/2026/", &key).expect("a batch key");
    marker.batch_list[n.0 as usize].sha256 = solace_pipeline::sha256_hex(&body);
    objects.put_now(&marker_key, Bytes::from(marker.to_json()));
    objects.put_now(&key, body);
    let (err, target) = restore_refused(objects).await;
    let expected = items.len() as u64;
    assert!(
        matches!(&err, solace_pipeline::PipelineError::ItemCountMismatch { key: k, expected: e, found: f }
            if *k == key && *e == expected && *f == expected - 1),
        "{err}"
    );
    none_restored(&target, &items[1..]);
}

#[tokio::test]
async fn a_missing_batch_or_segment_is_an_error_never_skipped() {
    let (_, objects) = backed_up().await;
    let key = solace_codec::batch_key("t/2026/", SegmentId(2), BatchId(1));
    assert!(
        objects.remove(&key).is_some(),
        "segment 2 has several batches"
    );
    let err = restore_err(objects.clone(), 2).await;
    assert!(err.contains("t/2026/0x2/0x1 is missing"), "{err}");

    for key in objects.keys() {
        if key.starts_with("t/2026/0x0/") || key.contains("segments/0x0.json") {
            objects.remove(&key);
        }
    }
    let err = restore_err(objects, 0).await;
    assert!(err.contains("t/2026/0x0/ has no batch 0x0"), "{err}");
}

#[tokio::test]
async fn a_v3_backup_without_markers_restores_up_to_its_last_batch() {
    let (table, objects) = backed_up().await;
    for key in objects.keys() {
        if key.contains("solace-meta/") {
            objects.remove(&key);
        }
    }
    let target = Arc::new(MemTable::new("pk", None));
    restore_all(&target, &objects).await;
    assert_eq!(target.items(), table.items());
}

#[tokio::test]
async fn a_rejected_item_ends_the_restore_naming_the_batch() {
    let (_, objects) = backed_up().await;
    let target = Flaky::new(MemTable::new("pk", None), |op, n| {
        (op == "BatchWriteItem" && n == 3).then_some(Fault::Permanent)
    });
    let err = restore_segment(
        target,
        objects,
        &job(0),
        &restore_config(),
        RestoreCheckpoint::default(),
        far(),
        Arc::default(),
    )
    .await
    .expect_err("rejected");
    let text = err.to_string();
    assert!(
        text.contains("DynamoDB rejected an item") && text.contains("t/2026/0x0/0x"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn uploads_in_flight_and_pages_scanned_ahead_are_bounded() {
    let table = Flaky::new(source(400), |_, _| None);
    // Uploads take a (virtual) minute: the scanner must stop, not hoard pages.
    let objects = Flaky::new(
        MemObjects::new().with_latency(Duration::from_secs(60), Duration::ZERO),
        |_, _| None,
    );
    // Commits take a (virtual) second, and note whether an upload ran meanwhile.
    let fence = Arc::new(SlowFence {
        objects: objects.clone(),
        latency: Duration::from_secs(1),
        overlapped: AtomicUsize::new(0),
    });
    let config = BackupConfig {
        upload_concurrency: 2,
        scan_prefetch: 1,
        encoder: EncoderConfig {
            target_bytes: 8 << 10,
            ..backup_config().encoder
        },
        retry: RetryPolicy {
            call_timeout: Duration::from_secs(600),
            ..fast_retry()
        },
        ..backup_config()
    };
    let run = tokio::spawn({
        let (table, objects, fence) = (table.clone(), objects.clone(), fence.clone());
        async move {
            backup_segment(
                table,
                objects,
                fence,
                &job(0),
                &config,
                BackupCheckpoint::default(),
                far(),
                Arc::default(),
            )
            .await
        }
    });
    // Let every stage run until it blocks on the stalled uploads.
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::task::yield_now().await;
    }
    let scans = table.calls("Scan");
    // 1 uploading + 1 queued batch + 1 page in the encoder + 1 in the channel + 1 being sent.
    assert!(scans <= 5, "scanned {scans} pages ahead of stalled uploads");
    let out = run.await.expect("joins").expect("completes");
    assert!(matches!(out, Outcome::Completed(_)));
    // A batch is uploaded only once the previous one is in its key
    // (docs/protocol.md#fencing), but it uploads while the previous one commits.
    assert_eq!(objects.max_in_flight.load(Ordering::SeqCst), 1);
    assert!(fence.overlapped.load(Ordering::SeqCst) > 0);
}

/// No fencing, with slow commits that count the uploads running during them.
struct SlowFence {
    objects: Arc<Flaky<MemObjects>>,
    latency: Duration,
    overlapped: AtomicUsize,
}

impl Fence for SlowFence {
    async fn propose(
        &self,
        step: u64,
        sha: &str,
        next: &BackupCheckpoint,
    ) -> Result<bool, StoreError> {
        Unfenced.propose(step, sha, next).await
    }

    async fn commit(&self, step: u64, sha: &str) -> Result<bool, StoreError> {
        tokio::time::sleep(self.latency).await;
        if self.objects.in_flight.load(Ordering::SeqCst) > 0 {
            self.overlapped.fetch_add(1, Ordering::SeqCst);
        }
        Unfenced.commit(step, sha).await
    }

    async fn position(&self) -> Result<Option<BackupCheckpoint>, StoreError> {
        Unfenced.position().await
    }
}

#[tokio::test]
async fn restore_writes_overlap_across_batches_and_stay_bounded() {
    // Small batches (one BatchWriteItem chunk each): only writes that run across batch
    // boundaries can fill the write slots.
    let table = source(300);
    let objects = Arc::new(MemObjects::new());
    let config = BackupConfig {
        encoder: EncoderConfig {
            target_bytes: 4 << 10,
            max_items: 20,
            level: 1,
        },
        ..backup_config()
    };
    let out = backup_segment(
        table.clone(),
        objects.clone(),
        Unfenced,
        &job(0),
        &config,
        BackupCheckpoint::default(),
        far(),
        Arc::default(),
    )
    .await
    .expect("backup");
    let Outcome::Completed(done) = out else {
        panic!("backup completes: {out:?}")
    };
    assert!(done.next_batch >= 10, "{done:?}");
    let target = Flaky::new(
        MemTable::new("pk", None).with_latency(Duration::ZERO, Duration::from_millis(20)),
        |_, _| None,
    );
    let restore = RestoreConfig {
        write_concurrency: 4,
        ..restore_config()
    };
    let out = restore_segment(
        target.clone(),
        objects.clone(),
        &job(0),
        &restore,
        RestoreCheckpoint::default(),
        far(),
        Arc::default(),
    )
    .await
    .expect("restore");
    assert!(matches!(out, Outcome::Completed(c) if c.items == done.items));
    assert_eq!(target.inner.len() as u64, done.items);
    assert_eq!(
        target.max_in_flight.load(Ordering::SeqCst),
        4,
        "writes filled every slot across batch boundaries, and never more"
    );
}

#[tokio::test]
async fn a_restore_in_short_slices_moves_its_checkpoint_every_run_and_is_exact() {
    let table = source(300);
    let objects = Arc::new(MemObjects::new());
    backup_all(&table, &objects).await;
    let target =
        Arc::new(MemTable::new("pk", None).with_latency(Duration::ZERO, Duration::from_millis(15)));
    let mut runs = 0;
    for s in 0..SEGMENTS {
        let mut checkpoint = RestoreCheckpoint::default();
        loop {
            runs += 1;
            assert!(runs < 10_000, "a resumed restore makes progress");
            let out = restore_segment(
                target.clone(),
                objects.clone(),
                &job(s),
                &restore_config(),
                checkpoint.clone(),
                Instant::now() + Duration::from_millis(5),
                Arc::default(),
            )
            .await
            .expect("no error");
            match out {
                Outcome::Completed(_) => break,
                Outcome::Paused(c) => {
                    assert!(c.next_batch > checkpoint.next_batch, "no progress: {c:?}");
                    checkpoint = c;
                }
                Outcome::Fenced(c) => panic!("a restore is never fenced: {c:?}"),
            }
        }
    }
    assert!(
        runs > 2 * SEGMENTS as usize,
        "the slices interrupted: {runs} runs"
    );
    assert_eq!(target.items(), table.items());
}

/// A DynamoDB export in its own layout (docs/export.md) under `prefix`: `files` data files of
/// the items (the last one empty), with `manifest-files.json` when `with_manifest`.
fn export_of(
    objects: &MemObjects,
    prefix: &str,
    items: &[solace_codec::Item],
    files: usize,
    with_manifest: bool,
) {
    use solace_codec::export::{ExportFile, data_file};
    let json: Vec<Vec<u8>> = items
        .iter()
        .map(|i| {
            let mut out = Vec::new();
            solace_codec::write_item(i, &mut out);
            out
        })
        .collect();
    let mut lines = String::new();
    let per = json.len().div_ceil(files - 1);
    for f in 0..files {
        let share: Vec<_> = json
            .iter()
            .skip(f * per)
            .take(if f == files - 1 { 0 } else { per })
            .map(|j| solace_codec::RawItem::parse(j).expect("an item"))
            .collect();
        let key = format!("{prefix}data/file-{f}.json.gz");
        let body = data_file(share.iter().copied());
        lines.push_str(&ExportFile::of(&key, &body, share.len() as u64).to_json_line());
        lines.push('\n');
        objects.put_now(&key, Bytes::from(body));
    }
    let summary = serde_json::json!({"version": "2023-08-01", "outputFormat": "DYNAMODB_JSON",
        "exportType": "FULL_EXPORT", "itemCount": items.len(),
        "manifestFilesS3Key": format!("{prefix}manifest-files.json")});
    objects.put_now(
        &format!("{prefix}manifest-summary.json"),
        Bytes::from(summary.to_string()),
    );
    if with_manifest {
        objects.put_now(&format!("{prefix}manifest-files.json"), Bytes::from(lines));
    }
}

async fn restore_export<O: Objects>(
    target: &Arc<MemTable>,
    objects: &Arc<O>,
    prefix: &str,
    segment: u32,
) -> Result<Outcome<RestoreCheckpoint>, solace_pipeline::SegmentError<RestoreCheckpoint>> {
    restore_segment(
        target.clone(),
        objects.clone(),
        &SegmentJob {
            prefix: prefix.into(),
            segment: SegmentId(segment),
            total_segments: SEGMENTS,
        },
        &restore_config(),
        RestoreCheckpoint::default(),
        far(),
        Arc::default(),
    )
    .await
}

/// Each segment restores its share of an export's data files (sorted by key, dealt out in
/// turn), checked by MD5 and item count; without manifest-files.json, what `data/` lists.
#[tokio::test]
async fn an_export_restores_exactly_across_segments_with_or_without_its_file_manifest() {
    let items: Vec<_> = (0..300).map(sample::mixed).collect();
    let expected = source(300).items();
    for with_manifest in [true, false] {
        let objects = Arc::new(MemObjects::new());
        let prefix = "exports/AWSDynamoDB/01234567890123-abcdefgh/";
        export_of(&objects, prefix, &items, 5, with_manifest);
        let target = Arc::new(MemTable::new("pk", None));
        let mut files = 0;
        for s in 0..SEGMENTS {
            match restore_export(&target, &objects, prefix, s).await {
                Ok(Outcome::Completed(c)) => files += c.next_batch,
                other => panic!("segment {s}: {other:?}"),
            }
        }
        assert_eq!(files, 5, "every file once, the empty one too");
        assert_eq!(target.items(), expected, "with manifest: {with_manifest}");
    }
}

/// A data file whose bytes are not the manifest's (by MD5) or whose item count differs is
/// refused before any of its items is written; an ION or incremental export at the start.
#[tokio::test]
async fn an_export_file_that_does_not_match_its_manifest_writes_nothing() {
    let items: Vec<_> = (0..90).map(sample::mixed).collect();
    let prefix = "x/AWSDynamoDB/01/";
    let objects = Arc::new(MemObjects::new());
    export_of(&objects, prefix, &items, 4, true);
    // Segment 0's only file is file-0 (keys sorted, dealt out over 3 segments: 0 and 3).
    let key = format!("{prefix}data/file-0.json.gz");
    let mut body = objects.get_now(&key).expect("file").to_vec();
    let at = body.len() - 9;
    body[at] ^= 0x55;
    objects.put_now(&key, Bytes::from(body));
    let target = Arc::new(MemTable::new("pk", None));
    let err = restore_export(&target, &objects, prefix, 0)
        .await
        .expect_err("refused");
    let text = err.error.to_string();
    assert!(text.contains(&key) && text.contains("its MD5 is"), "{text}");
    assert!(target.is_empty(), "nothing of the file is written");

    let lines = String::from_utf8(
        objects
            .get_now(&format!("{prefix}manifest-files.json"))
            .expect("manifest")
            .to_vec(),
    )
    .expect("text");
    // file-1 is segment 1's: say it holds one item more than it does.
    let count = |l: &str| -> u64 {
        serde_json::from_str::<serde_json::Value>(l).expect("line")["itemCount"]
            .as_u64()
            .expect("count")
    };
    let changed: Vec<String> = lines
        .lines()
        .map(|l| {
            if l.contains("file-1.json.gz") {
                l.replace(
                    &format!("\"itemCount\":{}", count(l)),
                    &format!("\"itemCount\":{}", count(l) + 1),
                )
            } else {
                l.to_owned()
            }
        })
        .collect();
    objects.put_now(
        &format!("{prefix}manifest-files.json"),
        Bytes::from(changed.join("\n")),
    );
    let err = restore_export(&target, &objects, prefix, 1)
        .await
        .expect_err("refused");
    assert!(
        err.error.to_string().contains("manifest-files.json says"),
        "{}",
        err.error
    );
    assert!(target.is_empty());

    for (field, value, says) in [
        ("outputFormat", "ION", "ION format"),
        ("exportType", "INCREMENTAL_EXPORT", "incremental export"),
    ] {
        let summary = serde_json::json!({"version": "2023-08-01", "outputFormat": "DYNAMODB_JSON"});
        let mut summary = summary;
        summary[field] = value.into();
        objects.put_now(
            &format!("{prefix}manifest-summary.json"),
            Bytes::from(summary.to_string()),
        );
        let err = restore_export(&target, &objects, prefix, 2)
            .await
            .expect_err("refused");
        assert!(err.error.to_string().contains(says), "{}", err.error);
    }
}
