//! The functions' errors, typed so that each says whether a later delivery can fix it:
//! [`Error::is_retryable`] decides whether a message goes back to its queue or its segment
//! is ended at once.

use solace_pipeline::{PipelineError, StoreError};

/// A failed status-table call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status table {table}: {message}")]
pub struct StatusError {
    pub table: String,
    pub message: String,
    /// Throttling, 5xx, timeouts: a later attempt may succeed.
    pub retryable: bool,
}

/// A failed queue call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue {queue}: {message}")]
pub struct QueueError {
    pub queue: String,
    pub message: String,
    pub retryable: bool,
}

/// Why a handler could not finish a message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("{what}: {source}")]
    Queue {
        what: &'static str,
        source: QueueError,
    },
    #[error("bucket {bucket}: {source}")]
    Bucket { bucket: String, source: StoreError },
    #[error("table {table}: {source}")]
    Table { table: String, source: StoreError },
    #[error("segment {segment}: {source}")]
    Pipeline {
        segment: String,
        source: PipelineError,
    },
    #[error("no time was left in the invocation to start")]
    NoTimeLeft,
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Whether handing the message back to its queue may let a later delivery succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Status(e) => e.retryable,
            Error::Queue { source, .. } => source.retryable,
            Error::Bucket { source, .. } | Error::Table { source, .. } => source.is_retryable(),
            Error::Pipeline { source, .. } => source.is_retryable(),
            Error::NoTimeLeft | Error::Internal(_) => true,
        }
    }
}
