//! Resources to test against, each with a name of its own so that tests sharing one emulator
//! (or one `SOLACE_TEST_ENDPOINT`) never see each other's data.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;

/// The partition key of tables made by [`create_table`] (type S).
pub const PK: &str = "pk";
/// The sort key of tables made by [`create_table`] with [`TableKeys::PkSk`] (type S).
pub const SK: &str = "sk";

/// How long [`create_table`] waits for its table to become active.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// A name no other test (of this or another process) uses: `<prefix>-<pid>-<n>-<random>`,
/// lowercase letters, digits and `-` only, at most 63 characters, so it is valid for a
/// table, a bucket and a queue alike.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut prefix: String = prefix
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .take(30)
        .collect();
    if !prefix.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        prefix.insert(0, 't');
    }
    format!(
        "{prefix}-{}-{}-{:06x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..0x0100_0000)
    )
}

/// The key schema of a table made by [`create_table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKeys {
    /// Partition key [`PK`] only.
    Pk,
    /// Partition key [`PK`] and sort key [`SK`].
    PkSk,
}

/// Creates an on-demand table keyed by `keys` (all of type S) and waits until it is active.
///
/// # Errors
///
/// If DynamoDB refuses it (it exists, a bad name) or it is not active in time.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    keys: TableKeys,
) -> anyhow::Result<()> {
    use solace_pipeline::aws::KeyAttribute;
    let attributes: &[KeyAttribute<'_>] = match keys {
        TableKeys::Pk => &[KeyAttribute::hash_s(PK)],
        TableKeys::PkSk => &[KeyAttribute::hash_s(PK), KeyAttribute::range_s(SK)],
    };
    solace_pipeline::aws::create_table(client, name, attributes, TABLE_ACTIVE_TIMEOUT)
        .await
        .map_err(|e| anyhow!("creating table {name}: {e}"))
}

/// Polls DescribeTable until table `name` is active.
///
/// # Errors
///
/// If it does not exist or is not active within `timeout`.
pub async fn wait_table_active(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    solace_pipeline::aws::wait_table_active(client, name, timeout)
        .await
        .map_err(|e| anyhow!("waiting for table {name}: {e}"))
}

/// Creates bucket `name` in the client's region (with the location constraint S3 wants
/// outside us-east-1).
///
/// # Errors
///
/// If S3 refuses it (it exists, a bad name).
pub async fn create_bucket(client: &aws_sdk_s3::Client, name: &str) -> anyhow::Result<()> {
    let mut request = client.create_bucket().bucket(name);
    let region = client.config().region().map(|r| r.as_ref());
    if let Some(region) = region.filter(|r| *r != "us-east-1") {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    request
        .send()
        .await
        .map_err(|e| anyhow!("creating bucket {name}: {}", DisplayErrorContext(e)))?;
    Ok(())
}

/// Creates standard queue `name` and returns its URL.
///
/// # Errors
///
/// If SQS refuses it.
pub async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<String> {
    let created = client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| anyhow!("creating queue {name}: {}", DisplayErrorContext(e)))?;
    created
        .queue_url()
        .map(str::to_owned)
        .with_context(|| format!("CreateQueue {name} returned no URL"))
}

/// A work queue and its dead-letter queue, as made by [`create_queue_with_dlq`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueWithDlq {
    /// The work queue's URL.
    pub url: String,
    /// The dead-letter queue's URL.
    pub dlq_url: String,
    /// The dead-letter queue's ARN, as the work queue's redrive policy names it.
    pub dlq_arn: String,
}

/// Creates queue `name` and a dead-letter queue `<name>-dlq` that receives a message after
/// `max_receive_count` receives.
///
/// # Errors
///
/// If SQS refuses either queue.
pub async fn create_queue_with_dlq(
    client: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
) -> anyhow::Result<QueueWithDlq> {
    let dlq_url = create_queue(client, &format!("{name}-dlq")).await?;
    let attributes = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow!("reading the ARN of {dlq_url}: {}", DisplayErrorContext(e)))?;
    let dlq_arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .with_context(|| format!("{dlq_url} has no QueueArn"))?;
    let redrive_policy = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive_count.to_string(),
    });
    let created = client
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            redrive_policy.to_string(),
        )
        .send()
        .await
        .map_err(|e| anyhow!("creating queue {name}: {}", DisplayErrorContext(e)))?;
    let url = created
        .queue_url()
        .map(str::to_owned)
        .with_context(|| format!("CreateQueue {name} returned no URL"))?;
    Ok(QueueWithDlq {
        url,
        dlq_url,
        dlq_arn,
    })
}

/// Creates a provisioned table with every part a schema can have and waits until it is active:
/// key `pk` (S) and `sk` (N); GSIs `by-email` (KEYS_ONLY, 2/1 units) and `by-created`
/// (INCLUDE `total`, `state`; 4/2); LSI `by-pk-created` (ALL); 7/3 units; a
/// NEW_AND_OLD_IMAGES stream; tags `team=payments`, `env=test`; TTL on `expires`; PITR on.
///
/// # Errors
///
/// If DynamoDB refuses any of it.
pub async fn create_table_with_everything(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        LocalSecondaryIndex, PointInTimeRecoverySpecification, Projection, ProjectionType,
        ProvisionedThroughput, ScalarAttributeType, StreamSpecification, StreamViewType, Tag,
        TimeToLiveSpecification,
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| anyhow!("{e}"))
    };
    let attr = |name: &str, ty: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ty)
            .build()
            .map_err(|e| anyhow!("{e}"))
    };
    let throughput = |r: i64, w: i64| {
        ProvisionedThroughput::builder()
            .read_capacity_units(r)
            .write_capacity_units(w)
            .build()
            .map_err(|e| anyhow!("{e}"))
    };
    let projection = |ty: ProjectionType, include: &[&str]| {
        let mut p = Projection::builder().projection_type(ty);
        for a in include {
            p = p.non_key_attributes(*a);
        }
        p.build()
    };
    client
        .create_table()
        .table_name(name)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
        .attribute_definitions(attr("sk", ScalarAttributeType::N)?)
        .attribute_definitions(attr("email", ScalarAttributeType::S)?)
        .attribute_definitions(attr("created", ScalarAttributeType::N)?)
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(throughput(7, 3)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("by-email")
                .key_schema(key("email", KeyType::Hash)?)
                .projection(projection(ProjectionType::KeysOnly, &[]))
                .provisioned_throughput(throughput(2, 1)?)
                .build()
                .map_err(|e| anyhow!("{e}"))?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("by-created")
                .key_schema(key("created", KeyType::Hash)?)
                .key_schema(key("pk", KeyType::Range)?)
                .projection(projection(ProjectionType::Include, &["total", "state"]))
                .provisioned_throughput(throughput(4, 2)?)
                .build()
                .map_err(|e| anyhow!("{e}"))?,
        )
        .local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name("by-pk-created")
                .key_schema(key("pk", KeyType::Hash)?)
                .key_schema(key("created", KeyType::Range)?)
                .projection(projection(ProjectionType::All, &[]))
                .build()
                .map_err(|e| anyhow!("{e}"))?,
        )
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(|e| anyhow!("{e}"))?,
        )
        .tags(
            Tag::builder()
                .key("team")
                .value("payments")
                .build()
                .map_err(|e| anyhow!("{e}"))?,
        )
        .tags(
            Tag::builder()
                .key("env")
                .value("test")
                .build()
                .map_err(|e| anyhow!("{e}"))?,
        )
        .send()
        .await
        .map_err(|e| anyhow!("creating table {name}: {}", DisplayErrorContext(e)))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires")
                .build()
                .map_err(|e| anyhow!("{e}"))?,
        )
        .send()
        .await
        .map_err(|e| anyhow!("TTL of {name}: {}", DisplayErrorContext(e)))?;
    client
        .update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .map_err(|e| anyhow!("{e}"))?,
        )
        .send()
        .await
        .map_err(|e| anyhow!("PITR of {name}: {}", DisplayErrorContext(e)))?;

    wait_table_active(client, name, TABLE_ACTIVE_TIMEOUT).await
}

/// Writes a DynamoDB export of `items` (DynamoDB-JSON objects) to `bucket` under `prefix`
/// (which should end in `AWSDynamoDB/<export-id>/`), in the layout AWS writes
/// (docs/export.md): `files` gzip data files of `{"Item": …}` lines under `data/`, the items
/// dealt out in order and the last file empty, `manifest-files.json` (when `with_manifest`)
/// with each file's item count and MD5, and `manifest-summary.json`. Returns the data files'
/// keys.
///
/// # Errors
///
/// If an item is not one, or S3 refuses a write.
pub async fn put_export(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    items: &[Vec<u8>],
    files: usize,
    with_manifest: bool,
) -> anyhow::Result<Vec<String>> {
    use solace_codec::export::{ExportFile, data_file};
    let files = files.max(2);
    let per = items.len().div_ceil(files - 1).max(1);
    let mut lines = String::new();
    let mut keys = Vec::new();
    for f in 0..files {
        let share = if f == files - 1 {
            Vec::new()
        } else {
            items
                .iter()
                .skip(f * per)
                .take(per)
                .map(|i| solace_codec::RawItem::parse(i).map_err(|e| anyhow!("an item: {e}")))
                .collect::<anyhow::Result<Vec<_>>>()?
        };
        let key = format!("{prefix}data/{f:02}-{}.json.gz", unique_name("part"));
        let body = data_file(share.iter().copied());
        lines.push_str(&ExportFile::of(&key, &body, share.len() as u64).to_json_line());
        lines.push('\n');
        put(s3, bucket, &key, body).await?;
        keys.push(key);
    }
    if with_manifest {
        put(
            s3,
            bucket,
            &format!("{prefix}manifest-files.json"),
            lines.into_bytes(),
        )
        .await?;
    }
    let summary = serde_json::json!({
        "version": "2023-08-01",
        "exportArn": format!("arn:aws:dynamodb:us-east-1:123456789012:table/source/export/{}", unique_name("export")),
        "startTime": "2026-12-01T00:00:00.000Z",
        "endTime": "2026-12-01T00:05:00.000Z",
        "tableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/source",
        "tableId": "00000000-0000-0000-0000-000000000000",
        "exportTime": "2026-12-01T00:00:00.000Z",
        "s3Bucket": bucket,
        "s3Prefix": prefix,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": null,
        "manifestFilesS3Key": format!("{prefix}manifest-files.json"),
        "billedSizeBytes": 0,
        "itemCount": items.len(),
        "outputFormat": "DYNAMODB_JSON",
        "exportType": "FULL_EXPORT",
    });
    put(
        s3,
        bucket,
        &format!("{prefix}manifest-summary.json"),
        summary.to_string().into_bytes(),
    )
    .await?;
    Ok(keys)
}

async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .map_err(|e| anyhow!("writing {key}: {}", DisplayErrorContext(e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_valid_everywhere() {
        let a = unique_name("Backup_Table.Test");
        let b = unique_name("Backup_Table.Test");
        assert_ne!(a, b);
        for name in [&a, &b, &unique_name(""), &unique_name(&"x".repeat(200))] {
            assert!((3..=63).contains(&name.len()), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert!(
                name.starts_with(|c: char| c.is_ascii_alphanumeric()),
                "{name}"
            );
        }
        assert!(a.starts_with("backup-table-test-"), "{a}");
    }
}
