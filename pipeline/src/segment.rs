//! What backup and restore share: the job, checkpoints, outcomes and errors.

use serde::{Deserialize, Serialize};
use solace_codec::{DecodeError, Item, SegmentId};

use crate::retry::RetryError;

/// One segment of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentJob {
    /// The backup's prefix in the bucket (docs/layout.md#object-keys).
    pub prefix: String,
    pub segment: SegmentId,
    pub total_segments: u32,
}

/// Where a backup of a segment continues: the next batch number and the scan position after
/// the last item of the last committed batch. Batches close on scan-page boundaries, so the
/// position is the page's `LastEvaluatedKey` and a resumed run writes exactly the batches an
/// uninterrupted one would. It is also what a run proposes to the fence with each batch
/// (docs/protocol.md#fencing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BackupCheckpoint {
    pub next_batch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_key: Option<Item>,
    /// Items and uncompressed JSON bytes in the durable batches so far.
    #[serde(default)]
    pub items: u64,
    #[serde(default)]
    pub bytes: u64,
    /// The last batch is committed: only the segment marker may be missing. Absent (false)
    /// in every checkpoint before the last.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

/// Where a restore of a segment continues: the next batch to write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RestoreCheckpoint {
    pub next_batch: u64,
    #[serde(default)]
    pub items: u64,
    #[serde(default)]
    pub bytes: u64,
}

/// How a run of a segment ended without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<C> {
    /// The segment is finished.
    Completed(C),
    /// The deadline came; continue from this checkpoint.
    Paused(C),
    /// Backup only: another run of the segment holds its chain (docs/protocol.md#fencing).
    /// This run wrote nothing past its last commit and its work goes on in that run: consume
    /// the message, count nothing, send no continuation. The checkpoint is this run's last
    /// committed one, for the log.
    Fenced(C),
}

impl<C> Outcome<C> {
    pub fn checkpoint(&self) -> &C {
        match self {
            Outcome::Completed(c) | Outcome::Paused(c) | Outcome::Fenced(c) => c,
        }
    }
}

/// Why a segment run stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{what}: {source}")]
    Store {
        /// The object key or table operation concerned.
        what: String,
        source: RetryError,
    },
    #[error("batch {key} is unreadable: {source}")]
    Decode { key: String, source: DecodeError },
    #[error("{key} is {size} bytes, more than a restore reads of it: {limit} bytes, {why}")]
    ObjectTooLarge {
        key: String,
        /// Bytes of the body.
        size: u64,
        /// The most a restore reads of it (`restore::download_cap`).
        limit: u64,
        /// Where the limit comes from.
        why: String,
    },
    #[error("segment folder {folder} has no batch 0x0 (missing segment)")]
    MissingSegment { folder: String },
    #[error(
        "batch {key} is missing, but the segment marker says the segment has {batches} batches"
    )]
    MissingBatch { key: String, batches: u64 },
    #[error("segment marker {key} is unreadable: {reason}")]
    BadMarker { key: String, reason: String },
    #[error(
        "batch {key} does not match the segment marker: its SHA-256 is {found}, the marker says {expected}"
    )]
    ChecksumMismatch {
        key: String,
        expected: String,
        found: String,
    },
    #[error(
        "batch {key} does not match the segment marker: it holds {found} items, the marker says {expected}"
    )]
    ItemCountMismatch {
        key: String,
        expected: u64,
        found: u64,
    },
    #[error("export object {key} is unreadable: {reason}")]
    BadExport { key: String, reason: String },
    #[error("data file {key} does not match the export's manifest: {why}")]
    ExportMismatch { key: String, why: String },
    #[error("DynamoDB export {arn} failed: {reason}")]
    ExportFailed { arn: String, reason: String },
    #[error("data file {key} is missing, but the export's manifest lists it")]
    MissingDataFile { key: String },
    #[error("{key} exists with other contents (SHA-256 {found}) and is not overwritten")]
    Conflict { key: String, found: String },
    #[error("batch {key}: DynamoDB rejected an item: {source}")]
    Rejected { key: String, source: RetryError },
    #[error("a scanned item cannot be written as DynamoDB JSON: {0}")]
    Encode(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl PipelineError {
    /// Whether running the segment again from its checkpoint may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Store { source, .. } => !matches!(source, RetryError::Final(_)),
            PipelineError::Internal(_) => true,
            _ => false,
        }
    }
}

/// An error, with the last durable checkpoint (progress made before it is kept).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct SegmentError<C> {
    pub checkpoint: C,
    pub error: PipelineError,
}
