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
//! | schema (reserved) | [`schema_key`]: `<prefix>solace-meta/schema.json` | not yet written | |
//! | completion (reserved) | [`completion_key`]: `<prefix>solace-meta/complete.json` | not yet written | |
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

/// Reserved for the backup's table schema (key schema, indexes), so a restore can create
/// the table. Not yet written: nothing reads or writes this key today.
pub fn schema_key(prefix: &str) -> String {
    format!("{}{META_FOLDER}schema.json", normalized_prefix(prefix))
}

/// Reserved for the record that a whole backup is complete (every segment marker written).
/// Not yet written: nothing reads or writes this key today.
pub fn completion_key(prefix: &str) -> String {
    format!("{}{META_FOLDER}complete.json", normalized_prefix(prefix))
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SegmentMarker {
    pub batches: u64,
    pub items: u64,
    /// Uncompressed JSON bytes of the segment's batches.
    pub bytes: u64,
}

impl SegmentMarker {
    /// The object's bytes: compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Integers only: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the object's bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        assert_eq!(
            Manifest::from_json(&manifest.to_json()).ok(),
            Some(manifest)
        );
        let marker = SegmentMarker {
            batches: 2,
            items: 5,
            bytes: 100,
        };
        assert_eq!(
            SegmentMarker::from_json(&marker.to_json()).ok(),
            Some(marker)
        );
        assert!(SegmentMarker::from_json(b"{\"batches\":1}").is_err());
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
