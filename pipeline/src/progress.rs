//! Live progress counters of a segment run, shared by its stages and read by status
//! displays.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters for status and progress displays; cheap to update from every stage.
#[derive(Debug, Default)]
pub struct Progress {
    pub items: AtomicU64,
    /// Uncompressed JSON bytes.
    pub bytes: AtomicU64,
    /// Bytes stored in or read from S3.
    pub stored_bytes: AtomicU64,
    pub batches: AtomicU64,
    pub retries: AtomicU64,
    /// Counters that add up every run's (a process running many segments, such as a direct
    /// backup, shows one total).
    parent: Option<Arc<Progress>>,
}

impl Progress {
    /// Counters of one run that also count into `parent`, when there is one.
    pub fn under(parent: Option<Arc<Progress>>) -> Self {
        Progress {
            parent,
            ..Progress::default()
        }
    }

    pub(crate) fn batch(&self, items: u64, bytes: u64, stored: u64) {
        self.items.fetch_add(items, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.stored_bytes.fetch_add(stored, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.batch(items, bytes, stored);
        }
    }

    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.retry();
        }
    }

    /// A snapshot: (items, bytes, stored bytes, batches, retries).
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            items: self.items.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            stored_bytes: self.stored_bytes.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// The counters of [`Progress`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    pub items: u64,
    pub bytes: u64,
    pub stored_bytes: u64,
    pub batches: u64,
    pub retries: u64,
}
