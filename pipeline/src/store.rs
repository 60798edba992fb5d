//! What the pipeline needs from DynamoDB and S3, as two small traits: the AWS adapters
//! ([`crate::aws`]), the latency-simulated in-memory stores (module `sim`, feature `sim`)
//! and test wrappers that inject faults all implement them.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use solace_codec::sdk::SdkItem;

/// How an error from a store should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Throttling (ProvisionedThroughputExceeded, ThrottlingException, RequestLimitExceeded,
    /// SlowDown): retry with backoff.
    Throttled,
    /// A transient failure (5xx, timeout, connection): retry with backoff.
    Transient,
    /// Retrying cannot help (validation, access denied, missing table or bucket).
    Permanent,
}

/// An error from a store call, classified for the retry policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct StoreError {
    pub kind: ErrorKind,
    /// The AWS operation, e.g. `Scan`, `PutObject`.
    pub operation: &'static str,
    /// The service's error code and message, or the transport's.
    pub message: String,
}

impl StoreError {
    pub fn new(kind: ErrorKind, operation: &'static str, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            operation,
            message: message.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        !matches!(self.kind, ErrorKind::Permanent)
    }
}

/// One page of a parallel scan.
#[derive(Debug, Clone, Default)]
pub struct ScanPage {
    pub items: Vec<SdkItem>,
    /// Where the next page starts; `None` when the segment is finished.
    pub last_key: Option<SdkItem>,
    /// Read capacity units the page consumed (0 when the store does not say).
    pub consumed: f64,
}

/// The part of a BatchWriteItem request that was not written.
#[derive(Debug, Clone, Default)]
pub struct WriteResult {
    pub unprocessed: Vec<SdkItem>,
    /// Write capacity units consumed (0 when the store does not say).
    pub consumed: f64,
}

/// One DynamoDB table, in its own region.
pub trait Table: Send + Sync + 'static {
    /// One page of segment `segment` of `total` starting after `start_key`.
    fn scan(
        &self,
        segment: u32,
        total: u32,
        start_key: Option<SdkItem>,
    ) -> impl Future<Output = Result<ScanPage, StoreError>> + Send;

    /// Puts up to 25 items; what the table did not process comes back.
    fn batch_write(
        &self,
        items: &[SdkItem],
    ) -> impl Future<Output = Result<WriteResult, StoreError>> + Send;
}

/// One S3 bucket, in its own region.
pub trait Objects: Send + Sync + 'static {
    fn put(&self, key: &str, body: Bytes) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The object's body, or `None` when there is no such key.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;
}

impl<T: Table> Table for Arc<T> {
    fn scan(
        &self,
        segment: u32,
        total: u32,
        start_key: Option<SdkItem>,
    ) -> impl Future<Output = Result<ScanPage, StoreError>> + Send {
        (**self).scan(segment, total, start_key)
    }

    fn batch_write(
        &self,
        items: &[SdkItem],
    ) -> impl Future<Output = Result<WriteResult, StoreError>> + Send {
        (**self).batch_write(items)
    }
}

impl<O: Objects> Objects for Arc<O> {
    fn put(&self, key: &str, body: Bytes) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put(key, body)
    }

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send {
        (**self).get(key)
    }
}
