//! Cold start of the Lambda function binaries: the time from spawning a `bootstrap` to the
//! first event handled, against a local stand-in for the Lambda Runtime API.
//!
//! Each run starts a fresh process (nothing cached in it), points it at a Runtime API on
//! 127.0.0.1 that hands out one SQS event with no records, and stops the clock when the
//! process posts that invocation's response. What it measures is everything a cold start
//! runs before a handler can work: the dynamic loader, logging, configuration, the AWS SDK
//! configuration and clients (built once per process, before the first event) and the
//! runtime's first poll. It does not include Lambda's own sandbox start or the download of
//! the zip, which no local measurement can show.
//!
//! Runs of the binaries given are interleaved (a, b, c, a, b, c, ...) so that a noisy
//! machine slows them alike, and the ratio between two builds of one function is fair.
//!
//! ```text
//! cargo run --release --locked -p solace-benches --bin cold-start -- \
//!     [--runs N] LABEL=PATH [LABEL=PATH ...]
//! ```
//!
//! LABEL names the row (e.g. `backup/lambda`); PATH is a `bootstrap` binary, e.g.
//! `target/lambda/solace-backup/bootstrap` after `scripts/package-lambdas`.
//!
//! The Runtime API is served with hyper (the workspace's HTTP server, as in the testkit's
//! fault proxy); the binaries get fake credentials and unreachable queue URLs, so no AWS call
//! can succeed, and a handler given no records makes none.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// What the stand-in Runtime API saw of one process.
#[derive(Debug, Default)]
struct Seen {
    /// How many times the process asked for the next event.
    polls: u32,
    /// When the first invocation's response arrived.
    answered: Option<Instant>,
    /// The first error the process reported (init error or invocation error), if any.
    error: Option<String>,
}

#[derive(Debug)]
struct RuntimeApi {
    seen: Mutex<Seen>,
    done: Notify,
}

const REQUEST_ID: &str = "00000000-0000-4000-8000-000000000001";
const EVENT: &str = r#"{"Records":[]}"#;

impl RuntimeApi {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn serve(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        if method == Method::GET && path == "/2018-06-01/runtime/invocation/next" {
            let first = {
                let mut seen = self.seen();
                seen.polls += 1;
                seen.polls == 1
            };
            if !first {
                // The process is done with its one event; hold its next poll open until it is
                // stopped, as Lambda does while no event is waiting.
                std::future::pending::<()>().await;
            }
            let deadline_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() + 900_000)
                .unwrap_or(0);
            return Response::builder()
                .status(StatusCode::OK)
                .header("lambda-runtime-aws-request-id", REQUEST_ID)
                .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
                .header(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:000000000000:function:solace-cold-start",
                )
                .header(
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000",
                )
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(EVENT.as_bytes())))
                .unwrap_or_default();
        }
        let response = format!("/2018-06-01/runtime/invocation/{REQUEST_ID}/response");
        if method == Method::POST && path == response {
            let mut seen = self.seen();
            seen.answered.get_or_insert_with(Instant::now);
            drop(seen);
            self.done.notify_one();
        } else if method == Method::POST {
            // `/runtime/init/error` or `/runtime/invocation/<id>/error`.
            let mut seen = self.seen();
            seen.error.get_or_insert(path);
            drop(seen);
            self.done.notify_one();
        }
        Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(Full::new(Bytes::new()))
            .unwrap_or_default()
    }
}

/// Starts the stand-in Runtime API on a port of 127.0.0.1 chosen now.
async fn start_api() -> std::io::Result<(Arc<RuntimeApi>, SocketAddr, tokio::task::JoinHandle<()>)>
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let api = Arc::new(RuntimeApi {
        seen: Mutex::new(Seen::default()),
        done: Notify::new(),
    });
    let serving = api.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let api = serving.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(api.serve(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((api, addr, task))
}

/// One cold start of `binary`: the time from spawn to its first event's response.
async fn cold_start(label: &str, binary: &PathBuf) -> Result<Duration, String> {
    let (api, addr, server) = start_api()
        .await
        .map_err(|e| format!("cannot start the Runtime API: {e}"))?;
    let function = format!("solace-{}", label.split('/').next().unwrap_or(label));
    let queue = "http://127.0.0.1:9/000000000000/solace-cold-start";
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", &function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "cold-start")
        .env("AWS_SECRET_ACCESS_KEY", "cold-start")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("SOLACE_REQUEST_QUEUE_URL", queue)
        .env("SOLACE_BACKUP_QUEUE_URL", queue)
        .env("SOLACE_RESTORE_QUEUE_URL", queue)
        .env("SOLACE_REJECTED_QUEUE_URL", queue)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let outcome = tokio::select! {
        () = api.done.notified() => Ok(()),
        status = child.wait() => Err(format!("{label} exited before answering: {status:?}")),
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            Err(format!("{label} did not answer within 30 s"))
        }
    };
    let _ = child.kill().await;
    server.abort();
    outcome?;
    let seen = api.seen();
    if let Some(error) = &seen.error {
        return Err(format!("{label} reported an error at {error}"));
    }
    seen.answered
        .map(|at| at - started)
        .ok_or_else(|| format!("{label} answered nothing"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn usage() -> ! {
    eprintln!("usage: cold-start [--runs N] LABEL=PATH [LABEL=PATH ...]");
    std::process::exit(2)
}

fn main() {
    let mut runs = 30usize;
    let mut binaries: Vec<(String, PathBuf)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--runs" {
            runs = match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => n,
                _ => usage(),
            };
        } else if let Some((label, path)) = arg.split_once('=') {
            let path = PathBuf::from(path);
            if !path.is_file() {
                eprintln!("cold-start: {label}: no file at {}", path.display());
                std::process::exit(2);
            }
            binaries.push((label.to_owned(), path));
        } else {
            usage();
        }
    }
    if binaries.is_empty() {
        usage();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cold-start: cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    let mut times: BTreeMap<usize, Vec<Duration>> = BTreeMap::new();
    let result = runtime.block_on(async {
        // One start of each, not counted: the first start of a binary also reads it from disk.
        for (label, path) in &binaries {
            cold_start(label, path).await?;
        }
        for _ in 0..runs {
            for (i, (label, path)) in binaries.iter().enumerate() {
                times
                    .entry(i)
                    .or_default()
                    .push(cold_start(label, path).await?);
            }
        }
        Ok::<_, String>(())
    });
    if let Err(e) = result {
        eprintln!("cold-start: {e}");
        std::process::exit(1);
    }
    println!("| binary | size (bytes) | runs | median | p90 | min |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (i, (label, path)) in binaries.iter().enumerate() {
        let mut t = times.remove(&i).unwrap_or_default();
        t.sort();
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        println!(
            "| {label} | {size} | {} | {} | {} | {} |",
            t.len(),
            ms(percentile(&t, 0.5)),
            ms(percentile(&t, 0.9)),
            ms(t[0]),
        );
    }
}
