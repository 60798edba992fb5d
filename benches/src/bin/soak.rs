//! The soak: `solace local` (the four functions, in this process) for a long time against the
//! emulator, every AWS call through the fault proxy, with requests arriving continuously:
//! backups, restores of finished backups into new tables, verifies, and bad requests. Every
//! minute it prints tasks completed, items, invocations, faults injected and the process's
//! RSS; at the end the peak and final RSS, and whether anything was lost (a task that did not
//! succeed exactly, a restored table unequal to its source, a bad request that made a task).
//! Exits 1 if anything was.
//!
//! ```sh
//! cargo run --release --locked -p solace-benches --bin soak -- [MINUTES] [FAULT_RATE]
//! ```
//!
//! Defaults: 30 minutes, 2% of calls faulted. Not part of the test suite.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aws_config::SdkConfig;
use solace_cli::demo::{Running, contents, create_table, fill, request};
use solace_cli::local::{LocalOptions, REQUEST_QUEUE};
use solace_functions::config::Config;
use solace_functions::status::{DynamoStatus, StatusStore, TaskStatus};
use solace_testkit::faults::{FaultProxy, Plan};
use solace_testkit::{Emulator, create_bucket, s3_client, sqs_client, unique_name};

/// A table's items by key, as `contents` reads them.
type Contents = std::collections::BTreeMap<String, solace_codec::Item>;

const REGION: &str = "us-east-1";
const SEGMENTS: u32 = 3;
/// A new request this often.
const INTERVAL: Duration = Duration::from_secs(4);

/// What a request was, to check its task against.
#[derive(Debug, Clone)]
enum Sent {
    Backup { source: usize, prefix: String },
    Restore { source: usize, target: String },
    Verify { source: usize },
    Bad,
}

struct Pending {
    id: String,
    sent: Sent,
    at: Instant,
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let minutes: u64 = args
        .next()
        .map_or(Ok(30), |a| a.parse())
        .context("MINUTES")?;
    let rate: f64 = args
        .next()
        .map_or(Ok(0.02), |a| a.parse())
        .context("FAULT_RATE")?;
    let emulator = Emulator::start()?;
    let direct = emulator.sdk_config(REGION).await;
    let proxy = FaultProxy::start(
        emulator.endpoint(),
        Plan::uniform(0x50a4, rate, Duration::from_secs(4)),
    )
    .await?;
    let through_proxy = proxy.sdk_config(REGION, Duration::from_secs(2)).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&direct);
    let sizes = [150u64, 300, 450];
    let mut sources = Vec::new();
    for n in sizes {
        let name = unique_name("soak-src");
        create_table(&dynamodb, &name).await?;
        fill(&dynamodb, &name, n).await?;
        sources.push((name.clone(), contents(&dynamodb, &name).await?));
    }
    let bucket = unique_name("soak-bkt");
    create_bucket(&s3_client(&direct), &bucket).await?;
    let config = Config {
        backup_status_table: "soak-backup-table".into(),
        restore_status_table: "soak-restore-table".into(),
        batch_bytes: 64 << 10,
        deadline_margin: Duration::from_secs(8),
        ..Config::from_lookup(|_| None)?
    };
    let options = LocalOptions {
        lambda_timeout: Duration::from_secs(20),
        visibility_timeout: Duration::from_secs(30),
        max_receive_count: 6,
        concurrency: 2,
        // Under the 2 s read timeout the proxy's clients have (its delays are 4 s).
        wait: Duration::from_secs(1),
        queue_prefix: "soak-".into(),
        stats: Arc::default(),
        ..LocalOptions::default()
    };
    let stats = options.stats.clone();
    let local = Running::start(&through_proxy, options, config).await?;
    proxy.set_active(true);
    let sqs = sqs_client(&direct);
    let status = DynamoStatus::new(dynamodb.clone());
    let queue = local.queues.url(REQUEST_QUEUE).to_owned();

    let start = Instant::now();
    let end = start + Duration::from_secs(minutes * 60);
    let mut pending: VecDeque<Pending> = VecDeque::new();
    // Backups that finished, by source: what restores and verifies read.
    let mut finished: Vec<Option<String>> = vec![None; sources.len()];
    let (mut done, mut items, mut lost, mut turn) = (0u64, 0u64, Vec::<String>::new(), 0usize);
    let mut rss = Vec::new();
    let mut next_request = Instant::now();
    let mut next_sample = Instant::now();
    println!("minute  tasks  items  invocations  faults  rss MiB");
    loop {
        let now = Instant::now();
        if now >= next_sample {
            let minute = now.duration_since(start).as_secs() / 60;
            let invocations = stats.total_invocations();
            let kib = rss_kib("VmRSS:");
            rss.push(kib);
            println!(
                "{minute:>6} {done:>6} {items:>6} {invocations:>12} {:>7} {:>8.1}",
                proxy.injected().len(),
                kib as f64 / 1024.0
            );
            next_sample += Duration::from_secs(60);
        }
        if now < end && now >= next_request {
            next_request += INTERVAL;
            let source = turn % sources.len();
            let kind = turn % 4;
            turn += 1;
            let (body, sent) = match (kind, &finished[source]) {
                (1, Some(prefix)) => {
                    let target = unique_name("soak-dst");
                    create_table(&dynamodb, &target).await?;
                    (
                        request("restore", SEGMENTS, &target, &bucket, prefix, REGION),
                        Sent::Restore { source, target },
                    )
                }
                (2, Some(prefix)) => {
                    let mut body = request("verify", SEGMENTS, "", &bucket, prefix, REGION);
                    if let Some(o) = body.as_object_mut() {
                        o.remove("table-name");
                        o.remove("table-region");
                    }
                    (body, Sent::Verify { source })
                }
                (3, _) => (
                    serde_json::json!({"action": "backup", "total-segments": -1, "table-name": ".."}),
                    Sent::Bad,
                ),
                _ => {
                    let prefix = format!("soak/{turn}/");
                    (
                        request(
                            "backup",
                            SEGMENTS,
                            &sources[source].0,
                            &bucket,
                            &prefix,
                            REGION,
                        ),
                        Sent::Backup { source, prefix },
                    )
                }
            };
            let id = sqs
                .send_message()
                .queue_url(&queue)
                .message_body(body.to_string())
                .send()
                .await?
                .message_id
                .context("no message id")?;
            pending.push_back(Pending {
                id,
                sent,
                at: Instant::now(),
            });
        }
        // Check what is pending, oldest first.
        let mut still = VecDeque::new();
        while let Some(p) = pending.pop_front() {
            match check(&local, &status, &direct, &bucket, &sources, &p).await? {
                Check::Waiting if p.at.elapsed() > Duration::from_secs(900) => {
                    lost.push(format!("{:?} {} never finished", p.sent, p.id));
                }
                Check::Waiting => still.push_back(p),
                Check::Done(n) => {
                    done += 1;
                    items += n;
                    if let Sent::Backup { source, prefix } = &p.sent {
                        finished[*source] = Some(prefix.clone());
                    }
                    if let Sent::Restore { target, .. } = &p.sent {
                        let _ = dynamodb.delete_table().table_name(target).send().await;
                    }
                }
                Check::Lost(why) => lost.push(format!("{:?} {}: {why}", p.sent, p.id)),
            }
        }
        pending = still;
        if now >= end && pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    proxy.set_active(false);
    local.stop().await;
    let peak = rss_kib("VmHWM:");
    let last = rss.last().copied().unwrap_or(0);
    println!("{}", proxy.report());
    println!(
        "tasks {done}, items {items}, faults {}; RSS: first {:.1} MiB, final {:.1} MiB, peak {:.1} MiB",
        proxy.injected().len(),
        rss.first().copied().unwrap_or(0) as f64 / 1024.0,
        last as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    if !lost.is_empty() {
        bail!("lost: {lost:#?}");
    }
    println!("nothing lost");
    Ok(())
}

enum Check {
    Waiting,
    /// Finished as it should, with this many items.
    Done(u64),
    Lost(String),
}

async fn check(
    local: &Running,
    status: &DynamoStatus,
    direct: &SdkConfig,
    bucket: &str,
    sources: &[(String, Contents)],
    p: &Pending,
) -> anyhow::Result<Check> {
    let config = &local.ctx.config;
    let table = match p.sent {
        Sent::Backup { .. } | Sent::Bad => &config.backup_status_table,
        Sent::Restore { .. } | Sent::Verify { .. } => &config.restore_status_table,
    };
    let read = status.read_task(table, &p.id).await?;
    if let Sent::Bad = p.sent {
        // Rejected: no task, ever. Given 30 s to make one if it were going to.
        return Ok(match read {
            Some(s) => Check::Lost(format!("a bad request made a task: {s:?}")),
            None if p.at.elapsed() > Duration::from_secs(30) => Check::Done(0),
            None => Check::Waiting,
        });
    }
    let Some(s) = read.filter(TaskStatus::is_done) else {
        return Ok(Check::Waiting);
    };
    let source = match &p.sent {
        Sent::Backup { source, .. } | Sent::Restore { source, .. } | Sent::Verify { source } => {
            *source
        }
        Sent::Bad => 0,
    };
    let expected = sources[source].1.len() as u64;
    if !(s.succeeded() && s.failed == 0 && s.items == expected) {
        return Ok(Check::Lost(format!("not exact: {s:?}")));
    }
    match &p.sent {
        Sent::Backup { prefix, .. } => {
            // Finished means recorded: a restore refuses a backup without its record.
            let key = solace_codec::completion_key(prefix);
            let head = s3_client(direct)
                .head_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await;
            if head.is_err() {
                return Ok(Check::Waiting);
            }
        }
        Sent::Restore { target, .. } => {
            let dynamodb = aws_sdk_dynamodb::Client::new(direct);
            if contents(&dynamodb, target).await? != sources[source].1 {
                return Ok(Check::Lost(format!("{target} differs from its source")));
            }
        }
        Sent::Verify { .. } | Sent::Bad => {}
    }
    Ok(Check::Done(expected))
}
