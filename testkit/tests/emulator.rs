//! The emulator speaks DynamoDB, S3 and SQS, and never outlives its test process.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use solace_testkit::{DEFAULT_REGION, ENDPOINT_ENV, Emulator, PK, SK, TableKeys};

#[tokio::test]
async fn an_item_round_trips_through_dynamodb() -> anyhow::Result<()> {
    let config = Emulator::shared().sdk_config(DEFAULT_REGION).await;
    let dynamodb = solace_testkit::dynamodb_client(&config);
    let table = solace_testkit::unique_name("round-trip");
    solace_testkit::create_table(&dynamodb, &table, TableKeys::PkSk).await?;

    dynamodb
        .put_item()
        .table_name(&table)
        .item(PK, AttributeValue::S("user#1".into()))
        .item(SK, AttributeValue::S("profile".into()))
        .item("visits", AttributeValue::N("42".into()))
        .send()
        .await?;

    let got = dynamodb
        .get_item()
        .table_name(&table)
        .key(PK, AttributeValue::S("user#1".into()))
        .key(SK, AttributeValue::S("profile".into()))
        .consistent_read(true)
        .send()
        .await?;
    let item = got.item().context("the item is not there")?;
    assert_eq!(item.get("visits"), Some(&AttributeValue::N("42".into())));

    // The backup scans in parallel: every item is in exactly one segment.
    let mut scanned = 0;
    for segment in 0..4 {
        let page = dynamodb
            .scan()
            .table_name(&table)
            .segment(segment)
            .total_segments(4)
            .send()
            .await?;
        scanned += page.count();
    }
    assert_eq!(scanned, 1);
    Ok(())
}

#[tokio::test]
async fn an_object_round_trips_through_s3_in_another_region() -> anyhow::Result<()> {
    // The bucket's region is independent of the table's (docs/request.md#fields).
    let config = Emulator::shared().sdk_config("eu-west-1").await;
    let s3 = solace_testkit::s3_client(&config);
    let bucket = solace_testkit::unique_name("round-trip");
    solace_testkit::create_bucket(&s3, &bucket).await?;

    let body = b"\x78\x9c compressed batch bytes".to_vec();
    s3.put_object()
        .bucket(&bucket)
        .key("backups/0x0/0x0")
        .body(ByteStream::from(body.clone()))
        .send()
        .await?;

    let got = s3
        .get_object()
        .bucket(&bucket)
        .key("backups/0x0/0x0")
        .send()
        .await?;
    assert_eq!(got.body.collect().await?.into_bytes().as_ref(), body);

    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("backups/")
        .send()
        .await?;
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["backups/0x0/0x0"]);
    Ok(())
}

#[tokio::test]
async fn a_message_round_trips_through_sqs() -> anyhow::Result<()> {
    let config = Emulator::shared().sdk_config(DEFAULT_REGION).await;
    let sqs = solace_testkit::sqs_client(&config);
    let queue =
        solace_testkit::create_queue_with_dlq(&sqs, &solace_testkit::unique_name("round-trip"), 3)
            .await?;

    sqs.send_message()
        .queue_url(&queue.url)
        .message_body(r#"{"task":"t-1","segment":0}"#)
        .send()
        .await?;

    let received = sqs
        .receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await?;
    let [message] = received.messages() else {
        anyhow::bail!("expected one message, got {:?}", received.messages());
    };
    assert_eq!(message.body(), Some(r#"{"task":"t-1","segment":0}"#));

    sqs.delete_message()
        .queue_url(&queue.url)
        .receipt_handle(message.receipt_handle().context("no receipt handle")?)
        .send()
        .await?;
    let again = sqs.receive_message().queue_url(&queue.url).send().await?;
    assert!(again.messages().is_empty(), "{:?}", again.messages());
    Ok(())
}

#[test]
fn an_owned_emulator_stops_when_dropped() -> anyhow::Result<()> {
    let emulator = Emulator::start()?;
    if emulator.is_external() {
        return Ok(());
    }
    let authority = emulator
        .endpoint()
        .strip_prefix("http://")
        .context("not http")?
        .to_owned();
    TcpStream::connect(&authority).context("the emulator does not listen")?;
    drop(emulator);
    ensure!(
        TcpStream::connect(&authority).is_err(),
        "{authority} still listens after the drop"
    );
    Ok(())
}

/// What the kernel does when a test process dies, however it dies: it closes the server's
/// stdin. The server must go too.
#[test]
fn the_server_exits_when_its_stdin_closes() -> anyhow::Result<()> {
    if std::env::var_os(ENDPOINT_ENV).is_some_and(|e| !e.is_empty()) {
        return Ok(());
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/emulator");
    let mut child = Command::new("bash")
        .args([script, "serve", "--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut url = String::new();
    BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut url)?;
    ensure!(url.starts_with("http://127.0.0.1:"), "printed {url:?}");

    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            child.kill()?;
            anyhow::bail!("the server still runs 10 s after its stdin closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
