//! The messages: the operator's request (docs/request.md#fields) and the per-segment work
//! messages (docs/messages.md#segment-message).

use serde::{Deserialize, Serialize};
use solace_pipeline::{BackupCheckpoint, RestoreCheckpoint};

/// `backup` or `restore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Backup,
    Restore,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Backup => "backup",
            Action::Restore => "restore",
        }
    }
}

/// A validated request, with its fields under their request names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Request {
    pub action: Action,
    pub total_segments: u32,
    pub table_region: String,
    pub table_name: String,
    pub bucket_region: String,
    pub bucket_name: String,
    pub bucket_prefix: String,
}

/// Where a segment continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Checkpoint {
    Backup(BackupCheckpoint),
    Restore(RestoreCheckpoint),
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
