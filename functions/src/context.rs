//! What a function keeps between invocations: configuration and SDK clients, built once.
//! Data clients are built per region on first use and cached (cross-region is the point).
//! Every client records the operations it runs ([`crate::operations::Recorder`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use solace_codec::EncoderConfig;
use solace_pipeline::aws::{DynamoTable, S3Objects};
use solace_pipeline::{BackupConfig, RestoreConfig};

use crate::config::Config;
use crate::lambda::Function;
use crate::operations::{self, Recorder};

/// Shared state of a function.
#[derive(Debug)]
pub struct Context {
    pub config: Config,
    pub sdk: SdkConfig,
    pub sqs: aws_sdk_sqs::Client,
    /// For the status tables, in the function's own region.
    pub status: aws_sdk_dynamodb::Client,
    pub backup: BackupConfig,
    pub restore: RestoreConfig,
    /// Data clients by region and by the function they were made for (see [`data_client`]).
    dynamodb: Mutex<HashMap<(String, Option<Function>), aws_sdk_dynamodb::Client>>,
    s3: Mutex<HashMap<(String, Option<Function>), aws_sdk_s3::Client>>,
}

/// A data client for the function whose handler is running, if any: the pipeline runs some
/// calls on tasks it spawns, outside the handler's [`operations::scope`], so the client
/// carries the function itself. One function per Lambda process: one client per region.
fn data_client<C: Clone>(
    cache: &Mutex<HashMap<(String, Option<Function>), C>>,
    region: &str,
    build: impl FnOnce(Recorder) -> C,
) -> C {
    let function = operations::current();
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry((region.to_owned(), function))
        .or_insert_with(|| build(Recorder::for_function(function)))
        .clone()
}

impl Context {
    pub fn new(config: Config, sdk: SdkConfig) -> Arc<Self> {
        let backup = BackupConfig {
            encoder: EncoderConfig {
                target_bytes: config.batch_bytes,
                max_items: usize::MAX,
                level: config.compression_level,
            },
            read_capacity_per_second: config.read_capacity_limit,
            ..BackupConfig::default()
        };
        let restore = RestoreConfig {
            write_capacity_per_second: config.write_capacity_limit,
            ..RestoreConfig::default()
        };
        Arc::new(Context {
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(&sdk)
                    .interceptor(Recorder::current())
                    .build(),
            ),
            status: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&sdk)
                    .interceptor(Recorder::current())
                    .build(),
            ),
            config,
            sdk,
            backup,
            restore,
            dynamodb: Mutex::default(),
            s3: Mutex::default(),
        })
    }

    /// The data table `name` in `region`.
    pub fn table(&self, region: &str, name: &str) -> DynamoTable {
        let client = data_client(&self.dynamodb, region, |recorder| {
            let client = solace_pipeline::aws::dynamodb_client(&self.sdk, region);
            aws_sdk_dynamodb::Client::from_conf(
                client.config().to_builder().interceptor(recorder).build(),
            )
        });
        DynamoTable::new(client, name).with_page_limit(self.config.scan_page_limit)
    }

    /// The S3 client for `region`.
    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        data_client(&self.s3, region, |recorder| {
            let client = solace_pipeline::aws::s3_client(&self.sdk, region);
            aws_sdk_s3::Client::from_conf(
                client.config().to_builder().interceptor(recorder).build(),
            )
        })
    }

    /// The data bucket `name` in `region`.
    pub fn bucket(&self, region: &str, name: &str) -> S3Objects {
        S3Objects::new(
            self.s3(region),
            name,
            self.config.expected_bucket_owner.clone(),
        )
    }
}

impl Context {
    /// Sends a segment message to its action's work queue.
    pub async fn send_segment(
        &self,
        message: &crate::message::SegmentMessage,
        what: &str,
    ) -> Result<(), String> {
        let queue = match message.request.action {
            crate::message::Action::Backup => &self.config.backup_queue_url,
            crate::message::Action::Restore => &self.config.restore_queue_url,
        };
        self.sqs
            .send_message()
            .queue_url(queue)
            .message_body(message.to_json())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{what}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))
    }
}

/// A partial batch response failing the given message ids.
pub fn failures(ids: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = ids
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    response
}

/// Emits CloudWatch metrics in Embedded Metric Format: one JSON line on stdout, which
/// Lambda's log pipeline turns into metrics (namespace `Solace`, dimension `Function`).
pub fn metrics(function: &str, values: &[(&str, f64)]) {
    if values.is_empty() {
        return;
    }
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let defs: Vec<_> = values
        .iter()
        .map(|(name, _)| serde_json::json!({"Name": name, "Unit": if name.contains("Bytes") { "Bytes" } else { "Count" }}))
        .collect();
    let mut record = serde_json::json!({
        "_aws": {
            "Timestamp": millis,
            "CloudWatchMetrics": [{
                "Namespace": "Solace",
                "Dimensions": [["Function"]],
                "Metrics": defs,
            }],
        },
        "Function": function,
    });
    if let Some(map) = record.as_object_mut() {
        for (name, value) in values {
            map.insert((*name).to_owned(), serde_json::json!(value));
        }
    }
    if crate::in_lambda() {
        println!("{record}");
    } else {
        tracing::debug!(target: "solace::metrics", "{record}");
    }
}
