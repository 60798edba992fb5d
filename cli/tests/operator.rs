//! The operator's commands through the real `solace` binary, on the emulator, against a
//! `solace local` running in this test process (docs/cli.md). Each test has its own
//! deployment: queues and status tables under its own `--stack` prefix.

use std::collections::HashMap;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use solace_cli::demo::{Running, contents, create_table, fill};
use solace_cli::local::LocalOptions;
use solace_functions::allow::{BucketRule, TableRule};
use solace_functions::config::Config;
use solace_functions::context::Services;
use solace_functions::status::StatusStore;
use solace_testkit::{Emulator, create_bucket, s3_client, unique_name};

const REGION: &str = "us-east-1";
const BIN: &str = env!("CARGO_BIN_EXE_solace");

/// A deployment of its own, its functions running here, and a sample table and bucket.
struct Deployment {
    stack: String,
    local: Running,
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    source: String,
    bucket: String,
}

async fn deployment(items: u64, read_capacity: Option<f64>) -> Deployment {
    let sdk = Emulator::shared().sdk_config(REGION).await;
    let tag = unique_name("op");
    let stack = format!("{tag}-");
    let config = Config {
        backup_status_table: format!("{stack}backup-table"),
        restore_status_table: format!("{stack}restore-table"),
        read_capacity_limit: read_capacity,
        allowed_tables: Some(vec![TableRule {
            region: REGION.into(),
            name: "*".into(),
        }]),
        allowed_buckets: Some(vec![BucketRule {
            name: "*".into(),
            prefix: String::new(),
        }]),
        batch_bytes: 64 << 10,
        scan_page_limit: Some(25),
        ..Config::from_lookup(|_| None).expect("the defaults")
    };
    let options = LocalOptions {
        queue_prefix: stack.clone(),
        concurrency: 2,
        wait: Duration::from_millis(500),
        stats: Arc::default(),
        ..LocalOptions::default()
    };
    let local = Running::start(&sdk, options, config)
        .await
        .expect("solace local starts");
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let source = unique_name("src");
    create_table(&dynamodb, &source).await.expect("table");
    fill(&dynamodb, &source, items).await.expect("filled");
    let bucket = unique_name("bkt");
    let s3 = s3_client(&sdk);
    create_bucket(&s3, &bucket).await.expect("bucket");
    Deployment {
        stack,
        local,
        dynamodb,
        s3,
        source,
        bucket,
    }
}

/// What a run of the binary did.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// The last JSON line on stdout (a summary, or the one object a command prints).
    fn json(&self) -> Value {
        let line = self.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// `solace <args>` against `stack`'s deployment on the emulator, nothing else of this
/// environment's AWS settings.
fn command(stack: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .env("AWS_ENDPOINT_URL", Emulator::shared().endpoint())
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("SOLACE_STACK", stack)
        .env_remove("RUST_LOG");
    for var in [
        "SOLACE_REQUEST_QUEUE_URL",
        "SOLACE_REJECTED_QUEUE_URL",
        "SOLACE_BACKUP_STATUS_TABLE",
        "SOLACE_RESTORE_STATUS_TABLE",
        "AWS_PROFILE",
    ] {
        command.env_remove(var);
    }
    command
}

/// Runs `solace <args>` (split at spaces) against `stack`'s deployment on the emulator.
async fn solace(stack: &str, args: &str) -> Ran {
    let args: Vec<&str> = args.split_whitespace().collect();
    let mut command = command(stack, &args);
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .expect("solace ends within 5 minutes")
        .expect("solace runs");
    Ran {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The command failed with `code` and one line on stderr that says `says`, no panic.
fn refused(ran: &Ran, code: i32, says: &str) {
    assert_eq!(ran.code, code, "{ran:?}");
    assert!(ran.stderr.contains(says), "{says:?} not in {ran:?}");
    assert!(
        !ran.stderr.contains("panicked") && !ran.stderr.contains("backtrace"),
        "{ran:?}"
    );
    let lines: Vec<_> = ran
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        lines
            .iter()
            .filter(|l| l.starts_with("solace: ") || l.starts_with("error: "))
            .count()
            == 1,
        "one reason line: {ran:?}"
    );
}

/// Until the request function has taken backup task `id`.
async fn wait_for_task(d: &Deployment, id: &str) {
    let table = &d.local.ctx.config.backup_status_table;
    for _ in 0..300 {
        let status = d.local.ctx.services.status();
        if status.read_task(table, id).await.expect("read").is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("task {id} was never recorded");
}

async fn new_table(d: &Deployment) -> String {
    let name = unique_name("dst");
    create_table(&d.dynamodb, &name).await.expect("table");
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_ls_verify_restore_then_status_and_tasks_agree_with_the_status_tables() {
    let d = deployment(120, None).await;
    let url = format!("s3://{}/nightly/", d.bucket);
    let backup = solace(
        &d.stack,
        &format!(
            "backup --table {} --to {} --segments 3 --wait --json",
            d.source, url
        ),
    )
    .await;
    assert_eq!(backup.code, 0, "{backup:?}");
    let summary = backup.json();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["state"], "succeeded");
    assert_eq!(summary["items"], 120);
    let backup_id = summary["task-id"].as_str().expect("a task id").to_owned();
    for line in backup.stdout.lines() {
        let v: Value = serde_json::from_str(line).expect("JSON lines");
        assert_eq!(
            v["task-id"],
            backup_id.as_str(),
            "every line names the task"
        );
        assert!(v["type"] == "status" || v["type"] == "summary", "{v}");
    }

    let ls = solace(&d.stack, &format!("ls s3://{} --json", d.bucket)).await;
    assert_eq!(ls.code, 0, "{ls:?}");
    let listing = ls.json();
    let rows = listing["backups"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{listing}");
    let row = &rows[0];
    assert_eq!(row["prefix"], "nightly/");
    assert_eq!(row["state"], "complete");
    assert_eq!(row["table-name"], d.source.as_str());
    assert_eq!(row["total-segments"], 3);
    assert_eq!(row["complete-segments"], 3);
    assert_eq!(row["items"], 120);
    assert_eq!(row["task-id"], backup_id.as_str());
    assert!(row["batches"].as_u64().is_some_and(|b| b >= 3), "{row}");
    assert!(
        row["compression-ratio"].as_f64().is_some_and(|r| r > 1.0),
        "{row}"
    );
    let text = solace(&d.stack, &format!("ls s3://{}", d.bucket)).await;
    assert!(
        text.code == 0 && text.stdout.contains("nightly/") && text.stdout.contains("complete"),
        "{text:?}"
    );

    let verify = solace(&d.stack, &format!("verify {} --wait", url)).await;
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(verify.stdout.contains("succeeded"), "{verify:?}");

    let target = new_table(&d).await;
    let restore = solace(
        &d.stack,
        &format!("restore --from {} --table {} --wait --json", url, target),
    )
    .await;
    assert_eq!(restore.code, 0, "{restore:?}");
    assert_eq!(
        restore.json()["total-segments"],
        3,
        "the backup's own count"
    );
    let restore_id = restore.json()["task-id"].as_str().expect("id").to_owned();
    assert_eq!(
        contents(&d.dynamodb, &d.source).await.expect("source"),
        contents(&d.dynamodb, &target).await.expect("restored"),
        "the restored table equals the source"
    );

    // status and tasks say what the status tables hold.
    let status = d.local.ctx.services.status();
    let cfg = &d.local.ctx.config;
    let tasks = solace(&d.stack, "tasks --json").await;
    assert_eq!(tasks.code, 0, "{tasks:?}");
    let listed: HashMap<String, Value> = tasks.json()["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            (
                t["task-id"].as_str().unwrap_or_default().to_owned(),
                t.clone(),
            )
        })
        .collect();
    assert_eq!(listed.len(), 3, "backup, verify, restore: {listed:?}");
    for (id, table) in [
        (&backup_id, &cfg.backup_status_table),
        (&restore_id, &cfg.restore_status_table),
    ] {
        let recorded = status
            .read_task(table, id)
            .await
            .expect("read")
            .expect("task");
        let shown = solace(&d.stack, &format!("status {} --json", id)).await;
        assert_eq!(shown.code, 0, "{shown:?}");
        for v in [shown.json(), listed[id.as_str()].clone()] {
            assert_eq!(v["completed-segments"], recorded.completed);
            assert_eq!(v["failed-segments"], recorded.failed);
            assert_eq!(v["total-segments"], recorded.total);
            assert_eq!(v["items"], recorded.items);
            assert_eq!(v["bytes"], recorded.bytes);
            assert_eq!(v["state"], "succeeded");
            assert_eq!(
                v["created-at"],
                recorded.created_at.clone().expect("created")
            );
        }
    }
    let newest = tasks.json()["tasks"][0]["task-id"].clone();
    assert_eq!(newest, restore_id.as_str(), "newest first");
    let running = solace(&d.stack, "tasks --running --json").await;
    assert_eq!(
        running.json()["tasks"],
        serde_json::json!([]),
        "{running:?}"
    );

    // A backup whose segments are all counted is not over until its completion record is
    // written (the function that counted the last one writes it next): watching it waits.
    let record = solace_codec::completion_key("nightly/");
    let kept =
        d.s3.get_object()
            .bucket(&d.bucket)
            .key(&record)
            .send()
            .await
            .expect("the completion record")
            .body
            .collect()
            .await
            .expect("read")
            .into_bytes();
    d.s3.delete_object()
        .bucket(&d.bucket)
        .key(&record)
        .send()
        .await
        .expect("deleted");
    let mut watching = command(&d.stack, &["status", &backup_id, "--watch", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("solace starts");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        watching.try_wait().expect("polled").is_none(),
        "the watch ended before the completion record was there"
    );
    d.s3.put_object()
        .bucket(&d.bucket)
        .key(&record)
        .body(kept.into())
        .send()
        .await
        .expect("restored");
    let ended = tokio::time::timeout(Duration::from_secs(30), watching.wait_with_output())
        .await
        .expect("the watch ends once the record is there")
        .expect("waited");
    assert_eq!(ended.status.code(), Some(0), "{ended:?}");
    let last: Value = serde_json::from_str(
        String::from_utf8_lossy(&ended.stdout)
            .lines()
            .last()
            .unwrap_or_default(),
    )
    .expect("a summary line");
    assert_eq!(last["state"], "succeeded", "{last}");
    d.local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_exits_1_on_a_damaged_batch_and_names_it() {
    let d = deployment(60, None).await;
    let url = format!("s3://{}/b/", d.bucket);
    let backup = solace(
        &d.stack,
        &format!(
            "backup --table {} --to {} --segments 2 --direct",
            d.source, url
        ),
    )
    .await;
    assert_eq!(backup.code, 0, "{backup:?}");
    let key = solace_codec::batch_key("b/", solace_codec::SegmentId(1), solace_codec::BatchId(0));
    d.s3.put_object()
        .bucket(&d.bucket)
        .key(&key)
        .body(b"not a zlib stream".to_vec().into())
        .send()
        .await
        .expect("damaged");
    let verify = solace(&d.stack, &format!("verify {} --wait", url)).await;
    assert_eq!(verify.code, 1, "{verify:?}");
    assert!(verify.stdout.contains("failed"), "{verify:?}");
    assert!(
        verify.stdout.contains("0x1") && verify.stdout.contains(&key),
        "names the batch: {verify:?}"
    );
    let direct = solace(&d.stack, &format!("verify {} --direct", url)).await;
    assert_eq!(direct.code, 1, "{direct:?}");
    assert!(direct.stdout.contains(&key), "{direct:?}");
    d.local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_a_running_backup_exits_0_and_the_task_ends_cancelled() {
    // 5 read units a second: the backup takes far longer than the cancel.
    let d = deployment(200, Some(5.0)).await;
    let url = format!("s3://{}/c/", d.bucket);
    let sent = solace(
        &d.stack,
        &format!("backup --table {} --to {} --segments 2", d.source, url),
    )
    .await;
    assert_eq!(sent.code, 0, "{sent:?}");
    let id = sent.stdout.trim().to_owned();
    wait_for_task(&d, &id).await;
    let cancel = solace(&d.stack, &format!("cancel {}", id)).await;
    assert_eq!(cancel.code, 0, "{cancel:?}");
    let watched = solace(&d.stack, &format!("status {} --watch --json", id)).await;
    assert_eq!(watched.code, 1, "a cancelled task exits 1: {watched:?}");
    let summary = watched.json();
    assert_eq!(summary["state"], "cancelled", "{summary}");
    assert!(
        summary["failed-segments"].as_u64().is_some_and(|f| f >= 1),
        "{summary}"
    );
    let again = solace(&d.stack, &format!("cancel {}", id)).await;
    refused(&again, 2, "cancelled already");
    let ls = solace(&d.stack, &format!("ls {} --json", url)).await;
    assert_eq!(ls.json()["backups"][0]["state"], "incomplete", "{ls:?}");
    d.local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_backup_restores_through_the_functions_and_the_other_way_round() {
    let d = deployment(80, None).await;
    let direct_url = format!("s3://{}/direct/", d.bucket);
    let functions_url = format!("s3://{}/functions/", d.bucket);
    let source = contents(&d.dynamodb, &d.source).await.expect("source");
    let a = solace(
        &d.stack,
        &format!(
            "backup --table {} --to {} --direct --concurrency 2 --segments 3 --json",
            d.source, direct_url
        ),
    )
    .await;
    assert_eq!(a.code, 0, "{a:?}");
    assert_eq!(a.json()["direct"], true);
    let b = solace(
        &d.stack,
        &format!(
            "backup --table {} --to {} --segments 2 --wait",
            d.source, functions_url
        ),
    )
    .await;
    assert_eq!(b.code, 0, "{b:?}");
    // Both kept the table's schema, as the request function captured it.
    for prefix in ["direct/", "functions/"] {
        let body =
            d.s3.get_object()
                .bucket(&d.bucket)
                .key(format!("{prefix}solace-meta/schema.json"))
                .send()
                .await
                .expect("a schema record")
                .body
                .collect()
                .await
                .expect("read")
                .into_bytes();
        let record = solace_codec::schema::SchemaRecord::from_json(&body).expect("readable");
        assert_eq!(record.table_name, d.source);
        assert!(record.not_captured.is_empty(), "{:?}", record.not_captured);
        let table = record.table.expect("the table's schema");
        assert_eq!(table.key()[0].0, "pk", "{prefix}: {table:?}");
    }
    // A table keyed otherwise is refused before anything is written, deployed and direct.
    let other_key = unique_name("dst");
    solace_testkit::create_table(&d.dynamodb, &other_key, solace_testkit::TableKeys::PkSk)
        .await
        .expect("table");
    for mode in ["--wait", "--direct"] {
        let r = solace(
            &d.stack,
            &format!(
                "restore --from {} --table {} {mode}",
                functions_url, other_key
            ),
        )
        .await;
        refused(&r, 2, "cannot take this backup's items");
        assert!(
            r.stderr.contains("(pk HASH S, sk RANGE S)") && r.stderr.contains("(pk HASH S)"),
            "{mode}: both keys named: {r:?}"
        );
        assert!(
            contents(&d.dynamodb, &other_key)
                .await
                .expect("read")
                .is_empty(),
            "{mode}: nothing written"
        );
    }
    let via_functions = new_table(&d).await;
    let r = solace(
        &d.stack,
        &format!(
            "restore --from {} --table {} --wait",
            direct_url, via_functions
        ),
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let via_direct = new_table(&d).await;
    let r = solace(
        &d.stack,
        &format!(
            "restore --from {} --table {} --direct",
            functions_url, via_direct
        ),
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        contents(&d.dynamodb, &via_functions).await.expect("read"),
        source
    );
    assert_eq!(
        contents(&d.dynamodb, &via_direct).await.expect("read"),
        source
    );
    // A direct run writes no status item.
    let tasks = solace(&d.stack, "tasks --json").await;
    assert_eq!(
        tasks.json()["tasks"].as_array().map(Vec::len),
        Some(2),
        "{tasks:?}"
    );
    d.local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_one_line_and_its_exit_code() {
    let d = deployment(10, None).await;
    let url = format!("s3://{}/x/", d.bucket);
    refused(
        &solace(
            &d.stack,
            &format!("backup --table {} --to my-bucket/x", d.source),
        )
        .await,
        2,
        "is not an s3:// URL",
    );
    refused(
        &solace(
            &d.stack,
            &format!("backup --table {} --to {} --segments 0", d.source, url),
        )
        .await,
        2,
        "total-segments must be 1 to",
    );
    refused(
        &solace(
            &d.stack,
            &format!("backup --table no_such_table --to {}", url),
        )
        .await,
        3,
        "table no_such_table not found",
    );
    refused(
        &solace(
            &d.stack,
            &format!(
                "backup --table {} --to s3://no-such-bucket-7d1/x/",
                d.source
            ),
        )
        .await,
        3,
        "bucket no-such-bucket-7d1 does not exist",
    );
    refused(
        &solace(&d.stack, "status no-such-task").await,
        3,
        "no task no-such-task",
    );
    refused(
        &solace(&d.stack, "cancel no-such-task").await,
        3,
        "no task no-such-task",
    );
    refused(
        &solace(&d.stack, "ls s3://no-such-bucket-7d1/").await,
        3,
        "does not exist",
    );
    // What only the deployment knows comes back from the request function: exit 2 too.
    let first = solace(
        &d.stack,
        &format!("backup --table {} --to {} --wait", d.source, url),
    )
    .await;
    assert_eq!(first.code, 0, "{first:?}");
    refused(
        &solace(
            &d.stack,
            &format!("backup --table {} --to {} --wait", d.source, url),
        )
        .await,
        2,
        "already holds a backup",
    );
    d.local.stop().await;
}

/// Starts `solace args…` and sends it SIGINT once `ready` shows on its stderr (an empty
/// `ready`: once its first line shows on stdout, so that it is past its start-up and its
/// Ctrl-C handler is in place); what it did.
async fn interrupted(stack: &str, args: &[&str], ready: &str, env: &[(&str, &str)]) -> Ran {
    use tokio::io::AsyncReadExt as _;
    let mut command = command(stack, args);
    command
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("solace starts");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut printed = Vec::new();
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while ready.is_empty() && !printed.contains(&b'\n') {
        let n = tokio::time::timeout(Duration::from_secs(120), stdout.read(&mut buf))
            .await
            .expect("it prints")
            .expect("read");
        assert!(n > 0, "ended before printing a line");
        printed.extend_from_slice(&buf[..n]);
    }
    while !String::from_utf8_lossy(&seen).contains(ready) {
        let n = tokio::time::timeout(Duration::from_secs(120), stderr.read(&mut buf))
            .await
            .expect("it says it started")
            .expect("read");
        assert!(
            n > 0,
            "ended before {ready:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    // Inside the run: past admission, batches being written.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("it stops")
        .expect("waited");
    let mut rest = Vec::new();
    let _ = stderr.read_to_end(&mut rest).await;
    seen.extend_from_slice(&rest);
    let _ = stdout.read_to_end(&mut printed).await;
    Ran {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&printed).into_owned(),
        stderr: String::from_utf8_lossy(&seen).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_direct_backup_with_130_and_a_restore_refuses_what_it_left() {
    // The emulator scans a few hundred items a second: both runs are still scanning 1,500
    // items when they are interrupted, a second in (the functions also at 5 read units a
    // second).
    let d = deployment(1500, Some(5.0)).await;
    let url = format!("s3://{}/stopped/", d.bucket);
    let ran = interrupted(
        &d.stack,
        &[
            "backup",
            "--table",
            &d.source,
            "--to",
            &url,
            "--direct",
            "--segments",
            "2",
        ],
        "direct backup",
        &[("SOLACE_READ_CAPACITY_LIMIT", "5")],
    )
    .await;
    assert_eq!(ran.code, 130, "{ran:?}");
    assert!(
        ran.stderr.contains("not complete"),
        "says what it left: {ran:?}"
    );
    let completion =
        d.s3.head_object()
            .bucket(&d.bucket)
            .key(solace_codec::completion_key("stopped/"))
            .send()
            .await;
    assert!(completion.is_err(), "no completion record");
    let target = new_table(&d).await;
    refused(
        &solace(
            &d.stack,
            &format!("restore --from {} --table {} --wait", url, target),
        )
        .await,
        2,
        "is not complete",
    );
    // Interrupting a watch leaves the task running and says how to watch it again.
    let slow = solace(
        &d.stack,
        &format!(
            "backup --table {} --to s3://{}/watched/ --segments 2",
            d.source, d.bucket
        ),
    )
    .await;
    assert_eq!(slow.code, 0, "{slow:?}");
    let id = slow.stdout.trim().to_owned();
    wait_for_task(&d, &id).await;
    let watch = interrupted(&d.stack, &["status", &id, "--watch", "--json"], "", &[]).await;
    assert_eq!(watch.code, 130, "{watch:?}");
    assert!(
        watch
            .stderr
            .contains(&format!("solace status {id} --watch")),
        "{watch:?}"
    );
    d.local.stop().await;
}

/// The disaster the schema is for: the table is gone, `restore --create-table` brings it back
/// with its keys, indexes, billing, stream, tags, TTL and PITR; through the functions as the
/// backup made it, and directly with another billing mode and no indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_with_create_table_brings_a_lost_table_back_with_its_schema() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use solace_pipeline::Table;
    use solace_pipeline::aws::DynamoTable;
    let d = deployment(0, None).await;
    let source = unique_name("src");
    solace_testkit::create_table_with_everything(&d.dynamodb, &source)
        .await
        .expect("table");
    for i in 0..30 {
        d.dynamodb
            .put_item()
            .table_name(&source)
            .item("pk", AttributeValue::S(format!("order-{i}")))
            .item("sk", AttributeValue::N(i.to_string()))
            .item("email", AttributeValue::S(format!("{i}@example.com")))
            .item(
                "created",
                AttributeValue::N((1_700_000_000 + i).to_string()),
            )
            .item("total", AttributeValue::N(format!("{i}.50")))
            .send()
            .await
            .expect("put");
    }
    let url = format!("s3://{}/dr/", d.bucket);
    let b = solace(
        &d.stack,
        &format!("backup --table {source} --to {url} --segments 2 --wait"),
    )
    .await;
    assert_eq!(b.code, 0, "{b:?}");
    let items = contents(&d.dynamodb, &source).await.expect("source");
    assert_eq!(items.len(), 30);
    let described = |name: String| {
        let t = DynamoTable::new(d.dynamodb.clone(), name);
        async move { t.describe().await.expect("described").schema }
    };
    let before = described(source.clone()).await;

    // Without --create-table a missing table is not found.
    let gone = unique_name("dst");
    let r = solace(
        &d.stack,
        &format!("restore --from {url} --table {gone} --wait"),
    )
    .await;
    refused(&r, 3, "");

    let r = solace(
        &d.stack,
        &format!("restore --from {url} --table {gone} --create-table --wait --json"),
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(contents(&d.dynamodb, &gone).await.expect("read"), items);
    let after = described(gone.clone()).await;
    assert_eq!(after.key(), before.key());
    let sorted = |s: &solace_codec::schema::TableSchema| {
        let mut a: Vec<_> = s
            .attribute_definitions
            .iter()
            .map(|a| (a.attribute_name.clone(), a.attribute_type.clone()))
            .collect();
        a.sort();
        let mut g: Vec<_> = s
            .global_secondary_indexes
            .iter()
            .map(|g| {
                (
                    g.index_name.clone(),
                    g.key_schema.clone(),
                    g.projection.clone(),
                    g.provisioned_throughput,
                )
            })
            .collect();
        g.sort_by(|x, y| x.0.cmp(&y.0));
        (a, g)
    };
    assert_eq!(sorted(&after), sorted(&before), "definitions and GSIs");
    assert_eq!(
        after.local_secondary_indexes,
        before.local_secondary_indexes
    );
    assert_eq!(after.billing_mode, "PROVISIONED");
    assert_eq!(after.provisioned_throughput, before.provisioned_throughput);
    assert_eq!(after.stream_specification, before.stream_specification);
    assert_eq!(after.time_to_live, before.time_to_live);
    assert_eq!(
        after.point_in_time_recovery.as_ref().map(|p| p.enabled),
        Some(true)
    );
    let mut tags_after: Vec<_> = after.tags.clone().unwrap_or_default();
    let created_by = tags_after
        .iter()
        .position(|t| t.key == "solace:restore-task")
        .expect("the creating task's tag");
    assert_eq!(tags_after.remove(created_by).value, r.json()["task-id"]);
    let key = |t: &solace_codec::schema::Tag| t.key.clone();
    tags_after.sort_by_key(key);
    let mut tags_before = before.tags.clone().unwrap_or_default();
    tags_before.sort_by_key(key);
    assert_eq!(tags_after, tags_before);

    // Directly, on demand and without indexes.
    let lean = unique_name("dst");
    let r = solace(
        &d.stack,
        &format!(
            "restore --from {url} --table {lean} --direct --create-table --billing-mode PAY_PER_REQUEST --skip-indexes"
        ),
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(contents(&d.dynamodb, &lean).await.expect("read"), items);
    let lean = described(lean).await;
    assert_eq!(lean.key(), before.key());
    assert_eq!(lean.billing_mode, "PAY_PER_REQUEST");
    assert!(lean.global_secondary_indexes.is_empty() && lean.local_secondary_indexes.is_empty());
    assert_eq!(lean.time_to_live, before.time_to_live);

    // An on-demand source (the deployment's own, empty): DescribeTable reports a throughput of
    // 0 for it, which CreateTable refuses; the created table is on demand, with no throughput.
    let od_url = format!("s3://{}/on-demand/", d.bucket);
    let b = solace(
        &d.stack,
        &format!("backup --table {} --to {od_url} --wait", d.source),
    )
    .await;
    assert_eq!(b.code, 0, "{b:?}");
    let od = unique_name("dst");
    let r = solace(
        &d.stack,
        &format!("restore --from {od_url} --table {od} --create-table --wait"),
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let od = described(od).await;
    assert_eq!(od.billing_mode, "PAY_PER_REQUEST");
    assert_eq!(od.provisioned_throughput, None);
    assert_eq!(od.key(), described(d.source.clone()).await.key());

    // A created table restored into again is an existing table: refused as not empty.
    let again = solace(
        &d.stack,
        &format!("restore --from {url} --table {gone} --create-table --wait"),
    )
    .await;
    refused(&again, 2, "already holds items");
    d.local.stop().await;
}

/// A DynamoDB export in AWS's own layout (several data files, one empty) restored through the
/// request queue into an existing table, its segment count the operator's; without
/// manifest-files.json (as the emulator's own exports) it restores unverified; a data file
/// whose bytes are not its manifest's is refused by its MD5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamodb_export_restores_through_the_request_queue_and_a_damaged_file_is_refused() {
    let d = deployment(0, None).await;
    let items: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            format!(r#"{{"pk":{{"S":"k{i}"}},"n":{{"N":"{i}"}},"tags":{{"SS":["a","b{i}"]}}}}"#)
                .into_bytes()
        })
        .collect();
    let prefix = "exports/AWSDynamoDB/01764547200000-a1b2c3d4/";
    let keys = solace_testkit::put_export(&d.s3, &d.bucket, prefix, &items, 4, true)
        .await
        .expect("export written");
    let url = format!("s3://{}/{prefix}", d.bucket);

    let target = new_table(&d).await;
    let r = solace(
        &d.stack,
        &format!("restore --from {url} --table {target} --wait --json"),
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.json()["total-segments"],
        4,
        "one per data file by default"
    );
    assert_eq!(r.json()["items"], 40);
    let restored = contents(&d.dynamodb, &target).await.expect("read");
    assert_eq!(restored.len(), 40);

    // Two segments for four files, and no manifest-files.json: unverified, still exact.
    let bare = "exports/AWSDynamoDB/01764547200001-e5f6a7b8/";
    solace_testkit::put_export(&d.s3, &d.bucket, bare, &items, 3, false)
        .await
        .expect("export written");
    let other = new_table(&d).await;
    let r = solace(
        &d.stack,
        &format!(
            "restore --from s3://{}/{bare} --table {other} --segments 2 --wait --json",
            d.bucket
        ),
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(contents(&d.dynamodb, &other).await.expect("read"), restored);
    let id = r.json()["task-id"].as_str().expect("id").to_owned();
    let shown = solace(&d.stack, &format!("status {id} --json")).await;
    assert!(
        shown.stdout.contains("unverified: a DynamoDB export"),
        "{shown:?}"
    );

    // A damaged data file: its segment fails by the MD5, naming the file.
    let damaged = &keys[0];
    let mut body =
        d.s3.get_object()
            .bucket(&d.bucket)
            .key(damaged)
            .send()
            .await
            .expect("read")
            .body
            .collect()
            .await
            .expect("read")
            .into_bytes()
            .to_vec();
    let at = body.len() / 2;
    body[at] ^= 0x20;
    d.s3.put_object()
        .bucket(&d.bucket)
        .key(damaged)
        .body(body.into())
        .send()
        .await
        .expect("damaged");
    let third = new_table(&d).await;
    let r = solace(
        &d.stack,
        &format!("restore --from {url} --table {third} --wait"),
    )
    .await;
    assert_eq!(r.code, 1, "the task fails: {r:?}");
    assert!(
        r.stdout.contains(damaged.as_str()) && r.stdout.contains("its MD5 is"),
        "{r:?}"
    );
    d.local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_by_export_is_listed_verified_and_restored_into_any_segment_count() {
    use aws_sdk_dynamodb::types::PointInTimeRecoverySpecification;
    let d = deployment(50, None).await;
    let url = format!("s3://{}/by-export/", d.bucket);

    // Without PITR DynamoDB refuses the export: the backup fails and says why.
    let refused = solace(
        &d.stack,
        &format!(
            "backup --table {} --to s3://{}/no-pitr/ --method export --wait",
            d.source, d.bucket
        ),
    )
    .await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stdout.contains("PointInTimeRecovery"),
        "the reason names PITR: {refused:?}"
    );

    d.dynamodb
        .update_continuous_backups()
        .table_name(&d.source)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .expect("spec"),
        )
        .send()
        .await
        .expect("PITR on");
    let backup = solace(
        &d.stack,
        &format!(
            "backup --table {} --to {} --method export --wait --json",
            d.source, url
        ),
    )
    .await;
    assert_eq!(backup.code, 0, "{backup:?}");
    let summary = backup.json();
    assert_eq!(summary["state"], "succeeded", "{summary}");
    assert_eq!(summary["total-segments"], 1);
    assert_eq!(summary["items"], 50, "DynamoDB's own count");
    let id = summary["task-id"].as_str().expect("id").to_owned();
    // The emulator's export writes no manifests: the status says the files were listed.
    let shown = solace(&d.stack, &format!("status {id} --json")).await;
    let notes = shown.json()["notes"].to_string();
    assert!(notes.contains("unverified"), "{shown:?}");

    let ls = solace(&d.stack, &format!("ls s3://{}/by-export/ --json", d.bucket)).await;
    assert_eq!(ls.code, 0, "{ls:?}");
    let row = ls.json()["backups"][0].clone();
    assert_eq!(row["state"], "complete", "{row}");
    assert_eq!(row["format"], "solace-export", "{row}");
    assert_eq!(row["items"], 50, "{row}");
    assert_eq!(row["complete-segments"], 1, "{row}");

    let verify = solace(&d.stack, &format!("verify {url} --wait")).await;
    assert_eq!(verify.code, 0, "{verify:?}");

    // The data files are split across whatever segments the restore asks for.
    let target = new_table(&d).await;
    let restore = solace(
        &d.stack,
        &format!("restore --from {url} --table {target} --segments 2 --wait --json"),
    )
    .await;
    assert_eq!(restore.code, 0, "{restore:?}");
    assert_eq!(restore.json()["items"], 50, "{restore:?}");
    assert_eq!(
        contents(&d.dynamodb, &d.source).await.expect("source"),
        contents(&d.dynamodb, &target).await.expect("restored"),
        "the restored table equals the source"
    );
    d.local.stop().await;
}

/// Backs up `table` to `s3://<bucket>/<name>/` and converts it to `s3://<bucket>/<name>-export/`;
/// returns the export's folder (a key prefix).
async fn backed_up_and_converted(d: &Deployment, table: &str, name: &str) -> String {
    let url = format!("s3://{}/{name}/", d.bucket);
    let backup = solace(
        &d.stack,
        &format!("backup --table {table} --to {url} --segments 2 --wait"),
    )
    .await;
    assert_eq!(backup.code, 0, "{backup:?}");
    let convert = solace(
        &d.stack,
        &format!(
            "convert {url} --to s3://{}/{name}-export/ --wait --json",
            d.bucket
        ),
    )
    .await;
    assert_eq!(convert.code, 0, "{convert:?}");
    let summary = convert.json();
    assert_eq!(summary["state"], "succeeded", "{summary}");
    let id = summary["task-id"].as_str().expect("id").to_owned();
    let folder = format!("{name}-export/AWSDynamoDB/{id}/");
    assert_eq!(
        summary["export"],
        format!("s3://{}/{folder}", d.bucket),
        "{summary}"
    );
    folder
}

async fn object(d: &Deployment, key: &str) -> Vec<u8> {
    d.s3.get_object()
        .bucket(&d.bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{key}: {e:?}"))
        .body
        .collect()
        .await
        .expect("read")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converted_backup_is_an_export_with_true_manifests_that_restores_equal() {
    let d = deployment(90, None).await;
    // Into its own backup's prefix: refused before anything is sent.
    let url = format!("s3://{}/conv/", d.bucket);
    let inside = solace(&d.stack, &format!("convert {url} --to {url}copy/ --wait")).await;
    refused(&inside, 2, "overlaps the backup's bucket-prefix");

    let folder = backed_up_and_converted(&d, &d.source, "conv").await;
    let summary = object(&d, &format!("{folder}manifest-summary.json")).await;
    let export = solace_codec::export::ExportSummary::from_json(&summary).expect("summary");
    assert_eq!(export.item_count, Some(90));
    let lines = object(&d, &format!("{folder}manifest-files.json")).await;
    let files = solace_codec::export::parse_manifest_files(&lines).expect("manifest files");
    assert!(files.len() >= 2, "one data file per batch: {files:?}");
    assert_eq!(files.iter().map(|f| f.item_count).sum::<u64>(), 90);
    for f in &files {
        assert!(
            f.data_file_s3_key.starts_with(&format!("{folder}data/")),
            "{f:?}"
        );
        let body = object(&d, &f.data_file_s3_key).await;
        assert_eq!(
            solace_codec::export::md5_base64(&body),
            f.md5_checksum,
            "{f:?}"
        );
    }
    // Read back as an export (each file checked by its MD5 and count): the same items,
    // escapes, sets and binary included.
    let target = new_table(&d).await;
    let restore = solace(
        &d.stack,
        &format!(
            "restore --from s3://{}/{folder} --table {target} --wait",
            d.bucket
        ),
    )
    .await;
    assert_eq!(restore.code, 0, "{restore:?}");
    assert_eq!(
        contents(&d.dynamodb, &d.source).await.expect("source"),
        contents(&d.dynamodb, &target).await.expect("restored"),
        "the export restores to the source"
    );
    d.local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_table_loads_a_converted_backup_into_an_equal_table() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, ImportStatus, InputCompressionType,
        InputFormat, KeySchemaElement, KeyType, S3BucketSource, ScalarAttributeType,
        TableCreationParameters,
    };
    let d = deployment(0, None).await;
    // The emulator's ImportTable reads JSON with a parser of its own that keeps escapes
    // (`\n`, `\"`, `\u00e9`) as written and drops empty maps: these items have none, and
    // every other type.
    for i in 0..40 {
        let item = std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S(format!("plain-{i}"))),
            ("n".to_owned(), AttributeValue::N(format!("{}.5", i * 7))),
            ("flag".to_owned(), AttributeValue::Bool(i % 2 == 0)),
            ("none".to_owned(), AttributeValue::Null(true)),
            (
                "tags".to_owned(),
                AttributeValue::Ss(vec![format!("t{i}"), "common".into()]),
            ),
            (
                "blob".to_owned(),
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(vec![
                    i as u8, 0, 255,
                ])),
            ),
            (
                "nested".to_owned(),
                AttributeValue::M(std::collections::HashMap::from([(
                    "list".to_owned(),
                    AttributeValue::L(vec![
                        AttributeValue::N(i.to_string()),
                        AttributeValue::S("é ünïcode".into()),
                    ]),
                )])),
            ),
        ]);
        d.dynamodb
            .put_item()
            .table_name(&d.source)
            .set_item(Some(item))
            .send()
            .await
            .expect("put");
    }
    let folder = backed_up_and_converted(&d, &d.source, "plain").await;
    let imported = unique_name("imp");
    let key = |name: &str| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(KeyType::Hash)
            .build()
            .expect("key")
    };
    let started = d
        .dynamodb
        .import_table()
        .s3_bucket_source(
            S3BucketSource::builder()
                .s3_bucket(&d.bucket)
                .s3_key_prefix(format!("{folder}data/"))
                .build()
                .expect("source"),
        )
        .input_format(InputFormat::DynamodbJson)
        .input_compression_type(InputCompressionType::Gzip)
        .table_creation_parameters(
            TableCreationParameters::builder()
                .table_name(&imported)
                .key_schema(key("pk"))
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("pk")
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .expect("attribute"),
                )
                .billing_mode(BillingMode::PayPerRequest)
                .build()
                .expect("parameters"),
        )
        .send()
        .await
        .expect("ImportTable");
    let arn = started
        .import_table_description
        .and_then(|i| i.import_arn)
        .expect("an import ARN");
    let mut status = None;
    let mut failure = String::new();
    for _ in 0..120 {
        let described = d
            .dynamodb
            .describe_import()
            .import_arn(&arn)
            .send()
            .await
            .expect("DescribeImport");
        let description = described.import_table_description.expect("a description");
        failure = format!(
            "{:?}: {:?} ({:?} errors)",
            description.failure_code, description.failure_message, description.error_count
        );
        status = description.import_status;
        if status != Some(ImportStatus::InProgress) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, Some(ImportStatus::Completed), "{failure}");
    let source = contents(&d.dynamodb, &d.source).await.expect("source");
    assert_eq!(source.len(), 40);
    assert_eq!(
        source,
        contents(&d.dynamodb, &imported).await.expect("imported"),
        "the imported table equals the source"
    );
    d.local.stop().await;
}
