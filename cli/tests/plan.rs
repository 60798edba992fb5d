//! `solace plan` through the real binary, on the emulator (docs/cli.md#plan). The emulator
//! reports a `TableSizeBytes` of 0, so the 1 TB example of docs/one-terabyte.md is given with
//! `--table-bytes` and `--items`.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use solace_testkit::{Emulator, TableKeys, create_table, dynamodb_client, unique_name};

const REGION: &str = "us-east-1";
const BIN: &str = env!("CARGO_BIN_EXE_solace");

#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `solace <args>` against the emulator, nothing else of this environment's AWS settings.
async fn solace(args: &[&str]) -> Ran {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .env("AWS_ENDPOINT_URL", Emulator::shared().endpoint())
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("RUST_LOG");
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("solace ends within 2 minutes")
        .expect("solace runs");
    Ran {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

async fn table() -> String {
    let sdk = Emulator::shared().sdk_config(REGION).await;
    let name = unique_name("plan");
    create_table(&dynamodb_client(&sdk), &name, TableKeys::Pk)
        .await
        .expect("table");
    name
}

const TB: &[&str] = &["--table-bytes", "1000000000000", "--items", "100000000"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terabyte_within_an_hour_takes_35_segments() {
    let name = table().await;
    let mut args = vec!["plan", "--table", &name, "--within", "1h"];
    args.extend_from_slice(TB);
    let text = solace(&args).await;
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout
            .contains("35 segments: the fewest whose backup takes at most 1h"),
        "{text:?}"
    );
    assert!(
        text.stdout.contains("read units    122,070,313"),
        "{text:?}"
    );
    assert!(text.stdout.contains("scan_rate_per_segment"), "{text:?}");

    args.push("--json");
    let ran = solace(&args).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let v: Value = serde_json::from_str(ran.stdout.trim()).expect("one JSON object");
    assert_eq!(v["segments"], 35);
    assert_eq!(v["fastest-segments"], 41);
    assert_eq!(v["within-met"], true);
    assert_eq!(v["partitions"], 94);
    assert_eq!(v["table-name"], name.as_str());
    let wall = v["backup"]["wall-seconds"].as_f64().expect("a wall time");
    assert!(wall <= 3600.0 && wall > 3500.0, "{v}");
    assert_eq!(v["backup"]["read-units"], 122_070_313);
    assert_eq!(v["restore"]["write-units"], 1_000_000_000u64);
    assert_eq!(v["restore"]["units-usd"], 625.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terabyte_in_15_minutes_cannot_be_met_and_the_plan_is_the_fastest() {
    let name = table().await;
    let mut args = vec!["plan", "--table", &name, "--json"];
    args.extend_from_slice(TB);
    let ran = solace(&args).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let v: Value = serde_json::from_str(ran.stdout.trim()).expect("one JSON object");
    assert_eq!(v["segments"], 41);
    assert_eq!(v["within-met"], false);
    assert_eq!(v["backup"]["total-usd"], 19.46);
    assert_eq!(v["restore"]["total-usd"], 642.19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_duration_is_a_usage_error_and_a_missing_table_is_not_found() {
    let name = table().await;
    let ran = solace(&["plan", "--table", &name, "--within", "5x"]).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("--within") && ran.stderr.contains("5x"),
        "{ran:?}"
    );
    assert!(ran.stdout.is_empty(), "{ran:?}");

    let missing = unique_name("missing");
    let ran = solace(&["plan", "--table", &missing, "--table-bytes", "10"]).await;
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(
        ran.stderr
            .contains(&format!("table {missing} not found in {REGION}")),
        "{ran:?}"
    );
    assert!(!ran.stderr.contains("panicked"), "{ran:?}");
}
