//! Every object a backup holds under its prefix: the names, the keys and the bytes of
//! Solace's own objects, in one place (docs/layout.md).
//!
//! `<prefix>0x<segment>/0x<batch>`: lower-case hex, `0x` prefix, no padding. The prefix is
//! used as given when it is empty or ends in `/`; otherwise a `/` goes between it and the
//! segment.
//!
//! | object | key | written | bytes |
//! |---|---|---|---|
//! | batch | [`batch_key`]: `<prefix>0x<segment>/0x<batch>` | by the backup, per batch | a zlib stream of a JSON array of items ([`crate::batch`]) |
//! | manifest | [`manifest_key`]: `<prefix>solace-meta/manifest.json` | when a backup is requested | [`Manifest::to_json`]: pretty JSON |
//! | segment marker | [`segment_marker_key`]: `<prefix>solace-meta/segments/0x<segment>.json` | when a segment's backup is complete | [`SegmentMarker::to_json`]: compact JSON |
//! | schema | [`schema_key`]: `<prefix>solace-meta/schema.json` | the request function, after the manifest | docs/schema.md |
//! | completion record | [`completion_key`]: `<prefix>solace-meta/complete.json` | when the task's last segment is counted | [`Completion::to_json`]: pretty JSON |
//!
//! Writers and readers of these objects go through this module, so the format has one
//! owner; `tests/layout.rs` pins the bytes to the committed fixture in
//! `tests/fixtures/layout/`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A segment of a parallel scan: `0 <= id < total-segments`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub u32);

/// A batch within a segment, numbered from 0 without gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(pub u64);

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Why a name or an object key is not one this project writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("key {key:?} does not start with the prefix {prefix:?}")]
    WrongPrefix { key: String, prefix: String },
    #[error("key {key:?} is not of the form <prefix>0x<segment>/0x<batch>")]
    Shape { key: String },
    #[error("{name:?} is not a 0x-prefixed lower-case hex number without padding")]
    BadHex { name: String },
    #[error("{name:?} is too large for a {what} id")]
    Overflow { name: String, what: &'static str },
}

/// Parses a `0x…` name: lower-case hex digits, no leading zeros (except `0x0` itself).
fn parse_hex(name: &str, what: &'static str) -> Result<u64, NameError> {
    let bad = || NameError::BadHex {
        name: name.to_owned(),
    };
    let digits = name.strip_prefix("0x").ok_or_else(bad)?;
    let well_formed = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && (digits == "0" || !digits.starts_with('0'));
    if !well_formed {
        return Err(bad());
    }
    u64::from_str_radix(digits, 16).map_err(|_| NameError::Overflow {
        name: name.to_owned(),
        what,
    })
}

impl SegmentId {
    /// Parses a segment folder name such as `0x1a`.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let n = parse_hex(name, "segment")?;
        u32::try_from(n)
            .map(SegmentId)
            .map_err(|_| NameError::Overflow {
                name: name.to_owned(),
                what: "segment",
            })
    }
}

impl BatchId {
    /// Parses a batch object name such as `0x0`.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        parse_hex(name, "batch").map(BatchId)
    }

    /// The batch after this one.
    pub fn next(self) -> Self {
        BatchId(self.0 + 1)
    }
}

/// The prefix with its separator: `""` and `"a/"` stay, `"a"` becomes `"a/"`.
pub fn normalized_prefix(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

/// The folder of one segment: `<prefix>0x<segment>/`.
pub fn segment_prefix(prefix: &str, segment: SegmentId) -> String {
    format!("{}{segment}/", normalized_prefix(prefix))
}

/// The object key of one batch: `<prefix>0x<segment>/0x<batch>`.
pub fn batch_key(prefix: &str, segment: SegmentId, batch: BatchId) -> String {
    format!("{}{segment}/{batch}", normalized_prefix(prefix))
}

/// The folder of Solace's own objects under a prefix. Its name cannot be taken for a
/// segment folder (`0x…`), so backups stay readable by anything that only knows the batch layout (docs/layout.md#object-keys).
pub const META_FOLDER: &str = "solace-meta/";

/// Written when a segment's backup is complete: how many batches and items it holds.
pub fn segment_marker_key(prefix: &str, segment: SegmentId) -> String {
    format!(
        "{}{META_FOLDER}segments/{segment}.json",
        normalized_prefix(prefix)
    )
}

/// The backup's manifest: what request made it (total segments, table, time).
pub fn manifest_key(prefix: &str) -> String {
    format!("{}{META_FOLDER}manifest.json", normalized_prefix(prefix))
}

/// The table's schema when the backup started ([`crate::schema::SchemaRecord`]), so a
/// restore can create the table and check an existing one's key (docs/schema.md).
pub fn schema_key(prefix: &str) -> String {
    format!("{}{META_FOLDER}schema.json", normalized_prefix(prefix))
}

/// A backup by export's record of its export ([`crate::export::ExportRecord`]).
pub fn export_record_key(prefix: &str) -> String {
    format!("{}{META_FOLDER}export.json", normalized_prefix(prefix))
}

/// The record that a whole backup ended ([`Completion`]): written once its last segment is
/// counted; a backup is complete only when it exists and says no segment failed.
pub fn completion_key(prefix: &str) -> String {
    format!("{}{META_FOLDER}complete.json", normalized_prefix(prefix))
}

/// The completion record, [`completion_key`]: how the backup ended, written once its last
/// segment is counted (docs/protocol.md#completion-record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Completion {
    pub format: u32,
    pub task_id: String,
    pub table_region: String,
    pub table_name: String,
    pub total_segments: u64,
    pub completed_segments: u64,
    pub failed_segments: u64,
    pub items: u64,
    pub bytes: u64,
    /// The reasons of at most 100 of the failed segments, by segment name (`0x5`);
    /// `failed-segments` is the count, and the status table's segment items hold each reason.
    #[serde(default)]
    pub failed: std::collections::BTreeMap<String, String>,
    pub completed_at: String,
}

impl Completion {
    pub const FORMAT: u32 = 1;

    /// Pretty JSON, like the manifest.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The backup's manifest, [`manifest_key`]: what request made it. Written when the backup
/// is requested; a restore checks its segment count against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Manifest {
    pub format: u32,
    pub task_id: String,
    pub total_segments: u32,
    pub table_region: String,
    pub table_name: String,
    pub created_at: String,
    /// How the backup reads the table: absent for a scan (Solace's batches), `export` for a
    /// backup by DynamoDB export (docs/export.md#backup-by-export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl Manifest {
    /// The `format` this code writes.
    pub const FORMAT: u32 = 1;

    /// The object's bytes: pretty-printed JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings and integers only: serializing cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Reads the object's bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Written as [`segment_marker_key`] when a backup segment is complete. Restore reads exactly
/// `batches` batches when it is there, so a batch left over from an earlier attempt is never
/// restored, and a missing one is an error.
///
/// Format 1 (no `format` field) has the three totals only. Format 2 adds `batch-list`: one
/// [`BatchEntry`] per batch, in order, which a restore checks each batch against before it
/// writes any of its items (docs/protocol.md#what-a-restore-checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SegmentMarker {
    /// [`SegmentMarker::FORMAT_V1`] when the object has no `format` (and then it is not
    /// written, so a v1 marker keeps its bytes).
    #[serde(default = "format_v1", skip_serializing_if = "is_format_v1")]
    pub format: u32,
    pub batches: u64,
    pub items: u64,
    /// Uncompressed JSON bytes of the segment's batches.
    pub bytes: u64,
    /// Format 2 and later: each batch, `0x0` to `batches - 1`; empty in format 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch_list: Vec<BatchEntry>,
}

/// One batch of a format-2 [`SegmentMarker`]: what its object must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BatchEntry {
    /// The batch number (its key is [`batch_key`] of it).
    pub batch: u64,
    pub items: u64,
    /// Uncompressed JSON bytes.
    pub bytes: u64,
    /// Bytes of the stored (compressed) body.
    pub stored_bytes: u64,
    /// SHA-256 of the stored body, lower-case hex (64 digits).
    pub sha256: String,
}

fn format_v1() -> u32 {
    SegmentMarker::FORMAT_V1
}

fn is_format_v1(format: &u32) -> bool {
    *format == SegmentMarker::FORMAT_V1
}

impl SegmentMarker {
    /// Totals only: what Solace wrote before per-batch checks.
    pub const FORMAT_V1: u32 = 1;
    /// The `format` this code writes: totals and a [`BatchEntry`] per batch.
    pub const FORMAT: u32 = 2;

    /// A format-1 marker.
    pub fn v1(batches: u64, items: u64, bytes: u64) -> Self {
        SegmentMarker {
            format: Self::FORMAT_V1,
            batches,
            items,
            bytes,
            batch_list: Vec::new(),
        }
    }

    /// A format-2 marker of `batches` (numbered `0x0` up, in order); the totals are their
    /// sums.
    pub fn v2(batches: Vec<BatchEntry>) -> Self {
        SegmentMarker {
            format: Self::FORMAT,
            batches: batches.len() as u64,
            items: batches.iter().map(|b| b.items).sum(),
            bytes: batches.iter().map(|b| b.bytes).sum(),
            batch_list: batches,
        }
    }

    /// What batch `n` must hold, when the marker says (format 2 and later).
    pub fn entry(&self, n: u64) -> Option<&BatchEntry> {
        if self.format < Self::FORMAT {
            return None;
        }
        self.batch_list.get(usize::try_from(n).ok()?)
    }

    /// The object's bytes: compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Integers and hex strings only: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the object's bytes. A format-2 marker whose batch list does not match its
    /// totals (a count, a number out of order, a sum, a checksum that is not 64 lower-case
    /// hex digits) is an error: a restore cannot check batches against it.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let marker: Self = serde_json::from_slice(bytes)?;
        marker
            .check()
            .map_err(<serde_json::Error as serde::de::Error>::custom)?;
        Ok(marker)
    }

    fn check(&self) -> Result<(), String> {
        if self.format < Self::FORMAT {
            return Ok(());
        }
        if self.batch_list.len() as u64 != self.batches {
            return Err(format!(
                "the batch list has {} entries for {} batches",
                self.batch_list.len(),
                self.batches
            ));
        }
        for (n, entry) in self.batch_list.iter().enumerate() {
            if entry.batch != n as u64 {
                return Err(format!(
                    "entry {n} of the batch list is batch {}",
                    entry.batch
                ));
            }
            let hex = entry.sha256.len() == 64
                && entry
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                return Err(format!(
                    "batch {n} has a malformed sha256 {:?}",
                    entry.sha256
                ));
            }
        }
        let items: u64 = self.batch_list.iter().map(|b| b.items).sum();
        let bytes: u64 = self.batch_list.iter().map(|b| b.bytes).sum();
        if items != self.items || bytes != self.bytes {
            return Err(format!(
                "the batch list sums to {items} items and {bytes} bytes, the totals say {} and {}",
                self.items, self.bytes
            ));
        }
        Ok(())
    }
}

/// Parses an object key written by [`batch_key`] with the same prefix.
pub fn parse_batch_key(prefix: &str, key: &str) -> Result<(SegmentId, BatchId), NameError> {
    let prefix = normalized_prefix(prefix);
    let rest = key
        .strip_prefix(prefix.as_str())
        .ok_or_else(|| NameError::WrongPrefix {
            key: key.to_owned(),
            prefix: prefix.clone(),
        })?;
    let (segment, batch) = rest.split_once('/').ok_or_else(|| NameError::Shape {
        key: key.to_owned(),
    })?;
    if batch.contains('/') {
        return Err(NameError::Shape {
            key: key.to_owned(),
        });
    }
    Ok((SegmentId::parse(segment)?, BatchId::parse(batch)?))
}

/// What an object under a backup is, by its key alone ([`backup_object`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupObject {
    Batch(SegmentId, BatchId),
    Manifest,
    SegmentMarker(SegmentId),
    Completion,
    Schema,
    ExportRecord,
}

/// The backup a key belongs to and what it is there: the backup's prefix as
/// [`normalized_prefix`] writes it (`""` or ending in `/`), or `None` for a key this layout
/// does not write. Listings group a bucket's keys into backups with it.
pub fn backup_object(key: &str) -> Option<(&str, BackupObject)> {
    if let Some((root, name)) = key.rsplit_once(META_FOLDER) {
        let what = match name {
            "manifest.json" => BackupObject::Manifest,
            "complete.json" => BackupObject::Completion,
            "schema.json" => BackupObject::Schema,
            "export.json" => BackupObject::ExportRecord,
            _ => {
                let segment = name.strip_prefix("segments/")?.strip_suffix(".json")?;
                BackupObject::SegmentMarker(SegmentId::parse(segment).ok()?)
            }
        };
        let root_ok = root.is_empty() || root.ends_with('/');
        return root_ok.then_some((root, what));
    }
    let (rest, batch) = key.rsplit_once('/')?;
    let (root, segment) = match rest.rsplit_once('/') {
        Some((root, segment)) => (&key[..root.len() + 1], segment),
        None => ("", rest),
    };
    let segment = SegmentId::parse(segment).ok()?;
    let batch = BatchId::parse(batch).ok()?;
    Some((root, BackupObject::Batch(segment, batch)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_grouped_by_their_backup() {
        for prefix in ["", "p/", "a/b/"] {
            let s = SegmentId(0x1a);
            for (key, what) in [
                (
                    batch_key(prefix, s, BatchId(3)),
                    BackupObject::Batch(s, BatchId(3)),
                ),
                (manifest_key(prefix), BackupObject::Manifest),
                (completion_key(prefix), BackupObject::Completion),
                (schema_key(prefix), BackupObject::Schema),
                (
                    segment_marker_key(prefix, s),
                    BackupObject::SegmentMarker(s),
                ),
            ] {
                assert_eq!(backup_object(&key), Some((prefix, what)), "{key}");
            }
        }
        for other in [
            "p/notes.txt",
            "p/0x1/readme",
            "p/0x01/0x0",
            "p/solace-meta/other.json",
            "x/solace-meta/segments/0xg.json",
        ] {
            assert_eq!(backup_object(other), None, "{other}");
        }
    }

    #[test]
    fn names_are_lower_case_hex_without_padding() {
        assert_eq!(SegmentId(0).to_string(), "0x0");
        assert_eq!(BatchId(26).to_string(), "0x1a");
        assert_eq!(SegmentId(255).to_string(), "0xff");
    }

    #[test]
    fn prefix_gets_a_slash_only_when_it_lacks_one() {
        assert_eq!(batch_key("", SegmentId(0), BatchId(0)), "0x0/0x0");
        assert_eq!(
            batch_key("t/ts/", SegmentId(1), BatchId(26)),
            "t/ts/0x1/0x1a"
        );
        assert_eq!(
            batch_key("t/ts", SegmentId(1), BatchId(26)),
            "t/ts/0x1/0x1a"
        );
        assert_eq!(segment_prefix("p", SegmentId(10)), "p/0xa/");
    }

    #[test]
    fn solace_objects_cannot_be_taken_for_batches() {
        for prefix in ["", "p/"] {
            for key in [
                segment_marker_key(prefix, SegmentId(3)),
                manifest_key(prefix),
                schema_key(prefix),
                completion_key(prefix),
            ] {
                assert!(parse_batch_key(prefix, &key).is_err(), "{key}");
            }
        }
        assert_eq!(
            segment_marker_key("p", SegmentId(26)),
            "p/solace-meta/segments/0x1a.json"
        );
    }

    #[test]
    fn reserved_keys_are_in_the_meta_folder() {
        assert_eq!(schema_key(""), "solace-meta/schema.json");
        assert_eq!(schema_key("a/b"), "a/b/solace-meta/schema.json");
        assert_eq!(completion_key("p/"), "p/solace-meta/complete.json");
        assert_eq!(completion_key("p"), "p/solace-meta/complete.json");
        assert_eq!(export_record_key("p"), "p/solace-meta/export.json");
        assert_eq!(
            backup_object("p/solace-meta/export.json"),
            Some(("p/", BackupObject::ExportRecord))
        );
    }

    #[test]
    fn meta_objects_read_back_what_they_write() {
        let manifest = Manifest {
            format: Manifest::FORMAT,
            task_id: "t".into(),
            total_segments: 3,
            table_region: "us-east-1".into(),
            table_name: "x".into(),
            created_at: "2024-01-01T00:00:00Z".into(),
            method: None,
        };
        assert_eq!(
            Manifest::from_json(&manifest.to_json()).ok(),
            Some(manifest)
        );
        let marker = SegmentMarker::v1(2, 5, 100);
        assert_eq!(
            SegmentMarker::from_json(&marker.to_json()).ok(),
            Some(marker)
        );
        assert!(SegmentMarker::from_json(b"{\"batches\":1}").is_err());
        let entry = |batch, items| BatchEntry {
            batch,
            items,
            bytes: 10 * items,
            stored_bytes: 7,
            sha256: "0".repeat(64),
        };
        let v2 = SegmentMarker::v2(vec![entry(0, 2), entry(1, 3)]);
        assert_eq!((v2.batches, v2.items, v2.bytes), (2, 5, 50));
        assert_eq!(
            SegmentMarker::from_json(&v2.to_json()).ok(),
            Some(v2.clone())
        );
        assert_eq!(v2.entry(1), Some(&entry(1, 3)));
        assert_eq!(SegmentMarker::v1(2, 5, 50).entry(1), None);
    }

    #[test]
    fn a_v2_marker_whose_batch_list_disagrees_is_unreadable() {
        let entry = |batch| BatchEntry {
            batch,
            items: 1,
            bytes: 1,
            stored_bytes: 1,
            sha256: "a".repeat(64),
        };
        let good = SegmentMarker::v2(vec![entry(0), entry(1)]);
        let broken = [
            SegmentMarker {
                batches: 3,
                ..good.clone()
            },
            SegmentMarker {
                items: 3,
                ..good.clone()
            },
            SegmentMarker {
                batch_list: vec![entry(0), entry(2)],
                ..good.clone()
            },
            SegmentMarker {
                batch_list: vec![
                    entry(0),
                    BatchEntry {
                        sha256: "A".repeat(64),
                        ..entry(1)
                    },
                ],
                ..good.clone()
            },
        ];
        for marker in broken {
            assert!(
                SegmentMarker::from_json(&marker.to_json()).is_err(),
                "{marker:?}"
            );
        }
    }

    #[test]
    fn keys_parse_back() {
        for prefix in ["", "a/", "a", "a/b/c/"] {
            let key = batch_key(prefix, SegmentId(999), BatchId(0xdead_beef));
            assert_eq!(
                parse_batch_key(prefix, &key),
                Ok((SegmentId(999), BatchId(0xdead_beef)))
            );
        }
    }

    #[test]
    fn malformed_keys_are_typed_errors() {
        assert!(matches!(
            parse_batch_key("a/", "b/0x0/0x0"),
            Err(NameError::WrongPrefix { .. })
        ));
        assert!(matches!(
            parse_batch_key("", "0x0"),
            Err(NameError::Shape { .. })
        ));
        assert!(matches!(
            parse_batch_key("", "0x0/0x0/0x0"),
            Err(NameError::Shape { .. })
        ));
        for bad in ["0x", "0X1", "0x01", "0xA", "1", "0x1g", "", "0x-1"] {
            assert!(
                matches!(
                    parse_batch_key("", &format!("0x0/{bad}")),
                    Err(NameError::BadHex { .. })
                ),
                "{bad:?} should be rejected"
            );
        }
        assert!(matches!(
            SegmentId::parse("0x100000000"),
            Err(NameError::Overflow { .. })
        ));
        assert!(matches!(
            BatchId::parse("0x10000000000000000"),
            Err(NameError::Overflow { .. })
        ));
    }
}
