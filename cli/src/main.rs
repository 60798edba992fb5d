//! `solace`: the operator's command-line tool.

use std::io::{self, BufReader};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use solace_cli::batch as cli_batch;
use solace_cli::deploy::{Deployment, DeploymentArgs};
use solace_cli::error::CliError;
use solace_cli::ops::{self, Ops};
use solace_cli::url::S3Url;

#[derive(Parser)]
#[command(
    name = "solace",
    version,
    about = "Serverless DynamoDB to S3 backup and restore",
    max_term_width = 100,
    after_help = EXIT_CODES
)]
struct Cli {
    /// Print JSON on stdout: one object per listing or status, JSON lines while watching.
    #[arg(long, global = true, help_heading = "Output")]
    json: bool,
    #[command(flatten)]
    deployment: DeploymentArgs,
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "\
Exit codes:
  0    success (status: the task was found and printed; without --wait: the request was sent)
  1    the task failed or was cancelled, or verification found damage
  2    usage error, or a request refused (by this command or by the request function)
  3    not found or AWS error (unknown task, table or bucket; access denied; unreachable)
  130  interrupted (--wait/--watch: the task keeps running; --direct: the run stops)

AWS settings come from the environment as the AWS SDK reads them (AWS_PROFILE, AWS_REGION,
AWS_ENDPOINT_URL). docs/cli.md has every command's output fields.";

#[derive(Subcommand)]
enum Command {
    /// Back up a table to s3://BUCKET/PREFIX (a new prefix) and print the task id.
    #[command(after_help = EXIT_CODES)]
    Backup(ops::BackupArgs),
    /// Restore a backup into a table and print the task id.
    #[command(after_help = EXIT_CODES)]
    Restore(ops::RestoreArgs),
    /// Check every batch of a backup against its markers and checksums, writing nothing.
    #[command(after_help = EXIT_CODES)]
    Verify(ops::VerifyArgs),
    /// Write a copy of a complete backup in the DynamoDB Export layout, for ImportTable.
    #[command(after_help = EXIT_CODES)]
    Convert(ops::ConvertArgs),
    /// What a backup and a restore of a table take and cost, and the segment count to use.
    #[command(after_help = EXIT_CODES)]
    Plan(ops::PlanArgs),
    /// Show a task: state, segments, items, bytes, rate, and each failed segment's reason.
    #[command(after_help = EXIT_CODES)]
    Status {
        /// The task id `backup`, `restore` or `verify` printed.
        task_id: String,
        /// Watch it until it ends (progress on stderr) and exit by how it ended.
        #[arg(long)]
        watch: bool,
    },
    /// Recent tasks of every kind, newest first, one line each.
    #[command(after_help = EXIT_CODES)]
    Tasks {
        /// Only tasks still running.
        #[arg(long, conflicts_with = "failed")]
        running: bool,
        /// Only tasks with a failed segment (cancelled ones included).
        #[arg(long)]
        failed: bool,
        /// At most this many.
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
    },
    /// The backups under s3://BUCKET[/PREFIX]: table, time, state, segments, batches,
    /// items, stored bytes, compression ratio.
    #[command(after_help = EXIT_CODES)]
    Ls {
        #[arg(value_name = "s3://BUCKET[/PREFIX]")]
        url: S3Url,
        /// The bucket's region (default: the AWS SDK's region).
        #[arg(long, value_name = "R")]
        bucket_region: Option<String>,
    },
    /// Cancel a running task: its segments stop at their next step and count as failed.
    #[command(after_help = EXIT_CODES)]
    Cancel { task_id: String },
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
    /// Work with single batch objects.
    #[command(subcommand)]
    Batch(BatchCommand),
    /// Run the four functions from the real queues (AWS_ENDPOINT_URL, AWS_REGION and
    /// credentials as the AWS SDK reads them), creating missing queues and status tables.
    Local {
        /// The Lambda timeout each invocation gets.
        #[arg(long, default_value_t = 60)]
        lambda_timeout_secs: u64,
        /// Concurrent invocations per function.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// The main job end to end in one process (a sample table backed up through the request
    /// queue, restored into a new table and verified), or the steps `scripts/demo` runs
    /// around the operator commands.
    #[command(args_conflicts_with_subcommands = true)]
    Demo {
        #[command(subcommand)]
        step: Option<DemoStep>,
        /// Items in the sample table.
        #[arg(long, default_value_t = 20_000)]
        items: u64,
        /// Segments of the backup and the restore.
        #[arg(long, default_value_t = 4)]
        segments: u32,
    },
}

#[derive(Subcommand)]
enum DemoStep {
    /// Create a sample table of every attribute type, an empty table and a bucket.
    Prepare {
        /// Items in the sample table.
        #[arg(long, default_value_t = 2_000)]
        items: u64,
        #[arg(long, default_value = "solace-demo-source")]
        source: String,
        #[arg(long, default_value = "solace-demo-restored")]
        restored: String,
        #[arg(long, default_value = "solace-demo")]
        bucket: String,
    },
    /// Exit 0 when two tables hold the same items, 1 otherwise.
    Compare { a: String, b: String },
}

#[derive(Subcommand)]
enum BatchCommand {
    /// Read one DynamoDB-JSON item per line on stdin, write one batch (zlib JSON) to stdout.
    Encode {
        /// zlib compression level, 0 to 9.
        #[arg(long, default_value_t = 6)]
        level: u32,
    },
    /// Read one batch on stdin, write one DynamoDB-JSON item per line to stdout.
    Decode {
        /// Refuse batches that inflate to more than this many bytes.
        #[arg(long, default_value_t = solace_codec::batch::DEFAULT_MAX_INFLATED)]
        max_inflated: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let deployment = cli.deployment;
    let result = match cli.command {
        Command::Local {
            lambda_timeout_secs,
            concurrency,
        } => {
            solace_functions::lambda::init_logging(false);
            runtime().and_then(|rt| rt.block_on(local(lambda_timeout_secs, concurrency)))
        }
        Command::Demo {
            step,
            items,
            segments,
        } => {
            solace_functions::lambda::init_logging(false);
            runtime().and_then(|rt| {
                rt.block_on(async {
                    let sdk =
                        aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                    match step {
                        None => solace_cli::demo::demo(&sdk, items, segments).await,
                        Some(DemoStep::Prepare {
                            items,
                            source,
                            restored,
                            bucket,
                        }) => {
                            solace_cli::demo::prepare(&sdk, items, &source, &restored, &bucket)
                                .await
                        }
                        Some(DemoStep::Compare { a, b }) => {
                            if solace_cli::demo::compare(&sdk, &a, &b).await? {
                                Ok(())
                            } else {
                                anyhow::bail!("the tables differ")
                            }
                        }
                    }
                })
            })
        }
        Command::Batch(BatchCommand::Encode { level }) => cli_batch::encode(
            BufReader::new(io::stdin().lock()),
            io::stdout().lock(),
            level,
        )
        .map(|n| eprintln!("encoded {n} items"))
        .map_err(anyhow::Error::from),
        Command::Batch(BatchCommand::Decode { max_inflated }) => {
            cli_batch::decode(io::stdin().lock(), io::stdout().lock(), max_inflated)
                .map(|n| eprintln!("decoded {n} items"))
                .map_err(anyhow::Error::from)
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "solace", &mut script);
            solace_cli::report::out_text(&String::from_utf8_lossy(&script));
            Ok(())
        }
        operator => return operate(operator, deployment, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("solace: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The operator's commands: their exit codes are the documented ones.
fn operate(command: Command, deployment: DeploymentArgs, json: bool) -> ExitCode {
    solace_cli::logging();
    let outcome = runtime().map_err(CliError::from).and_then(|rt| {
        rt.block_on(async move {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let ops = Ops {
                deploy: Deployment::new(sdk, deployment),
                json,
            };
            let run = async {
                match command {
                    Command::Backup(a) => ops.backup(a).await,
                    Command::Restore(a) => ops.restore(a).await,
                    Command::Verify(a) => ops.verify(a).await,
                    Command::Convert(a) => ops.convert(a).await,
                    Command::Plan(a) => ops.plan(a).await,
                    Command::Status { task_id, watch } => ops.status(&task_id, watch).await,
                    Command::Tasks {
                        running,
                        failed,
                        limit,
                    } => ops.tasks(running, failed, limit).await,
                    Command::Ls { url, bucket_region } => ops.ls(&url, bucket_region).await,
                    Command::Cancel { task_id } => ops.cancel(&task_id).await,
                    _ => Err(CliError::refused("not an operator command")),
                }
            };
            tokio::select! {
                r = run => r,
                _ = tokio::signal::ctrl_c() => Err(CliError::interrupted(ops::interrupt_message())),
            }
        })
    });
    match outcome {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(e) => {
            eprintln!("solace: {e}");
            ExitCode::from(e.exit as u8)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The least work a simulated invocation must have time for after the deadline margin.
const MIN_WORK: std::time::Duration = std::time::Duration::from_secs(5);

/// `--lambda-timeout-secs` must leave time to work once the deadline margin is kept, or every
/// segment message goes back unrun until it is dead-lettered.
fn check_lambda_timeout(
    timeout: std::time::Duration,
    margin: std::time::Duration,
) -> anyhow::Result<()> {
    if timeout < margin + MIN_WORK {
        anyhow::bail!(
            "--lambda-timeout-secs {} leaves no time to work: segments stop SOLACE_DEADLINE_MARGIN_MS ({} ms) before the timeout, and need {} s more; raise the timeout to at least {} s or lower the margin",
            timeout.as_secs(),
            margin.as_millis(),
            MIN_WORK.as_secs(),
            (margin + MIN_WORK).as_secs_f64().ceil()
        );
    }
    Ok(())
}

async fn local(lambda_timeout_secs: u64, concurrency: usize) -> anyhow::Result<()> {
    use solace_cli::local::{LocalOptions, run, setup};
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let timeout = std::time::Duration::from_secs(lambda_timeout_secs.max(1));
    let options = LocalOptions {
        lambda_timeout: timeout,
        visibility_timeout: timeout * 6 / 4,
        concurrency,
        ..LocalOptions::default()
    };
    let config = solace_functions::config::Config::from_env()?;
    check_lambda_timeout(timeout, config.deadline_margin)?;
    let (config, queues) = setup(&sdk, &options, config).await?;
    for (name, url) in &queues.urls {
        tracing::info!(queue = name, url = %url, "queue ready");
    }
    let tables = format!(
        "{} and {}",
        config.backup_status_table, config.restore_status_table
    );
    let services = solace_functions::context::AwsServices::new(sdk, &config);
    let ctx = solace_functions::context::Context::new(config, services);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let runner = tokio::spawn({
        let queues = queues.clone();
        async move { run(ctx, &queues, &options, rx).await }
    });
    // Scripts wait for this line before they send requests.
    solace_cli::report::out(&format!(
        "solace local: ready ({} queues, status tables {tables}); Ctrl-C or SIGTERM stops it",
        queues.urls.len()
    ));
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping: finishing the invocations in flight");
    let _ = stop.send(true);
    runner.await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_lambda_timeout_within_the_deadline_margin_is_refused() {
        let margin = Duration::from_secs(30);
        let err = super::check_lambda_timeout(Duration::from_secs(20), margin)
            .expect_err("20 s with a 30 s margin");
        let text = err.to_string();
        assert!(
            text.contains("--lambda-timeout-secs 20") && text.contains("at least 35 s"),
            "{text}"
        );
        assert!(super::check_lambda_timeout(Duration::from_secs(35), margin).is_ok());
        assert!(super::check_lambda_timeout(Duration::from_secs(60), margin).is_ok());
    }
}
