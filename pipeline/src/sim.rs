//! In-memory stores with simulated latency, for unit tests of pipeline logic and for
//! latency-simulated benchmarks. Never the only proof that something works: the emulator
//! tests run the same pipeline against a real AWS wire protocol.
//!
//! [`MemTable`] partitions keys the way DynamoDB's parallel scan does: a segment is a range
//! of the hash of the partition key, and pages end at a byte budget (DynamoDB's 1 MB).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use solace_codec::sdk::{SdkItem, write_sdk_item};

use crate::store::{ErrorKind, Objects, ScanPage, StoreError, Table, WriteResult};

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

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, (SdkItem, usize)>> {
        // A panic while holding the lock cannot leave the map half-updated (single inserts).
        self.items.lock().unwrap_or_else(|p| p.into_inner())
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

    async fn batch_write(&self, items: &[SdkItem]) -> Result<WriteResult, StoreError> {
        if items.is_empty() || items.len() > 25 {
            return Err(StoreError::new(
                ErrorKind::Permanent,
                "BatchWriteItem",
                format!("ValidationException: {} items in one request", items.len()),
            ));
        }
        tokio::time::sleep(self.write_latency).await;
        let mut consumed = 0.0;
        for item in items {
            if !item.contains_key(&self.hash_key) {
                return Err(StoreError::new(
                    ErrorKind::Permanent,
                    "BatchWriteItem",
                    "ValidationException: item has no hash key",
                ));
            }
        }
        for item in items {
            self.insert(item.clone());
            consumed += 1.0;
        }
        Ok(WriteResult {
            unprocessed: Vec::new(),
            consumed,
        })
    }
}

/// A bucket in memory.
#[derive(Debug, Default)]
pub struct MemObjects {
    objects: Mutex<HashMap<String, Bytes>>,
    pub put_latency: Duration,
    pub get_latency: Duration,
}

impl MemObjects {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_latency(mut self, put: Duration, get: Duration) -> Self {
        self.put_latency = put;
        self.get_latency = get;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bytes>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.lock().keys().cloned().collect();
        keys.sort();
        keys
    }

    pub fn get_now(&self, key: &str) -> Option<Bytes> {
        self.lock().get(key).cloned()
    }

    pub fn put_now(&self, key: &str, body: Bytes) {
        self.lock().insert(key.to_owned(), body);
    }

    pub fn remove(&self, key: &str) -> Option<Bytes> {
        self.lock().remove(key)
    }
}

impl Objects for MemObjects {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        tokio::time::sleep(self.put_latency).await;
        self.put_now(key, body);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        tokio::time::sleep(self.get_latency).await;
        Ok(self.get_now(key))
    }
}
