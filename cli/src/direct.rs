//! Direct mode (docs/cli.md#direct-mode): a backup, restore or verify run in this process by
//! the functions' own handlers, with no queues, no Lambda and no status items.
//!
//! The request function's handler admits the request (the manifest, the reused-prefix and
//! non-empty-table refusals, the restore's checks) and fans out its segments; the backup and
//! restore handlers run them, `concurrency` at a time; a segment whose run fails with
//! nothing to show is handed to the redrive handler after three tries, as SQS would. Only
//! the status tables and the queues are in memory ([`DirectServices`]), so what lands in S3
//! (batches, markers, checksums, the completion record) is byte for byte what the functions
//! write: a direct backup restores through the functions and the other way round. One run
//! per segment at a time, so the backup chain needs no fence.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use solace_codec::SegmentId;
use solace_functions::Function;
use solace_functions::allow::{BucketRule, TableRule};
use solace_functions::config::Config;
use solace_functions::context::{AwsServices, Context, Services};
use solace_functions::dispatch::dispatch;
use solace_functions::mem::{MemQueues, MemStatus};
use solace_functions::message::Action;
use solace_functions::status::{StatusStore, TaskStatus};
use solace_pipeline::aws::{DynamoTable, S3Objects};
use solace_pipeline::{Progress, Unfenced};
use tokio::time::Instant;

use crate::error::{CliError, CliResult};

const REQUEST_QUEUE: &str = "direct:request-queue";
const BACKUP_QUEUE: &str = "direct:backup-queue";
const RESTORE_QUEUE: &str = "direct:restore-queue";

/// Deliveries of one message before it goes to the redrive handler (the queues'
/// `maxReceiveCount`).
const MAX_RECEIVES: u32 = 3;

/// Each handler call's deadline: Lambda's longest, so a long segment continues in a new
/// message exactly as it does deployed.
const INVOCATION: Duration = Duration::from_secs(15 * 60);

/// The data tables and buckets through the AWS SDK; status tables and queues in memory.
#[derive(Debug)]
pub struct DirectServices {
    aws: AwsServices,
    status: MemStatus,
    queues: MemQueues,
}

impl Services for DirectServices {
    type Table = DynamoTable;
    type Objects = S3Objects;
    type Status = MemStatus;
    type Queues = MemQueues;
    type Fence = Unfenced;

    fn table(&self, region: &str, name: &str) -> DynamoTable {
        self.aws.table(region, name)
    }

    fn bucket(&self, region: &str, name: &str) -> S3Objects {
        self.aws.bucket(region, name)
    }

    fn status(&self) -> &MemStatus {
        &self.status
    }

    fn queues(&self) -> &MemQueues {
        &self.queues
    }

    fn fence(&self, _: &str, _: &str, _: SegmentId) -> Unfenced {
        Unfenced
    }
}

/// How a direct run is made.
#[derive(Debug, Clone)]
pub struct DirectOptions {
    /// Segments run at once.
    pub concurrency: usize,
    /// The KMS key of every object a backup writes (`None`: `SOLACE_BACKUP_KMS_KEY_ARN` when
    /// set, else SSE-S3).
    pub kms_key: Option<String>,
}

/// A direct run under way: its task's status and live counters.
#[derive(Debug)]
pub struct Direct {
    ctx: Arc<Context<DirectServices>>,
    pub task_id: String,
    pub action: Action,
    pub progress: Arc<Progress>,
}

impl Direct {
    /// Admits `body` (a request as the request function reads it) and fans out its
    /// segments. A refusal is exit 2 with the request function's own reason.
    pub async fn start(
        sdk: &SdkConfig,
        body: &str,
        action: Action,
        options: &DirectOptions,
    ) -> CliResult<Self> {
        let mut config = Config::from_env().map_err(|e| CliError::refused(e.to_string()))?;
        config.request_queue_url = REQUEST_QUEUE.into();
        config.backup_queue_url = BACKUP_QUEUE.into();
        config.restore_queue_url = RESTORE_QUEUE.into();
        // A rejection is read from its status item (in memory here).
        config.rejected_queue_url = String::new();
        if options.kms_key.is_some() {
            config.backup_kms_key = options.kms_key.clone();
        }
        // The operator's own credentials are the limit of what a direct run can touch.
        config.allowed_tables = Some(vec![TableRule {
            region: "*".into(),
            name: "*".into(),
        }]);
        config.allowed_buckets = Some(vec![BucketRule {
            name: "*".into(),
            prefix: String::new(),
        }]);
        let aws = AwsServices::new(sdk.clone(), &config);
        let services = DirectServices {
            aws,
            status: MemStatus::default(),
            queues: MemQueues::default(),
        };
        let progress = Arc::new(Progress::default());
        let ctx = Context::with_progress(config, services, Some(progress.clone()));
        let direct = Direct {
            ctx,
            task_id: task_id(),
            action,
            progress,
        };
        // A request handed back (an AWS error it may get past) is tried again, as SQS would.
        for receives in 1..=MAX_RECEIVES {
            let e = event(&direct.task_id, body.to_owned(), receives);
            let out = dispatch(
                &direct.ctx,
                Function::Request,
                e,
                Instant::now() + INVOCATION,
            )
            .await;
            if let Some(reason) = direct.rejection().await {
                return Err(CliError::refused(reason));
            }
            if out.batch_item_failures.is_empty() && direct.status().is_some() {
                return Ok(direct);
            }
            tokio::time::sleep(Duration::from_secs(u64::from(receives))).await;
        }
        Err(CliError::not_found(format!(
            "the request could not be admitted after {MAX_RECEIVES} tries (an AWS error: RUST_LOG=warn shows it)"
        )))
    }

    fn table(&self) -> &str {
        self.ctx.config.status_table(self.action)
    }

    /// The task as the in-memory status table holds it.
    pub fn status(&self) -> Option<TaskStatus> {
        self.ctx
            .services
            .status
            .task(self.table(), &self.task_id)
            .map(|t| t.status)
    }

    async fn rejection(&self) -> Option<String> {
        let status = &self.ctx.services.status;
        status
            .rejection(self.table(), &self.task_id)
            .await
            .ok()
            .flatten()
    }

    /// Runs every segment to its end, `concurrency` at a time. Returns the task's final
    /// status. Dropping the future stops every run where it is (Ctrl-C): a backup stopped so
    /// has no completion record.
    pub async fn run(&self, concurrency: usize) -> CliResult<TaskStatus> {
        let work = self.ctx.config.work_queue(self.action).to_owned();
        let worker = match self.action {
            Action::Backup | Action::Convert => Function::Backup,
            Action::Restore | Action::Verify => Function::Restore,
        };
        let queues = &self.ctx.services.queues;
        // Messages waiting, with the deliveries each has had.
        let mut waiting: VecDeque<(String, u32)> = VecDeque::new();
        let mut running = FuturesUnordered::new();
        loop {
            // A fan-out too long for one call continues in a request message.
            for body in queues.drain(REQUEST_QUEUE) {
                let e = event(&task_id(), body, 1);
                dispatch(&self.ctx, Function::Request, e, Instant::now() + INVOCATION).await;
            }
            waiting.extend(queues.drain(&work).into_iter().map(|b| (b, 1)));
            while running.len() < concurrency.max(1) {
                let Some((body, receives)) = waiting.pop_front() else {
                    break;
                };
                let ctx = self.ctx.clone();
                running.push(async move {
                    let e = event(&task_id(), body.clone(), receives);
                    let out = dispatch(&ctx, worker, e, Instant::now() + INVOCATION).await;
                    (body, receives, out.batch_item_failures.is_empty())
                });
            }
            if running.is_empty() {
                let status = self.status().ok_or_else(|| {
                    CliError::not_found(format!("task {} vanished from memory", self.task_id))
                })?;
                if status.is_done() || queues.len(&work) + queues.len(REQUEST_QUEUE) == 0 {
                    return Ok(status);
                }
                continue;
            }
            if let Some((body, receives, ok)) = running.next().await {
                if ok {
                    continue;
                }
                if receives < MAX_RECEIVES {
                    // Handed back: tried again after a pause, as SQS's visibility timeout does.
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(receives))).await;
                    waiting.push_back((body, receives + 1));
                } else {
                    let e = event(&task_id(), body, receives);
                    dispatch(&self.ctx, Function::Redrive, e, Instant::now() + INVOCATION).await;
                }
            }
        }
    }
}

/// A new task id: random, shaped like the SQS message ids deployed tasks get.
fn task_id() -> String {
    let h = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// One message as Lambda hands it over.
fn event(id: &str, body: String, receives: u32) -> SqsEvent {
    let mut record = SqsMessage::default();
    record.message_id = Some(id.to_owned());
    record.body = Some(body);
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), receives.to_string());
    record.event_source = Some("aws:sqs".into());
    let mut event = SqsEvent::default();
    event.records.push(record);
    event
}
