//! The messages: the operator's request (docs/request.md#fields) and the per-segment work
//! messages (docs/messages.md#segment-message).

use serde::{Deserialize, Serialize};
use solace_pipeline::export_backup::ExportCheckpoint;
use solace_pipeline::{BackupCheckpoint, RestoreCheckpoint, Retention, RetentionMode};

/// What a task does: `backup`, `restore`, or `verify` (re-read and check every batch of a
/// backup, writing no table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Backup,
    Restore,
    Verify,
    /// Write a copy of a Solace backup in the DynamoDB Export layout (docs/export.md#convert).
    Convert,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Backup => "backup",
            Action::Restore => "restore",
            Action::Verify => "verify",
            Action::Convert => "convert",
        }
    }
}

/// The fields of a convert request: a backup's place and where its export copy goes (the
/// same bucket region), no table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConvertFields {
    pub action: Action,
    pub total_segments: u32,
    pub bucket_region: String,
    pub bucket_name: String,
    pub bucket_prefix: String,
    pub to_bucket_name: String,
    pub to_bucket_prefix: String,
}

impl From<ConvertFields> for Request {
    fn from(c: ConvertFields) -> Self {
        Request {
            to_bucket_name: Some(c.to_bucket_name),
            to_bucket_prefix: Some(c.to_bucket_prefix),
            ..Request::from(VerifyFields {
                action: c.action,
                total_segments: c.total_segments,
                bucket_region: c.bucket_region,
                bucket_name: c.bucket_name,
                bucket_prefix: c.bucket_prefix,
            })
        }
    }
}

/// The fields of a verify request: a backup's place, no table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VerifyFields {
    pub action: Action,
    pub total_segments: u32,
    pub bucket_region: String,
    pub bucket_name: String,
    pub bucket_prefix: String,
}

impl From<VerifyFields> for Request {
    fn from(v: VerifyFields) -> Self {
        Request {
            action: v.action,
            total_segments: v.total_segments,
            table_region: String::new(),
            table_name: String::new(),
            bucket_region: v.bucket_region,
            bucket_name: v.bucket_name,
            bucket_prefix: v.bucket_prefix,
            allow_non_empty_table: false,
            allow_incomplete_backup: false,
            retention_mode: None,
            retention_days: None,
            create_table: false,
            create_table_billing_mode: None,
            create_table_read_capacity: None,
            create_table_write_capacity: None,
            create_table_skip_indexes: false,
            method: None,
            to_bucket_name: None,
            to_bucket_prefix: None,
        }
    }
}

/// A validated request, with its fields under their request names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Request {
    pub action: Action,
    pub total_segments: u32,
    /// Empty for a verify.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table_region: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table_name: String,
    pub bucket_region: String,
    pub bucket_name: String,
    pub bucket_prefix: String,
    /// Restore only: restore into a table that already holds items (refused otherwise).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_non_empty_table: bool,
    /// Restore only: restore what a backup committed although it never completed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_incomplete_backup: bool,
    /// Backup only: the Object Lock mode of every object it writes (with `retention-days`).
    /// The request function fills in the deployment's default when the request names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_mode: Option<RetentionMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Restore only: create the destination from the backup's schema when it does not exist
    /// (docs/schema.md#table-creation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_table: bool,
    /// With `create-table`: the created table's billing mode instead of the backup's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_table_billing_mode: Option<BillingMode>,
    /// With `create-table-billing-mode` `PROVISIONED`: the capacity of the table and of each
    /// of its global secondary indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_table_read_capacity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_table_write_capacity: Option<u32>,
    /// With `create-table`: create it without the backup's secondary indexes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_table_skip_indexes: bool,
    /// Backup only: how the table is read (absent: `scan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Convert only: where the export copy goes (in `bucket-region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_bucket_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_bucket_prefix: Option<String>,
}

/// How a backup reads its table (docs/export.md#backup-by-export).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Parallel Scan into Solace batches: any table, read capacity consumed.
    Scan,
    /// A DynamoDB point-in-time export: the table needs PITR; no read capacity consumed.
    Export,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Scan => "scan",
            Method::Export => "export",
        }
    }
}

/// The billing modes a restore may create its table with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BillingMode {
    #[serde(rename = "PAY_PER_REQUEST")]
    PayPerRequest,
    #[serde(rename = "PROVISIONED")]
    Provisioned,
}

impl Request {
    /// How a restore with `create-table` creates its table (validated: a provisioned mode
    /// has both capacities).
    pub fn create_options(&self) -> solace_codec::schema::CreateOptions {
        use solace_codec::schema::Billing;
        solace_codec::schema::CreateOptions {
            billing: match self.create_table_billing_mode {
                None => None,
                Some(BillingMode::PayPerRequest) => Some(Billing::OnDemand),
                Some(BillingMode::Provisioned) => Some(Billing::Provisioned {
                    read: i64::from(self.create_table_read_capacity.unwrap_or(1)),
                    write: i64::from(self.create_table_write_capacity.unwrap_or(1)),
                }),
            },
            skip_indexes: self.create_table_skip_indexes,
        }
    }

    /// A convert's export folder (docs/export.md#convert): `(bucket, prefix)`, the prefix
    /// `<to-bucket-prefix>AWSDynamoDB/<task-id>/`. `None` for any other action.
    pub fn convert_folder(&self, task_id: &str) -> Option<(&str, String)> {
        let bucket = self.to_bucket_name.as_deref()?;
        let prefix = solace_codec::normalized_prefix(self.to_bucket_prefix.as_deref()?);
        Some((bucket, format!("{prefix}AWSDynamoDB/{task_id}/")))
    }

    /// Whether this is a backup by DynamoDB export.
    pub fn by_export(&self) -> bool {
        self.method == Some(Method::Export)
    }

    /// The retention the request asks for, when it names both halves.
    pub fn retention(&self) -> Option<Retention> {
        Some(Retention {
            mode: self.retention_mode?,
            days: self.retention_days?,
        })
    }
}

/// Where a segment continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Checkpoint {
    Backup(BackupCheckpoint),
    Restore(RestoreCheckpoint),
    /// A backup by export waiting for its export.
    Export(ExportCheckpoint),
    /// A convert: the next batch to write as a data file.
    Convert(RestoreCheckpoint),
}

/// One segment's work: sent by the request function, continued by the worker before its
/// deadline, re-routed by the redrive function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SegmentMessage {
    pub task_id: String,
    pub segment: u32,
    #[serde(flatten)]
    pub request: Request,
    /// `None` for the first message of a segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// Times the redrive function has re-routed this segment.
    #[serde(default)]
    pub redrives: u32,
}

impl SegmentMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
