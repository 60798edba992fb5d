//! `solace`: the operator's command-line tool.

use std::io::{self, BufReader};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use solace_cli::batch as cli_batch;

#[derive(Parser)]
#[command(
    name = "solace",
    version,
    about = "Serverless DynamoDB to S3 backup and restore"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// The main job end to end: a sample table backed up through the request queue, restored
    /// into a new table and verified.
    Demo {
        /// Items in the sample table.
        #[arg(long, default_value_t = 20_000)]
        items: u64,
        /// Segments of the backup and the restore.
        #[arg(long, default_value_t = 4)]
        segments: u32,
    },
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
    let result = match cli.command {
        Command::Local {
            lambda_timeout_secs,
            concurrency,
        } => {
            solace_functions::lambda::init_logging(false);
            runtime().and_then(|rt| rt.block_on(local(lambda_timeout_secs, concurrency)))
        }
        Command::Demo { items, segments } => {
            solace_functions::lambda::init_logging(false);
            runtime().and_then(|rt| {
                rt.block_on(async {
                    let sdk =
                        aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                    solace_cli::demo::demo(&sdk, items, segments).await
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("solace: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
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
    let (config, queues) = setup(
        &sdk,
        &options,
        solace_functions::config::Config::from_env()?,
    )
    .await?;
    for (name, url) in &queues.urls {
        tracing::info!(queue = name, url = %url, "queue ready");
    }
    let services = solace_functions::context::AwsServices::new(sdk, &config);
    let ctx = solace_functions::context::Context::new(config, services);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn({
        let queues = queues.clone();
        async move { run(ctx, &queues, &options, rx).await }
    });
    tokio::signal::ctrl_c().await?;
    tracing::info!("Ctrl-C: finishing the invocations in flight");
    let _ = stop.send(true);
    runner.await?;
    Ok(())
}
