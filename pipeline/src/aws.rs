//! The AWS adapters: [`DynamoTable`] and [`S3Objects`], each built for its own region.
//!
//! The SDK's own retries are turned off for these clients: the pipeline's [`crate::retry`]
//! is the one retry policy (backoff with jitter, a budget, deadline-aware), so a throttle is
//! not retried three times by the SDK inside each of our attempts. Every client has a read
//! timeout ([`timeouts`]): a call whose answer never comes fails and is retried.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{PutRequest, ReturnConsumedCapacity, WriteRequest};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use bytes::Bytes;
use solace_codec::sdk::SdkItem;

use crate::store::{
    Described, ErrorKind, ObjectInfo, ObjectMeta, Objects, PutNew, RawPage, ScanPage, StoreError,
    Table, WriteResult, sha256_hex,
};

/// How long a DynamoDB call may wait for the first byte of its response (a 1 MB scan page or
/// a 25-item write is answered in well under a second; a call that hangs is retried).
pub const DYNAMODB_FIRST_BYTE: Duration = Duration::from_secs(10);

/// How long an S3 call may wait for the first byte of its response, the upload of its body
/// included (a batch of the largest allowed size at a few tens of MB/s).
pub const S3_FIRST_BYTE: Duration = Duration::from_secs(60);

/// How long an SQS call may wait for the first byte of its response: past the 20 s of a
/// long-polling ReceiveMessage.
pub const SQS_FIRST_BYTE: Duration = Duration::from_secs(30);

/// The SDK's connect timeout, which the project keeps.
const CONNECT: Duration = Duration::from_millis(3100);

/// The timeouts of a client: those `config` sets (a test's shorter ones), and otherwise the
/// SDK's connect timeout and a `first_byte` read timeout. Without a read timeout the SDK
/// waits for an answer forever, and a connection that stalls stalls the invocation until
/// Lambda kills it.
pub fn timeouts(config: &SdkConfig, first_byte: Duration) -> TimeoutConfig {
    let mut timeouts = config
        .timeout_config()
        .cloned()
        .unwrap_or_else(|| TimeoutConfig::builder().build());
    timeouts.take_defaults_from(
        &TimeoutConfig::builder()
            .connect_timeout(CONNECT)
            .read_timeout(first_byte)
            .build(),
    );
    timeouts
}

/// A DynamoDB client for `region`, from the standard settings in `config`.
pub fn dynamodb_client(config: &SdkConfig, region: &str) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(config)
        .region(aws_config::Region::new(region.to_owned()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts(config, DYNAMODB_FIRST_BYTE))
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// An S3 client for `region`. Path-style addressing is used when an endpoint override is
/// configured (an emulator such as moto or LocalStack), virtual-host style on AWS.
pub fn s3_client(config: &SdkConfig, region: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .region(aws_config::Region::new(region.to_owned()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts(config, S3_FIRST_BYTE))
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

pub use crate::aws_error::classify;

/// One DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: aws_sdk_dynamodb::Client,
    name: String,
    page_limit: Option<i32>,
}

impl DynamoTable {
    pub fn new(client: aws_sdk_dynamodb::Client, name: impl Into<String>) -> Self {
        DynamoTable {
            client,
            name: name.into(),
            page_limit: None,
        }
    }

    /// Caps the items per scan page (DynamoDB's 1 MB page limit applies anyway).
    pub fn with_page_limit(mut self, limit: Option<i32>) -> Self {
        self.page_limit = limit;
        self
    }
}

impl Table for DynamoTable {
    async fn scan(
        &self,
        segment: u32,
        total: u32,
        start_key: Option<SdkItem>,
    ) -> Result<ScanPage, StoreError> {
        let kept = KeepBody::default();
        self.client
            .scan()
            .table_name(&self.name)
            .segment(segment as i32)
            .total_segments(total as i32)
            .set_exclusive_start_key(start_key)
            .set_limit(self.page_limit)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .customize()
            .interceptor(kept.clone())
            .send()
            .await
            .map_err(|e| classify("Scan", e))?;
        let body = kept.take().ok_or_else(|| {
            StoreError::new(
                ErrorKind::Transient,
                "Scan",
                "the Scan response's body was not kept",
            )
        })?;
        raw_scan_page(body)
    }

    async fn batch_write(&self, items: Vec<SdkItem>) -> Result<WriteResult, StoreError> {
        let requests = items
            .into_iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| {
                        StoreError::new(ErrorKind::Permanent, "BatchWriteItem", e.to_string())
                    })?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let out = self
            .client
            .batch_write_item()
            .request_items(&self.name, requests)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| classify("BatchWriteItem", e))?;
        let consumed = out
            .consumed_capacity()
            .iter()
            .filter_map(|c| c.capacity_units())
            .sum();
        let unprocessed = out
            .unprocessed_items
            .and_then(|mut m| m.remove(&self.name))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|w| w.put_request.map(|p| p.item))
            .collect();
        Ok(WriteResult {
            unprocessed,
            consumed,
        })
    }

    async fn has_items(&self) -> Result<bool, StoreError> {
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.name)
                .limit(1)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("Scan", e))?;
            if out.count > 0 || out.items.as_ref().is_some_and(|i| !i.is_empty()) {
                return Ok(true);
            }
            // A page of Limit 1 may come back empty with a LastEvaluatedKey; only a page
            // without one ends the table.
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) => start = Some(key),
                None => return Ok(false),
            }
        }
    }

    async fn describe(&self) -> Result<Described, StoreError> {
        crate::aws_schema::describe(&self.client, &self.name).await
    }

    async fn create(&self, schema: &solace_codec::schema::TableSchema) -> Result<bool, StoreError> {
        crate::aws_schema::create(&self.client, &self.name, schema).await
    }

    async fn apply_settings(
        &self,
        schema: &solace_codec::schema::TableSchema,
        current: &solace_codec::schema::TableSchema,
    ) -> Result<Vec<String>, StoreError> {
        crate::aws_schema::apply_settings(&self.client, &self.name, schema, current).await
    }

    async fn start_export(
        &self,
        bucket: &str,
        s3_prefix: &str,
        client_token: &str,
    ) -> Result<String, StoreError> {
        crate::aws_schema::start_export(&self.client, &self.name, bucket, s3_prefix, client_token)
            .await
    }

    async fn describe_export(&self, arn: &str) -> Result<crate::store::ExportState, StoreError> {
        crate::aws_schema::describe_export(&self.client, arn).await
    }
}

/// Keeps a successful response's body for the caller and hands the SDK `{}` to deserialize
/// instead: a Scan page's items are DynamoDB JSON, the batch format's own, so a backup
/// takes them as they came rather than through the SDK's values and back to JSON
/// ([`raw_scan_page`]). An error response is left to the SDK, which classifies it.
#[derive(Debug, Clone, Default)]
struct KeepBody(std::sync::Arc<std::sync::Mutex<Option<Bytes>>>);

impl KeepBody {
    fn take(&self) -> Option<Bytes> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for KeepBody {
    fn name(&self) -> &'static str {
        "KeepScanBody"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let response = context.response_mut();
        if !response.status().is_success() {
            return Ok(());
        }
        let inner = std::mem::replace(response.body_mut(), SdkBody::taken());
        *response.body_mut() = SdkBody::from_body_1_x(Swap {
            inner,
            read: Vec::new(),
            slot: self.0.clone(),
            done: false,
        });
        Ok(())
    }
}

/// A body that reads `inner` to its end into `slot`, then yields `{}`.
struct Swap {
    inner: SdkBody,
    read: Vec<u8>,
    slot: std::sync::Arc<std::sync::Mutex<Option<Bytes>>>,
    done: bool,
}

impl http_body::Body for Swap {
    type Data = Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.read.extend_from_slice(&data);
                    }
                }
                Poll::Ready(None) => {
                    this.done = true;
                    let body = Bytes::from(std::mem::take(&mut this.read));
                    *this.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(body);
                    return Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
                        b"{}",
                    )))));
                }
            }
        }
    }
}

/// A Scan response's body as a page: each item a range of the body, the scan position and
/// the capacity it consumed read from it.
fn raw_scan_page(body: Bytes) -> Result<ScanPage, StoreError> {
    let page = RawPage::parse(body).map_err(|e| {
        StoreError::new(
            ErrorKind::Permanent,
            "Scan",
            format!("the Scan response is not what DynamoDB sends: {e}"),
        )
    })?;
    Ok(ScanPage {
        items: Vec::new(),
        last_key: page.last_key().map(|key| key.to_sdk()),
        consumed: page.consumed().unwrap_or(0.0),
        raw: Some(page),
    })
}

/// One S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
    expected_owner: Option<String>,
    encryption: Encryption,
}

/// The server-side encryption every object is written with (docs/layout.md#encryption).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 (`AES256`): S3's own keys.
    #[default]
    S3Managed,
    /// SSE-KMS with this key (id, ARN or alias), with the S3 bucket key on.
    Kms { key: String },
}

impl S3Objects {
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        expected_owner: Option<String>,
    ) -> Self {
        S3Objects {
            client,
            bucket: bucket.into(),
            expected_owner,
            encryption: Encryption::default(),
        }
    }

    /// Writes with `encryption` from now on.
    pub fn with_encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = encryption;
        self
    }

    /// The encryption headers of a PutObject.
    fn encrypted(
        &self,
        request: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        use aws_sdk_s3::types::ServerSideEncryption;
        match &self.encryption {
            Encryption::S3Managed => request.server_side_encryption(ServerSideEncryption::Aes256),
            Encryption::Kms { key } => request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(key)
                .bucket_key_enabled(true),
        }
    }
}

/// The user metadata keys of [`ObjectMeta`]'s counts (S3 sends them as `x-amz-meta-…`).
const META_ITEMS: &str = "solace-items";
const META_JSON_BYTES: &str = "solace-json-bytes";

/// Lower-case hex to S3's base64 checksum spelling.
fn hex_to_base64(hex: &str) -> Option<String> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let bytes = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(aws_smithy_types::base64::encode(bytes))
}

/// S3's base64 checksum to lower-case hex; `None` for a composite checksum (`…-<parts>`, a
/// multipart upload's), which is not the body's SHA-256.
fn base64_to_hex(b64: &str) -> Option<String> {
    let bytes = aws_smithy_types::base64::decode(b64).ok()?;
    (bytes.len() == 32).then(|| bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl S3Objects {
    /// The SHA-256 of the object at `key`: its stored checksum, or its body hashed when S3
    /// keeps none (an object uploaded without one).
    async fn stored_sha256(&self, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(info) = self.head(key).await? {
            if info.sha256.is_some() {
                return Ok(info.sha256);
            }
        }
        Ok(self.get(key).await?.map(|body| sha256_hex(&body)))
    }
}

impl Objects for S3Objects {
    async fn object_lock_enabled(&self) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .send()
            .await;
        match out {
            Ok(out) => Ok(out
                .object_lock_configuration
                .and_then(|c| c.object_lock_enabled)
                .is_some_and(|e| e == aws_sdk_s3::types::ObjectLockEnabled::Enabled)),
            // A bucket without Object Lock answers with this error.
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => Ok(false),
            Err(e) => Err(classify("GetObjectLockConfiguration", e)),
        }
    }

    async fn put_new(
        &self,
        key: &str,
        body: Bytes,
        meta: &ObjectMeta,
    ) -> Result<PutNew, StoreError> {
        let hex = meta.sha256.clone().unwrap_or_else(|| sha256_hex(&body));
        let checksum = hex_to_base64(&hex).ok_or_else(|| {
            StoreError::new(
                ErrorKind::Permanent,
                "PutObject",
                format!("{key}: {hex:?} is not a SHA-256 in lower-case hex"),
            )
        })?;
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.into())
            .if_none_match("*")
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
            .checksum_sha256(checksum)
            .set_expected_bucket_owner(self.expected_owner.clone());
        request = self.encrypted(request);
        if let Some(r) = meta.retention {
            let until = std::time::SystemTime::now()
                + std::time::Duration::from_secs(u64::from(r.days) * 86_400);
            request = request
                .object_lock_mode(aws_sdk_s3::types::ObjectLockMode::from(r.mode.as_str()))
                .object_lock_retain_until_date(aws_smithy_types::DateTime::from(until));
        }
        if let Some(n) = meta.items {
            request = request.metadata(META_ITEMS, n.to_string());
        }
        if let Some(n) = meta.json_bytes {
            request = request.metadata(META_JSON_BYTES, n.to_string());
        }
        match request.send().await {
            Ok(_) => Ok(PutNew::Created),
            Err(e)
                if e.raw_response().is_some_and(|r| r.status().as_u16() == 412)
                    || e.code() == Some("PreconditionFailed") =>
            {
                // The key exists (perhaps this very write, whose reply was lost): its
                // checksum tells the caller whose body it is.
                Ok(PutNew::Exists {
                    sha256: self.stored_sha256(key).await?,
                })
            }
            Err(e) => Err(classify("PutObject", e)),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
            Err(e) => return Err(classify("HeadObject", e)),
        };
        let number = |name: &str| {
            out.metadata()
                .and_then(|m| m.get(name))
                .and_then(|v| v.parse().ok())
        };
        Ok(Some(ObjectInfo {
            size: out.content_length().map_or(0, |n| n.max(0) as u64),
            sha256: out.checksum_sha256().and_then(base64_to_hex),
            items: number(META_ITEMS),
            json_bytes: number(META_JSON_BYTES),
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .set_expected_bucket_owner(self.expected_owner.clone())
                .send()
                .await
                .map_err(|e| classify("ListObjectsV2", e))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => return Ok(keys),
            }
        }
    }

    async fn list_folders(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut folders = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .delimiter("/")
                .set_continuation_token(token)
                .set_expected_bucket_owner(self.expected_owner.clone())
                .send()
                .await
                .map_err(|e| classify("ListObjectsV2", e))?;
            folders.extend(
                out.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            );
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => {
                    folders.sort();
                    return Ok(folders);
                }
            }
        }
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.into())
            .set_expected_bucket_owner(self.expected_owner.clone());
        self.encrypted(request)
            .send()
            .await
            .map_err(|e| classify("PutObject", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(classify("GetObject", e)),
        };
        let body = out.body.collect().await.map_err(|e| {
            StoreError::new(
                ErrorKind::Transient,
                "GetObject",
                format!("reading {key}: {e}"),
            )
        })?;
        Ok(Some(body.into_bytes()))
    }
}

/// A key attribute of a table [`create_table`] makes.
#[derive(Debug, Clone)]
pub struct KeyAttribute<'a> {
    pub name: &'a str,
    pub kind: aws_sdk_dynamodb::types::ScalarAttributeType,
    /// The partition key when false.
    pub sort: bool,
}

impl<'a> KeyAttribute<'a> {
    /// A partition key of type S.
    pub fn hash_s(name: &'a str) -> Self {
        KeyAttribute {
            name,
            kind: aws_sdk_dynamodb::types::ScalarAttributeType::S,
            sort: false,
        }
    }

    /// A sort key of type S.
    pub fn range_s(name: &'a str) -> Self {
        KeyAttribute {
            sort: true,
            ..Self::hash_s(name)
        }
    }
}

/// Creates an on-demand table keyed by `keys` and waits up to `wait` until it is active: the
/// one helper every table Solace makes goes through (status tables, the demo's, the tests').
///
/// # Errors
///
/// DynamoDB's refusal (it exists, a bad name or key), or a table not active in time.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    keys: &[KeyAttribute<'_>],
    wait: std::time::Duration,
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType};
    let invalid = |e: aws_sdk_dynamodb::error::BuildError| {
        StoreError::new(ErrorKind::Permanent, "CreateTable", e.to_string())
    };
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for key in keys {
        let key_type = if key.sort {
            KeyType::Range
        } else {
            KeyType::Hash
        };
        request = request
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key.name)
                    .key_type(key_type)
                    .build()
                    .map_err(invalid)?,
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key.name)
                    .attribute_type(key.kind.clone())
                    .build()
                    .map_err(invalid)?,
            );
    }
    request
        .send()
        .await
        .map_err(|e| classify("CreateTable", e))?;
    wait_table_active(client, name, wait).await
}

/// Polls DescribeTable until table `name` is active, for at most `wait`.
///
/// # Errors
///
/// DynamoDB's error (no such table), or a table not active in time.
pub async fn wait_table_active(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    wait: std::time::Duration,
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::TableStatus;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| classify("DescribeTable", e))?;
        let status = described.table().and_then(|t| t.table_status()).cloned();
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::new(
                ErrorKind::Transient,
                "DescribeTable",
                format!("table {name} is not active after {wait:?} (status {status:?})"),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_gets_a_read_timeout_unless_its_config_sets_one() {
        let plain = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let t = timeouts(&plain, S3_FIRST_BYTE);
        assert_eq!(t.read_timeout(), Some(S3_FIRST_BYTE));
        assert_eq!(t.connect_timeout(), Some(CONNECT));
        let client = dynamodb_client(&plain, "us-east-1");
        assert_eq!(
            client
                .config()
                .timeout_config()
                .and_then(|t| t.read_timeout()),
            Some(DYNAMODB_FIRST_BYTE)
        );
        let short = SdkConfig::builder()
            .timeout_config(
                TimeoutConfig::builder()
                    .read_timeout(Duration::from_millis(500))
                    .build(),
            )
            .build();
        let t = timeouts(&short, S3_FIRST_BYTE);
        assert_eq!(t.read_timeout(), Some(Duration::from_millis(500)), "kept");
        assert_eq!(t.connect_timeout(), Some(CONNECT), "filled in");
    }

    #[test]
    fn a_scan_body_becomes_item_ranges_a_start_key_and_its_capacity() {
        let body = Bytes::from_static(
            br#"{"Count":2,"Items":[{"pk":{"S":"a\u00e9\ud83d\ude00"},"n":{"N":"1"}},{"pk":{"S":"b"},"l":{"L":[{"NULL":true}]}}],"LastEvaluatedKey":{"pk":{"S":"b"}},"ConsumedCapacity":{"TableName":"t","CapacityUnits":2.5},"ScannedCount":2}"#,
        );
        let page = raw_scan_page(body).expect("a page");
        let raw = page.raw.as_ref().expect("kept raw");
        let items: Vec<&[u8]> = raw.items().map(|i| i.as_bytes()).collect();
        assert_eq!(
            items,
            vec![
                &br#"{"pk":{"S":"a\u00e9\ud83d\ude00"},"n":{"N":"1"}}"#[..],
                &br#"{"pk":{"S":"b"},"l":{"L":[{"NULL":true}]}}"#[..],
            ]
        );
        assert!(page.items.is_empty());
        assert_eq!(page.consumed, 2.5);
        let key = page.last_key.as_ref().expect("a start key");
        assert_eq!(key["pk"].as_s().ok().map(String::as_str), Some("b"));
        let sdk = page.sdk_items();
        assert_eq!(
            sdk[0]["pk"].as_s().ok().map(String::as_str),
            Some("aé😀"),
            "escapes decode"
        );
    }

    #[test]
    fn the_last_page_has_no_start_key_and_an_empty_page_no_items() {
        let page = raw_scan_page(Bytes::from_static(
            br#"{"Count":0,"Items":[],"ScannedCount":0}"#,
        ))
        .expect("a page");
        assert!(page.last_key.is_none());
        assert_eq!(page.raw.map(|r| r.len()), Some(0));
        assert_eq!(page.consumed, 0.0);
    }

    #[test]
    fn a_body_that_is_not_a_scan_response_is_a_permanent_error_naming_no_data() {
        for body in [
            &b"not json"[..],
            br#"{"Items":[{"pk":{"S":"x"}}"#,
            br#"{"Items":"secret"}"#,
        ] {
            let e = raw_scan_page(Bytes::copy_from_slice(body)).expect_err("refused");
            assert_eq!(e.kind, ErrorKind::Permanent);
            assert!(!e.to_string().contains("secret"), "{e}");
        }
        let e = raw_scan_page(Bytes::from_static(
            br#"{"LastEvaluatedKey":{"pk":{"Q":"x"}}}"#,
        ))
        .expect_err("not a key");
        assert!(e.to_string().contains("LastEvaluatedKey"), "{e}");
    }
}
