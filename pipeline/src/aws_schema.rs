//! A DynamoDB table's schema read into [`TableSchema`] (docs/schema.md): DescribeTable,
//! DescribeTimeToLive, DescribeContinuousBackups and ListTagsOfResource, sanitised into what
//! CreateTable and the update calls take.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    BillingMode, KeySchemaElement, OnDemandThroughput as SdkOnDemand, PointInTimeRecoveryStatus,
    Projection as SdkProjection, SseStatus, TimeToLiveStatus,
};
use solace_codec::schema::{
    AttributeDefinition, GlobalIndex, KeyElement, LocalIndex, OnDemandThroughput,
    PointInTimeRecovery, Projection, SseSpecification, StreamSpecification, TableSchema, Tag,
    Throughput, TimeToLive, WarmThroughput,
};

use crate::aws::classify;
use crate::store::{Described, StoreError};

/// Reads the table's schema. DescribeTable must answer (its error is the result); each of the
/// other three calls that fails is named in [`Described::not_captured`] and its part left
/// `None`, unless its error is one a retry may fix, which is the result too.
pub async fn describe(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<Described, StoreError> {
    let out = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|e| classify("DescribeTable", e))?;
    let Some(t) = out.table else {
        return Err(StoreError::new(
            crate::store::ErrorKind::Permanent,
            "DescribeTable",
            "the answer holds no table",
        ));
    };
    let provisioned = t
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .is_none_or(|m| *m == BillingMode::Provisioned);
    let throughput = |read: Option<i64>, write: Option<i64>| {
        provisioned.then(|| Throughput {
            read_capacity_units: read.unwrap_or(1).max(1),
            write_capacity_units: write.unwrap_or(1).max(1),
        })
    };
    let mut schema = TableSchema {
        key_schema: keys(t.key_schema()),
        attribute_definitions: t
            .attribute_definitions()
            .iter()
            .map(|d| AttributeDefinition {
                attribute_name: d.attribute_name().to_owned(),
                attribute_type: d.attribute_type().as_str().to_owned(),
            })
            .collect(),
        billing_mode: if provisioned {
            "PROVISIONED"
        } else {
            "PAY_PER_REQUEST"
        }
        .to_owned(),
        provisioned_throughput: t
            .provisioned_throughput()
            .and_then(|p| throughput(p.read_capacity_units(), p.write_capacity_units())),
        on_demand_throughput: on_demand(t.on_demand_throughput(), provisioned),
        warm_throughput: t
            .warm_throughput()
            .and_then(|w| warm(w.read_units_per_second(), w.write_units_per_second())),
        global_secondary_indexes: t
            .global_secondary_indexes()
            .iter()
            .map(|g| GlobalIndex {
                index_name: g.index_name().unwrap_or_default().to_owned(),
                key_schema: keys(g.key_schema()),
                projection: projection(g.projection()),
                provisioned_throughput: g
                    .provisioned_throughput()
                    .and_then(|p| throughput(p.read_capacity_units(), p.write_capacity_units())),
                on_demand_throughput: on_demand(g.on_demand_throughput(), provisioned),
                warm_throughput: g
                    .warm_throughput()
                    .and_then(|w| warm(w.read_units_per_second(), w.write_units_per_second())),
            })
            .collect(),
        local_secondary_indexes: t
            .local_secondary_indexes()
            .iter()
            .map(|l| LocalIndex {
                index_name: l.index_name().unwrap_or_default().to_owned(),
                key_schema: keys(l.key_schema()),
                projection: projection(l.projection()),
            })
            .collect(),
        stream_specification: t
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .map(|s| StreamSpecification {
                stream_enabled: true,
                stream_view_type: s.stream_view_type().map(|v| v.as_str().to_owned()),
            }),
        // No description, or one that is not enabled: the AWS owned key, CreateTable's
        // default, which needs no specification.
        sse_specification: t
            .sse_description()
            .filter(|s| {
                matches!(
                    s.status(),
                    Some(SseStatus::Enabled | SseStatus::Enabling | SseStatus::Updating)
                )
            })
            .map(|s| SseSpecification {
                enabled: true,
                sse_type: s.sse_type().map(|t| t.as_str().to_owned()),
                kms_master_key_id: s.kms_master_key_arn().map(str::to_owned),
            }),
        table_class: t
            .table_class_summary()
            .and_then(|c| c.table_class())
            .map(|c| c.as_str().to_owned()),
        deletion_protection_enabled: t.deletion_protection_enabled().unwrap_or(false),
        time_to_live: None,
        point_in_time_recovery: None,
        tags: None,
        item_count: t.item_count(),
        table_size_bytes: t.table_size_bytes(),
        table_arn: t.table_arn().map(str::to_owned),
    };
    let mut not_captured = BTreeMap::new();
    match client.describe_time_to_live().table_name(name).send().await {
        Ok(out) => {
            schema.time_to_live = Some(match out.time_to_live_description() {
                Some(d) => TimeToLive {
                    enabled: matches!(
                        d.time_to_live_status(),
                        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                    ),
                    attribute_name: d.attribute_name().map(str::to_owned),
                },
                None => TimeToLive {
                    enabled: false,
                    attribute_name: None,
                },
            });
        }
        Err(e) => optional(&mut not_captured, classify("DescribeTimeToLive", e))?,
    }
    match client
        .describe_continuous_backups()
        .table_name(name)
        .send()
        .await
    {
        Ok(out) => {
            let pitr = out
                .continuous_backups_description()
                .and_then(|c| c.point_in_time_recovery_description());
            schema.point_in_time_recovery = Some(PointInTimeRecovery {
                enabled: pitr.and_then(|p| p.point_in_time_recovery_status())
                    == Some(&PointInTimeRecoveryStatus::Enabled),
                recovery_period_in_days: pitr.and_then(|p| p.recovery_period_in_days()),
            });
        }
        Err(e) => optional(&mut not_captured, classify("DescribeContinuousBackups", e))?,
    }
    if let Some(arn) = schema.table_arn.clone() {
        match tags(client, &arn).await {
            Ok(tags) => schema.tags = Some(tags),
            Err(e) => optional(&mut not_captured, e)?,
        }
    } else {
        not_captured.insert(
            "ListTagsOfResource".to_owned(),
            "DescribeTable gave no table ARN".to_owned(),
        );
    }
    Ok(Described {
        schema,
        not_captured,
    })
}

/// A permanent failure of an optional call is recorded; any other is the caller's to retry.
fn optional(not_captured: &mut BTreeMap<String, String>, e: StoreError) -> Result<(), StoreError> {
    if e.is_retryable() {
        return Err(e);
    }
    not_captured.insert(e.operation.to_owned(), e.message);
    Ok(())
}

async fn tags(client: &aws_sdk_dynamodb::Client, arn: &str) -> Result<Vec<Tag>, StoreError> {
    let mut tags = Vec::new();
    let mut next = None;
    loop {
        let out = client
            .list_tags_of_resource()
            .resource_arn(arn)
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| classify("ListTagsOfResource", e))?;
        tags.extend(out.tags().iter().map(|t| Tag {
            key: t.key().to_owned(),
            value: t.value().to_owned(),
        }));
        match out.next_token {
            Some(token) if !token.is_empty() => next = Some(token),
            _ => return Ok(tags),
        }
    }
}

fn keys(keys: &[KeySchemaElement]) -> Vec<KeyElement> {
    keys.iter()
        .map(|k| KeyElement {
            attribute_name: k.attribute_name().to_owned(),
            key_type: k.key_type().as_str().to_owned(),
        })
        .collect()
}

fn projection(p: Option<&SdkProjection>) -> Projection {
    Projection {
        projection_type: p
            .and_then(|p| p.projection_type())
            .map_or("ALL", |t| t.as_str())
            .to_owned(),
        non_key_attributes: p
            .map(|p| p.non_key_attributes().to_vec())
            .unwrap_or_default(),
    }
}

/// On-demand limits, kept only for an on-demand table and only when one is set (DynamoDB
/// says -1 for "no limit").
fn on_demand(o: Option<&SdkOnDemand>, provisioned: bool) -> Option<OnDemandThroughput> {
    let set = |v: Option<i64>| v.filter(|v| *v > 0);
    let o = o.filter(|_| !provisioned)?;
    let limits = OnDemandThroughput {
        max_read_request_units: set(o.max_read_request_units()),
        max_write_request_units: set(o.max_write_request_units()),
    };
    (limits.max_read_request_units.is_some() || limits.max_write_request_units.is_some())
        .then_some(limits)
}

fn warm(read: Option<i64>, write: Option<i64>) -> Option<WarmThroughput> {
    let set = |v: Option<i64>| v.filter(|v| *v > 0);
    let w = WarmThroughput {
        read_units_per_second: set(read),
        write_units_per_second: set(write),
    };
    (w.read_units_per_second.is_some() || w.write_units_per_second.is_some()).then_some(w)
}
