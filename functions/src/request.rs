//! The request function: validates a request (docs/request.md#validation), records the task, writes the
//! backup's manifest, and fans out one message per segment.
//!
//! A rejected request is consumed (it must not loop), fans out nothing, is logged as a
//! structured error and is sent with its reason to the rejected-requests queue, where an
//! operator finds it.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use solace_codec::layout::Manifest;
use solace_pipeline::{ErrorKind, Objects};
use tracing::{error, info};

use crate::context::{Context, Services};
use crate::error::Error;
use crate::function::Function;
use crate::message::{Action, Request, SegmentMessage};
use crate::queues::{MAX_BATCH, Queues};
use crate::status::{self, StatusStore};
use crate::{metrics, records};

/// Why a request is refused; the text is the reason an operator reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("the request is not JSON: {0}")]
    NotJson(String),
    #[error("the request must be a JSON object")]
    NotAnObject,
    /// A missing, unknown or mistyped field.
    #[error("bad request: {0}")]
    Fields(String),
    #[error("total-segments must be 1 to {max}, got {got}")]
    Segments { max: u32, got: u32 },
    #[error("{field} {value:?} is not an AWS region name")]
    Region { field: &'static str, value: String },
    #[error("table-name {0:?} is not a DynamoDB table name (3-255 of A-Za-z0-9_.-)")]
    TableName(String),
    #[error("bucket-name {name:?} is not an S3 bucket name: {why}")]
    BucketName { name: String, why: &'static str },
    #[error("bucket-prefix {0}")]
    Prefix(&'static str),
}

/// Checks a request body against docs/request.md#validation. The error names what was wrong.
pub fn validate(body: &str, max_segments: u32) -> Result<Request, InvalidRequest> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| InvalidRequest::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(InvalidRequest::NotAnObject);
    }
    let request: Request =
        serde_json::from_value(value).map_err(|e| InvalidRequest::Fields(e.to_string()))?;
    if request.total_segments == 0 || request.total_segments > max_segments {
        return Err(InvalidRequest::Segments {
            max: max_segments,
            got: request.total_segments,
        });
    }
    check_region("table-region", &request.table_region)?;
    check_region("bucket-region", &request.bucket_region)?;
    check_table_name(&request.table_name)?;
    check_bucket_name(&request.bucket_name)?;
    if request.bucket_prefix.len() > 512 {
        return Err(InvalidRequest::Prefix("is longer than 512 bytes"));
    }
    if request.bucket_prefix.starts_with('/') {
        return Err(InvalidRequest::Prefix("must not start with `/`"));
    }
    Ok(request)
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-7`…
fn check_region(field: &'static str, region: &str) -> Result<(), InvalidRequest> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts.len() <= 4
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1]
            .parse::<u8>()
            .is_ok_and(|n| n > 0 && !parts[parts.len() - 1].starts_with('0'));
    if ok {
        Ok(())
    } else {
        Err(InvalidRequest::Region {
            field,
            value: region.to_owned(),
        })
    }
}

fn check_table_name(name: &str) -> Result<(), InvalidRequest> {
    let ok = (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidRequest::TableName(name.to_owned()))
    }
}

fn check_bucket_name(name: &str) -> Result<(), InvalidRequest> {
    let bad = |why: &'static str| {
        Err(InvalidRequest::BucketName {
            name: name.to_owned(),
            why,
        })
    };
    if !(3..=63).contains(&name.len()) {
        return bad("3 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return bad("only lower-case letters, digits, `.` and `-`");
    }
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edge(name.bytes().next()) || !edge(name.bytes().last()) {
        return bad("must begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad("no `..`, `.-` or `-.`");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("must not look like an IP address");
    }
    if name.starts_with("xn--") || name.starts_with("sthree-") || name.ends_with("-s3alias") {
        return bad("reserved prefix or suffix");
    }
    Ok(())
}

/// Handles a batch of request messages.
pub async fn handle<S: Services>(ctx: &Context<S>, event: SqsEvent) -> SqsBatchResponse {
    records::each(Function::Request, event, |record| process(ctx, record)).await
}

async fn process<S: Services>(ctx: &Context<S>, record: SqsMessage) -> Result<(), Error> {
    let task_id = record.message_id.clone().unwrap_or_default();
    records::record_task(&task_id, None);
    let body = record.body.unwrap_or_default();
    let request = match validate(&body, ctx.config.max_segments) {
        Ok(r) => r,
        Err(invalid) => return reject(ctx, &task_id, &body, &invalid.to_string()).await,
    };
    let bucket = ctx
        .services
        .bucket(&request.bucket_region, &request.bucket_name);
    let bucket_error = |source| Error::Bucket {
        bucket: request.bucket_name.clone(),
        source,
    };
    let manifest_key = solace_codec::manifest_key(&request.bucket_prefix);
    let created_at = status::now_rfc3339();
    match request.action {
        Action::Restore => match bucket.get(&manifest_key).await {
            Ok(Some(manifest)) => match Manifest::from_json(&manifest) {
                Ok(m) if m.total_segments != request.total_segments => {
                    let reason = format!(
                        "total-segments is {} but the backup at {manifest_key} was made with {}",
                        request.total_segments, m.total_segments
                    );
                    return reject(ctx, &task_id, &body, &reason).await;
                }
                Ok(_) => {}
                Err(e) => {
                    let reason = format!("the backup's manifest {manifest_key} is unreadable: {e}");
                    return reject(ctx, &task_id, &body, &reason).await;
                }
            },
            Ok(None) => {
                info!("no manifest (a Solace v3 backup?): segment count not checked");
            }
            Err(e) if e.kind == ErrorKind::Permanent => {
                let reason = format!("cannot read bucket {}: {e}", request.bucket_name);
                return reject(ctx, &task_id, &body, &reason).await;
            }
            Err(e) => return Err(bucket_error(e)),
        },
        Action::Backup => {
            let manifest = Manifest {
                format: Manifest::FORMAT,
                task_id: task_id.clone(),
                total_segments: request.total_segments,
                table_region: request.table_region.clone(),
                table_name: request.table_name.clone(),
                created_at: created_at.clone(),
            };
            match bucket
                .put(&manifest_key, Bytes::from(manifest.to_json()))
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::Permanent => {
                    let reason = format!("cannot write to bucket {}: {e}", request.bucket_name);
                    return reject(ctx, &task_id, &body, &reason).await;
                }
                Err(e) => return Err(bucket_error(e)),
            }
        }
    }
    let table = ctx.config.status_table(request.action);
    let created = ctx
        .services
        .status()
        .create_task(table, &task_id, &request, &created_at)
        .await?;
    // A redelivered request fans out again: a crash may have cut the first fan-out short,
    // and a segment is counted once however many of its messages run.
    fan_out(ctx, &task_id, &request).await?;
    info!(action = request.action.as_str(), segments = request.total_segments,
          table = %request.table_name, bucket = %request.bucket_name, prefix = %request.bucket_prefix,
          redelivered = !created, "task fanned out");
    metrics::emit("request", &[("Tasks", 1.0)]);
    Ok(())
}

/// Consumes a bad request: a structured error in the log, a metric, and the request with
/// its reason on the rejected-requests queue.
async fn reject<S: Services>(
    ctx: &Context<S>,
    task_id: &str,
    body: &str,
    reason: &str,
) -> Result<(), Error> {
    error!(reason = %reason, "request rejected");
    metrics::emit("request", &[("RejectedRequests", 1.0)]);
    if ctx.config.rejected_queue_url.is_empty() {
        return Ok(());
    }
    let record = serde_json::json!({
        "task-id": task_id,
        "reason": reason,
        "request": body,
        "rejected-at": status::now_rfc3339(),
    });
    ctx.services
        .queues()
        .send(&ctx.config.rejected_queue_url, record.to_string())
        .await
        .map_err(|source| Error::Queue {
            what: "recording the rejection",
            source,
        })
}

/// Sends one message per segment, [`MAX_BATCH`] to a call, retrying failed entries.
async fn fan_out<S: Services>(
    ctx: &Context<S>,
    task_id: &str,
    request: &Request,
) -> Result<(), Error> {
    let queue = ctx.config.work_queue(request.action);
    let segments: Vec<u32> = (0..request.total_segments).collect();
    for chunk in segments.chunks(MAX_BATCH) {
        let mut pending: Vec<u32> = chunk.to_vec();
        for attempt in 0..5 {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
            }
            let bodies = pending
                .iter()
                .map(|&segment| {
                    SegmentMessage {
                        task_id: task_id.to_owned(),
                        segment,
                        request: request.clone(),
                        checkpoint: None,
                        redrives: 0,
                    }
                    .to_json()
                })
                .collect();
            let failed = ctx
                .services
                .queues()
                .send_batch(queue, bodies)
                .await
                .map_err(|source| Error::Queue {
                    what: "fanning out",
                    source,
                })?;
            pending = failed.into_iter().map(|i| pending[i]).collect();
        }
        if !pending.is_empty() {
            return Err(Error::Internal(format!(
                "fanning out: segments {pending:?} could not be sent"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_names_what_was_wrong() {
        let good = r#"{"action": "backup", "total-segments": 2, "table-region": "us-east-1",
            "table-name": "orders", "bucket-region": "eu-west-1", "bucket-name": "backups",
            "bucket-prefix": "p/"}"#;
        assert!(validate(good, 10).is_ok());
        let with = |k: &str, v: serde_json::Value| {
            let mut r: serde_json::Value = serde_json::from_str(good).expect("json");
            r[k] = v;
            r.to_string()
        };
        let cases = [
            ("{".to_owned(), "the request is not JSON"),
            ("[1]".to_owned(), "the request must be a JSON object"),
            (with("colour", "blue".into()), "unknown field `colour`"),
            (
                with("total-segments", 11.into()),
                "total-segments must be 1 to 10, got 11",
            ),
            (
                with("table-region", "mars".into()),
                "table-region \"mars\" is not an AWS region",
            ),
            (
                with("table-name", "a b".into()),
                "table-name \"a b\" is not a DynamoDB table",
            ),
            (
                with("bucket-name", "A".into()),
                "bucket-name \"A\" is not an S3 bucket name",
            ),
            (
                with("bucket-prefix", "/x".into()),
                "bucket-prefix must not start with `/`",
            ),
        ];
        for (body, reason) in cases {
            let err = validate(&body, 10).expect_err(&body).to_string();
            assert!(err.contains(reason), "{body}: {err}");
        }
    }

    #[test]
    fn region_names() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-7",
            "cn-north-1",
        ] {
            assert!(check_region("r", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us-east-01",
            "useast1",
            "us_east_1",
            "us-east-1-x-y",
            "us-east-0",
        ] {
            assert!(check_region("r", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bucket_names() {
        for ok in ["my-bucket", "a.b.c", "abc", "123bucket"] {
            assert!(check_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "My-Bucket",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
