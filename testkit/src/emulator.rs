//! One moto server per test binary, started on demand and always stopped with it.
//!
//! # How the server is tied to the test process
//!
//! [`Emulator::start`] runs `scripts/emulator install` (fast once the pinned venv exists),
//! then spawns `scripts/emulator serve --exit-on-stdin-eof` as a child process. The script
//! `exec`s a small Python wrapper that serves moto's WSGI app as `moto_server` does, binds
//! port 0 on 127.0.0.1 (the kernel picks a free port, so parallel test binaries never race
//! for one) and prints its URL once it listens.
//!
//! The child's stdin is a pipe whose only write end this process holds (std opens pipes
//! close-on-exec, so no other child inherits it). The wrapper reads its stdin until EOF and
//! then exits. However the test process ends (tests done, a panic, `panic = "abort"`,
//! SIGKILL, a crash), the kernel closes that write end, so the server goes with it. That
//! matters because the server behind [`Emulator::shared`] lives in a `static`, whose `Drop`
//! never runs; an [`Emulator`] from [`Emulator::start`] additionally kills its server on
//! `Drop`. No `unsafe` (`prctl(PR_SET_PDEATHSIG)`), no polling of the parent's pid, and no
//! process left behind to clean up by name.
//!
//! If `SOLACE_TEST_ENDPOINT` is set (non-empty), that endpoint is used and nothing starts.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};
use std::{env, thread};

use anyhow::{Context, bail, ensure};
use aws_config::SdkConfig;

/// The environment variable naming an endpoint to use instead of starting an emulator.
pub const ENDPOINT_ENV: &str = "SOLACE_TEST_ENDPOINT";

/// How long a started server may take to listen and answer. Generous: test binaries run in
/// parallel (nextest) start their servers together on a small machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Logs older than this are removed when a server starts.
const LOG_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// A local AWS endpoint for tests: a moto server this process started, or the one named by
/// `SOLACE_TEST_ENDPOINT`.
#[derive(Debug)]
pub struct Emulator {
    endpoint: String,
    server: Option<Server>,
}

#[derive(Debug)]
struct Server {
    /// Holds the write end of the server's stdin: the server exits when it closes.
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Errors mean it is already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    /// The emulator shared by all tests of this test binary, started by the first caller.
    ///
    /// Blocks while it starts (about two seconds; a minute or two on the very first run on a
    /// machine, which installs moto).
    ///
    /// # Panics
    ///
    /// If the emulator cannot start; every caller panics with the same reason.
    pub fn shared() -> &'static Emulator {
        static SHARED: OnceLock<Result<Emulator, String>> = OnceLock::new();
        match SHARED.get_or_init(|| Emulator::start().map_err(|e| format!("{e:#}"))) {
            Ok(emulator) => emulator,
            Err(reason) => panic!("the shared AWS emulator could not start: {reason}"),
        }
    }

    /// Starts an emulator of its own, stopped when the returned value drops (or with this
    /// process, whichever comes first). Most tests want [`Emulator::shared`].
    ///
    /// # Errors
    ///
    /// If moto cannot be installed, the server exits, or it does not answer in time; the
    /// message names the log file.
    pub fn start() -> anyhow::Result<Emulator> {
        if let Some(endpoint) = env::var(ENDPOINT_ENV)
            .ok()
            .map(|e| e.trim().trim_end_matches('/').to_owned())
            .filter(|e| !e.is_empty())
        {
            return Ok(Emulator {
                endpoint,
                server: None,
            });
        }
        let (endpoint, server) = spawn_server()?;
        Ok(Emulator {
            endpoint,
            server: Some(server),
        })
    }

    /// The endpoint URL, such as `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether the endpoint came from `SOLACE_TEST_ENDPOINT` rather than a server of ours.
    pub fn is_external(&self) -> bool {
        self.server.is_none()
    }

    /// The server's log file, when this process started the server.
    pub fn log_path(&self) -> Option<&Path> {
        self.server.as_ref().map(|s| s.log.as_path())
    }

    /// [`crate::sdk_config`] for this endpoint in `region`.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        crate::sdk_config(&self.endpoint, region).await
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Where logs go: `$SOLACE_EMULATOR_DIR/test-logs`, default `<repo>/target/emulator/test-logs`,
/// as `scripts/emulator` keeps its state.
fn log_dir() -> PathBuf {
    env::var_os("SOLACE_EMULATOR_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target").join("emulator"))
        .join("test-logs")
}

fn spawn_server() -> anyhow::Result<(String, Server)> {
    static SEQ: AtomicU32 = AtomicU32::new(0);

    let script = repo_root().join("scripts").join("emulator");
    let dir = log_dir();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    prune_logs(&dir);
    let log_path = dir.join(format!(
        "moto-{}-{}.log",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let log_for = |what: &str| {
        log.try_clone()
            .with_context(|| format!("sharing the log file for {what}"))
    };

    // No deadline here: the first install on a machine downloads moto and takes a while.
    let status = Command::new("bash")
        .arg(&script)
        .arg("install")
        .stdin(Stdio::null())
        .stdout(log_for("install")?)
        .stderr(log_for("install")?)
        .status()
        .with_context(|| format!("running {} install", script.display()))?;
    ensure!(
        status.success(),
        "`scripts/emulator install` failed ({status}); see {}",
        log_path.display()
    );

    let child = Command::new("bash")
        .arg(&script)
        .args(["serve", "--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log_for("serve")?)
        .spawn()
        .with_context(|| format!("running {} serve", script.display()))?;
    // From here on, an early return drops `server`, which stops the child.
    let mut server = Server {
        child,
        log: log_path,
    };
    let stdout = server
        .child
        .stdout
        .take()
        .context("the server's stdout was not captured")?;

    let deadline = Instant::now() + READY_TIMEOUT;
    let endpoint =
        read_endpoint(stdout, READY_TIMEOUT).with_context(|| failure_note(&server.log))?;
    wait_until_answers(&endpoint, deadline).with_context(|| failure_note(&server.log))?;
    if let Some(status) = server.child.try_wait().context("checking on the server")? {
        bail!(
            "the server exited ({status}); {}",
            failure_note(&server.log)
        );
    }
    Ok((endpoint, server))
}

/// Reads the URL the server prints once it listens, giving up after `timeout`.
fn read_endpoint(stdout: impl Read + Send + 'static, timeout: Duration) -> anyhow::Result<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        // The receiver is gone if it timed out; nothing to report to then.
        let _ = tx.send(read);
    });
    let line = match rx.recv_timeout(timeout) {
        Ok(read) => read.context("reading the server's URL")?,
        Err(_) => bail!("the server printed no URL within {timeout:?}"),
    };
    let endpoint = line.trim();
    ensure!(
        endpoint.starts_with("http://"),
        "the server exited before it listened (it printed {endpoint:?})"
    );
    Ok(endpoint.to_owned())
}

/// Polls until an HTTP request to `endpoint` gets a response.
fn wait_until_answers(endpoint: &str, deadline: Instant) -> anyhow::Result<()> {
    let authority = endpoint
        .strip_prefix("http://")
        .context("the endpoint is not http://")?;
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    loop {
        let answered = (|| -> std::io::Result<bool> {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(format!("GET / HTTP/1.0\r\nHost: {authority}\r\n\r\n").as_bytes())?;
            let mut head = [0_u8; 5];
            stream.read_exact(&mut head)?;
            Ok(&head == b"HTTP/")
        })();
        if let Ok(true) = answered {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{endpoint} did not answer HTTP in time (last: {answered:?})");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn failure_note(log: &Path) -> String {
    let tail = fs::read_to_string(log)
        .map(|text| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        })
        .unwrap_or_default();
    format!(
        "the AWS emulator did not start; log {}:\n{tail}",
        log.display()
    )
}

/// Best effort: removes logs of earlier runs so the directory does not grow without bound.
fn prune_logs(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age > LOG_MAX_AGE);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}
