//! The backup chain's fence in the status table (docs/protocol.md#fencing): one item per
//! segment of a task, beside the task's own item, holding how many batches are committed,
//! the checkpoint after them, the run that committed the last one, and the proposals of the
//! step being decided. Every write is a conditional update, so however many runs of a
//! segment are alive, each step is committed once.
//!
//! The item's key is `<task-id>#0x<segment>`; its attributes are `kind` (`segment`),
//! `step`, `winner`, `checkpoint` and one `checkpoint-proposal-0x<step>-<sha256>` per
//! proposal. Checkpoints carry scan keys, so they live only in attributes named for them.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use solace_codec::SegmentId;
use solace_pipeline::{BackupCheckpoint, ErrorKind, Fence, StoreError};

use crate::status::segment_item_key;

fn proposal_attr(step: u64, sha256: &str) -> String {
    format!("checkpoint-proposal-0x{step:x}-{sha256}")
}

/// The step of a proposal attribute's name.
fn proposal_step(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("checkpoint-proposal-0x")?;
    let (hex, _) = rest.split_once('-')?;
    u64::from_str_radix(hex, 16).ok()
}

/// One run's handle on a segment's chain, in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoFence {
    client: Client,
    table: String,
    key: String,
    run: String,
}

impl DynamoFence {
    /// The fence of `task_id`'s `segment` in status table `table`, for the run `run`.
    pub fn new(client: Client, table: &str, task_id: &str, segment: SegmentId, run: &str) -> Self {
        DynamoFence {
            client,
            table: table.to_owned(),
            key: segment_item_key(task_id, segment),
            run: run.to_owned(),
        }
    }

    fn error<E, R>(
        &self,
        operation: &'static str,
        e: &aws_sdk_dynamodb::error::SdkError<E, R>,
    ) -> StoreError
    where
        E: std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        use aws_sdk_dynamodb::error::SdkError;
        let kind = match e {
            SdkError::ServiceError(_) => {
                let text = format!("{e:?}");
                if text.contains("Throttl")
                    || text.contains("ProvisionedThroughput")
                    || text.contains("InternalServerError")
                    || text.contains("RequestLimitExceeded")
                {
                    ErrorKind::Throttled
                } else {
                    ErrorKind::Permanent
                }
            }
            _ => ErrorKind::Transient,
        };
        StoreError::new(
            kind,
            operation,
            format!(
                "status table {}: {}",
                self.table,
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            ),
        )
    }

    async fn read(&self) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("task-id", AttributeValue::S(self.key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(|e| self.error("GetItem", &e))
    }
}

fn step_of(item: &HashMap<String, AttributeValue>) -> u64 {
    match item.get("step") {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

fn checkpoint_of(value: Option<&AttributeValue>) -> Result<Option<BackupCheckpoint>, StoreError> {
    match value {
        Some(AttributeValue::S(json)) => serde_json::from_str(json).map(Some).map_err(|e| {
            StoreError::new(
                ErrorKind::Permanent,
                "GetItem",
                format!("a fence checkpoint is unreadable: {e}"),
            )
        }),
        _ => Ok(None),
    }
}

fn condition_failed<E: std::fmt::Debug, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool {
    matches!(e, aws_sdk_dynamodb::error::SdkError::ServiceError(se) if format!("{:?}", se.err()).contains("ConditionalCheckFailed"))
}

impl Fence for DynamoFence {
    async fn propose(
        &self,
        step: u64,
        sha256: &str,
        next: &BackupCheckpoint,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(next)
            .map_err(|e| StoreError::new(ErrorKind::Permanent, "UpdateItem", e.to_string()))?;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("task-id", AttributeValue::S(self.key.clone()))
            .condition_expression("attribute_not_exists(#step) OR #step <= :k")
            .update_expression("SET #p = :next, #kind = :segment")
            .expression_attribute_names("#step", "step")
            .expression_attribute_names("#p", proposal_attr(step, sha256))
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":k", AttributeValue::N(step.to_string()))
            .expression_attribute_values(":next", AttributeValue::S(json))
            .expression_attribute_values(":segment", AttributeValue::S("segment".into()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(self.error("UpdateItem", &e)),
        }
    }

    async fn commit(&self, step: u64, sha256: &str) -> Result<bool, StoreError> {
        let attr = proposal_attr(step, sha256);
        let item = self.read().await?.unwrap_or_default();

        let committed = step_of(&item);
        if committed > step {
            // Decided already: by this run (a commit whose reply was lost) or another.
            return Ok(committed == step + 1
                && matches!(item.get("winner"), Some(AttributeValue::S(w)) if *w == self.run));
        }
        let Some(proposal) = item.get(&attr).cloned() else {
            return Err(StoreError::new(
                ErrorKind::Permanent,
                "UpdateItem",
                format!("no proposal for batch 0x{step:x} with the stored body's checksum"),
            ));
        };
        // The decided step's proposals go with the commit (each holds a scan key), and
        // so do any left from earlier steps; one made after the read stays until the next.
        let stale: Vec<String> = item
            .keys()
            .filter(|k| *k != &attr && proposal_step(k).is_some_and(|s| s <= step))
            .cloned()
            .collect();
        let mut removed = vec!["#p".to_owned()];
        removed.extend((0..stale.len()).map(|i| format!("#stale{i}")));
        let condition = if step == 0 {
            "attribute_not_exists(#step) AND #p = :next"
        } else {
            "#step = :k AND #p = :next"
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("task-id", AttributeValue::S(self.key.clone()))
            .condition_expression(condition)
            .update_expression(format!(
                "SET #step = :k1, #cp = :next, #winner = :run REMOVE {}",
                removed.join(", ")
            ))
            .expression_attribute_names("#step", "step")
            .expression_attribute_names("#p", attr)
            .expression_attribute_names("#cp", "checkpoint")
            .expression_attribute_names("#winner", "winner")
            .expression_attribute_values(":k1", AttributeValue::N((step + 1).to_string()))
            .expression_attribute_values(":next", proposal)
            .expression_attribute_values(":run", AttributeValue::S(self.run.clone()));
        if step > 0 {
            update = update.expression_attribute_values(":k", AttributeValue::N(step.to_string()));
        }
        for (i, name) in stale.into_iter().enumerate() {
            update = update.expression_attribute_names(format!("#stale{i}"), name);
        }
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => {
                // Another commit came first, or this one's reply was lost: the item says.
                let item = self.read().await?.unwrap_or_default();
                Ok(step_of(&item) == step + 1
                    && matches!(item.get("winner"), Some(AttributeValue::S(w)) if *w == self.run))
            }
            Err(e) => Err(self.error("UpdateItem", &e)),
        }
    }

    async fn position(&self) -> Result<Option<BackupCheckpoint>, StoreError> {
        match self.read().await? {
            Some(item) if step_of(&item) > 0 => checkpoint_of(item.get("checkpoint")),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposal_names_carry_their_step() {
        let name = proposal_attr(0x1a, "ab12");
        assert_eq!(name, "checkpoint-proposal-0x1a-ab12");
        assert_eq!(proposal_step(&name), Some(0x1a));
        assert_eq!(proposal_step("checkpoint"), None);
        assert_eq!(proposal_step("checkpoint-proposal-0xzz-ab"), None);
    }
}
