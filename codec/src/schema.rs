//! The table's schema, as a backup keeps it: `<prefix>solace-meta/schema.json`
//! ([`crate::schema_key`], docs/schema.md).
//!
//! What DescribeTable, DescribeTimeToLive, DescribeContinuousBackups and ListTagsOfResource
//! said of the table when the backup started, kept in the shape CreateTable (and
//! UpdateTimeToLive, UpdateContinuousBackups, TagResource) take, with DynamoDB's own field
//! names, so a restore can create the table again and an operator can read it beside
//! `aws dynamodb describe-table`. What the capture could not read is named in
//! `not-captured` with the reason; the backup itself does not depend on it.
//!
//! Every field past the keys is optional, so a reader of format 1 reads any later schema
//! that only adds fields (unknown fields are ignored).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `<prefix>solace-meta/schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SchemaRecord {
    pub format: u32,
    pub task_id: String,
    pub table_region: String,
    pub table_name: String,
    pub captured_at: String,
    /// `None` when DescribeTable itself could not be read (then `not-captured` says why).
    pub table: Option<TableSchema>,
    /// Calls whose answer is missing from `table`, by operation name (`ListTagsOfResource`),
    /// each with the service's reason (access denied, say).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_captured: BTreeMap<String, String>,
}

impl SchemaRecord {
    /// The `format` this code writes.
    pub const FORMAT: u32 = 1;

    /// The object's bytes: pretty-printed JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, integers, booleans and finite floats only: serializing cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Reads the object's bytes; a `format` this code does not know is an error.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SchemaError> {
        let record: SchemaRecord =
            serde_json::from_slice(bytes).map_err(|e| SchemaError(e.to_string()))?;
        if record.format != Self::FORMAT {
            return Err(SchemaError(format!(
                "format {} is not one this version reads (it reads {})",
                record.format,
                Self::FORMAT
            )));
        }
        if let Some(table) = &record.table {
            table.check()?;
        }
        Ok(record)
    }
}

/// Why a schema is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// A table as CreateTable takes it, and its settings outside CreateTable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableSchema {
    pub key_schema: Vec<KeyElement>,
    pub attribute_definitions: Vec<AttributeDefinition>,
    /// `PROVISIONED` or `PAY_PER_REQUEST`.
    pub billing_mode: String,
    /// Present only for a provisioned table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<Throughput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand_throughput: Option<OnDemandThroughput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_throughput: Option<WarmThroughput>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub global_secondary_indexes: Vec<GlobalIndex>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_secondary_indexes: Vec<LocalIndex>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_specification: Option<StreamSpecification>,
    #[serde(
        rename = "SSESpecification",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sse_specification: Option<SseSpecification>,
    /// `STANDARD` or `STANDARD_INFREQUENT_ACCESS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_class: Option<String>,
    #[serde(default)]
    pub deletion_protection_enabled: bool,
    /// DescribeTimeToLive: `None` when not captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_live: Option<TimeToLive>,
    /// DescribeContinuousBackups: `None` when not captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time_recovery: Option<PointInTimeRecovery>,
    /// ListTagsOfResource: `None` when not captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    /// DescribeTable's counts when the backup started (about six hours stale in DynamoDB):
    /// shown, never used to create anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyElement {
    pub attribute_name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Throughput {
    pub read_capacity_units: i64,
    pub write_capacity_units: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OnDemandThroughput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_read_request_units: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_write_request_units: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WarmThroughput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_units_per_second: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_units_per_second: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Projection {
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_key_attributes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GlobalIndex {
    pub index_name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection: Projection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<Throughput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand_throughput: Option<OnDemandThroughput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_throughput: Option<WarmThroughput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LocalIndex {
    pub index_name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection: Projection,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSpecification {
    pub stream_enabled: bool,
    /// `KEYS_ONLY`, `NEW_IMAGE`, `OLD_IMAGE` or `NEW_AND_OLD_IMAGES`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_view_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SseSpecification {
    pub enabled: bool,
    /// `KMS` (a customer managed or AWS managed key) or `AES256`.
    #[serde(rename = "SSEType", default, skip_serializing_if = "Option::is_none")]
    pub sse_type: Option<String>,
    /// The key's ARN; a restore in another region cannot use it (docs/schema.md).
    #[serde(
        rename = "KMSMasterKeyId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kms_master_key_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimeToLive {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PointInTimeRecovery {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_period_in_days: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl TableSchema {
    /// The table's key: (attribute name, `HASH`/`RANGE`, attribute type), partition key first.
    pub fn key(&self) -> Vec<(String, String, String)> {
        let mut key: Vec<_> = self
            .key_schema
            .iter()
            .map(|k| {
                let ty = self
                    .attribute_definitions
                    .iter()
                    .find(|d| d.attribute_name == k.attribute_name)
                    .map_or_else(String::new, |d| d.attribute_type.clone());
                (k.attribute_name.clone(), k.key_type.clone(), ty)
            })
            .collect();
        key.sort_by_key(|(_, kind, _)| kind != "HASH");
        key
    }

    /// What CreateTable would refuse outright: no partition key, a key attribute without a
    /// definition.
    pub fn check(&self) -> Result<(), SchemaError> {
        let hash = self
            .key_schema
            .iter()
            .filter(|k| k.key_type == "HASH")
            .count();
        if hash != 1 || self.key_schema.len() > 2 {
            return Err(SchemaError(format!(
                "the key schema has {} elements and {hash} partition keys: a table has one partition key and at most one sort key",
                self.key_schema.len()
            )));
        }
        let indexed = self.key_schema.iter().chain(
            self.global_secondary_indexes
                .iter()
                .flat_map(|g| &g.key_schema)
                .chain(
                    self.local_secondary_indexes
                        .iter()
                        .flat_map(|l| &l.key_schema),
                ),
        );
        for k in indexed {
            if !self
                .attribute_definitions
                .iter()
                .any(|d| d.attribute_name == k.attribute_name)
            {
                return Err(SchemaError(format!(
                    "key attribute {:?} has no attribute definition",
                    k.attribute_name
                )));
            }
        }
        Ok(())
    }
}

/// How a restore creates its table differently from the backup's schema
/// (docs/schema.md#table-creation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// The billing mode to create with instead of the backup's.
    pub billing: Option<Billing>,
    /// Create without the global and local secondary indexes.
    pub skip_indexes: bool,
}

/// A billing mode, with the capacity a provisioned table (and each of its GSIs) gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Billing {
    OnDemand,
    Provisioned { read: i64, write: i64 },
}

impl TableSchema {
    /// The schema as CreateTable should get it under `options`: no warm throughput (see
    /// docs/schema.md#what-is-not-kept-and-why), indexes dropped when asked
    /// (with the attribute definitions only they used, which CreateTable refuses), and
    /// another billing mode with its throughput (on demand: none, and no on-demand limits
    /// carried over from a provisioned table; provisioned: the given capacity for the table
    /// and every GSI, and no on-demand limits).
    pub fn for_create(&self, options: &CreateOptions) -> TableSchema {
        let mut s = self.clone();
        // DescribeTable reports a warm throughput for every table, its defaults included,
        // and CreateTable refuses one below the new table's own: it is kept, not re-applied.
        s.warm_throughput = None;
        for g in &mut s.global_secondary_indexes {
            g.warm_throughput = None;
        }
        if options.skip_indexes {
            s.global_secondary_indexes.clear();
            s.local_secondary_indexes.clear();
            let keys: Vec<String> = s
                .key_schema
                .iter()
                .map(|k| k.attribute_name.clone())
                .collect();
            s.attribute_definitions
                .retain(|d| keys.contains(&d.attribute_name));
        }
        match options.billing {
            None => {}
            Some(Billing::OnDemand) => {
                s.billing_mode = "PAY_PER_REQUEST".into();
                s.provisioned_throughput = None;
                for g in &mut s.global_secondary_indexes {
                    g.provisioned_throughput = None;
                }
            }
            Some(Billing::Provisioned { read, write }) => {
                let t = Throughput {
                    read_capacity_units: read,
                    write_capacity_units: write,
                };
                s.billing_mode = "PROVISIONED".into();
                s.provisioned_throughput = Some(t);
                s.on_demand_throughput = None;
                for g in &mut s.global_secondary_indexes {
                    g.provisioned_throughput = Some(t);
                    g.on_demand_throughput = None;
                }
            }
        }
        s
    }
}

/// How a table's key differs from a backup's, as one line naming both; `None` when they are
/// the same (names, roles and types).
pub fn key_difference(backup: &TableSchema, table: &TableSchema) -> Option<String> {
    let show = |key: &[(String, String, String)]| {
        key.iter()
            .map(|(name, kind, ty)| format!("{name} {kind} {ty}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (ours, theirs) = (backup.key(), table.key());
    (ours != theirs).then(|| {
        format!(
            "the table's key is ({}), the backup's is ({})",
            show(&theirs),
            show(&ours)
        )
    })
}

/// What differs between a table and the backup's schema besides the key (indexes, TTL),
/// one line each: reported, not refused.
pub fn other_differences(backup: &TableSchema, table: &TableSchema) -> Vec<String> {
    let mut out = Vec::new();
    let names = |s: &TableSchema| -> Vec<String> {
        let mut n: Vec<String> = s
            .global_secondary_indexes
            .iter()
            .map(|g| g.index_name.clone())
            .collect();
        n.sort();
        n
    };
    let (ours, theirs) = (names(backup), names(table));
    if ours != theirs {
        out.push(format!(
            "global secondary indexes differ: the backup's table had [{}], this one has [{}]",
            ours.join(", "),
            theirs.join(", ")
        ));
    }
    let ttl = |s: &TableSchema| {
        s.time_to_live
            .as_ref()
            .filter(|t| t.enabled)
            .and_then(|t| t.attribute_name.clone())
    };
    if backup.time_to_live.is_some() && table.time_to_live.is_some() && ttl(backup) != ttl(table) {
        out.push(format!(
            "time to live differs: the backup's table had {}, this one has {}",
            ttl(backup).map_or("none".to_owned(), |a| format!("attribute {a:?}")),
            ttl(table).map_or("none".to_owned(), |a| format!("attribute {a:?}"))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> TableSchema {
        TableSchema {
            key_schema: vec![
                KeyElement {
                    attribute_name: "sk".into(),
                    key_type: "RANGE".into(),
                },
                KeyElement {
                    attribute_name: "pk".into(),
                    key_type: "HASH".into(),
                },
            ],
            attribute_definitions: vec![
                AttributeDefinition {
                    attribute_name: "pk".into(),
                    attribute_type: "S".into(),
                },
                AttributeDefinition {
                    attribute_name: "sk".into(),
                    attribute_type: "N".into(),
                },
            ],
            billing_mode: "PAY_PER_REQUEST".into(),
            time_to_live: Some(TimeToLive {
                enabled: true,
                attribute_name: Some("expires".into()),
            }),
            ..TableSchema::default()
        }
    }

    #[test]
    fn a_record_round_trips_in_dynamodb_s_field_names() {
        let record = SchemaRecord {
            format: SchemaRecord::FORMAT,
            task_id: "t".into(),
            table_region: "us-east-1".into(),
            table_name: "orders".into(),
            captured_at: "2026-12-01T00:00:00Z".into(),
            table: Some(schema()),
            not_captured: BTreeMap::from([("ListTagsOfResource".into(), "denied".into())]),
        };
        let json = record.to_json();
        let value: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(value["table"]["KeySchema"][1]["KeyType"], "HASH");
        assert_eq!(value["table"]["BillingMode"], "PAY_PER_REQUEST");
        assert_eq!(value["table"]["TimeToLive"]["AttributeName"], "expires");
        assert!(value["table"].get("ProvisionedThroughput").is_none());
        assert_eq!(value["not-captured"]["ListTagsOfResource"], "denied");
        assert_eq!(SchemaRecord::from_json(&json), Ok(record));
    }

    #[test]
    fn an_unknown_format_or_an_impossible_key_is_refused() {
        let mut record = SchemaRecord {
            format: 2,
            task_id: "t".into(),
            table_region: "r".into(),
            table_name: "n".into(),
            captured_at: "c".into(),
            table: Some(schema()),
            not_captured: BTreeMap::new(),
        };
        let err = SchemaRecord::from_json(&record.to_json()).expect_err("format 2");
        assert!(err.0.contains("format 2"), "{err}");
        record.format = 1;
        let table = record.table.as_mut().expect("a table");
        table.attribute_definitions.pop();
        let err = SchemaRecord::from_json(&record.to_json()).expect_err("no definition");
        assert!(err.0.contains("\"sk\""), "{err}");
        record.table.as_mut().expect("a table").key_schema.clear();
        assert!(SchemaRecord::from_json(&record.to_json()).is_err());
        record.table = None;
        assert_eq!(
            SchemaRecord::from_json(&record.to_json()).map(|r| r.table),
            Ok(None),
            "a record of a schema that could not be read"
        );
        assert!(SchemaRecord::from_json(b"{}").is_err());
    }

    #[test]
    fn keys_compare_by_name_role_and_type_and_other_differences_are_listed() {
        let backup = schema();
        let mut table = schema();
        table.key_schema.reverse();
        assert_eq!(
            key_difference(&backup, &table),
            None,
            "order is not a difference"
        );
        table.attribute_definitions[1].attribute_type = "S".into();
        let diff = key_difference(&backup, &table).expect("differs");
        assert_eq!(
            diff,
            "the table's key is (pk HASH S, sk RANGE S), the backup's is (pk HASH S, sk RANGE N)"
        );
        table.time_to_live = Some(TimeToLive {
            enabled: false,
            attribute_name: None,
        });
        table.global_secondary_indexes.push(GlobalIndex {
            index_name: "by-date".into(),
            key_schema: vec![],
            projection: Projection {
                projection_type: "KEYS_ONLY".into(),
                non_key_attributes: vec![],
            },
            provisioned_throughput: None,
            on_demand_throughput: None,
            warm_throughput: None,
        });
        let other = other_differences(&backup, &table);
        assert_eq!(other.len(), 2, "{other:?}");
        assert!(other[0].contains("[by-date]"), "{other:?}");
        assert!(other[1].contains("attribute \"expires\""), "{other:?}");
    }

    #[test]
    fn creation_options_change_billing_and_drop_indexes_with_their_attributes() {
        let mut backup = schema();
        backup.attribute_definitions.push(AttributeDefinition {
            attribute_name: "email".into(),
            attribute_type: "S".into(),
        });
        backup.global_secondary_indexes.push(GlobalIndex {
            index_name: "by-email".into(),
            key_schema: vec![KeyElement {
                attribute_name: "email".into(),
                key_type: "HASH".into(),
            }],
            projection: Projection {
                projection_type: "ALL".into(),
                non_key_attributes: vec![],
            },
            provisioned_throughput: None,
            on_demand_throughput: Some(OnDemandThroughput {
                max_read_request_units: Some(100),
                max_write_request_units: None,
            }),
            warm_throughput: None,
        });
        assert_eq!(backup.for_create(&CreateOptions::default()), backup);
        let provisioned = backup.for_create(&CreateOptions {
            billing: Some(Billing::Provisioned { read: 5, write: 2 }),
            skip_indexes: false,
        });
        assert_eq!(provisioned.billing_mode, "PROVISIONED");
        let t = provisioned.provisioned_throughput.expect("throughput");
        assert_eq!((t.read_capacity_units, t.write_capacity_units), (5, 2));
        let g = &provisioned.global_secondary_indexes[0];
        assert_eq!(g.provisioned_throughput, Some(t));
        assert_eq!(g.on_demand_throughput, None);
        provisioned.check().expect("valid");
        let back = provisioned.for_create(&CreateOptions {
            billing: Some(Billing::OnDemand),
            skip_indexes: true,
        });
        assert_eq!(back.billing_mode, "PAY_PER_REQUEST");
        assert!(back.provisioned_throughput.is_none());
        assert!(back.global_secondary_indexes.is_empty());
        let defined: Vec<&str> = back
            .attribute_definitions
            .iter()
            .map(|d| d.attribute_name.as_str())
            .collect();
        assert_eq!(defined, ["pk", "sk"], "the index's attribute goes with it");
        back.check().expect("valid");
    }
}
