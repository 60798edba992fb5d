//! The operator's commands (docs/cli.md): `backup`, `restore`, `verify`, `convert`, `plan`,
//! `status`, `tasks`, `cancel`. A request is built here, checked by the request function's
//! own validator ([`solace_functions::request::validate`]) and then either sent to the
//! deployment's request queue or run in this process ([`crate::direct`]).

use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use solace_codec::layout::{Completion, Manifest};
use solace_functions::message::{Action, Request};
use solace_functions::request::{segment_folders, validate};
use solace_functions::status::{DynamoStatus, ERROR_SAMPLE, StatusStore, TaskStatus, task_status};
use solace_pipeline::Objects;
use solace_pipeline::aws::S3Objects;

use crate::deploy::Deployment;
use crate::direct::{Direct, DirectOptions};
use crate::error::{CliError, CliResult, Exit};
use crate::report::{Expected, View, Watch, out, out_text, state, thousands};
use crate::url::S3Url;

/// What Ctrl-C says, set by the command as it goes (main prints it and exits 130).
static INTERRUPT: Mutex<Option<String>> = Mutex::new(None);

pub fn on_interrupt(message: String) {
    *INTERRUPT.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
}

pub fn interrupt_message() -> String {
    INTERRUPT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_else(|| "interrupted".to_owned())
}

/// The validator's segment ceiling here: the deployment's limit is its own state (its
/// request function refuses more than it allows), so only what no deployment accepts, more
/// than 1,000,000, is refused locally.
const LOCAL_MAX_SEGMENTS: u32 = 1_000_000;

/// Flags every task command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Watch the task until it ends (progress on stderr) and exit by how it ended.
    #[arg(long)]
    pub wait: bool,
    /// Run it in this process: no queues, no Lambda, no status items.
    #[arg(long)]
    pub direct: bool,
    /// Direct mode: segments run at once.
    #[arg(long, value_name = "N", default_value_t = 4, requires = "direct")]
    pub concurrency: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// The table to back up.
    #[arg(long, value_name = "NAME")]
    pub table: String,
    /// The table's region (default: the AWS SDK's region).
    #[arg(long, value_name = "R")]
    pub table_region: Option<String>,
    /// Where the backup goes: a bucket and a new prefix.
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub to: S3Url,
    /// The bucket's region (default: the AWS SDK's region).
    #[arg(long, value_name = "R")]
    pub bucket_region: Option<String>,
    /// Segments to scan in parallel (default: what `solace plan` recommends for a backup
    /// within 15 minutes).
    #[arg(long, value_name = "N")]
    pub segments: Option<u32>,
    /// How the table is read: `scan` (any table, consumes read capacity) or `export` (a
    /// DynamoDB point-in-time export: needs PITR on the table, consumes none).
    #[arg(long, value_name = "HOW", value_parser = ["scan", "export"], default_value = "scan")]
    pub method: String,
    /// Object Lock mode of every object the backup writes (with --retention-days).
    #[arg(long, value_name = "MODE", value_parser = ["GOVERNANCE", "COMPLIANCE"])]
    pub retention_mode: Option<String>,
    /// Days every object the backup writes is locked for.
    #[arg(long, value_name = "DAYS")]
    pub retention_days: Option<u32>,
    /// Direct mode: the KMS key every object is encrypted with (default: SSE-S3). Deployed,
    /// the deployment's `backup_kms_key_arn` decides.
    #[arg(long, value_name = "ARN", requires = "direct")]
    pub kms_key: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// The backup to restore.
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub from: S3Url,
    /// The table to restore into (it must exist, unless --create-table; empty unless
    /// --allow-non-empty-table).
    #[arg(long, value_name = "NAME")]
    pub table: String,
    /// The table's region (default: the AWS SDK's region).
    #[arg(long, value_name = "R")]
    pub table_region: Option<String>,
    /// The bucket's region (default: the AWS SDK's region).
    #[arg(long, value_name = "R")]
    pub bucket_region: Option<String>,
    /// Restore into a table that already holds items.
    #[arg(long)]
    pub allow_non_empty_table: bool,
    /// Restore what a backup committed although it never completed.
    #[arg(long)]
    pub allow_incomplete_backup: bool,
    /// Create the table from the backup's schema when it does not exist (keys, indexes,
    /// billing, stream, encryption, tags, then TTL and PITR).
    #[arg(long)]
    pub create_table: bool,
    /// With --create-table: create it with this billing mode instead of the backup's.
    #[arg(long, value_name = "MODE", value_parser = ["PAY_PER_REQUEST", "PROVISIONED"], requires = "create_table")]
    pub billing_mode: Option<String>,
    /// With --billing-mode PROVISIONED: read capacity of the table and each GSI.
    #[arg(long, value_name = "RCU", requires = "create_table")]
    pub read_capacity: Option<u32>,
    /// With --billing-mode PROVISIONED: write capacity of the table and each GSI.
    #[arg(long, value_name = "WCU", requires = "create_table")]
    pub write_capacity: Option<u32>,
    /// With --create-table: create it without the backup's secondary indexes.
    #[arg(long, requires = "create_table")]
    pub skip_indexes: bool,
    /// Only for a source that does not record its segment count; a Solace backup sets it.
    #[arg(long, value_name = "N")]
    pub segments: Option<u32>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The backup to check.
    #[arg(value_name = "s3://BUCKET/PREFIX")]
    pub backup: S3Url,
    /// The bucket's region (default: the AWS SDK's region).
    #[arg(long, value_name = "R")]
    pub bucket_region: Option<String>,
    /// Only for a source that does not record its segment count; a Solace backup sets it.
    #[arg(long, value_name = "N")]
    pub segments: Option<u32>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConvertArgs {
    /// The backup to copy (complete, made by Solace with a manifest).
    #[arg(value_name = "s3://BUCKET/PREFIX")]
    pub backup: S3Url,
    /// Where the copy goes: it is written under `<PREFIX>AWSDynamoDB/<task-id>/`, in the
    /// backup's region.
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub to: S3Url,
    /// The buckets' region (default: the AWS SDK's region).
    #[arg(long, value_name = "R")]
    pub bucket_region: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// The table to plan for.
    #[arg(long, value_name = "NAME")]
    pub table: String,
    /// The table's region (default: the AWS SDK's region).
    #[arg(long, value_name = "R")]
    pub table_region: Option<String>,
    /// The longest the backup may take: the plan is the fewest segments that make it.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = crate::plan::parse_within)]
    pub within: Duration,
    /// Plan for this many bytes instead of the table's `TableSizeBytes`.
    #[arg(long, value_name = "BYTES")]
    pub table_bytes: Option<u64>,
    /// Plan for this many items instead of the table's `ItemCount`.
    #[arg(long, value_name = "N")]
    pub items: Option<u64>,
}

/// How a restore or verify gets its segment count from its source (docs/cli.md#segments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceSegments {
    /// A Solace backup's manifest: that count, and no other.
    Recorded(u32),
    /// A DynamoDB export: any count; by default one per data file (at most 1000).
    Choice { default: u32 },
    /// A Solace v3 backup records none: the operator must name it.
    Unknown,
}

/// A DynamoDB export's data files under `prefix` (docs/export.md), each with its
/// `manifest-files.json` line when there is one; `None` when there is no export there.
async fn export_files(
    bucket: &S3Objects,
    prefix: &str,
) -> CliResult<Option<Vec<Option<solace_codec::export::ExportFile>>>> {
    use solace_codec::export::{ExportSummary, parse_manifest_files};
    let prefix = solace_codec::normalized_prefix(prefix);
    let Some(summary) = bucket
        .get(&format!("{prefix}manifest-summary.json"))
        .await
        .map_err(store_error)?
    else {
        return Ok(None);
    };
    ExportSummary::from_json(&summary)
        .map_err(|e| CliError::refused(format!("the export at {prefix:?}: {e}")))?;
    if let Some(body) = bucket
        .get(&format!("{prefix}manifest-files.json"))
        .await
        .map_err(store_error)?
    {
        let files = parse_manifest_files(&body)
            .map_err(|e| CliError::refused(format!("the export at {prefix:?}: {e}")))?;
        return Ok(Some(files.into_iter().map(Some).collect()));
    }
    let data = bucket
        .list(&format!("{prefix}data/"))
        .await
        .map_err(store_error)?;
    Ok(Some(
        data.iter()
            .filter(|k| k.ends_with(".json.gz") || k.ends_with(".json"))
            .map(|_| None)
            .collect(),
    ))
}

/// What every command gets.
#[derive(Debug)]
pub struct Ops {
    pub deploy: Deployment,
    pub json: bool,
}

fn region(given: &Option<String>, deploy: &Deployment, flag: &str) -> CliResult<String> {
    given
        .clone()
        .or_else(|| deploy.region())
        .ok_or_else(|| CliError::refused(format!("no region: pass --{flag} or set AWS_REGION")))
}

fn status_error(e: solace_functions::error::StatusError) -> CliError {
    CliError::not_found(e.to_string())
}

fn store_error(e: solace_pipeline::StoreError) -> CliError {
    CliError::not_found(e.to_string())
}

/// The request's JSON, checked by the request function's validator: a refusal is exit 2 with
/// its reason, and nothing is sent.
fn checked(body: Value) -> CliResult<(String, Request)> {
    let body = body.to_string();
    let request =
        validate(&body, LOCAL_MAX_SEGMENTS).map_err(|e| CliError::refused(e.to_string()))?;
    Ok((body, request))
}

impl Ops {
    fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        solace_pipeline::aws::s3_client(&self.deploy.sdk, region)
    }

    /// `ItemCount` and `TableSizeBytes`; exit 3 when there is no such table.
    async fn describe(&self, region: &str, name: &str) -> CliResult<(u64, u64)> {
        let t = self.describe_table(region, name).await?;
        Ok((
            t.item_count.unwrap_or(0).max(0) as u64,
            t.table_size_bytes.unwrap_or(0).max(0) as u64,
        ))
    }

    /// The table's description; exit 3 when there is no such table.
    async fn describe_table(
        &self,
        region: &str,
        name: &str,
    ) -> CliResult<aws_sdk_dynamodb::types::TableDescription> {
        let client = solace_pipeline::aws::dynamodb_client(&self.deploy.sdk, region);
        match client.describe_table().table_name(name).send().await {
            Ok(out) => Ok(out
                .table
                .unwrap_or_else(|| aws_sdk_dynamodb::types::TableDescription::builder().build())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Err(CliError::not_found(format!(
                    "table {name} not found in {region}"
                )))
            }
            Err(e) => Err(CliError::aws(
                format!("describing table {name} in {region}"),
                &e,
            )),
        }
    }

    /// `solace plan` (docs/cli.md#plan): the model of docs/one-terabyte.md for a table.
    pub async fn plan(&self, a: PlanArgs) -> CliResult<Exit> {
        let table_region = region(&a.table_region, &self.deploy, "table-region")?;
        solace_functions::request::check_table_name(&a.table)
            .map_err(|e| CliError::refused(e.to_string()))?;
        let t = self.describe_table(&table_region, &a.table).await?;
        let indexes = t.global_secondary_indexes().len() + t.local_secondary_indexes().len();
        let inputs = crate::plan::Inputs {
            table_bytes: a
                .table_bytes
                .unwrap_or_else(|| t.table_size_bytes.unwrap_or(0).max(0) as u64),
            items: a
                .items
                .unwrap_or_else(|| t.item_count.unwrap_or(0).max(0) as u64),
            indexes: u32::try_from(indexes).unwrap_or(u32::MAX),
            settings: crate::plan::Settings::DEFAULT,
        };
        let plan = inputs.plan(a.within);
        if self.json {
            out(&plan.to_json(&a.table, &table_region).to_string());
        } else {
            out_text(&plan.to_text(&a.table));
        }
        Ok(Exit::Success)
    }

    /// Exit 3 when the bucket does not exist or cannot be reached.
    async fn head_bucket(&self, region: &str, bucket: &str) -> CliResult<()> {
        match self.s3(region).head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Err(
                CliError::not_found(format!("bucket {bucket} does not exist (in {region})")),
            ),
            Err(e) => Err(CliError::aws(format!("bucket {bucket} in {region}"), &e)),
        }
    }

    pub async fn backup(&self, a: BackupArgs) -> CliResult<Exit> {
        let table_region = region(&a.table_region, &self.deploy, "table-region")?;
        let bucket_region = region(&a.bucket_region, &self.deploy, "bucket-region")?;
        let mut body = json!({
            "action": "backup",
            "total-segments": a.segments.unwrap_or(1),
            "table-region": table_region,
            "table-name": a.table,
            "bucket-region": bucket_region,
            "bucket-name": a.to.bucket,
            "bucket-prefix": a.to.prefix,
        });
        if let Some(m) = &a.retention_mode {
            body["retention-mode"] = m.clone().into();
        }
        if let Some(d) = a.retention_days {
            body["retention-days"] = d.into();
        }
        let by_export = a.method == "export";
        if by_export {
            body["method"] = "export".into();
        }
        // Syntax first: nothing is read for a request that cannot be sent.
        checked(body.clone())?;
        let (items, size) = self.describe(&table_region, &a.table).await?;
        self.head_bucket(&bucket_region, &a.to.bucket).await?;
        if a.segments.is_none() && !by_export {
            body["total-segments"] = crate::plan::automatic_segments(size, items).into();
        }
        let (body, request) = checked(body)?;
        let expected = Expected {
            items,
            bytes: size,
            estimate: true,
        };
        let options = DirectOptions {
            concurrency: a.run.concurrency,
            kms_key: a.kms_key.clone(),
        };
        self.submit(&body, &request, &a.run, &options, Some(expected))
            .await
    }

    /// What a backup says about itself: its segment count and totals, read from its
    /// manifest, completion record, or (a Solace v3 backup) its segment folders.
    async fn backup_facts(
        &self,
        region: &str,
        url: &S3Url,
    ) -> CliResult<(SourceSegments, Option<Expected>)> {
        self.head_bucket(region, &url.bucket).await?;
        let bucket = S3Objects::new(self.s3(region), &url.bucket, None);
        let completion = bucket
            .get(&solace_codec::completion_key(&url.prefix))
            .await
            .map_err(store_error)?
            .and_then(|b| Completion::from_json(&b).ok())
            .map(|c| Expected {
                items: c.items,
                bytes: c.bytes,
                estimate: false,
            });
        let manifest_key = solace_codec::manifest_key(&url.prefix);
        if let Some(body) = bucket.get(&manifest_key).await.map_err(store_error)? {
            let m = Manifest::from_json(&body).map_err(|e| {
                CliError::refused(format!(
                    "the backup's manifest {manifest_key} is unreadable: {e}"
                ))
            })?;
            if m.method.as_deref() != Some("export") {
                return Ok((SourceSegments::Recorded(m.total_segments), completion));
            }
            // A backup by export is data files: one segment per file by default.
            let record = bucket
                .get(&solace_codec::export_record_key(&url.prefix))
                .await
                .map_err(store_error)?
                .and_then(|b| solace_codec::export::ExportRecord::from_json(&b).ok());
            let files = record.map_or(1, |r| r.files.len());
            let default = u32::try_from(files.clamp(1, 1000)).unwrap_or(1000);
            return Ok((SourceSegments::Choice { default }, completion));
        }
        if let Some(files) = export_files(&bucket, &url.prefix).await? {
            // A DynamoDB export: the operator's choice, one segment per data file by default.
            let default = u32::try_from(files.len().clamp(1, 1000)).unwrap_or(1000);
            let expected = files
                .iter()
                .try_fold(0u64, |n, f| Some(n + f.as_ref()?.item_count));
            let expected = expected.map(|items| Expected {
                items,
                bytes: 0,
                estimate: false,
            });
            return Ok((SourceSegments::Choice { default }, expected));
        }
        // A Solace v3 backup records no segment count: the operator names it, and the
        // request function checks its folders against it.
        let folders = segment_folders(&bucket, &url.prefix)
            .await
            .map_err(store_error)?;
        if folders == 0 {
            return Err(CliError::not_found(format!(
                "no backup at {url}: no manifest and no segment folder"
            )));
        }
        Ok((SourceSegments::Unknown, completion))
    }

    /// The segment count of a restore or verify: the backup's own.
    fn source_segments(
        url: &S3Url,
        recorded: SourceSegments,
        given: Option<u32>,
    ) -> CliResult<u32> {
        match (recorded, given) {
            (SourceSegments::Recorded(n), None) => Ok(n),
            (SourceSegments::Recorded(n), Some(g)) if n == g => Ok(n),
            (SourceSegments::Recorded(n), Some(g)) => Err(CliError::refused(format!(
                "--segments {g}: the backup at {url} was made with {n} segments, and a restore uses the backup's own count (leave --segments out)"
            ))),
            (SourceSegments::Choice { default }, given) => Ok(given.unwrap_or(default)),
            (SourceSegments::Unknown, Some(g)) => Ok(g),
            (SourceSegments::Unknown, None) => Err(CliError::refused(format!(
                "the backup at {url} does not record its segment count (a Solace v3 backup): pass --segments with the count it was made with"
            ))),
        }
    }

    pub async fn restore(&self, a: RestoreArgs) -> CliResult<Exit> {
        let table_region = region(&a.table_region, &self.deploy, "table-region")?;
        let bucket_region = region(&a.bucket_region, &self.deploy, "bucket-region")?;
        let mut body = json!({
            "action": "restore",
            "total-segments": a.segments.unwrap_or(1),
            "table-region": table_region,
            "table-name": a.table,
            "bucket-region": bucket_region,
            "bucket-name": a.from.bucket,
            "bucket-prefix": a.from.prefix,
        });
        if a.allow_non_empty_table {
            body["allow-non-empty-table"] = true.into();
        }
        if a.allow_incomplete_backup {
            body["allow-incomplete-backup"] = true.into();
        }
        if a.create_table {
            body["create-table"] = true.into();
        }
        if let Some(mode) = &a.billing_mode {
            body["create-table-billing-mode"] = mode.as_str().into();
        }
        if let Some(n) = a.read_capacity {
            body["create-table-read-capacity"] = n.into();
        }
        if let Some(n) = a.write_capacity {
            body["create-table-write-capacity"] = n.into();
        }
        if a.skip_indexes {
            body["create-table-skip-indexes"] = true.into();
        }
        checked(body.clone())?;
        if !a.create_table {
            self.describe(&table_region, &a.table).await?;
        }
        let (recorded, expected) = self.backup_facts(&bucket_region, &a.from).await?;
        body["total-segments"] = Self::source_segments(&a.from, recorded, a.segments)?.into();
        let (body, request) = checked(body)?;
        let options = DirectOptions {
            concurrency: a.run.concurrency,
            kms_key: None,
        };
        self.submit(&body, &request, &a.run, &options, expected)
            .await
    }

    pub async fn verify(&self, a: VerifyArgs) -> CliResult<Exit> {
        let bucket_region = region(&a.bucket_region, &self.deploy, "bucket-region")?;
        let mut body = json!({
            "action": "verify",
            "total-segments": 1,
            "bucket-region": bucket_region,
            "bucket-name": a.backup.bucket,
            "bucket-prefix": a.backup.prefix,
        });
        checked(body.clone())?;
        let (recorded, expected) = self.backup_facts(&bucket_region, &a.backup).await?;
        body["total-segments"] = Self::source_segments(&a.backup, recorded, a.segments)?.into();
        let (body, request) = checked(body)?;
        let options = DirectOptions {
            concurrency: a.run.concurrency,
            kms_key: None,
        };
        self.submit(&body, &request, &a.run, &options, expected)
            .await
    }

    pub async fn convert(&self, a: ConvertArgs) -> CliResult<Exit> {
        let bucket_region = region(&a.bucket_region, &self.deploy, "bucket-region")?;
        let mut body = json!({
            "action": "convert",
            "total-segments": 1,
            "bucket-region": bucket_region,
            "bucket-name": a.backup.bucket,
            "bucket-prefix": a.backup.prefix,
            "to-bucket-name": a.to.bucket,
            "to-bucket-prefix": a.to.prefix,
        });
        checked(body.clone())?;
        let (recorded, expected) = self.backup_facts(&bucket_region, &a.backup).await?;
        let SourceSegments::Recorded(segments) = recorded else {
            return Err(CliError::refused(format!(
                "{} is not a backup Solace made with a manifest: a convert copies only those",
                a.backup
            )));
        };
        self.head_bucket(&bucket_region, &a.to.bucket).await?;
        body["total-segments"] = segments.into();
        let (body, request) = checked(body)?;
        let options = DirectOptions {
            concurrency: a.run.concurrency,
            kms_key: None,
        };
        self.submit(&body, &request, &a.run, &options, expected)
            .await
    }

    /// Sends the request (or runs it here) and, with `--wait`, watches it end.
    async fn submit(
        &self,
        body: &str,
        request: &Request,
        run: &RunArgs,
        options: &DirectOptions,
        expected: Option<Expected>,
    ) -> CliResult<Exit> {
        if run.direct {
            return self.direct(body, request, options, expected).await;
        }
        let queue = self.deploy.request_queue().await?;
        let sent = self
            .deploy
            .sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .map_err(|e| CliError::aws("sending the request", &e))?;
        let id = sent
            .message_id
            .ok_or_else(|| CliError::not_found("SendMessage returned no message id"))?;
        if !run.wait {
            if self.json {
                let mut v: Value = serde_json::from_str(body).unwrap_or_default();
                v["task-id"] = id.clone().into();
                out(&v.to_string());
            } else {
                out(&id);
            }
            return Ok(Exit::Success);
        }
        eprintln!("{} task {id} sent", request.action.as_str());
        self.watch(request.action, &id, expected).await
    }

    /// Watches a task until it is done: the display, then the summary and the exit code by
    /// the predicates. A task not yet in its status table may have been refused: its
    /// rejection item says so (docs/status.md#rejection-items).
    async fn watch(&self, action: Action, id: &str, expected: Option<Expected>) -> CliResult<Exit> {
        on_interrupt(format!(
            "interrupted: task {id} keeps running; watch it again with `solace status {id} --watch`"
        ));
        let table = self.deploy.status_table(action).to_owned();
        let status = DynamoStatus::new(self.deploy.dynamodb.clone());
        let watch = Watch::new(action.as_str(), self.json);
        watch.waiting("waiting for the request function to take it");
        let mut polls = 0u64;
        let mut unsampled = 0u32;
        loop {
            match status.read_task(&table, id).await.map_err(status_error)? {
                Some(s) => {
                    let mut view = View::of(id, s);
                    view.expected = expected;
                    let s = &view.status;
                    // A failed segment's reason is sampled onto the task item just after its
                    // count (docs/status.md#segment-errors): a few polls let it arrive.
                    let sampled = (s.errors.len() as u64) >= s.failed.min(ERROR_SAMPLE);
                    if s.is_done() && !sampled && unsampled < 25 {
                        unsampled += 1;
                    } else if s.is_done() && !self.recorded(action, id, s).await? {
                        // Counted, but the completion record is not there yet: the function
                        // that counted the last segment writes it next (or its redelivered
                        // message does), and until then the backup is not complete.
                        if polls % 150 == 0 {
                            watch.waiting(
                                "every segment counted; waiting for the completion record",
                            );
                        }
                    } else {
                        watch.update(&view);
                        if view.status.is_done() {
                            watch.finish(&view);
                            return Ok(ended(&view));
                        }
                    }
                }
                None => {
                    let rejection = status.rejection(&table, id).await.map_err(status_error)?;
                    if let Some(reason) = rejection {
                        watch.abandon();
                        return Err(CliError::refused(format!(
                            "the request function refused task {id}: {reason}"
                        )));
                    }
                    if polls == 150 {
                        watch.waiting(
                            "no status after a minute: is the request function running? (the request stays queued)",
                        );
                    }
                }
            }
            polls += 1;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    }

    /// Whether a done task's completion record is written (docs/protocol.md#completion-record):
    /// only a backup that succeeded is waited for (when the redrive function fails the last
    /// segment, no record is written), and a task whose request this code cannot read is
    /// taken as recorded rather than watched for ever.
    async fn recorded(&self, action: Action, id: &str, status: &TaskStatus) -> CliResult<bool> {
        let wanted = matches!(action, Action::Backup | Action::Convert) && status.succeeded();
        let Some(request) = status.request.as_ref().filter(|_| wanted) else {
            return Ok(true);
        };
        let (bucket, key) = match request.convert_folder(id) {
            // A convert's last object is its manifest-summary.json (docs/export.md#convert).
            Some((bucket, folder)) => (bucket, format!("{folder}manifest-summary.json")),
            None => (
                request.bucket_name.as_str(),
                solace_codec::completion_key(&request.bucket_prefix),
            ),
        };
        let head = self
            .s3(&request.bucket_region)
            .head_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await;
        match head {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(CliError::aws(format!("reading s3://{bucket}/{key}"), &e)),
        }
    }

    async fn direct(
        &self,
        body: &str,
        request: &Request,
        options: &DirectOptions,
        expected: Option<Expected>,
    ) -> CliResult<Exit> {
        let url = format!("s3://{}/{}", request.bucket_name, request.bucket_prefix);
        on_interrupt(match request.action {
            Action::Backup => format!(
                "interrupted: the direct backup stopped; {url} has no completion record, so it is not complete and a restore refuses it"
            ),
            Action::Restore => format!(
                "interrupted: the direct restore stopped; table {} holds part of {url}",
                request.table_name
            ),
            Action::Verify => format!("interrupted: the verify of {url} stopped"),
            Action::Convert => format!(
                "interrupted: the direct convert of {url} stopped; its copy has no manifests, so it is not an export"
            ),
        });
        let direct = Direct::start(&self.deploy.sdk, body, request.action, options).await?;
        eprintln!(
            "direct {} {} started",
            request.action.as_str(),
            direct.task_id
        );
        let watch = Watch::new(request.action.as_str(), self.json);
        let started = tokio::time::Instant::now();
        let view = |status: TaskStatus| {
            let snap = direct.progress.snapshot();
            View {
                task_id: direct.task_id.clone(),
                elapsed: Some(started.elapsed()),
                status,
                request: Some(request.clone()),
                direct: true,
                live: Some((snap.items, snap.bytes)),
                expected,
            }
        };
        let run = direct.run(options.concurrency);
        tokio::pin!(run);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let status = loop {
            tokio::select! {
                done = &mut run => break done?,
                _ = tick.tick() => {
                    if let Some(s) = direct.status() {
                        watch.update(&view(s));
                    }
                }
            }
        };
        let v = view(status);
        watch.finish(&v);
        if !v.status.is_done() {
            return Err(CliError::failed(format!(
                "task {} ended with {} of {} segments counted",
                v.task_id,
                v.status.completed + v.status.failed,
                v.status.total
            )));
        }
        Ok(ended(&v))
    }

    /// Finds a task in either status table.
    async fn find(&self, id: &str) -> CliResult<(Action, TaskStatus)> {
        solace_functions::status::check_task_id(id).map_err(CliError::refused)?;
        let status = DynamoStatus::new(self.deploy.dynamodb.clone());
        for (action, table) in [
            (Action::Backup, &self.deploy.backup_status_table),
            (Action::Restore, &self.deploy.restore_status_table),
        ] {
            if let Some(s) = status.read_task(table, id).await.map_err(status_error)? {
                let action = s.request.as_ref().map_or(action, |r| r.action);
                return Ok((action, s));
            }
        }
        Err(CliError::not_found(format!(
            "no task {id} in {} or {}",
            self.deploy.backup_status_table, self.deploy.restore_status_table
        )))
    }

    /// What a running task is expected to reach, for its ETA.
    async fn expected(&self, s: &TaskStatus) -> Option<Expected> {
        let r = s.request.as_ref()?;
        match r.action {
            Action::Backup => {
                let (items, bytes) = self.describe(&r.table_region, &r.table_name).await.ok()?;
                Some(Expected {
                    items,
                    bytes,
                    estimate: true,
                })
            }
            Action::Restore | Action::Verify | Action::Convert => {
                let url = S3Url {
                    bucket: r.bucket_name.clone(),
                    prefix: r.bucket_prefix.clone(),
                };
                self.backup_facts(&r.bucket_region, &url).await.ok()?.1
            }
        }
    }

    pub async fn status(&self, id: &str, watch: bool) -> CliResult<Exit> {
        let (action, s) = self.find(id).await?;
        if watch {
            let expected = if s.is_done() {
                None
            } else {
                self.expected(&s).await
            };
            return self.watch(action, id, expected).await;
        }
        let view = View::of(id, s);
        if self.json {
            out(&view.to_json().to_string());
        } else {
            out_text(&view.to_text());
        }
        Ok(Exit::Success)
    }

    pub async fn tasks(&self, running: bool, failed: bool, limit: usize) -> CliResult<Exit> {
        let mut all = Vec::new();
        for table in [
            &self.deploy.backup_status_table,
            &self.deploy.restore_status_table,
        ] {
            all.extend(self.scan_tasks(table).await?);
        }
        all.sort_by(|a, b| {
            b.status
                .created_at
                .cmp(&a.status.created_at)
                .then(a.task_id.cmp(&b.task_id))
        });
        let rows: Vec<View> = all
            .into_iter()
            .filter(|v| !running || state(&v.status) == "running")
            .filter(|v| {
                !failed || matches!(state(&v.status), "failed" | "cancelled") || v.status.failed()
            })
            .take(limit)
            .collect();
        if self.json {
            let tasks: Vec<Value> = rows.iter().map(View::to_json).collect();
            out(&json!({ "tasks": tasks }).to_string());
            return Ok(Exit::Success);
        }
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header([
            "TASK", "ACTION", "STATE", "SEGMENTS", "ITEMS", "TABLE", "BACKUP", "CREATED",
        ]);
        for v in &rows {
            let s = &v.status;
            let r = v.request.as_ref();
            table.add_row([
                v.task_id.clone(),
                r.map_or("?", |r| r.action.as_str()).to_owned(),
                state(s).to_owned(),
                format!(
                    "{}/{}{}",
                    s.completed + s.failed,
                    s.total,
                    if s.failed > 0 {
                        format!(" ({} failed)", s.failed)
                    } else {
                        String::new()
                    }
                ),
                thousands(s.items),
                r.map_or(String::new(), |r| r.table_name.clone()),
                r.map_or(String::new(), |r| {
                    format!("s3://{}/{}", r.bucket_name, r.bucket_prefix)
                }),
                s.created_at.clone().unwrap_or_default(),
            ]);
        }
        out(&table.to_string());
        Ok(Exit::Success)
    }

    /// Every task item of a status table (segment items skipped).
    async fn scan_tasks(&self, table: &str) -> CliResult<Vec<View>> {
        let mut out = Vec::new();
        let mut pages = self
            .deploy
            .dynamodb
            .scan()
            .table_name(table)
            .filter_expression("attribute_not_exists(#kind)")
            .expression_attribute_names("#kind", "kind")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| CliError::aws(format!("reading status table {table}"), &e))?;
            for item in page.items() {
                if let Some(AttributeValue::S(id)) = item.get("task-id") {
                    out.push(View::of(id, task_status(item)));
                }
            }
        }
        Ok(out)
    }

    pub async fn cancel(&self, id: &str) -> CliResult<Exit> {
        let (action, s) = self.find(id).await?;
        if let Some(at) = &s.cancelled_at {
            return Err(CliError::refused(format!(
                "task {id} was cancelled already (at {at})"
            )));
        }
        if s.is_done() {
            return Err(CliError::refused(format!(
                "task {id} has finished ({} segments completed, {} failed): there is nothing to cancel",
                s.completed, s.failed
            )));
        }
        let queue = self.deploy.request_queue().await?;
        let body = json!({"action": "cancel", "task-id": id}).to_string();
        let sent = self
            .deploy
            .sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .map_err(|e| CliError::aws("sending the cancel", &e))?;
        // The request function records it; wait a little to say so.
        let table = self.deploy.status_table(action).to_owned();
        let status = DynamoStatus::new(self.deploy.dynamodb.clone());
        let mut recorded = None;
        for _ in 0..40 {
            if let Some(s) = status.read_task(&table, id).await.map_err(status_error)? {
                if s.cancelled_at.is_some() {
                    recorded = s.cancelled_at;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let cancel_id = sent.message_id.unwrap_or_default();
        if self.json {
            out(&format!(
                "{}",
                json!({"task-id": id, "cancel-id": cancel_id, "cancelled-at": recorded})
            ));
        } else {
            match &recorded {
                Some(at) => out(&format!(
                    "task {id} cancelled at {at}: its segments stop at their next step"
                )),
                None => out(&format!(
                    "cancel of task {id} sent ({cancel_id}); not recorded yet: `solace status {id}` shows it"
                )),
            }
        }
        Ok(Exit::Success)
    }
}

/// The exit code of a finished task: 0 when it succeeded, else 1 with a line saying why.
fn ended(view: &View) -> Exit {
    let s = &view.status;
    if s.succeeded() {
        return Exit::Success;
    }
    let what = if s.cancelled_at.is_some() {
        "was cancelled"
    } else {
        "failed"
    };
    eprintln!(
        "solace: task {} {what}: {} of {} segments failed",
        view.task_id, s.failed, s.total
    );
    Exit::TaskFailed
}
