//! `solace`: the operator's command-line tool.

use std::io::{self, BufReader};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use solace_functions::cli_batch;

#[derive(Parser)]
#[command(name = "solace", version, about = "Serverless DynamoDB to S3 backup and restore")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with single batch objects.
    #[command(subcommand)]
    Batch(BatchCommand),
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
        Command::Batch(BatchCommand::Encode { level }) => {
            cli_batch::encode(BufReader::new(io::stdin().lock()), io::stdout().lock(), level)
                .map(|n| eprintln!("encoded {n} items"))
        }
        Command::Batch(BatchCommand::Decode { max_inflated }) => {
            cli_batch::decode(io::stdin().lock(), io::stdout().lock(), max_inflated)
                .map(|n| eprintln!("decoded {n} items"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("solace: {e}");
            ExitCode::FAILURE
        }
    }
}
