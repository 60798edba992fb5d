//! The main job end to end (`solace demo`): a sample table of every attribute type backed up
//! through the request queue and restored into a new table, with progress, a verification
//! and a summary. Also the building blocks the end-to-end tests use.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use solace_codec::sdk::{from_sdk_item, to_sdk_item};
use solace_codec::{Item, sample};
use tokio::sync::watch;
use tokio::time::Instant;

use solace_functions::config::Config;
use solace_functions::context::{AwsServices, Context, Services};
use solace_functions::message::Action;
use solace_functions::status::{self, StatusStore, TaskStatus};
use solace_pipeline::Objects as _;

use crate::local::{self, LocalContext, LocalOptions, Queues};

/// Creates a table with hash key `pk` (S), on demand, and waits until it is active.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    solace_pipeline::aws::create_table(
        client,
        name,
        &[solace_pipeline::aws::KeyAttribute::hash_s("pk")],
        Duration::from_secs(60),
    )
    .await
    .with_context(|| format!("creating table {name}"))
}

/// Writes `count` sample items (every attribute type, sizes up to near 400 KB).
pub async fn fill(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    count: u64,
) -> anyhow::Result<()> {
    let items: Vec<_> = (0..count)
        .map(|n| {
            if n % 5000 == 17 {
                sample::item(sample::Shape::Huge, n)
            } else {
                sample::mixed(n)
            }
        })
        .collect();
    for chunk in items.chunks(25) {
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|i| {
                let put = PutRequest::builder()
                    .set_item(Some(to_sdk_item(i)))
                    .build()?;
                Ok::<_, anyhow::Error>(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<_, _>>()?;
        while !pending.is_empty() {
            let out = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .context("filling the sample table")?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default();
        }
    }
    Ok(())
}

/// Every item of a table, by key (a full scan).
pub async fn contents(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> anyhow::Result<BTreeMap<String, Item>> {
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("scanning {table}"))?;
        for item in page.items() {
            let item = from_sdk_item(item).context("an attribute type this codec does not know")?;
            out.insert(format!("{:?}", item.get("pk")), item);
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(out),
        }
    }
}

/// A running `solace local`, stopped on drop.
#[derive(Debug)]
pub struct Running {
    pub ctx: Arc<LocalContext>,
    pub queues: Queues,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Sets up queues and status tables, then runs the four functions in this process.
    pub async fn start(
        sdk: &SdkConfig,
        options: LocalOptions,
        config: Config,
    ) -> anyhow::Result<Self> {
        let (config, queues) = local::setup(sdk, &options, config).await?;
        let services = AwsServices::new(sdk.clone(), &config);
        let ctx = Context::new(config, services);
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn({
            let (ctx, queues) = (ctx.clone(), queues.clone());
            async move { local::run(ctx, &queues, &options, rx).await }
        });
        Ok(Running {
            ctx,
            queues,
            stop,
            task: Some(task),
        })
    }

    /// Sends a request to the request queue; returns its task id (the message id).
    pub async fn send(&self, request: &serde_json::Value) -> anyhow::Result<String> {
        let out = self
            .ctx
            .services
            .sqs()
            .send_message()
            .queue_url(self.queues.url(local::REQUEST_QUEUE))
            .message_body(request.to_string())
            .send()
            .await
            .context("sending the request")?;
        out.message_id.context("SendMessage returned no id")
    }

    /// Waits until the task is done (docs/status.md#predicates), and a backup until its
    /// completion record is written too (docs/protocol.md#completion-record: a restore
    /// refuses it before), calling `report` with each status read.
    pub async fn wait(
        &self,
        table: &str,
        task_id: &str,
        timeout: Duration,
        mut report: impl FnMut(&TaskStatus),
    ) -> anyhow::Result<TaskStatus> {
        let end = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(s) = self.ctx.services.status().read_task(table, task_id).await? {
                report(&s);
                if s.is_done() && self.recorded(&s).await? {
                    return Ok(s);
                }
                last = Some(s);
            }
            if Instant::now() > end {
                bail!("task {task_id} not done after {timeout:?}; its status: {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Whether a done task needs no completion record (not a backup that succeeded: see
    /// `Ops::recorded`) or has one.
    async fn recorded(&self, s: &TaskStatus) -> anyhow::Result<bool> {
        let wanted = s.succeeded();
        let Some(request) = s
            .request
            .as_ref()
            .filter(|r| wanted && r.action == Action::Backup)
        else {
            return Ok(true);
        };
        let bucket = self
            .ctx
            .services
            .bucket(&request.bucket_region, &request.bucket_name);
        let key = solace_codec::completion_key(&request.bucket_prefix);
        Ok(bucket
            .head(&key)
            .await
            .with_context(|| format!("reading {key}"))?
            .is_some())
    }

    /// Stops polling and waits for the invocations in flight.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A backup or restore request as an operator writes it.
pub fn request(
    action: &str,
    segments: u32,
    table: &str,
    bucket: &str,
    prefix: &str,
    region: &str,
) -> serde_json::Value {
    serde_json::json!({
        "action": action,
        "total-segments": segments,
        "table-region": region,
        "table-name": table,
        "bucket-region": region,
        "bucket-name": bucket,
        "bucket-prefix": prefix,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `solace demo`: the main job, printing progress and a summary.
pub async fn demo(sdk: &SdkConfig, items: u64, segments: u32) -> anyhow::Result<()> {
    let started = Instant::now();
    let region = sdk
        .region()
        .map_or("us-east-1".to_owned(), |r| r.to_string());
    let run = format!("{}", std::process::id());
    let source = format!("solace-demo-source-{run}");
    let restored = format!("solace-demo-restored-{run}");
    let bucket = format!("solace-demo-{run}");
    let prefix = format!("{source}/{}/", status::now_rfc3339().replace(':', "-"));
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let s3 = solace_pipeline::aws::s3_client(sdk, &region);

    println!("1/6 creating table {source} with {items} sample items of every attribute type");
    prepare(sdk, items, &source, &restored, &bucket).await?;

    println!("2/6 starting solace local (the four functions on the emulator's queues)");
    let options = LocalOptions {
        concurrency: segments.clamp(1, 8) as usize,
        ..LocalOptions::default()
    };
    let local = Running::start(sdk, options, Config::from_env()?).await?;

    let report = |label: &'static str| {
        let mut last = (u64::MAX, u64::MAX);
        move |s: &TaskStatus| {
            if (s.completed + s.failed, s.items) != last {
                last = (s.completed + s.failed, s.items);
                println!(
                    "    {label}: {}/{} segments done ({} failed), {} items, {:.1} MiB",
                    s.completed + s.failed,
                    s.total,
                    s.failed,
                    s.items,
                    mib(s.bytes)
                );
            }
        }
    };
    println!("3/6 backup request → request-queue: {segments} segments to s3://{bucket}/{prefix}");
    let backup_id = local
        .send(&request(
            "backup", segments, &source, &bucket, &prefix, &region,
        ))
        .await?;
    let backup = local
        .wait(
            &local.ctx.config.backup_status_table,
            &backup_id,
            Duration::from_secs(3600),
            report("backup"),
        )
        .await?;
    if !backup.succeeded() {
        bail!("the backup failed: {:?}", backup.errors);
    }

    println!("4/6 restore request → request-queue: into table {restored}");
    let restore_id = local
        .send(&request(
            "restore", segments, &restored, &bucket, &prefix, &region,
        ))
        .await?;
    let restore = local
        .wait(
            &local.ctx.config.restore_status_table,
            &restore_id,
            Duration::from_secs(3600),
            report("restore"),
        )
        .await?;
    local.stop().await;
    if !restore.succeeded() {
        bail!("the restore failed: {:?}", restore.errors);
    }

    println!("5/6 verifying: scanning both tables");
    let (a, b) = (
        contents(&dynamodb, &source).await?,
        contents(&dynamodb, &restored).await?,
    );
    let mut objects = 0u64;
    let mut stored = 0u64;
    let mut pages = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for o in page.context("listing the backup")?.contents() {
            objects += 1;
            stored += o.size().unwrap_or(0).max(0) as u64;
        }
    }
    if a != b {
        let missing = a.keys().filter(|k| !b.contains_key(*k)).count();
        let differ = a
            .iter()
            .filter(|(k, v)| b.get(*k).is_some_and(|w| w != *v))
            .count();
        bail!(
            "verification FAILED: {} source items, {} restored, {missing} missing, {differ} different",
            a.len(),
            b.len()
        );
    }
    println!(
        "    OK: the restored table equals the source ({} items)",
        a.len()
    );
    println!("6/6 summary");
    println!(
        "    items:   {} backed up, {} restored",
        backup.items, restore.items
    );
    println!(
        "    bytes:   {:.1} MiB of DynamoDB JSON, {:.1} MiB stored",
        mib(backup.bytes),
        mib(stored)
    );
    println!("    objects: {objects} under s3://{bucket}/{prefix}");
    println!("    time:    {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `solace demo prepare`: the sample table of every attribute type, an empty table to
/// restore into, and a bucket.
pub async fn prepare(
    sdk: &SdkConfig,
    items: u64,
    source: &str,
    restored: &str,
    bucket: &str,
) -> anyhow::Result<()> {
    let region = sdk
        .region()
        .map_or("us-east-1".to_owned(), |r| r.to_string());
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let s3 = solace_pipeline::aws::s3_client(sdk, &region);
    create_table(&dynamodb, source).await?;
    create_table(&dynamodb, restored).await?;
    let mut create = s3.create_bucket().bucket(bucket);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                    region.as_str(),
                ))
                .build(),
        );
    }
    create
        .send()
        .await
        .with_context(|| format!("creating bucket {bucket}"))?;
    fill(&dynamodb, source, items).await?;
    Ok(())
}

/// `solace demo compare`: whether two tables hold the same items; the differences counted.
pub async fn compare(sdk: &SdkConfig, a: &str, b: &str) -> anyhow::Result<bool> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let (x, y) = (contents(&dynamodb, a).await?, contents(&dynamodb, b).await?);
    if x == y {
        println!("verified: {b} holds exactly the {} items of {a}", x.len());
        return Ok(true);
    }
    let missing = x.keys().filter(|k| !y.contains_key(*k)).count();
    let extra = y.keys().filter(|k| !x.contains_key(*k)).count();
    let differ = x
        .iter()
        .filter(|(k, v)| y.get(*k).is_some_and(|w| w != *v))
        .count();
    println!(
        "NOT equal: {a} has {} items, {b} {}: {missing} missing, {extra} extra, {differ} different",
        x.len(),
        y.len()
    );
    Ok(false)
}
