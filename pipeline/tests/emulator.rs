//! The pipeline against a real AWS wire protocol (moto in server mode, started by the
//! testkit): a table of every attribute type backed up across regions and restored exactly,
//! a backup interrupted at checkpoints that resumes to the same objects, and the S3
//! adapter's conditional create and checksums.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use solace_codec::sample::{self, Shape};
use solace_codec::sdk::{SdkItem, from_sdk_item, to_sdk_item};
use solace_codec::{EncoderConfig, Item, SegmentId};
use solace_pipeline::aws::{DynamoTable, Encryption, S3Objects, dynamodb_client, s3_client};
use solace_pipeline::{
    BackupCheckpoint, BackupConfig, ObjectMeta, Objects, Outcome, Progress, PutNew,
    RestoreCheckpoint, RestoreConfig, Retention, RetentionMode, SegmentJob, Table, Unfenced,
    backup_segment, restore_segment, sha256_hex,
};
use solace_testkit::{Emulator, TableKeys, create_bucket, create_table, unique_name};
use tokio::time::Instant;

const TABLE_REGION: &str = "us-east-1";
const BUCKET_REGION: &str = "eu-west-1";
const RESTORE_REGION: &str = "us-west-2";

async fn config() -> SdkConfig {
    Emulator::shared().sdk_config(TABLE_REGION).await
}

async fn new_table(sdk: &SdkConfig, region: &str) -> DynamoTable {
    let name = unique_name("tbl");
    let client = dynamodb_client(sdk, region);
    create_table(&client, &name, TableKeys::Pk)
        .await
        .expect("table created");
    DynamoTable::new(client, name)
}

async fn new_bucket(sdk: &SdkConfig) -> S3Objects {
    let name = unique_name("bkt");
    let client = s3_client(sdk, BUCKET_REGION);
    create_bucket(&client, &name).await.expect("bucket created");
    S3Objects::new(client, name, None)
}

async fn fill(table: &DynamoTable, items: impl Iterator<Item = Item>) {
    let items: Vec<SdkItem> = items.map(|i| to_sdk_item(&i)).collect();
    for chunk in items.chunks(25) {
        let mut pending = chunk.to_vec();
        while !pending.is_empty() {
            pending = table
                .batch_write(pending)
                .await
                .expect("fill writes")
                .unprocessed;
        }
    }
}

/// Every item of a table, by key.
async fn contents(table: &DynamoTable) -> BTreeMap<String, Item> {
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = table.scan(0, 1, start).await.expect("scan");
        for item in &page.sdk_items() {
            let item = from_sdk_item(item).expect("known types");
            let key = format!("{:?}", item["pk"]);
            out.insert(key, item);
        }
        match page.last_key {
            Some(k) => start = Some(k),
            None => return out,
        }
    }
}

fn job(prefix: &str, segment: u32, total: u32) -> SegmentJob {
    SegmentJob {
        prefix: prefix.into(),
        segment: SegmentId(segment),
        total_segments: total,
    }
}

fn backup_config() -> BackupConfig {
    BackupConfig {
        encoder: EncoderConfig {
            target_bytes: 256 << 10,
            max_items: usize::MAX,
            level: 6,
        },
        ..BackupConfig::default()
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_every_type_is_backed_up_across_regions_and_restored_exactly() {
    let sdk = config().await;
    let source = Arc::new(new_table(&sdk, TABLE_REGION).await);
    let objects = Arc::new(new_bucket(&sdk).await);
    // 4,000 items of every type, a few of them near DynamoDB's 400 KB limit (the emulator
    // scans about 350 items a second: throughput is measured in the benchmarks, not here).
    const ITEMS: u64 = 4_000;
    let items = (0..ITEMS).map(|n| {
        if n % 1000 == 7 {
            sample::item(Shape::Huge, n)
        } else {
            sample::mixed(n)
        }
    });
    fill(&source, items).await;

    let total = 4;
    let progress = Arc::new(Progress::default());
    let backups = (0..total).map(|s| {
        let (source, objects, progress) = (source.clone(), objects.clone(), progress.clone());
        async move {
            backup_segment(
                source,
                objects,
                Unfenced,
                &job("every-type/", s, total),
                &backup_config(),
                BackupCheckpoint::default(),
                far(),
                progress,
            )
            .await
        }
    });
    for out in futures::future::join_all(backups).await {
        assert!(matches!(out, Ok(Outcome::Completed(_))), "{out:?}");
    }
    let backed_up = progress.snapshot();
    assert_eq!(backed_up.items, ITEMS);
    assert!(
        backed_up.batches > total as u64,
        "several batches per segment"
    );

    let target = Arc::new(new_table(&sdk, RESTORE_REGION).await);
    let restored = Arc::new(Progress::default());
    let restores = (0..total).map(|s| {
        let (target, objects, restored) = (target.clone(), objects.clone(), restored.clone());
        async move {
            restore_segment(
                target,
                objects,
                &job("every-type/", s, total),
                &RestoreConfig::default(),
                RestoreCheckpoint::default(),
                far(),
                restored,
            )
            .await
        }
    });
    for out in futures::future::join_all(restores).await {
        assert!(matches!(out, Ok(Outcome::Completed(_))), "{out:?}");
    }
    assert_eq!(restored.snapshot().items, ITEMS);
    let (a, b) = (contents(&source).await, contents(&target).await);
    assert_eq!(a.len() as u64, ITEMS);
    assert!(a == b, "the restored table equals the source");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backup_resumes_to_the_same_objects_and_restores_exactly() {
    let sdk = config().await;
    let source = Arc::new(new_table(&sdk, TABLE_REGION).await);
    let objects = Arc::new(new_bucket(&sdk).await);
    fill(&source, (0..1200u64).map(sample::mixed)).await;
    let config = BackupConfig {
        encoder: EncoderConfig {
            target_bytes: 48 << 10,
            ..backup_config().encoder
        },
        ..backup_config()
    };
    let source = Arc::new(DynamoTable::clone(&source).with_page_limit(Some(40)));
    let total = 2;
    for s in 0..total {
        let whole = backup_segment(
            source.clone(),
            objects.clone(),
            Unfenced,
            &job("whole/", s, total),
            &config,
            BackupCheckpoint::default(),
            far(),
            Arc::default(),
        )
        .await;
        assert!(matches!(whole, Ok(Outcome::Completed(_))), "{whole:?}");

        let mut checkpoint = BackupCheckpoint::default();
        let mut pauses = 0;
        // Short slices interrupt the run; a slice that made no progress (the emulator is
        // slow on a loaded machine) is doubled, so the test is about resumption, not speed.
        let mut slice = Duration::from_millis(300);
        loop {
            let out = backup_segment(
                source.clone(),
                objects.clone(),
                Unfenced,
                &job("resumed/", s, total),
                &config,
                checkpoint.clone(),
                Instant::now() + slice,
                Arc::default(),
            )
            .await
            .expect("no error");
            match out {
                Outcome::Completed(_) => break,
                Outcome::Paused(c) => {
                    pauses += 1;
                    assert!(pauses < 200, "progress is made");
                    if c == checkpoint {
                        slice *= 2;
                    }
                    checkpoint = c;
                }
                Outcome::Fenced(c) => panic!("an unfenced run cannot lose its chain: {c:?}"),
            }
        }
        assert!(pauses > 0, "segment {s} was interrupted");
    }
    let list = |prefix: &'static str| {
        let objects = objects.clone();
        async move {
            let mut found = BTreeMap::new();
            for s in 0..total {
                for b in 0u64.. {
                    let key =
                        solace_codec::batch_key(prefix, SegmentId(s), solace_codec::BatchId(b));
                    match objects.get(&key).await.expect("get") {
                        Some(body) => found.insert(format!("{s}/{b}"), body),
                        None => break,
                    };
                }
            }
            found
        }
    };
    let (whole, resumed) = (list("whole/").await, list("resumed/").await);
    assert!(whole.len() > 2 * total as usize);
    if whole != resumed {
        let summary = |m: &BTreeMap<String, bytes::Bytes>, k: &String| {
            m.get(k).map(|b| {
                let items = solace_codec::decode_items(b, 1 << 30).unwrap_or_default();
                let pk = |i: Option<&Item>| i.map(|x| format!("{:?}", x["pk"]));
                (items.len(), pk(items.first()), pk(items.last()))
            })
        };
        let diff: Vec<String> = whole
            .keys()
            .chain(resumed.keys())
            .filter(|k| whole.get(*k) != resumed.get(*k))
            .map(|k| {
                format!(
                    "{k}: whole {:?} resumed {:?}",
                    summary(&whole, k),
                    summary(&resumed, k)
                )
            })
            .collect();
        panic!("the resumed backup wrote other batches: {diff:#?}");
    }

    let target = Arc::new(new_table(&sdk, RESTORE_REGION).await);
    for s in 0..total {
        let out = restore_segment(
            target.clone(),
            objects.clone(),
            &job("resumed/", s, total),
            &RestoreConfig::default(),
            RestoreCheckpoint::default(),
            far(),
            Arc::default(),
        )
        .await;
        assert!(matches!(out, Ok(Outcome::Completed(_))), "{out:?}");
    }
    assert!(contents(&source).await == contents(&target).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_is_written_with_server_side_encryption_sse_s3_or_the_configured_kms_key() {
    use aws_sdk_s3::types::ServerSideEncryption;
    let sdk = config().await;
    let client = s3_client(&sdk, BUCKET_REGION);
    let name = unique_name("bkt");
    create_bucket(&client, &name).await.expect("bucket created");
    let key_arn = "arn:aws:kms:eu-west-1:123456789012:key/0f0e0d0c-0000-4000-8000-000000000001";
    let plain = S3Objects::new(client.clone(), &name, None);
    let kms = S3Objects::new(client.clone(), &name, None).with_encryption(Encryption::Kms {
        key: key_arn.to_owned(),
    });
    let body = bytes::Bytes::from_static(b"a batch");
    for (objects, key) in [(&plain, "p/0x0/0x0"), (&kms, "p/0x0/0x1")] {
        let created = objects
            .put_new(key, body.clone(), &ObjectMeta::default())
            .await;
        assert_eq!(created, Ok(PutNew::Created));
    }
    objects_put(&kms, "p/unconditional").await;
    let head = |key: &'static str| {
        let client = client.clone();
        let name = name.clone();
        async move {
            client
                .head_object()
                .bucket(name)
                .key(key)
                .send()
                .await
                .expect("head")
        }
    };
    let sse_s3 = head("p/0x0/0x0").await;
    assert_eq!(
        sse_s3.server_side_encryption,
        Some(ServerSideEncryption::Aes256)
    );
    for key in ["p/0x0/0x1", "p/unconditional"] {
        let sse_kms = head(key).await;
        assert_eq!(
            sse_kms.server_side_encryption,
            Some(ServerSideEncryption::AwsKms),
            "{key}"
        );
        assert_eq!(sse_kms.ssekms_key_id.as_deref(), Some(key_arn), "{key}");
        assert_eq!(sse_kms.bucket_key_enabled, Some(true), "{key}");
    }
    // Both read back.
    assert_eq!(plain.get("p/0x0/0x1").await, Ok(Some(body.clone())));
    assert_eq!(kms.get("p/0x0/0x0").await, Ok(Some(body)));
}

async fn objects_put(objects: &S3Objects, key: &str) {
    objects
        .put(key, bytes::Bytes::from_static(b"x"))
        .await
        .expect("put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_written_with_retention_cannot_be_deleted_even_by_its_writer() {
    let sdk = config().await;
    let client = s3_client(&sdk, BUCKET_REGION);
    let name = unique_name("lock");
    client
        .create_bucket()
        .bucket(&name)
        .object_lock_enabled_for_bucket(true)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                    BUCKET_REGION,
                ))
                .build(),
        )
        .send()
        .await
        .expect("a lock-enabled bucket");
    let objects = S3Objects::new(client.clone(), &name, None);
    let meta = ObjectMeta {
        retention: Some(Retention {
            mode: RetentionMode::Compliance,
            days: 1,
        }),
        ..ObjectMeta::default()
    };
    let created = objects
        .put_new("p/0x0/0x0", bytes::Bytes::from_static(b"a batch"), &meta)
        .await;
    assert_eq!(created, Ok(PutNew::Created));
    let head = client
        .head_object()
        .bucket(&name)
        .key("p/0x0/0x0")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.object_lock_mode,
        Some(aws_sdk_s3::types::ObjectLockMode::Compliance)
    );
    let until = head.object_lock_retain_until_date.expect("retain-until");
    let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
    assert!(
        until.secs() > now.secs() + 86_000,
        "locked for a day: {until:?}"
    );
    let version = head.version_id.expect("a versioned bucket");
    let deleted = client
        .delete_object()
        .bucket(&name)
        .key("p/0x0/0x0")
        .version_id(&version)
        .send()
        .await;
    assert!(
        deleted.is_err(),
        "a locked version cannot be deleted: {deleted:?}"
    );
    assert_eq!(
        objects.get("p/0x0/0x0").await,
        Ok(Some(bytes::Bytes::from_static(b"a batch")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_create_of_a_key_finds_the_first_body_and_changes_nothing() {
    let sdk = config().await;
    let objects = new_bucket(&sdk).await;
    let key = "p/0x0/0x0";
    let first = bytes::Bytes::from_static(b"the first body");
    let meta = ObjectMeta {
        sha256: Some(sha256_hex(&first)),
        items: Some(3),
        json_bytes: Some(94),
        ..ObjectMeta::default()
    };
    let created = objects.put_new(key, first.clone(), &meta).await;
    assert_eq!(created, Ok(PutNew::Created));
    // A retry of the same write (its reply lost) and another body: both leave the object.
    for body in [first.clone(), bytes::Bytes::from_static(b"another body")] {
        let again = objects
            .put_new(key, body.clone(), &ObjectMeta::default())
            .await;
        assert_eq!(
            again,
            Ok(PutNew::Exists {
                sha256: Some(sha256_hex(&first))
            })
        );
    }
    assert_eq!(objects.get(key).await, Ok(Some(first.clone())));
    // The upload carried its SHA-256: HeadObject in checksum mode returns it, with the
    // counts kept as user metadata.
    let info = objects.head(key).await.expect("head").expect("the object");
    assert_eq!(info.sha256, Some(sha256_hex(&first)), "{info:?}");
    assert_eq!(
        (info.size, info.items, info.json_bytes),
        (first.len() as u64, Some(3), Some(94))
    );
    assert_eq!(objects.head("p/0x0/0x1").await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_pages_through_every_key_and_folder() {
    let sdk = config().await;
    let objects = new_bucket(&sdk).await;
    // More than one ListObjectsV2 page (1,000 keys) under one prefix.
    let keys: Vec<String> = (0..1005u64)
        .map(|n| solace_codec::batch_key("p/", SegmentId((n % 3) as u32), solace_codec::BatchId(n)))
        .collect();
    futures::future::join_all(keys.iter().map(|k| {
        let objects = &objects;
        async move {
            objects
                .put_new(k, bytes::Bytes::from_static(b"[]"), &ObjectMeta::default())
                .await
                .expect("created");
        }
    }))
    .await;
    objects
        .put_new(
            "other/0x0/0x0",
            bytes::Bytes::from_static(b"[]"),
            &ObjectMeta::default(),
        )
        .await
        .expect("created");
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(objects.list("p/").await.expect("list"), expected);
    assert_eq!(
        objects.list_folders("p/").await.expect("folders"),
        vec!["p/0x0/", "p/0x1/", "p/0x2/"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn has_items_tells_an_empty_table_from_one_with_an_item() {
    let sdk = config().await;
    let table = new_table(&sdk, TABLE_REGION).await;
    assert_eq!(table.has_items().await, Ok(false));
    fill(&table, (0..3u64).map(sample::mixed)).await;
    assert_eq!(table.has_items().await, Ok(true));
}

/// Two runs of one segment at once (a duplicated message) over real S3 conditional writes:
/// each batch key is created once, one chain is committed, and it restores exactly.
#[cfg(feature = "sim")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_one_segment_commit_one_chain_through_conditional_writes() {
    use solace_pipeline::sim::MemChain;
    let sdk = config().await;
    let source = Arc::new(new_table(&sdk, TABLE_REGION).await);
    let objects = Arc::new(new_bucket(&sdk).await);
    fill(&source, (0..400u64).map(sample::mixed)).await;
    let source = Arc::new(DynamoTable::clone(&source).with_page_limit(Some(40)));
    let config = BackupConfig {
        encoder: EncoderConfig {
            target_bytes: 48 << 10,
            ..backup_config().encoder
        },
        ..backup_config()
    };
    let chain = MemChain::new();
    let job = job("twice/", 0, 1);
    let runs = (0..2).map(|_| {
        backup_segment(
            source.clone(),
            objects.clone(),
            chain.run(),
            &job,
            &config,
            BackupCheckpoint::default(),
            far(),
            Arc::default(),
        )
    });
    let outcomes = futures::future::join_all(runs).await;
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Ok(Outcome::Completed(_)))),
        "{outcomes:?}"
    );
    for out in &outcomes {
        assert!(
            matches!(out, Ok(Outcome::Completed(_) | Outcome::Fenced(_))),
            "{out:?}"
        );
    }
    let done = chain.position().expect("a chain");
    assert!(done.done && done.items == 400, "{done:?}");
    let marker_key = solace_codec::segment_marker_key("twice/", SegmentId(0));
    let marker = objects
        .get(&marker_key)
        .await
        .expect("get")
        .expect("a marker");
    let marker = solace_pipeline::SegmentMarker::from_json(&marker).expect("it reads");
    assert_eq!(marker.batches, done.next_batch);
    for (n, step) in chain.committed().iter().enumerate() {
        let key = solace_codec::batch_key("twice/", SegmentId(0), solace_codec::BatchId(n as u64));
        let info = objects.head(&key).await.expect("head").expect("the batch");
        assert_eq!(info.sha256.as_ref(), Some(&step.sha256));
        assert_eq!(marker.batch_list[n].sha256, step.sha256);
    }
    let target = Arc::new(new_table(&sdk, RESTORE_REGION).await);
    let out = restore_segment(
        target.clone(),
        objects.clone(),
        &job,
        &RestoreConfig::default(),
        RestoreCheckpoint::default(),
        far(),
        Arc::default(),
    )
    .await;
    assert!(matches!(out, Ok(Outcome::Completed(_))), "{out:?}");
    assert!(contents(&source).await == contents(&target).await);
}

/// The key schemas whose checkpoints are more than one string: a number sort key, a number
/// partition key, a binary sort key.
fn key_schemas() -> Vec<(
    &'static str,
    Vec<solace_pipeline::aws::KeyAttribute<'static>>,
)> {
    use aws_sdk_dynamodb::types::ScalarAttributeType as T;
    use solace_pipeline::aws::KeyAttribute;
    vec![
        (
            "string partition and number sort key",
            vec![
                KeyAttribute::hash_s("pk"),
                KeyAttribute {
                    name: "sk",
                    kind: T::N,
                    sort: true,
                },
            ],
        ),
        (
            "number partition key",
            vec![KeyAttribute {
                name: "pk",
                kind: T::N,
                sort: false,
            }],
        ),
        // A binary sort key, not partition key: moto's parallel Scan answers 500 on a table
        // whose partition key is binary.
        (
            "string partition and binary sort key",
            vec![
                KeyAttribute::hash_s("pk"),
                KeyAttribute {
                    name: "sk",
                    kind: T::B,
                    sort: true,
                },
            ],
        ),
    ]
}

/// Item `i` for the key schema `schema` (an index into [`key_schemas`]).
fn keyed_item(schema: usize, i: u64) -> Item {
    use solace_codec::Value;
    let mut item = Item::new();
    match schema {
        0 => {
            item.insert("pk".into(), Value::S(format!("p{}", i % 12)));
            item.insert("sk".into(), Value::N(format!("{}.5", i as i64 - 40)));
        }
        1 => {
            item.insert("pk".into(), Value::N(format!("-{i}.25")));
        }
        _ => {
            item.insert("pk".into(), Value::S(format!("p{}", i % 12)));
            item.insert(
                "sk".into(),
                Value::B(vec![0, 0xff, i as u8, (i >> 8) as u8]),
            );
        }
    }
    item.insert(
        "payload".into(),
        Value::S("x".repeat(200 + (i % 7) as usize)),
    );
    item
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_number_and_binary_keys_resume_from_their_checkpoints_and_restore_exactly() {
    let sdk = config().await;
    let objects = Arc::new(new_bucket(&sdk).await);
    let config = BackupConfig {
        encoder: EncoderConfig {
            target_bytes: 2 << 10,
            ..backup_config().encoder
        },
        ..backup_config()
    };
    for (schema, (what, keys)) in key_schemas().into_iter().enumerate() {
        let client = dynamodb_client(&sdk, TABLE_REGION);
        let (source_name, target_name) = (unique_name("keyed"), unique_name("keyed"));
        for name in [&source_name, &target_name] {
            solace_pipeline::aws::create_table(&client, name, &keys, Duration::from_secs(60))
                .await
                .expect("table");
        }
        let source = DynamoTable::new(client.clone(), source_name);
        fill(&source, (0..60).map(|i| keyed_item(schema, i))).await;
        let source = Arc::new(source.with_page_limit(Some(5)));
        let prefix = format!("keyed{schema}/");
        let total = 2;
        let mut resumed = 0;
        for s in 0..total {
            // Every run stops at its first closed batch (its deadline has passed), and its
            // checkpoint travels as JSON, as in a continuation message.
            let mut checkpoint = BackupCheckpoint::default();
            let mut runs = 0;
            loop {
                runs += 1;
                assert!(runs < 100, "{what}: progress is made");
                let out = backup_segment(
                    source.clone(),
                    objects.clone(),
                    Unfenced,
                    &job(&prefix, s, total),
                    &config,
                    checkpoint.clone(),
                    Instant::now(),
                    Arc::default(),
                )
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
                match out {
                    Outcome::Completed(_) => break,
                    Outcome::Paused(c) => {
                        let json = serde_json::to_string(&c).expect("a checkpoint is JSON");
                        if runs == 2 && schema != 1 {
                            assert!(json.contains("\"sk\""), "both key attributes: {json}");
                        }
                        checkpoint = serde_json::from_str(&json).expect("and back");
                    }
                    Outcome::Fenced(c) => panic!("{what}: unfenced runs cannot lose: {c:?}"),
                }
            }
            resumed += runs - 1;
        }
        assert!(
            resumed >= 4,
            "{what}: resumed {resumed} times from checkpoints"
        );
        let target = Arc::new(DynamoTable::new(client, target_name));
        for s in 0..total {
            let out = restore_segment(
                target.clone(),
                objects.clone(),
                &job(&prefix, s, total),
                &RestoreConfig::default(),
                RestoreCheckpoint::default(),
                far(),
                Arc::default(),
            )
            .await;
            assert!(matches!(out, Ok(Outcome::Completed(_))), "{what}: {out:?}");
        }
        let all = |table: Arc<DynamoTable>| async move {
            let mut items = Vec::new();
            let mut start = None;
            loop {
                let page = table.scan(0, 1, start).await.expect("scan");
                items.extend(
                    page.sdk_items()
                        .iter()
                        .map(|i| from_sdk_item(i).expect("known types")),
                );
                match page.last_key {
                    Some(k) => start = Some(k),
                    None => break,
                }
            }
            items.sort_by_key(|i| format!("{i:?}"));
            items
        };
        let (a, b) = (all(source).await, all(target).await);
        assert_eq!(a.len(), 60, "{what}");
        assert!(a == b, "{what}: the restored table equals the source");
    }
}

/// A provisioned table with a sort key, two GSIs (KEYS_ONLY and INCLUDE), an LSI, a stream,
/// TTL, PITR and tags; and an on-demand one with none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_s_schema_is_read_with_its_indexes_settings_and_tags() {
    let sdk = config().await;
    let client = dynamodb_client(&sdk, TABLE_REGION);
    let name = unique_name("schema");
    solace_testkit::create_table_with_everything(&client, &name)
        .await
        .expect("table created");
    let described = DynamoTable::new(client.clone(), &name)
        .describe()
        .await
        .expect("described");
    assert!(
        described.not_captured.is_empty(),
        "{:?}",
        described.not_captured
    );
    let s = &described.schema;
    assert_eq!(
        s.key(),
        [
            ("pk".to_owned(), "HASH".to_owned(), "S".to_owned()),
            ("sk".to_owned(), "RANGE".to_owned(), "N".to_owned())
        ]
    );
    assert_eq!(s.attribute_definitions.len(), 4);
    assert_eq!(s.billing_mode, "PROVISIONED");
    let t = s.provisioned_throughput.expect("provisioned");
    assert_eq!((t.read_capacity_units, t.write_capacity_units), (7, 3));
    let gsi = |n: &str| {
        s.global_secondary_indexes
            .iter()
            .find(|g| g.index_name == n)
            .unwrap_or_else(|| panic!("index {n} in {:?}", s.global_secondary_indexes))
    };
    assert_eq!(gsi("by-email").projection.projection_type, "KEYS_ONLY");
    let created = gsi("by-created");
    assert_eq!(created.projection.projection_type, "INCLUDE");
    assert_eq!(created.projection.non_key_attributes, ["total", "state"]);
    assert_eq!(created.key_schema.len(), 2);
    let gt = created.provisioned_throughput.expect("index throughput");
    assert_eq!((gt.read_capacity_units, gt.write_capacity_units), (4, 2));
    assert_eq!(s.local_secondary_indexes.len(), 1);
    assert_eq!(s.local_secondary_indexes[0].index_name, "by-pk-created");
    let stream = s.stream_specification.as_ref().expect("stream");
    assert_eq!(
        stream.stream_view_type.as_deref(),
        Some("NEW_AND_OLD_IMAGES")
    );
    let ttl = s.time_to_live.as_ref().expect("ttl read");
    assert!(ttl.enabled);
    assert_eq!(ttl.attribute_name.as_deref(), Some("expires"));
    assert!(
        s.point_in_time_recovery
            .as_ref()
            .expect("pitr read")
            .enabled
    );
    let mut tags: Vec<(String, String)> = s
        .tags
        .as_ref()
        .expect("tags read")
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            ("env".to_owned(), "test".to_owned()),
            ("team".to_owned(), "payments".to_owned())
        ]
    );
    s.check().expect("CreateTable would take it");

    // On demand, nothing else set: no throughput, no indexes, TTL and PITR read as off.
    let plain = new_table(&sdk, TABLE_REGION).await;
    let d = plain.describe().await.expect("described");
    assert_eq!(d.schema.billing_mode, "PAY_PER_REQUEST");
    assert!(d.schema.provisioned_throughput.is_none());
    assert!(d.schema.global_secondary_indexes.is_empty());
    assert!(!d.schema.time_to_live.as_ref().expect("ttl read").enabled);
    assert!(
        !d.schema
            .point_in_time_recovery
            .as_ref()
            .expect("pitr read")
            .enabled
    );
    assert_eq!(d.schema.tags.as_deref(), Some(&[][..]));
}
