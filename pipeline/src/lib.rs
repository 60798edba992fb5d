//! Solace's pipeline: what a backup or restore function runs for its one segment.
//!
//! # Layout
//! - [`store`]: the [`Table`] and [`Objects`] traits the stages call, and error kinds.
//! - [`aws`]: the DynamoDB and S3 adapters, each client built for its own region.
//! - [`backup`]: scan → encode → upload, resumable from a [`BackupCheckpoint`].
//! - [`restore`]: download → decode → BatchWriteItem, resumable from a [`RestoreCheckpoint`].
//! - [`retry`]: backoff with jitter under a budget; the consumed-capacity limiter.
//! - [`segment`]: jobs, checkpoints, outcomes, errors, progress counters.
//! - [`sim`]: in-memory, latency-simulated stores for unit tests and benchmarks.

pub mod aws;
pub mod backup;
pub mod restore;
pub mod retry;
pub mod segment;
pub mod sim;
pub mod store;

pub use backup::{BackupConfig, backup_segment};
pub use restore::{RestoreConfig, restore_segment};
pub use retry::{CapacityLimiter, Retrier, RetryError, RetryPolicy};
pub use segment::{
    BackupCheckpoint, Outcome, PipelineError, Progress, ProgressSnapshot, RestoreCheckpoint,
    SegmentError, SegmentJob, SegmentMarker,
};
pub use store::{ErrorKind, Objects, ScanPage, StoreError, Table, WriteResult};
