//! Many runs of one segment's backup at once, each with its own handle on the segment's
//! chain (docs/protocol.md#fencing), on a table that changes under them: the chain they
//! commit, and the segment marker that names it, hold every item that stayed put exactly
//! once, whatever the interleaving.
//!
//! Time is tokio's paused clock, so latencies and deadlines are virtual and a case takes
//! milliseconds; the runs still interleave at every await (puts of random latency, scans
//! that take time, replies that are lost after the write was made).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use proptest::prelude::*;
use solace_codec::sdk::SdkItem;
use solace_codec::{BatchId, EncoderConfig, SegmentId};
use solace_pipeline::sim::{MemChain, MemFence, MemObjects, MemTable};
use solace_pipeline::{
    BackupCheckpoint, BackupConfig, ErrorKind, Fence, ObjectInfo, ObjectMeta, Objects, Outcome,
    PutNew, RestoreCheckpoint, RestoreConfig, RetryPolicy, SegmentJob, SegmentMarker, StoreError,
    backup_segment, restore_segment, sha256_hex,
};
use tokio::time::Instant;

const PREFIX: &str = "t/";
/// Keys `k0`..: the first `initial` exist at the start; mutations touch any of them.
const KEYS: usize = 40;

fn job() -> SegmentJob {
    SegmentJob {
        prefix: PREFIX.into(),
        segment: SegmentId(0),
        total_segments: 1,
    }
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        max_attempts: 8,
        budget: 1000,
        call_timeout: Duration::from_secs(5),
        grace: Duration::ZERO,
    }
}

fn item(key: usize, size: usize) -> SdkItem {
    [
        ("pk".to_owned(), AttributeValue::S(format!("k{key}"))),
        ("v".to_owned(), AttributeValue::S("x".repeat(size))),
    ]
    .into()
}

fn pk(item: &SdkItem) -> String {
    match item.get("pk") {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("an item without a string pk: {other:?}"),
    }
}

/// Where a run starts.
#[derive(Debug, Clone)]
enum Start {
    /// The segment's first message.
    Beginning,
    /// A message whose checkpoint is the chain's `n`-th committed one (modulo how many there
    /// are when the run starts): a continuation sent twice, or a crashed run's message back.
    Committed(usize),
}

#[derive(Debug, Clone)]
struct RunPlan {
    /// Virtual milliseconds before the run's first message is received.
    delay: u64,
    start: Start,
    /// Each run's deadline, in virtual milliseconds after it starts.
    slice: u64,
    /// After this many continuations, the message of one of them (`.1`, modulo) is also
    /// delivered again, to a run of its own.
    redeliver: Option<(usize, usize)>,
    /// The run of continuation `.0` dies after `.1` virtual milliseconds (wherever it is: an
    /// upload in flight, a batch uploaded but not committed, the marker not written), and
    /// its message is received again after the visibility timeout `.2`.
    crash: Option<(usize, u64, u64)>,
}

#[derive(Debug, Clone)]
enum Change {
    /// The item of that key, created or replaced (grown or shrunk) with a value of this size.
    Put(usize, usize),
    Delete(usize),
}

#[derive(Debug, Clone)]
struct Case {
    /// Value sizes of the items `k0`.. that exist at the start.
    initial: Vec<usize>,
    page_bytes: usize,
    target_bytes: usize,
    runs: Vec<RunPlan>,
    /// Changes at virtual milliseconds after the start.
    changes: Vec<(u64, Change)>,
    seed: u64,
}

fn run_plan() -> impl Strategy<Value = RunPlan> {
    (
        prop_oneof![Just(0u64), 0..40u64],
        prop_oneof![
            2 => Just(Start::Beginning),
            1 => (0..8usize).prop_map(Start::Committed)
        ],
        1..25u64,
        proptest::option::weighted(0.4, (0..4usize, 0..4usize)),
        proptest::option::weighted(0.4, (0..4usize, 0..20u64, 0..30u64)),
    )
        .prop_map(|(delay, start, slice, redeliver, crash)| RunPlan {
            delay,
            start,
            slice,
            redeliver,
            crash,
        })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (0..KEYS, 0..120usize).prop_map(|(k, size)| Change::Put(k, size)),
        1 => (0..KEYS).prop_map(Change::Delete),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(0..120usize, 0..30),
        60..300usize,
        50..600usize,
        proptest::collection::vec(run_plan(), 2..=4),
        proptest::collection::vec((0..60u64, change()), 0..12),
        any::<u64>(),
    )
        .prop_map(
            |(initial, page_bytes, target_bytes, runs, changes, seed)| Case {
                initial,
                page_bytes,
                target_bytes,
                runs,
                changes,
                seed,
            },
        )
}

/// A bucket whose creates take a random time, and whose reply is sometimes lost after the
/// object was created (the run retries and finds its own body).
struct Lossy {
    inner: MemObjects,
    rng: Mutex<fastrand::Rng>,
}

impl Lossy {
    fn roll(&self, range: std::ops::Range<u64>) -> u64 {
        self.rng.lock().expect("rng").u64(range)
    }
}

fn lost(operation: &'static str) -> StoreError {
    StoreError::new(ErrorKind::Transient, operation, "the reply was lost")
}

impl Objects for Lossy {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.inner.put(key, body).await
    }

    async fn put_new(
        &self,
        key: &str,
        body: Bytes,
        meta: &ObjectMeta,
    ) -> Result<PutNew, StoreError> {
        tokio::time::sleep(Duration::from_micros(self.roll(0..4000))).await;
        let created = self.inner.put_new(key, body, meta).await?;
        if self.roll(0..6) == 0 {
            return Err(lost("PutObject"));
        }
        Ok(created)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.inner.get(key).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }
}

/// A run's fence whose commit replies are sometimes lost after the commit was made.
struct LossyFence {
    inner: MemFence,
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl Fence for LossyFence {
    async fn propose(
        &self,
        step: u64,
        sha256: &str,
        next: &BackupCheckpoint,
    ) -> Result<bool, StoreError> {
        self.inner.propose(step, sha256, next).await
    }

    async fn commit(&self, step: u64, sha256: &str) -> Result<bool, StoreError> {
        let committed = self.inner.commit(step, sha256).await?;
        if self.rng.lock().expect("rng").u8(0..6) == 0 {
            return Err(lost("CommitStep"));
        }
        Ok(committed)
    }

    async fn position(&self) -> Result<Option<BackupCheckpoint>, StoreError> {
        self.inner.position().await
    }
}

struct World {
    table: Arc<MemTable>,
    objects: Arc<Lossy>,
    chain: MemChain,
    config: BackupConfig,
    rng: Arc<Mutex<fastrand::Rng>>,
    errors: Mutex<Vec<String>>,
}

/// One message and the continuations its runs send, until a run completes the segment or
/// loses the chain. `redeliver` also runs an earlier message of it again, beside it.
fn deliver(
    world: Arc<World>,
    from: BackupCheckpoint,
    plan: RunPlan,
    redeliver: bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(runs_of(world, from, plan, redeliver))
}

async fn runs_of(world: Arc<World>, mut from: BackupCheckpoint, plan: RunPlan, redeliver: bool) {
    let mut sent = vec![from.clone()];
    let job = job();
    for round in 0..500 {
        let fence = LossyFence {
            inner: world.chain.run(),
            rng: world.rng.clone(),
        };
        let run = backup_segment(
            world.table.clone(),
            world.objects.clone(),
            fence,
            &job,
            &world.config,
            from.clone(),
            Instant::now() + Duration::from_millis(plan.slice),
            Arc::default(),
        );
        let out = match plan.crash {
            Some((r, after, visibility)) if r == round => {
                match tokio::time::timeout(Duration::from_millis(after), run).await {
                    Ok(out) => out,
                    Err(_) => {
                        // The same message again, from the same checkpoint.
                        tokio::time::sleep(Duration::from_millis(visibility)).await;
                        continue;
                    }
                }
            }
            _ => run.await,
        };
        match out {
            Ok(Outcome::Completed(c)) => {
                assert!(c.done, "a completed run's checkpoint is done: {c:?}");
                return;
            }
            Ok(Outcome::Fenced(_)) => return,
            Ok(Outcome::Paused(c)) => {
                assert!(
                    c.next_batch > from.next_batch,
                    "a paused run moved its checkpoint"
                );
                sent.push(c.clone());
                from = c;
            }
            // SQS hands the message back (or a continuation goes on from the checkpoint
            // reached): the segment runs again, as the backup function does.
            Err(e) if e.error.is_retryable() => from = e.checkpoint,
            Err(e) => {
                world.errors.lock().expect("errors").push(e.to_string());
                return;
            }
        }
        if let (true, Some((after, which))) = (redeliver, plan.redeliver) {
            if round == after {
                let old = sent[which % sent.len()].clone();
                tokio::spawn(deliver(world.clone(), old, plan.clone(), false));
            }
        }
    }
    panic!("a message still had continuations after 500 runs");
}

fn check(case: Case) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(run_case(case))
}

async fn run_case(case: Case) -> Result<(), TestCaseError> {
    let table = Arc::new(
        MemTable::new("pk", None)
            .with_page_bytes(case.page_bytes)
            .with_latency(Duration::from_micros(300), Duration::ZERO),
    );
    // Every value each key had while the runs were alive.
    let mut history: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let value = |i: &SdkItem| format!("{:?}", i.get("v"));
    for (k, size) in case.initial.iter().enumerate() {
        let i = item(k, *size);
        history.entry(pk(&i)).or_default().insert(value(&i));
        table.insert(i);
    }
    let touched: BTreeSet<usize> = (case.changes.iter())
        .map(|(_, c)| match c {
            Change::Put(k, _) | Change::Delete(k) => *k,
        })
        .collect();
    let stable: BTreeMap<String, SdkItem> = table
        .items()
        .into_iter()
        .filter(|i| {
            let k: usize = pk(i)[1..].parse().expect("k<n>");
            !touched.contains(&k)
        })
        .map(|i| (pk(&i), i))
        .collect();
    for (_, change) in &case.changes {
        if let Change::Put(k, size) = change {
            let i = item(*k, *size);
            history.entry(pk(&i)).or_default().insert(value(&i));
        }
    }

    let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(case.seed)));
    let world = Arc::new(World {
        table: table.clone(),
        objects: Arc::new(Lossy {
            inner: MemObjects::new(),
            rng: Mutex::new(fastrand::Rng::with_seed(case.seed.rotate_left(17))),
        }),
        chain: MemChain::new(),
        config: BackupConfig {
            encoder: EncoderConfig {
                target_bytes: case.target_bytes,
                max_items: usize::MAX,
                level: 1,
            },
            retry: retry(),
            ..BackupConfig::default()
        },
        rng,
        errors: Mutex::default(),
    });

    let changes = tokio::spawn({
        let table = table.clone();
        let mut changes = case.changes.clone();
        changes.sort_by_key(|(at, _)| *at);
        async move {
            let start = Instant::now();
            for (at, change) in changes {
                tokio::time::sleep_until(start + Duration::from_millis(at)).await;
                match change {
                    Change::Put(k, size) => table.insert(item(k, size)),
                    Change::Delete(k) => {
                        table.remove(&item(k, 0));
                    }
                }
            }
        }
    });
    let messages: Vec<_> = (case.runs.iter().cloned())
        .map(|plan| {
            let world = world.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(plan.delay)).await;
                let from = match plan.start {
                    Start::Beginning => BackupCheckpoint::default(),
                    Start::Committed(n) => {
                        let committed = world.chain.committed();
                        match committed.len() {
                            0 => BackupCheckpoint::default(),
                            len => committed[n % len].checkpoint.clone(),
                        }
                    }
                };
                deliver(world, from, plan, true).await;
            })
        })
        .collect();
    for m in messages {
        m.await.expect("a message's runs end");
    }
    changes.await.expect("the changes end");
    // Redelivered messages run on by themselves: wait until they are done too.
    for _ in 0..10_000 {
        if Arc::strong_count(&world) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    prop_assert_eq!(Arc::strong_count(&world), 1, "every run ended");
    let errors = world.errors.lock().expect("errors").clone();
    prop_assert!(errors.is_empty(), "runs failed: {:?}", errors);

    // The chain is done, and its marker names exactly its batches.
    let objects = &world.objects.inner;
    let position = world.chain.position();
    let done = position.clone().filter(|p| p.done);
    prop_assert!(done.is_some(), "the chain is done: {:?}", position);
    let done = done.unwrap_or_default();
    let committed = world.chain.committed();
    prop_assert_eq!(committed.len() as u64, done.next_batch);
    let marker_key = solace_codec::segment_marker_key(PREFIX, SegmentId(0));
    let marker = objects
        .get_now(&marker_key)
        .map(|b| SegmentMarker::from_json(&b));
    let Some(Ok(marker)) = marker else {
        return Err(TestCaseError::fail(format!(
            "no readable marker: {marker:?}"
        )));
    };
    prop_assert_eq!(marker.format, SegmentMarker::FORMAT);
    prop_assert_eq!(
        (marker.batches, marker.items, marker.bytes),
        (done.next_batch, done.items, done.bytes)
    );
    // No object was ever written twice: not a batch, not the marker, not a loser's leftover.
    prop_assert!(
        objects.overwritten().is_empty(),
        "overwritten: {:?}",
        objects.overwritten()
    );

    // Each committed batch is the body its step was committed to, and its marker entry.
    let mut backed_up: BTreeMap<String, Vec<SdkItem>> = BTreeMap::new();
    for (n, step) in committed.iter().enumerate() {
        let key = solace_codec::batch_key(PREFIX, SegmentId(0), BatchId(n as u64));
        let body = objects.get_now(&key);
        prop_assert!(body.is_some(), "{} is missing", key);
        let body = body.unwrap_or_default();
        let entry = marker.entry(n as u64).cloned().unwrap_or_else(|| {
            panic!("the marker has no entry for batch {n}");
        });
        prop_assert_eq!(&sha256_hex(&body), &step.sha256);
        prop_assert_eq!(&entry.sha256, &step.sha256);
        let items = solace_codec::decode_items(&body, 1 << 20).expect("a committed batch decodes");
        prop_assert_eq!(entry.items, items.len() as u64);
        for i in &items {
            let i = solace_codec::sdk::to_sdk_item(i);
            backed_up.entry(pk(&i)).or_default().push(i);
        }
    }
    for (key, copies) in &backed_up {
        prop_assert_eq!(
            copies.len(),
            1,
            "{} is in {} committed batches",
            key,
            copies.len()
        );
        let v = value(&copies[0]);
        prop_assert!(
            history.get(key).is_some_and(|h| h.contains(&v)),
            "{} was backed up with a value it never had",
            key
        );
    }
    for (key, i) in &stable {
        prop_assert_eq!(
            backed_up.get(key).map(|c| &c[0]),
            Some(i),
            "{} stayed put but is not in the backup as it was",
            key
        );
    }

    // And it restores so.
    let target = Arc::new(MemTable::new("pk", None));
    let restored = restore_segment(
        target.clone(),
        world.objects.clone(),
        &job(),
        &RestoreConfig {
            retry: retry(),
            ..RestoreConfig::default()
        },
        RestoreCheckpoint::default(),
        Instant::now() + Duration::from_secs(3600),
        Arc::default(),
    )
    .await;
    prop_assert!(
        matches!(restored, Ok(Outcome::Completed(_))),
        "{:?}",
        restored
    );
    let restored: BTreeMap<String, SdkItem> =
        target.items().into_iter().map(|i| (pk(&i), i)).collect();
    prop_assert_eq!(restored.len(), backed_up.len());
    for (key, i) in &stable {
        prop_assert_eq!(restored.get(key), Some(i));
    }
    for (key, i) in &restored {
        prop_assert!(history.get(key).is_some_and(|h| h.contains(&value(i))));
    }
    Ok(())
}

fn checkpoint(next_batch: u64) -> BackupCheckpoint {
    BackupCheckpoint {
        next_batch,
        items: 10 * next_batch,
        ..BackupCheckpoint::default()
    }
}

#[tokio::test]
async fn the_fence_commits_each_step_once_to_a_proposal_of_the_body_in_its_key() {
    let chain = MemChain::new();
    let (a, b) = (chain.run(), chain.run());
    assert_ne!(a.run_id(), b.run_id());
    assert_eq!(a.position().await, Ok(None));
    // Both propose batch 0 (different bodies) and even batch 1 ahead of it.
    assert_eq!(a.propose(0, "aa", &checkpoint(1)).await, Ok(true));
    assert_eq!(b.propose(0, "bb", &checkpoint(1)).await, Ok(true));
    assert_eq!(a.propose(1, "a1", &checkpoint(2)).await, Ok(true));
    // Batch 1 cannot be committed before batch 0; a body nobody proposed, never.
    assert_eq!(a.commit(1, "a1").await, Ok(false));
    assert!(a.commit(0, "cc").await.is_err());
    // The key holds b's body: a commits it (it holds the chain, at b's checkpoint).
    assert_eq!(a.commit(0, "bb").await, Ok(true));
    assert_eq!(a.position().await, Ok(Some(checkpoint(1))));
    // Step 0 is decided: a retry by the committer is true, anyone else false, and nobody
    // proposes it any more.
    assert_eq!(a.commit(0, "bb").await, Ok(true));
    assert_eq!(b.commit(0, "bb").await, Ok(false));
    assert_eq!(b.propose(0, "bb", &checkpoint(1)).await, Ok(false));
    // Step 1: b's commit wins; a's retry of step 0 is no longer the last step.
    assert_eq!(b.propose(1, "b1", &checkpoint(2)).await, Ok(true));
    assert_eq!(b.commit(1, "b1").await, Ok(true));
    assert_eq!(a.commit(0, "bb").await, Ok(false));
    assert_eq!(a.commit(1, "a1").await, Ok(false));
    let committed: Vec<_> = (chain.committed().into_iter())
        .map(|c| (c.step, c.sha256, c.run))
        .collect();
    assert_eq!(
        committed,
        vec![(0, "bb".into(), a.run_id()), (1, "b1".into(), b.run_id())]
    );
}

#[tokio::test]
async fn a_create_never_replaces_an_object_and_names_the_body_it_found() {
    let objects = MemObjects::new();
    let (first, second) = (Bytes::from_static(b"first"), Bytes::from_static(b"second"));
    let meta = |body: &Bytes| ObjectMeta {
        sha256: Some(sha256_hex(body)),
        items: Some(1),
        json_bytes: Some(5),
        ..ObjectMeta::default()
    };
    assert_eq!(
        objects.put_new("k", first.clone(), &meta(&first)).await,
        Ok(PutNew::Created)
    );
    let found = objects.put_new("k", second.clone(), &meta(&second)).await;
    assert_eq!(
        found,
        Ok(PutNew::Exists {
            sha256: Some(sha256_hex(&first))
        })
    );
    assert_eq!(objects.get_now("k"), Some(first.clone()));
    assert_eq!(objects.writes("k"), 1);
    let info = objects.head("k").await.expect("head").expect("there");
    assert_eq!(
        (info.size, info.sha256, info.items, info.json_bytes),
        (5, Some(sha256_hex(&first)), Some(1), Some(5))
    );
    // A body that is not the one its checksum was computed for is refused (S3's BadDigest).
    assert!(objects.put_new("j", second, &meta(&first)).await.is_err());
    assert_eq!(objects.get_now("j"), None);
}

#[tokio::test]
async fn a_message_back_after_its_chain_finished_writes_only_the_missing_marker() {
    let table = Arc::new(MemTable::new("pk", None).with_page_bytes(200));
    for k in 0..30 {
        table.insert(item(k, 40));
    }
    let objects = Arc::new(MemObjects::new());
    let chain = MemChain::new();
    let config = BackupConfig {
        encoder: EncoderConfig {
            target_bytes: 300,
            max_items: usize::MAX,
            level: 1,
        },
        retry: retry(),
        ..BackupConfig::default()
    };
    let far = || Instant::now() + Duration::from_secs(3600);
    let job = job();
    let backup = |from: BackupCheckpoint| {
        backup_segment(
            table.clone(),
            objects.clone(),
            chain.run(),
            &job,
            &config,
            from,
            far(),
            Arc::default(),
        )
    };
    let first = backup(BackupCheckpoint::default()).await.expect("backs up");
    let Outcome::Completed(done) = first else {
        panic!("{first:?}")
    };
    assert!(done.done && done.next_batch > 3, "{done:?}");
    let marker_key = solace_codec::segment_marker_key(PREFIX, SegmentId(0));
    let marker = objects.remove(&marker_key).expect("a marker");
    // The first message again: it adopts the finished chain, writes the marker its run
    // would have (the batches' entries read back from S3) and nothing else.
    let keys = objects.keys();
    let again = backup(BackupCheckpoint::default())
        .await
        .expect("completes");
    assert_eq!(again, Outcome::Completed(done.clone()));
    assert_eq!(objects.get_now(&marker_key), Some(marker));
    assert_eq!(objects.keys().len(), keys.len() + 1);
    // And once more, with the marker there: nothing is written at all.
    let again = backup(checkpoint(1)).await.expect("completes");
    assert_eq!(again, Outcome::Completed(done));
    // Every batch written once; the marker twice, having been removed in between.
    assert_eq!(objects.overwritten(), vec![marker_key.clone()]);
    // Batches without the counts in their metadata (written by something else than
    // `put_new`) are read and counted instead: the same marker.
    let marker = objects.remove(&marker_key).expect("a marker");
    for key in objects.keys() {
        let body = objects.get_now(&key).expect("there");
        objects.put_now(&key, body);
    }
    let again = backup(checkpoint(2)).await.expect("completes");
    assert!(matches!(again, Outcome::Completed(_)), "{again:?}");
    assert_eq!(objects.get_now(&marker_key), Some(marker));
}

proptest! {
    // Failures print their minimal case; no regression file is written into the tree.
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn concurrent_runs_on_a_changing_table_commit_one_chain_with_every_stable_item_once(
        case in case()
    ) {
        check(case)?;
    }
}
