//! `solace local`: the four handlers fed from the real queues with Lambda's SQS semantics:
//! long polling (20 s, one poller per queue while it is empty, more as messages arrive), a
//! batch size, a visibility timeout, deleting only the messages that
//! succeeded (partial batch responses), the queues' own redrive policies moving repeated
//! failures to the dead-letter queues, a concurrency limit per function, and a deadline it
//! enforces by dropping the invocation (as Lambda kills it).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use solace_functions::Function;
use solace_functions::allow::{BucketRule, TableRule};
use solace_functions::config::Config;
pub use solace_functions::config::names::{
    BACKUP_DLQ, BACKUP_QUEUE, REJECTED_QUEUE, REQUEST_DLQ, REQUEST_QUEUE, RESTORE_DLQ,
    RESTORE_QUEUE,
};
use solace_functions::context::{AwsServices, Context};
use solace_functions::dispatch::dispatch;

/// The context the local runner's functions share.
pub type LocalContext = Context<AwsServices>;

/// Test hook: decides per invocation whether the "Lambda" is killed after a delay (a crash
/// at a random point) and whether each message is delivered twice.
pub type Chaos = Arc<dyn Fn(Function) -> Option<Duration> + Send + Sync>;

/// How `solace local` runs the functions.
#[derive(Clone)]
pub struct LocalOptions {
    /// The Lambda timeout: an invocation still running then is dropped, its messages kept.
    pub lambda_timeout: Duration,
    /// Visibility timeout of the work queues (Lambda's advice: six times the timeout).
    pub visibility_timeout: Duration,
    /// Receives before SQS moves a message to its dead-letter queue.
    pub max_receive_count: u32,
    /// Concurrent invocations per function: pollers per queue. At least one poller that is
    /// not inside an invocation long-polls all the time; the others poll only while
    /// messages arrive (each receive that brings messages wakes one more) and go back to
    /// sleep at an empty receive when another free poller is polling.
    pub concurrency: usize,
    /// Messages per invocation for the request and redrive functions (backup and restore
    /// take one: a segment can fill a whole invocation).
    pub batch_size: i32,
    /// Long-poll wait (at most 20 s, SQS's limit; Lambda's own pollers wait that long).
    pub wait: Duration,
    /// Every message is handled twice (at-least-once delivery, at its worst).
    pub duplicate: bool,
    pub chaos: Option<Chaos>,
    /// Counts what the runner did (shared by clones of these options).
    pub stats: Arc<Stats>,
    /// Put before every queue name (empty by default: the default names (docs/messages.md#queues)); lets several
    /// runners share one endpoint without taking each other's messages.
    pub queue_prefix: String,
}

impl std::fmt::Debug for LocalOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalOptions")
            .field("lambda_timeout", &self.lambda_timeout)
            .field("visibility_timeout", &self.visibility_timeout)
            .field("max_receive_count", &self.max_receive_count)
            .field("concurrency", &self.concurrency)
            .field("duplicate", &self.duplicate)
            .finish_non_exhaustive()
    }
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            lambda_timeout: Duration::from_secs(60),
            visibility_timeout: Duration::from_secs(90),
            max_receive_count: 3,
            concurrency: 4,
            batch_size: 10,
            wait: Duration::from_secs(20),
            duplicate: false,
            chaos: None,
            stats: Arc::default(),
            queue_prefix: String::new(),
        }
    }
}

/// Invocations per function and invocations killed (at the deadline or by the chaos hook).
#[derive(Debug, Default)]
pub struct Stats {
    invocations: [AtomicUsize; 4],
    /// ReceiveMessage calls, answered or not.
    receives: AtomicUsize,
    killed: AtomicUsize,
    /// Invocations per function and segment (task id and segment of the message's body).
    segments: std::sync::Mutex<HashMap<(Function, String, u64), usize>>,
}

impl Stats {
    /// Invocations of `function` that carried a message of `task_id`'s `segment`.
    pub fn segment_invocations(&self, function: Function, task_id: &str, segment: u64) -> usize {
        self.segments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(function, task_id.to_owned(), segment))
            .copied()
            .unwrap_or(0)
    }

    fn count_segments(&self, function: Function, event: &SqsEvent) {
        let mut segments = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        for record in &event.records {
            let body: serde_json::Value = record
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or_default();
            if let (Some(task), Some(segment)) =
                (body["task-id"].as_str(), body["segment"].as_u64())
            {
                *segments
                    .entry((function, task.to_owned(), segment))
                    .or_default() += 1;
            }
        }
    }

    pub fn invocations(&self, function: Function) -> usize {
        self.invocations[function.index()].load(Ordering::Relaxed)
    }

    /// Invocations of all four functions.
    pub fn total_invocations(&self) -> usize {
        self.invocations
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    pub fn killed(&self) -> usize {
        self.killed.load(Ordering::Relaxed)
    }

    /// ReceiveMessage calls on every queue.
    pub fn receives(&self) -> usize {
        self.receives.load(Ordering::Relaxed)
    }
}

/// Queue URLs by name.
#[derive(Debug, Clone, Default)]
pub struct Queues {
    pub urls: HashMap<&'static str, String>,
}

impl Queues {
    pub fn url(&self, name: &str) -> &str {
        self.urls.get(name).map_or("", String::as_str)
    }
}

async fn queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility: Duration,
    dlq: Option<(&str, u32)>,
) -> anyhow::Result<String> {
    let mut create = sqs
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.as_secs().max(1).to_string(),
        )
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600");
    if let Some((dlq_url, max)) = dlq {
        let arn = sqs
            .get_queue_attributes()
            .queue_url(dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .with_context(|| format!("reading the ARN of {dlq_url}"))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .context("the dead-letter queue has no ARN")?;
        let policy = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max});
        create = create.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let attributes = create.get_attributes().clone().unwrap_or_default();
    match create.send().await {
        Ok(out) => out.queue_url.context("CreateQueue returned no URL"),
        // It exists with other settings (an earlier run's): take it and apply ours.
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_queue_name_exists()) =>
        {
            let url = sqs
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .with_context(|| format!("finding queue {name}"))?
                .queue_url
                .context("GetQueueUrl returned no URL")?;
            sqs.set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(attributes))
                .send()
                .await
                .with_context(|| format!("updating queue {name}"))?;
            Ok(url)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating queue {name}"))),
    }
}

/// Creates the queues (with their redrive policies) and the status tables that are missing,
/// under the default names, and returns the configuration pointing at them.
pub async fn setup(
    sdk: &SdkConfig,
    options: &LocalOptions,
    mut config: Config,
) -> anyhow::Result<(Config, Queues)> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let visibility = options.visibility_timeout;
    let max = options.max_receive_count;
    let mut urls = HashMap::new();
    let p = &options.queue_prefix;
    for dlq in [REQUEST_DLQ, BACKUP_DLQ, RESTORE_DLQ, REJECTED_QUEUE] {
        urls.insert(
            dlq,
            queue(&sqs, &format!("{p}{dlq}"), visibility, None).await?,
        );
    }
    for (name, dlq) in [
        (REQUEST_QUEUE, REQUEST_DLQ),
        (BACKUP_QUEUE, BACKUP_DLQ),
        (RESTORE_QUEUE, RESTORE_DLQ),
    ] {
        let dlq_url = urls[dlq].clone();
        urls.insert(
            name,
            queue(
                &sqs,
                &format!("{p}{name}"),
                visibility,
                Some((&dlq_url, max)),
            )
            .await?,
        );
    }
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    for table in [&config.backup_status_table, &config.restore_status_table] {
        let exists = dynamodb
            .describe_table()
            .table_name(table.as_str())
            .send()
            .await
            .is_ok();
        if !exists {
            solace_pipeline::aws::create_table(
                &dynamodb,
                table,
                &[solace_pipeline::aws::KeyAttribute::hash_s("task-id")],
                Duration::from_secs(60),
            )
            .await
            .with_context(|| format!("creating status table {table}"))?;
            info!(table = %table, "status table created");
        }
    }
    config.request_queue_url = urls[REQUEST_QUEUE].clone();
    config.backup_queue_url = urls[BACKUP_QUEUE].clone();
    config.restore_queue_url = urls[RESTORE_QUEUE].clone();
    config.rejected_queue_url = urls[REJECTED_QUEUE].clone();
    // A developer's emulator: every table and bucket unless the environment names some. A
    // deployment always names them (the Terraform refuses empty lists).
    if config.allowed_tables.is_none() {
        info!("SOLACE_ALLOWED_TABLES is not set: solace local allows every table");
        config.allowed_tables = Some(vec![TableRule {
            region: "*".into(),
            name: "*".into(),
        }]);
    }
    if config.allowed_buckets.is_none() {
        info!("SOLACE_ALLOWED_BUCKETS is not set: solace local allows every bucket");
        config.allowed_buckets = Some(vec![BucketRule {
            name: "*".into(),
            prefix: String::new(),
        }]);
    }
    Ok((config, Queues { urls }))
}

/// Runs every function until `shutdown` turns true, then waits for the invocations in
/// flight.
pub async fn run(
    ctx: Arc<LocalContext>,
    queues: &Queues,
    options: &LocalOptions,
    shutdown: watch::Receiver<bool>,
) {
    let mut tasks = Vec::new();
    let feeds = [
        (Function::Request, vec![REQUEST_QUEUE]),
        (Function::Backup, vec![BACKUP_QUEUE]),
        (Function::Restore, vec![RESTORE_QUEUE]),
        (Function::Redrive, vec![BACKUP_DLQ, RESTORE_DLQ]),
    ];
    for (function, names) in feeds {
        for name in names {
            let shared = Arc::new(Pollers::default());
            for index in 0..options.concurrency.max(1) {
                let poller = Poller {
                    function,
                    url: queues.url(name).to_owned(),
                    awake: index == 0,
                    shared: shared.clone(),
                };
                if index == 0 {
                    shared.free.fetch_add(1, Ordering::SeqCst);
                }
                tasks.push(tokio::spawn(poll(
                    ctx.clone(),
                    poller,
                    options.clone(),
                    shutdown.clone(),
                )));
            }
        }
    }
    info!(
        functions = 4,
        concurrency = options.concurrency,
        "solace local is running"
    );
    for t in tasks {
        let _ = t.await;
    }
    info!("solace local stopped");
}

/// One of a queue's pollers. It sleeps until a receive that brought messages wakes it,
/// and sleeps again at an empty receive if another poller is free to poll: an idle queue
/// costs one long poll per wait, a busy one gets every poller, and a message never waits
/// for an invocation to end while a poller sleeps.
struct Poller {
    function: Function,
    url: String,
    /// Polls from the start (one per queue).
    awake: bool,
    shared: Arc<Pollers>,
}

/// What a queue's pollers share.
#[derive(Default)]
struct Pollers {
    /// Pollers awake and not inside an invocation: polling, or about to.
    free: AtomicUsize,
    wake: tokio::sync::Notify,
}

impl Pollers {
    /// After an empty receive: may this poller sleep? Only if another free one stays
    /// polling; if so it is counted out.
    fn rest(&self) -> bool {
        self.free
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                (f > 1).then(|| f - 1)
            })
            .is_ok()
    }

    /// A sleeping poller was woken: one more is free.
    fn woken(&self) {
        self.free.fetch_add(1, Ordering::SeqCst);
    }

    /// A receive brought messages: this poller is busy until [`Pollers::done`], and one
    /// sleeping poller is woken (more may be waiting, and someone must keep polling; a
    /// permit is kept if none sleeps).
    fn busy(&self) {
        self.free.fetch_sub(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// The invocation ended: the poller is free again.
    fn done(&self) {
        self.free.fetch_add(1, Ordering::SeqCst);
    }
}

async fn poll(
    ctx: Arc<LocalContext>,
    poller: Poller,
    options: LocalOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let Poller {
        function,
        url,
        mut awake,
        shared,
    } = poller;
    let batch = match function {
        Function::Backup | Function::Restore => 1,
        _ => options.batch_size.clamp(1, 10),
    };
    let wait = options.wait.as_secs().clamp(0, 20) as i32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if !awake {
            tokio::select! {
                () = shared.wake.notified() => awake = true,
                _ = shutdown.changed() => return,
            }
            shared.woken();
        }
        options.stats.receives.fetch_add(1, Ordering::Relaxed);
        let received = tokio::select! {
            r = ctx.services.sqs().receive_message()
                .queue_url(&url)
                .max_number_of_messages(batch)
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send() => r,
            _ = shutdown.changed() => return,
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                warn!(function = function.name(), error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            awake = !shared.rest();
            continue;
        }
        shared.busy();
        invoke(&ctx, function, &url, messages, &options).await;
        shared.done();
    }
}

/// One "Lambda invocation": the event, the deadline, and deleting what succeeded.
async fn invoke(
    ctx: &Arc<LocalContext>,
    function: Function,
    url: &str,
    messages: Vec<aws_sdk_sqs::types::Message>,
    options: &LocalOptions,
) {
    let mut event = SqsEvent::default();
    let mut receipts = HashMap::new();
    for m in messages {
        let mut record = SqsMessage::default();
        record.message_id = m.message_id.clone();
        record.receipt_handle = m.receipt_handle.clone();
        record.body = m.body.clone();
        record.attributes = m
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect();
        record.event_source = Some("aws:sqs".into());
        if let (Some(id), Some(handle)) = (m.message_id, m.receipt_handle) {
            receipts.insert(id, handle);
        }
        event.records.push(record);
    }
    options.stats.invocations[function.index()].fetch_add(1, Ordering::Relaxed);
    options.stats.count_segments(function, &event);
    let deadline = Instant::now() + options.lambda_timeout;
    let kill_after = options
        .chaos
        .as_ref()
        .and_then(|c| c(function))
        .unwrap_or(options.lambda_timeout);
    let run = async {
        if options.duplicate {
            let (a, b) = tokio::join!(
                dispatch(ctx, function, event.clone(), deadline),
                dispatch(ctx, function, event.clone(), deadline)
            );
            let mut failed = a.batch_item_failures;
            failed.extend(b.batch_item_failures);
            failed
        } else {
            dispatch(ctx, function, event.clone(), deadline)
                .await
                .batch_item_failures
        }
    };
    let failed = match tokio::time::timeout(kill_after.min(options.lambda_timeout), run).await {
        Ok(failed) => failed,
        Err(_) => {
            options.stats.killed.fetch_add(1, Ordering::Relaxed);
            warn!(
                function = function.name(),
                messages = receipts.len(),
                "invocation killed at its deadline; messages stay queued"
            );
            return;
        }
    };
    for f in &failed {
        receipts.remove(&f.item_identifier);
    }
    if receipts.is_empty() {
        return;
    }
    let entries: Vec<_> = receipts
        .iter()
        .enumerate()
        .filter_map(|(i, (_, handle))| {
            DeleteMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .receipt_handle(handle)
                .build()
                .ok()
        })
        .collect();
    match ctx
        .services
        .sqs()
        .delete_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(out) if !out.failed().is_empty() => {
            warn!(
                function = function.name(),
                failed = out.failed().len(),
                "some deletes failed; those messages come back"
            );
        }
        Ok(_) => debug!(
            function = function.name(),
            deleted = receipts.len(),
            "messages deleted"
        ),
        Err(e) => {
            warn!(function = function.name(), error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed; messages come back")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two pollers, one awake: the awake one takes a long invocation; the permit its
    /// receive left wakes the other, which must then keep polling alone rather than sleep
    /// while the first is busy (a new message would otherwise wait for the invocation).
    #[tokio::test]
    async fn a_poller_stays_awake_while_the_only_other_is_inside_an_invocation() {
        let shared = Pollers::default();
        shared.free.store(1, Ordering::SeqCst);
        assert!(
            !shared.rest(),
            "the only free poller rested: nobody would poll"
        );
        shared.busy();
        tokio::time::timeout(Duration::from_secs(1), shared.wake.notified())
            .await
            .expect("a busy poller wakes a sleeping one");
        shared.woken();
        assert!(
            !shared.rest(),
            "the woken poller slept although the other is inside an invocation"
        );
        shared.done();
        assert!(shared.rest(), "two free pollers: one may sleep");
        assert!(!shared.rest(), "the last free poller must keep polling");
        assert_eq!(shared.free.load(Ordering::SeqCst), 1);
    }
}
