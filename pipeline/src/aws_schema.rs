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

use crate::aws_error::classify;
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
        status: t.table_status().map(|s| s.as_str().to_owned()),
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

/// A builder's error (a required field missing): the schema was not one CreateTable takes.
fn invalid(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::new(
        crate::store::ErrorKind::Permanent,
        "CreateTable",
        format!("the schema is not one CreateTable takes: {e}"),
    )
}

/// Creates table `name` from `schema` (already shaped by `TableSchema::for_create`), its tags
/// included. `Ok(false)`: a table of that name exists already (made by an earlier delivery
/// of this request, or by someone else: the caller checks its key either way).
pub async fn create(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    schema: &TableSchema,
) -> Result<bool, StoreError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition as SdkAttribute, GlobalSecondaryIndex, KeyType, LocalSecondaryIndex,
        OnDemandThroughput as SdkOnDemandThroughput, ProjectionType, ProvisionedThroughput,
        ScalarAttributeType, SseSpecification as SdkSse, SseType, StreamSpecification as SdkStream,
        StreamViewType, TableClass, Tag as SdkTag, WarmThroughput as SdkWarm,
    };
    let key_schema = |keys: &[KeyElement]| {
        keys.iter()
            .map(|k| {
                KeySchemaElement::builder()
                    .attribute_name(&k.attribute_name)
                    .key_type(KeyType::from(k.key_type.as_str()))
                    .build()
                    .map_err(invalid)
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let throughput = |t: &Option<Throughput>| {
        t.map(|t| {
            ProvisionedThroughput::builder()
                .read_capacity_units(t.read_capacity_units)
                .write_capacity_units(t.write_capacity_units)
                .build()
                .map_err(invalid)
        })
        .transpose()
    };
    let on_demand = |o: &Option<OnDemandThroughput>| {
        o.map(|o| {
            SdkOnDemandThroughput::builder()
                .set_max_read_request_units(o.max_read_request_units)
                .set_max_write_request_units(o.max_write_request_units)
                .build()
        })
    };
    let warm = |w: &Option<WarmThroughput>| {
        w.map(|w| {
            SdkWarm::builder()
                .set_read_units_per_second(w.read_units_per_second)
                .set_write_units_per_second(w.write_units_per_second)
                .build()
        })
    };
    let projection = |p: &Projection| {
        SdkProjection::builder()
            .projection_type(ProjectionType::from(p.projection_type.as_str()))
            .set_non_key_attributes(
                (!p.non_key_attributes.is_empty()).then(|| p.non_key_attributes.clone()),
            )
            .build()
    };
    let mut gsis = Vec::new();
    for g in &schema.global_secondary_indexes {
        gsis.push(
            GlobalSecondaryIndex::builder()
                .index_name(&g.index_name)
                .set_key_schema(Some(key_schema(&g.key_schema)?))
                .projection(projection(&g.projection))
                .set_provisioned_throughput(throughput(&g.provisioned_throughput)?)
                .set_on_demand_throughput(on_demand(&g.on_demand_throughput))
                .set_warm_throughput(warm(&g.warm_throughput))
                .build()
                .map_err(invalid)?,
        );
    }
    let mut lsis = Vec::new();
    for l in &schema.local_secondary_indexes {
        lsis.push(
            LocalSecondaryIndex::builder()
                .index_name(&l.index_name)
                .set_key_schema(Some(key_schema(&l.key_schema)?))
                .projection(projection(&l.projection))
                .build()
                .map_err(invalid)?,
        );
    }
    let attributes = schema
        .attribute_definitions
        .iter()
        .map(|d| {
            SdkAttribute::builder()
                .attribute_name(&d.attribute_name)
                .attribute_type(ScalarAttributeType::from(d.attribute_type.as_str()))
                .build()
                .map_err(invalid)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stream = schema
        .stream_specification
        .as_ref()
        .map(|s| {
            SdkStream::builder()
                .stream_enabled(s.stream_enabled)
                .set_stream_view_type(s.stream_view_type.as_deref().map(StreamViewType::from))
                .build()
                .map_err(invalid)
        })
        .transpose()?;
    let sse = schema.sse_specification.as_ref().map(|s| {
        SdkSse::builder()
            .enabled(s.enabled)
            .set_sse_type(s.sse_type.as_deref().map(SseType::from))
            .set_kms_master_key_id(s.kms_master_key_id.clone())
            .build()
    });
    let tags = schema
        .tags
        .iter()
        .flatten()
        .map(|t| {
            SdkTag::builder()
                .key(&t.key)
                .value(&t.value)
                .build()
                .map_err(invalid)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let created = client
        .create_table()
        .table_name(name)
        .set_key_schema(Some(key_schema(&schema.key_schema)?))
        .set_attribute_definitions(Some(attributes))
        .billing_mode(BillingMode::from(schema.billing_mode.as_str()))
        .set_provisioned_throughput(throughput(&schema.provisioned_throughput)?)
        .set_on_demand_throughput(on_demand(&schema.on_demand_throughput))
        .set_warm_throughput(warm(&schema.warm_throughput))
        .set_global_secondary_indexes((!gsis.is_empty()).then_some(gsis))
        .set_local_secondary_indexes((!lsis.is_empty()).then_some(lsis))
        .set_stream_specification(stream)
        .set_sse_specification(sse)
        .set_table_class(schema.table_class.as_deref().map(TableClass::from))
        .deletion_protection_enabled(schema.deletion_protection_enabled)
        .set_tags((!tags.is_empty()).then_some(tags))
        .send()
        .await;
    match created {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(classify("CreateTable", e)),
    }
}

/// Turns on the time to live and point-in-time recovery `schema` has and `current` (the
/// table as it is) has not. Returns what could not be set, one line each.
pub async fn apply_settings(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    schema: &TableSchema,
    current: &TableSchema,
) -> Result<Vec<String>, StoreError> {
    use aws_sdk_dynamodb::types::{PointInTimeRecoverySpecification, TimeToLiveSpecification};
    let mut not_set = Vec::new();
    let wanted_ttl = schema
        .time_to_live
        .as_ref()
        .filter(|t| t.enabled)
        .and_then(|t| t.attribute_name.clone());
    let has_ttl = current.time_to_live.as_ref().is_some_and(|t| t.enabled);
    if let (Some(attribute), false) = (wanted_ttl, has_ttl) {
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(attribute)
            .build()
            .map_err(invalid)?;
        if let Err(e) = client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            let e = classify("UpdateTimeToLive", e);
            if e.is_retryable() {
                return Err(e);
            }
            not_set.push(format!("time to live ({}: {})", e.operation, e.message));
        }
    }
    let wanted_pitr = schema.point_in_time_recovery.as_ref().filter(|p| p.enabled);
    let has_pitr = current
        .point_in_time_recovery
        .as_ref()
        .is_some_and(|p| p.enabled);
    if let (Some(pitr), false) = (wanted_pitr, has_pitr) {
        let spec = PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(true)
            .set_recovery_period_in_days(pitr.recovery_period_in_days)
            .build()
            .map_err(invalid)?;
        if let Err(e) = client
            .update_continuous_backups()
            .table_name(name)
            .point_in_time_recovery_specification(spec)
            .send()
            .await
        {
            let e = classify("UpdateContinuousBackups", e);
            if e.is_retryable() {
                return Err(e);
            }
            not_set.push(format!(
                "point-in-time recovery ({}: {})",
                e.operation, e.message
            ));
        }
    }
    Ok(not_set)
}

/// ExportTableToPointInTime of table `name` into `bucket` at `s3_prefix`, DynamoDB JSON, as
/// of now; the ClientToken makes a repeated call (a lost reply, a redelivery) return the same
/// export. Returns its ARN.
pub async fn start_export(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    bucket: &str,
    s3_prefix: &str,
    client_token: &str,
) -> Result<String, StoreError> {
    use aws_sdk_dynamodb::types::ExportFormat;
    // The export names its table by ARN.
    let table_arn = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|e| classify("DescribeTable", e))?
        .table
        .and_then(|t| t.table_arn)
        .ok_or_else(|| {
            StoreError::new(
                crate::store::ErrorKind::Permanent,
                "DescribeTable",
                "the answer holds no table ARN",
            )
        })?;
    let out = client
        .export_table_to_point_in_time()
        .table_arn(table_arn)
        .s3_bucket(bucket)
        .s3_prefix(s3_prefix)
        .export_format(ExportFormat::DynamodbJson)
        .client_token(client_token)
        .send()
        .await
        .map_err(|e| classify("ExportTableToPointInTime", e))?;
    out.export_description
        .and_then(|d| d.export_arn)
        .ok_or_else(|| {
            StoreError::new(
                crate::store::ErrorKind::Permanent,
                "ExportTableToPointInTime",
                "the answer holds no export ARN",
            )
        })
}

/// DescribeExport: where export `arn` stands.
pub async fn describe_export(
    client: &aws_sdk_dynamodb::Client,
    arn: &str,
) -> Result<crate::store::ExportState, StoreError> {
    use aws_sdk_dynamodb::types::ExportStatus;

    use crate::store::ExportState;
    let d = client
        .describe_export()
        .export_arn(arn)
        .send()
        .await
        .map_err(|e| classify("DescribeExport", e))?
        .export_description
        .ok_or_else(|| {
            StoreError::new(
                crate::store::ErrorKind::Permanent,
                "DescribeExport",
                "the answer holds no export",
            )
        })?;
    Ok(match d.export_status {
        Some(ExportStatus::Completed) => ExportState::Completed {
            item_count: d.item_count.unwrap_or(0).max(0) as u64,
            billed_size_bytes: d.billed_size_bytes.unwrap_or(0).max(0) as u64,
            manifest_summary_key: d.export_manifest.filter(|k| !k.is_empty()),
        },
        Some(ExportStatus::Failed) => ExportState::Failed(format!(
            "{}: {}",
            d.failure_code.as_deref().unwrap_or("no failure code"),
            d.failure_message.as_deref().unwrap_or("no failure message")
        )),
        _ => ExportState::InProgress,
    })
}
