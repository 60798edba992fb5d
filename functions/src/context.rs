//! What a function keeps between invocations: its configuration, the pipeline's limits, and
//! the [`Services`] it talks to, built once. [`AwsServices`] are the real ones: data clients
//! per region built on first use and cached (cross-region is the point), every client
//! recording the operations it runs ([`crate::operations::Recorder`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_smithy_types::retry::RetryConfig;
use solace_codec::EncoderConfig;
use solace_codec::SegmentId;
use solace_pipeline::aws::{DynamoTable, Encryption, S3Objects};
use solace_pipeline::{BackupConfig, Fence, Objects, Progress, RestoreConfig, Table};

use crate::config::Config;
use crate::error::{Error, QueueError};
use crate::fence::DynamoFence;
use crate::function::Function;
use crate::message::SegmentMessage;
use crate::operations::{self, Recorder};
use crate::queues::{Queues, SqsQueues};
use crate::status::{DynamoStatus, StatusStore};

/// The stores and queues a handler uses: AWS in production and in `solace local`, memory in
/// the handlers' unit tests.
pub trait Services: Send + Sync + 'static {
    type Table: Table;
    type Objects: Objects;
    type Status: StatusStore;
    type Queues: Queues;
    type Fence: Fence;

    /// The data table `name` in `region`.
    fn table(&self, region: &str, name: &str) -> Self::Table;
    /// The data bucket `name` in `region`.
    fn bucket(&self, region: &str, name: &str) -> Self::Objects;
    fn status(&self) -> &Self::Status;
    fn queues(&self) -> &Self::Queues;
    /// A new run's handle on the chain of `task_id`'s backup `segment`, kept in
    /// `status_table` (docs/protocol.md#fencing).
    fn fence(&self, status_table: &str, task_id: &str, segment: SegmentId) -> Self::Fence;
}

/// Shared state of a function.
#[derive(Debug)]
pub struct Context<S> {
    pub config: Config,
    pub backup: BackupConfig,
    pub restore: RestoreConfig,
    pub services: S,
    /// Counters every segment run in this process also counts into (direct mode's progress
    /// display); `None` in a Lambda function.
    pub progress: Option<Arc<Progress>>,
}

impl<S: Services> Context<S> {
    pub fn new(config: Config, services: S) -> Arc<Self> {
        Self::with_progress(config, services, None)
    }

    /// A context whose segment runs also count into `progress`.
    pub fn with_progress(
        config: Config,
        services: S,
        progress: Option<Arc<Progress>>,
    ) -> Arc<Self> {
        let backup = BackupConfig {
            encoder: EncoderConfig {
                target_bytes: config.batch_bytes,
                max_items: usize::MAX,
                level: config.compression_level,
            },
            read_capacity_per_second: config.read_capacity_limit,
            retry: retry_policy(&config),
            ..BackupConfig::default()
        };
        let restore = RestoreConfig {
            write_capacity_per_second: config.write_capacity_limit,
            retry: retry_policy(&config),
            ..RestoreConfig::default()
        };
        Arc::new(Context {
            config,
            backup,
            restore,
            services,
            progress,
        })
    }

    /// Sends a segment message to its action's work queue.
    pub async fn send_segment(
        &self,
        message: &SegmentMessage,
        what: &'static str,
    ) -> Result<(), Error> {
        let queue = self.config.work_queue(message.request.action);
        self.services
            .queues()
            .send(queue, message.to_json())
            .await
            .map_err(|source: QueueError| Error::Queue { what, source })
    }
}

/// The pipeline's retries, which may finish a call in flight during the first half of the
/// deadline margin (docs/pipeline.md#retries).
fn retry_policy(config: &Config) -> solace_pipeline::RetryPolicy {
    solace_pipeline::RetryPolicy {
        grace: config.deadline_margin / 2,
        ..solace_pipeline::RetryPolicy::default()
    }
}

/// A data client for the function whose handler is running, if any: the pipeline runs some
/// calls on tasks it spawns, outside the handler's [`operations::scope`], so the client
/// carries the function itself. One function per Lambda process: one client per region.
type Cache<C> = Mutex<HashMap<(String, Option<Function>), C>>;

fn data_client<C: Clone>(
    cache: &Cache<C>,
    region: &str,
    build: impl FnOnce(Recorder, Option<RetryConfig>) -> C,
) -> C {
    let function = operations::current();
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry((region.to_owned(), function))
        .or_insert_with(|| build(Recorder::for_function(function), sdk_retries(function)))
        .clone()
}

/// The SDK retries a function's data clients keep. The backup and restore pipelines wrap
/// every call in their own retry policy (docs/pipeline.md#retries), so theirs are off; the
/// request function's calls (describing tables, reading markers, writing the manifest) are
/// single admin calls outside any pipeline, and keep the SDK's standard retries: without
/// them one throttle or lost reply would hand the whole request back to its queue.
fn sdk_retries(function: Option<Function>) -> Option<RetryConfig> {
    (function == Some(Function::Request)).then(|| RetryConfig::standard().with_max_attempts(5))
}

/// DynamoDB, S3 and SQS through the AWS SDK.
#[derive(Debug)]
pub struct AwsServices {
    pub sdk: SdkConfig,
    status: DynamoStatus,
    queues: SqsQueues,
    expected_bucket_owner: Option<String>,
    encryption: Encryption,
    scan_page_limit: Option<i32>,
    dynamodb: Cache<aws_sdk_dynamodb::Client>,
    s3: Cache<aws_sdk_s3::Client>,
}

impl AwsServices {
    /// Clients for `config`'s deployment: status tables and queues in the SDK's region.
    pub fn new(sdk: SdkConfig, config: &Config) -> Self {
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .timeout_config(solace_pipeline::aws::timeouts(
                    &sdk,
                    solace_pipeline::aws::SQS_FIRST_BYTE,
                ))
                .interceptor(Recorder::current())
                .build(),
        );
        let status = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .timeout_config(solace_pipeline::aws::timeouts(
                    &sdk,
                    solace_pipeline::aws::DYNAMODB_FIRST_BYTE,
                ))
                .interceptor(Recorder::current())
                .build(),
        );
        AwsServices {
            sdk,
            status: DynamoStatus::new(status),
            queues: SqsQueues::new(sqs),
            expected_bucket_owner: config.expected_bucket_owner.clone(),
            encryption: match &config.backup_kms_key {
                Some(key) => Encryption::Kms { key: key.clone() },
                None => Encryption::S3Managed,
            },
            scan_page_limit: config.scan_page_limit,
            dynamodb: Mutex::default(),
            s3: Mutex::default(),
        }
    }

    /// The SQS client (the local runner polls with it).
    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        self.queues.client()
    }

    /// The S3 client for `region`.
    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        data_client(&self.s3, region, |recorder, retries| {
            let client = solace_pipeline::aws::s3_client(&self.sdk, region);
            let mut conf = client.config().to_builder().interceptor(recorder);
            if let Some(retries) = retries {
                conf = conf.retry_config(retries);
            }
            aws_sdk_s3::Client::from_conf(conf.build())
        })
    }
}

impl Services for AwsServices {
    type Table = DynamoTable;
    type Objects = S3Objects;
    type Status = DynamoStatus;
    type Queues = SqsQueues;
    type Fence = DynamoFence;

    fn table(&self, region: &str, name: &str) -> DynamoTable {
        let client = data_client(&self.dynamodb, region, |recorder, retries| {
            let client = solace_pipeline::aws::dynamodb_client(&self.sdk, region);
            let mut conf = client.config().to_builder().interceptor(recorder);
            if let Some(retries) = retries {
                conf = conf.retry_config(retries);
            }
            aws_sdk_dynamodb::Client::from_conf(conf.build())
        });
        DynamoTable::new(client, name).with_page_limit(self.scan_page_limit)
    }

    fn bucket(&self, region: &str, name: &str) -> S3Objects {
        S3Objects::new(self.s3(region), name, self.expected_bucket_owner.clone())
            .with_encryption(self.encryption.clone())
    }

    fn fence(&self, status_table: &str, task_id: &str, segment: SegmentId) -> DynamoFence {
        // A run's identity: random, so two runs of one message are two runs.
        let run = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        DynamoFence::new(
            self.status.client().clone(),
            status_table,
            task_id,
            segment,
            &run,
        )
    }

    fn status(&self) -> &DynamoStatus {
        &self.status
    }

    fn queues(&self) -> &SqsQueues {
        &self.queues
    }
}
