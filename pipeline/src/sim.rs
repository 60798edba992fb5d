//! In-memory stores with simulated latency, for unit tests of pipeline logic and for
//! latency-simulated benchmarks. Never the only proof that something works: the emulator
//! tests run the same pipeline against a real AWS wire protocol.
//!
//! [`MemTable`] partitions keys the way DynamoDB's parallel scan does: a segment is a range
//! of the hash of the partition key, and pages end at a byte budget (DynamoDB's 1 MB).
//! [`MemObjects`] has S3's conditional create and checksums; [`MemChain`] is a segment's
//! chain with the fence's exact semantics (docs/protocol.md#fencing), one [`MemFence`] per run.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use solace_codec::sdk::{SdkItem, write_sdk_item};

use crate::fence::Fence;
use crate::segment::BackupCheckpoint;
use crate::store::{
    ErrorKind, ObjectInfo, ObjectMeta, Objects, PutNew, ScanPage, StoreError, Table, WriteResult,
    sha256_hex,
};

/// Locks a mutex whose holders never leave the data half-updated (each critical section is
/// a few assignments), so a panic elsewhere while it was held does not poison it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

type Key = (u32, String);

/// A table in memory.
#[derive(Debug)]
pub struct MemTable {
    items: Mutex<BTreeMap<Key, (SdkItem, usize)>>,
    hash_key: String,
    range_key: Option<String>,
    /// A page ends once its items' JSON reaches this many bytes.
    pub page_bytes: usize,
    pub scan_latency: Duration,
    pub write_latency: Duration,
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn key_text(v: Option<&AttributeValue>) -> String {
    match v {
        Some(AttributeValue::S(s)) => format!("S{s}"),
        Some(AttributeValue::N(n)) => format!("N{n}"),
        Some(AttributeValue::B(b)) => format!("B{:?}", b.as_ref()),
        _ => String::new(),
    }
}

impl MemTable {
    pub fn new(hash_key: &str, range_key: Option<&str>) -> Self {
        MemTable {
            items: Mutex::new(BTreeMap::new()),
            hash_key: hash_key.to_owned(),
            range_key: range_key.map(str::to_owned),
            page_bytes: 1 << 20,
            scan_latency: Duration::ZERO,
            write_latency: Duration::ZERO,
        }
    }

    pub fn with_latency(mut self, scan: Duration, write: Duration) -> Self {
        self.scan_latency = scan;
        self.write_latency = write;
        self
    }

    pub fn with_page_bytes(mut self, bytes: usize) -> Self {
        self.page_bytes = bytes;
        self
    }

    fn key(&self, item: &SdkItem) -> Key {
        let hash = key_text(item.get(&self.hash_key));
        let range = self
            .range_key
            .as_ref()
            .map(|r| key_text(item.get(r)))
            .unwrap_or_default();
        (fnv1a(hash.as_bytes()), format!("{hash}\u{0}{range}"))
    }

    fn key_attrs(&self, item: &SdkItem) -> SdkItem {
        item.iter()
            .filter(|(k, _)| **k == self.hash_key || Some(*k) == self.range_key.as_ref())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Puts an item directly (no latency).
    pub fn insert(&self, item: SdkItem) {
        let mut json = Vec::new();
        let size = write_sdk_item(&item, &mut json).map_or(0, |()| json.len());
        let key = self.key(&item);
        self.lock().insert(key, (item, size));
    }

    /// Removes the item with `item`'s key (its other attributes do not matter).
    pub fn remove(&self, item: &SdkItem) -> Option<SdkItem> {
        let key = self.key(item);
        self.lock().remove(&key).map(|(i, _)| i)
    }

    /// The item with `item`'s key.
    pub fn get(&self, item: &SdkItem) -> Option<SdkItem> {
        let key = self.key(item);
        self.lock().get(&key).map(|(i, _)| i.clone())
    }

    /// Every item, in key order.
    pub fn items(&self) -> Vec<SdkItem> {
        self.lock().values().map(|(i, _)| i.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Key, (SdkItem, usize)>> {
        lock(&self.items)
    }
}

impl Table for MemTable {
    async fn scan(
        &self,
        segment: u32,
        total: u32,
        start_key: Option<SdkItem>,
    ) -> Result<ScanPage, StoreError> {
        if total == 0 || segment >= total {
            return Err(StoreError::new(
                ErrorKind::Permanent,
                "Scan",
                format!("ValidationException: segment {segment} of {total}"),
            ));
        }
        tokio::time::sleep(self.scan_latency).await;
        let span = (1u64 << 32) / u64::from(total);
        let lo = u64::from(segment) * span;
        let hi = if segment + 1 == total {
            1u64 << 32
        } else {
            lo + span
        };
        let items = self.lock();
        let start = match &start_key {
            Some(k) => std::ops::Bound::Excluded(self.key(k)),
            None => std::ops::Bound::Included((lo as u32, String::new())),
        };
        let mut page = ScanPage::default();
        let mut bytes = 0;
        let mut range = items
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|((h, _), _)| u64::from(*h) < hi)
            .peekable();
        while let Some((_, (item, size))) = range.next() {
            page.items.push(item.clone());
            bytes += size;
            if bytes >= self.page_bytes && range.peek().is_some() {
                page.last_key = Some(self.key_attrs(item));
                break;
            }
        }
        page.consumed = (bytes as f64 / 4096.0).ceil() / 2.0;
        Ok(page)
    }

    async fn batch_write(&self, items: Vec<SdkItem>) -> Result<WriteResult, StoreError> {
        if items.is_empty() || items.len() > 25 {
            return Err(StoreError::new(
                ErrorKind::Permanent,
                "BatchWriteItem",
                format!("ValidationException: {} items in one request", items.len()),
            ));
        }
        tokio::time::sleep(self.write_latency).await;
        let mut consumed = 0.0;
        for item in &items {
            if !item.contains_key(&self.hash_key) {
                return Err(StoreError::new(
                    ErrorKind::Permanent,
                    "BatchWriteItem",
                    "ValidationException: item has no hash key",
                ));
            }
        }
        for item in items {
            self.insert(item);
            consumed += 1.0;
        }
        Ok(WriteResult {
            unprocessed: Vec::new(),
            consumed,
        })
    }

    async fn has_items(&self) -> Result<bool, StoreError> {
        Ok(!self.is_empty())
    }
}

/// One object of a [`MemObjects`].
#[derive(Debug, Clone)]
struct Stored {
    body: Bytes,
    sha256: String,
    items: Option<u64>,
    json_bytes: Option<u64>,
}

impl Stored {
    fn new(body: Bytes, meta: &ObjectMeta) -> Self {
        Stored {
            sha256: sha256_hex(&body),
            body,
            items: meta.items,
            json_bytes: meta.json_bytes,
        }
    }
}

#[derive(Debug, Default)]
struct Bucket {
    objects: HashMap<String, Stored>,
    /// How many times each key's body was set.
    writes: HashMap<String, u64>,
}

impl Bucket {
    fn set(&mut self, key: &str, stored: Stored) {
        self.objects.insert(key.to_owned(), stored);
        *self.writes.entry(key.to_owned()).or_default() += 1;
    }
}

/// A bucket in memory, with S3's conditional create: [`Objects::put_new`] checks the given
/// SHA-256 against the body, and creates the key or reports the existing object's checksum
/// atomically. It counts the writes of each key ([`MemObjects::writes`]), so a test can
/// check that no object was ever overwritten.
#[derive(Debug, Default)]
pub struct MemObjects {
    bucket: Mutex<Bucket>,
    pub put_latency: Duration,
    pub get_latency: Duration,
    /// Whether the bucket takes Object Lock retention.
    pub object_lock: bool,
}

impl MemObjects {
    pub fn new() -> Self {
        Self::default()
    }

    /// A bucket that takes Object Lock retention.
    pub fn with_object_lock(mut self) -> Self {
        self.object_lock = true;
        self
    }

    pub fn with_latency(mut self, put: Duration, get: Duration) -> Self {
        self.put_latency = put;
        self.get_latency = get;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Bucket> {
        lock(&self.bucket)
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.lock().objects.keys().cloned().collect();
        keys.sort();
        keys
    }

    pub fn get_now(&self, key: &str) -> Option<Bytes> {
        self.lock().objects.get(key).map(|o| o.body.clone())
    }

    /// Sets `key`'s body directly (no latency, no condition): for tests that damage a
    /// backup. The checksum kept is the new body's, as S3 would keep for a new upload.
    pub fn put_now(&self, key: &str, body: Bytes) {
        self.lock()
            .set(key, Stored::new(body, &ObjectMeta::default()));
    }

    pub fn remove(&self, key: &str) -> Option<Bytes> {
        self.lock().objects.remove(key).map(|o| o.body)
    }

    /// How many times `key`'s body was set (by `put`, a `put_new` that created it, or
    /// `put_now`); 0 for a key never written.
    pub fn writes(&self, key: &str) -> u64 {
        self.lock().writes.get(key).copied().unwrap_or(0)
    }

    /// The keys whose body was set more than once.
    pub fn overwritten(&self) -> Vec<String> {
        let mut keys: Vec<String> = (self.lock().writes.iter())
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }
}

impl Objects for MemObjects {
    async fn object_lock_enabled(&self) -> Result<bool, StoreError> {
        Ok(self.object_lock)
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        tokio::time::sleep(self.put_latency).await;
        self.put_now(key, body);
        Ok(())
    }

    async fn put_new(
        &self,
        key: &str,
        body: Bytes,
        meta: &ObjectMeta,
    ) -> Result<PutNew, StoreError> {
        tokio::time::sleep(self.put_latency).await;
        let stored = Stored::new(body, meta);
        if let Some(given) = &meta.sha256 {
            if *given != stored.sha256 {
                // S3's BadDigest: the body is not the one the checksum was computed for.
                return Err(StoreError::new(
                    ErrorKind::Permanent,
                    "PutObject",
                    format!(
                        "BadDigest: {key}: the body's SHA-256 is {}, not {given}",
                        stored.sha256
                    ),
                ));
            }
        }
        let mut bucket = self.lock();
        if let Some(existing) = bucket.objects.get(key) {
            return Ok(PutNew::Exists {
                sha256: Some(existing.sha256.clone()),
            });
        }
        bucket.set(key, stored);
        Ok(PutNew::Created)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        tokio::time::sleep(self.get_latency).await;
        Ok(self.get_now(key))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        tokio::time::sleep(self.get_latency).await;
        Ok(self.lock().objects.get(key).map(|o| ObjectInfo {
            size: o.body.len() as u64,
            sha256: Some(o.sha256.clone()),
            items: o.items,
            json_bytes: o.json_bytes,
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        tokio::time::sleep(self.get_latency).await;
        Ok(self
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(prefix))
            .collect())
    }
}

/// One committed step of a [`MemChain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub step: u64,
    /// The body the step was committed to.
    pub sha256: String,
    /// The [`MemFence::run_id`] of the run that committed it.
    pub run: u64,
    /// The chain's checkpoint after it.
    pub checkpoint: BackupCheckpoint,
}

#[derive(Debug, Default)]
struct ChainState {
    /// Committed steps: the next step to commit.
    step: u64,
    checkpoint: Option<BackupCheckpoint>,
    /// The run that committed the last step.
    winner: Option<u64>,
    /// The checkpoint proposed after each (step, body); a later proposal of the same pair
    /// replaces an earlier one.
    proposals: HashMap<(u64, String), BackupCheckpoint>,
    history: Vec<Committed>,
    runs: u64,
}

/// One segment's chain in memory, shared by the runs of that segment: [`MemChain::run`]
/// gives each run its own [`MemFence`]. The semantics are exactly those of
/// docs/protocol.md#fencing, which the status table's fence implements too.
#[derive(Debug, Clone, Default)]
pub struct MemChain(Arc<Mutex<ChainState>>);

impl MemChain {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fence handle for a new run, with a run id no other handle of this chain has.
    pub fn run(&self) -> MemFence {
        let mut state = lock(&self.0);
        state.runs += 1;
        MemFence {
            chain: self.clone(),
            run: state.runs,
        }
    }

    /// The checkpoint after the last committed step (what [`Fence::position`] answers).
    pub fn position(&self) -> Option<BackupCheckpoint> {
        lock(&self.0).checkpoint.clone()
    }

    /// Every committed step, in order.
    pub fn committed(&self) -> Vec<Committed> {
        lock(&self.0).history.clone()
    }
}

/// One run's handle on a [`MemChain`].
#[derive(Debug, Clone)]
pub struct MemFence {
    chain: MemChain,
    run: u64,
}

impl MemFence {
    pub fn run_id(&self) -> u64 {
        self.run
    }

    pub fn chain(&self) -> &MemChain {
        &self.chain
    }
}

impl Fence for MemFence {
    async fn propose(
        &self,
        step: u64,
        sha256: &str,
        next: &BackupCheckpoint,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.chain.0);
        if state.step > step {
            return Ok(false);
        }
        state
            .proposals
            .insert((step, sha256.to_owned()), next.clone());
        Ok(true)
    }

    async fn commit(&self, step: u64, sha256: &str) -> Result<bool, StoreError> {
        let mut state = lock(&self.chain.0);
        if state.step > step {
            // Decided: true only for the run that committed it, while it is the last step
            // (a retry of a commit whose reply was lost).
            return Ok(state.step == step + 1 && state.winner == Some(self.run));
        }
        let Some(next) = state.proposals.get(&(step, sha256.to_owned())).cloned() else {
            return Err(StoreError::new(
                ErrorKind::Permanent,
                "CommitStep",
                format!("no proposal for batch {step:#x} with the stored body's checksum {sha256}"),
            ));
        };
        if state.step < step {
            // The chain has not reached this step: steps are committed in order.
            return Ok(false);
        }
        state.step = step + 1;
        state.checkpoint = Some(next.clone());
        state.winner = Some(self.run);
        state.proposals.retain(|(s, _), _| *s > step);
        state.history.push(Committed {
            step,
            sha256: sha256.to_owned(),
            run: self.run,
            checkpoint: next,
        });
        Ok(true)
    }

    async fn position(&self) -> Result<Option<BackupCheckpoint>, StoreError> {
        Ok(lock(&self.chain.0).checkpoint.clone())
    }
}
