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
    /// The page's items as SDK values; empty when the store kept them as sent ([`raw`]).
    ///
    /// [`raw`]: ScanPage::raw
    pub items: Vec<SdkItem>,
    /// The page's items as the store sent them: DynamoDB JSON, the batch format's own, so a
    /// backup writes them without a parse into SDK values and back.
    pub raw: Option<RawPage>,
    /// Where the next page starts; `None` when the segment is finished.
    pub last_key: Option<SdkItem>,
    /// Read capacity units the page consumed (0 when the store does not say).
    pub consumed: f64,
}

impl ScanPage {
    /// Every item of the page as SDK values, a raw page's parsed from its bytes.
    pub fn sdk_items(&self) -> Vec<SdkItem> {
        let mut out = self.items.clone();
        out.extend(self.raw.iter().flat_map(RawPage::items).map(|i| i.to_sdk()));
        out
    }
}

/// A page's items as the store sent them: the response body with each item found and checked
/// where it lies (docs/pipeline.md#backup-of-a-segment).
pub type RawPage = solace_codec::ResponsePage<Bytes>;

/// The part of a BatchWriteItem request that was not written.
#[derive(Debug, Clone, Default)]
pub struct WriteResult {
    pub unprocessed: Vec<SdkItem>,
    /// Write capacity units consumed (0 when the store does not say).
    pub consumed: f64,
}

/// What [`Objects::put_new`] is told about a body, besides the bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// SHA-256 of the body, lower-case hex ([`sha256_hex`]); computed from the body when
    /// `None`. Sent with the write so the store checks the body on arrival.
    pub sha256: Option<String>,
    /// Items in the body (a batch), kept as user metadata.
    pub items: Option<u64>,
    /// Uncompressed JSON bytes of the body (a batch), kept as user metadata.
    pub json_bytes: Option<u64>,
    /// Object Lock retention for the new object (`None`: none).
    pub retention: Option<Retention>,
}

/// S3 Object Lock's two modes (docs/layout.md#retention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RetentionMode {
    /// Users with `s3:BypassGovernanceRetention` may still delete or shorten it.
    #[serde(rename = "GOVERNANCE")]
    Governance,
    /// Nobody, the account's root user included, may delete the object before it expires.
    #[serde(rename = "COMPLIANCE")]
    Compliance,
}

impl RetentionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Governance => "GOVERNANCE",
            RetentionMode::Compliance => "COMPLIANCE",
        }
    }
}

/// Object Lock retention: each object is locked for `days` from its write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: RetentionMode,
    pub days: u32,
}

/// What a conditional create found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutNew {
    /// The key was free; the body is now there.
    Created,
    /// The key already holds an object, left as it was: `sha256` is its body's SHA-256
    /// (lower-case hex), `None` when it could not be read back (it went away meanwhile).
    /// A retry of a write whose reply was lost finds its own body here: the caller compares
    /// the checksum with its own.
    Exists { sha256: Option<String> },
}

/// What [`Objects::head`] knows of an object without reading its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Bytes of the stored body.
    pub size: u64,
    /// SHA-256 of the body, lower-case hex, when the store keeps one (S3: the checksum of a
    /// single-part upload made with a SHA-256 checksum).
    pub sha256: Option<String>,
    /// [`ObjectMeta::items`] and [`ObjectMeta::json_bytes`] of the write, when it had them.
    pub items: Option<u64>,
    pub json_bytes: Option<u64>,
}

/// SHA-256 of `bytes`, lower-case hex: the one spelling of a checksum across the pipeline,
/// the segment marker and the fence.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

    /// Puts up to 25 items, taken by value (a request owns what it sends: no copy is made);
    /// what the table did not process comes back.
    fn batch_write(
        &self,
        items: Vec<SdkItem>,
    ) -> impl Future<Output = Result<WriteResult, StoreError>> + Send;

    /// Whether the table holds any item. The default scans it as one segment until it finds
    /// one; stores override it with something cheaper (DynamoDB: Scan with Limit 1).
    fn has_items(&self) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async move {
            let mut start = None;
            loop {
                let page = self.scan(0, 1, start).await?;
                if !page.items.is_empty() || page.raw.as_ref().is_some_and(|r| !r.is_empty()) {
                    return Ok(true);
                }
                match page.last_key {
                    Some(key) => start = Some(key),
                    None => return Ok(false),
                }
            }
        }
    }

    /// The table's schema (docs/schema.md). Stores that keep none answer with a permanent
    /// error, which a backup records as its schema not captured.
    fn describe(&self) -> impl Future<Output = Result<Described, StoreError>> + Send {
        async {
            Err(StoreError::new(
                ErrorKind::Permanent,
                "DescribeTable",
                "this store keeps no table schema",
            ))
        }
    }

    /// Creates the table from `schema`; `Ok(false)` when it exists already
    /// (docs/schema.md#table-creation).
    fn create(
        &self,
        schema: &solace_codec::schema::TableSchema,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = schema;
        async {
            Err(StoreError::new(
                ErrorKind::Permanent,
                "CreateTable",
                "this store cannot create tables",
            ))
        }
    }

    /// Asks DynamoDB for a point-in-time export of the table into `bucket` under
    /// `s3_prefix` (ExportTableToPointInTime, DYNAMODB_JSON); returns the export's ARN.
    /// `client_token` makes a repeated call start no second export.
    fn start_export(
        &self,
        bucket: &str,
        s3_prefix: &str,
        client_token: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send {
        let _ = (bucket, s3_prefix, client_token);
        async {
            Err(StoreError::new(
                ErrorKind::Permanent,
                "ExportTableToPointInTime",
                "this store cannot export",
            ))
        }
    }

    /// Where the export `arn` stands (DescribeExport).
    fn describe_export(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<ExportState, StoreError>> + Send {
        let _ = arn;
        async {
            Err(StoreError::new(
                ErrorKind::Permanent,
                "DescribeExport",
                "this store cannot export",
            ))
        }
    }

    /// Turns on the TTL and PITR `schema` has and `current` has not; returns what could
    /// not be set.
    fn apply_settings(
        &self,
        schema: &solace_codec::schema::TableSchema,
        current: &solace_codec::schema::TableSchema,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        let _ = (schema, current);
        async {
            Err(StoreError::new(
                ErrorKind::Permanent,
                "UpdateTimeToLive",
                "this store keeps no table settings",
            ))
        }
    }
}

/// Where a DynamoDB export stands ([`Table::describe_export`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportState {
    InProgress,
    Completed {
        item_count: u64,
        billed_size_bytes: u64,
        /// The key of its `manifest-summary.json`, when DynamoDB names it.
        manifest_summary_key: Option<String>,
    },
    /// DynamoDB's failure code and message.
    Failed(String),
}

/// What [`Table::describe`] read: the schema, and the calls that could not be made (by
/// operation name, with the service's reason).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Described {
    pub schema: solace_codec::schema::TableSchema,
    pub not_captured: std::collections::BTreeMap<String, String>,
    /// DescribeTable's `TableStatus` (`CREATING`, `ACTIVE`, …), when it gave one.
    pub status: Option<String>,
}

/// One S3 bucket, in its own region.
pub trait Objects: Send + Sync + 'static {
    /// Writes `body` at `key`, replacing what is there. Backups never call it: every object
    /// a backup writes goes through [`Objects::put_new`].
    fn put(&self, key: &str, body: Bytes) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates `key` with `body` only if there is no such key (S3: `If-None-Match: *`), with
    /// the body's SHA-256 sent for the store to check on arrival and `meta`'s counts kept as
    /// user metadata. An existing object is never changed: the answer is
    /// [`PutNew::Exists`] with its checksum.
    fn put_new(
        &self,
        key: &str,
        body: Bytes,
        meta: &ObjectMeta,
    ) -> impl Future<Output = Result<PutNew, StoreError>> + Send;

    /// The object's body, or `None` when there is no such key.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;

    /// The object's size, checksum and counts, or `None` when there is no such key.
    fn head(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<ObjectInfo>, StoreError>> + Send;

    /// Every key that starts with `prefix`, in lexicographic order.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// The distinct `<prefix><name>/` folders directly under `prefix` (S3: the common
    /// prefixes of a listing with delimiter `/`), sorted. The default derives them from
    /// [`Objects::list`]; S3 lists them without listing every key.
    fn list_folders(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        async move {
            let keys = self.list(prefix).await?;
            let mut folders: Vec<String> = keys
                .iter()
                .filter_map(|key| {
                    let rest = key.strip_prefix(prefix)?;
                    let end = rest.find('/')?;
                    Some(format!("{prefix}{}", &rest[..=end]))
                })
                .collect();
            folders.sort();
            folders.dedup();
            Ok(folders)
        }
    }

    /// Whether objects here can carry Object Lock retention (S3: a versioned bucket with
    /// Object Lock enabled). The default says no.
    fn object_lock_enabled(&self) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async { Ok(false) }
    }
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
        items: Vec<SdkItem>,
    ) -> impl Future<Output = Result<WriteResult, StoreError>> + Send {
        (**self).batch_write(items)
    }

    fn has_items(&self) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).has_items()
    }

    fn describe(&self) -> impl Future<Output = Result<Described, StoreError>> + Send {
        (**self).describe()
    }

    fn create(
        &self,
        schema: &solace_codec::schema::TableSchema,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).create(schema)
    }

    fn apply_settings(
        &self,
        schema: &solace_codec::schema::TableSchema,
        current: &solace_codec::schema::TableSchema,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        (**self).apply_settings(schema, current)
    }

    fn start_export(
        &self,
        bucket: &str,
        s3_prefix: &str,
        client_token: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send {
        (**self).start_export(bucket, s3_prefix, client_token)
    }

    fn describe_export(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<ExportState, StoreError>> + Send {
        (**self).describe_export(arn)
    }
}

impl<O: Objects> Objects for Arc<O> {
    fn put(&self, key: &str, body: Bytes) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put(key, body)
    }

    fn object_lock_enabled(&self) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).object_lock_enabled()
    }

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send {
        (**self).get(key)
    }

    fn put_new(
        &self,
        key: &str,
        body: Bytes,
        meta: &ObjectMeta,
    ) -> impl Future<Output = Result<PutNew, StoreError>> + Send {
        (**self).put_new(key, body, meta)
    }

    fn head(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<ObjectInfo>, StoreError>> + Send {
        (**self).head(key)
    }

    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        (**self).list(prefix)
    }

    fn list_folders(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        (**self).list_folders(prefix)
    }
}
