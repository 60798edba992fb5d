//! Solace's pipeline: what a backup or restore function runs for its one segment.
//!
//! # Layout
//! - [`store`]: the [`Table`] and [`Objects`] traits the stages call, and error kinds.
//! - [`aws`]: the DynamoDB and S3 adapters, each client built for its own region.
//! - [`backup`]: scan → encode → upload → commit, resumable from a [`BackupCheckpoint`].
//! - [`fence`]: the [`Fence`] each backup step proposes to and commits through, so one chain
//!   of batches wins however many runs of a segment are alive.
//! - [`restore`]: download → check → decode → BatchWriteItem, resumable from a
//!   [`RestoreCheckpoint`].
//! - `stage` (private): what backup and restore share: tasks aborted with their run, and how
//!   an error ends a run.
//! - [`retry`]: backoff with jitter under a budget; the consumed-capacity limiter.
//! - [`segment`]: jobs, checkpoints, outcomes, errors.
//! - [`progress`]: the live [`Progress`] counters a run updates.
//! - `sim` (feature `sim`): in-memory, latency-simulated stores for tests and benchmarks, and
//!   an in-memory fence (`MemChain`, one `MemFence` per run).
//!
//! The objects a backup writes (batch keys, [`SegmentMarker`]) are defined by
//! `solace_codec::layout`; the stages write and read them only through it.
//!
//! Modules import without circles (`tests/no_import_cycles.rs`): `progress` and `store` use
//! nothing else of the crate; `retry` uses them; `segment` uses `retry`; `stage` uses
//! `segment` and `retry`; `fence` uses `segment` and `store`; `backup` uses all of these,
//! `restore` all but `fence`; `aws` uses only `store`; `sim` uses `store`, `segment` and
//! `fence`.

pub mod aws;
mod aws_error;
mod aws_schema;
pub mod backup;
pub mod convert;
pub mod export_backup;
pub mod fence;
pub mod progress;
pub mod restore;
pub mod retry;
pub mod segment;
#[cfg(feature = "sim")]
pub mod sim;
mod stage;
pub mod store;

pub use backup::{BackupConfig, backup_segment};
pub use fence::{Fence, Gate, Gated, Open, Unfenced};
pub use progress::{Progress, ProgressSnapshot};
pub use restore::{RestoreConfig, restore_segment, restore_segment_gated};
pub use retry::{CapacityLimiter, Retrier, RetryError, RetryPolicy};
pub use segment::{
    BackupCheckpoint, Outcome, PipelineError, RestoreCheckpoint, SegmentError, SegmentJob,
};
pub use solace_codec::layout::{BatchEntry, SegmentMarker};
pub use store::{
    Described, ErrorKind, ExportState, ObjectInfo, ObjectMeta, Objects, PutNew, RawPage, Retention,
    RetentionMode, ScanPage, StoreError, Table, WriteResult, sha256_hex,
};
