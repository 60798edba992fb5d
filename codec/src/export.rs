//! DynamoDB's own Export to S3 layout, read (docs/export.md): the manifests an export writes
//! under `AWSDynamoDB/<export-id>/` and its gzip data files of `{"Item": …}` lines in
//! DynamoDB JSON.
//!
//! - `manifest-summary.json`: one JSON object ([`ExportSummary`]): the export's format, type,
//!   table, time and item count.
//! - `manifest-files.json`: JSON lines, one per data file ([`ExportFile`]): its key, item count
//!   and the MD5 of its stored bytes (base64).
//! - `data/<name>.json.gz`: gzip of lines `{"Item":{…}}`, one item each ([`ExportDecoder`]).
//!
//! The data-file reader is capped like the batch decoder: a file that inflates past the cap is
//! an error, not an allocation, so a gzip bomb cannot take the process down.

use std::io::Read as _;
use std::ops::Range;

use base64::Engine as _;
use md5::Digest as _;
use serde::{Deserialize, Serialize};

use crate::batch::{RawItem, RawItemError, build_item, scan_item, utf8};
use crate::parse::Build;

/// `manifest-summary.json`. Fields this reader does not use are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportSummary {
    pub version: String,
    #[serde(default)]
    pub export_arn: Option<String>,
    #[serde(default)]
    pub table_arn: Option<String>,
    #[serde(default)]
    pub export_time: Option<String>,
    /// `DYNAMODB_JSON` or `ION`.
    pub output_format: String,
    /// `FULL_EXPORT` (absent in exports made before incremental ones existed) or
    /// `INCREMENTAL_EXPORT`.
    #[serde(default)]
    pub export_type: Option<String>,
    #[serde(default)]
    pub item_count: Option<u64>,
    /// Where `manifest-files.json` is, as a key of the export's bucket.
    #[serde(default)]
    pub manifest_files_s3_key: Option<String>,
}

/// Why an export cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("{what} is not what DynamoDB writes: {why}")]
    Manifest { what: &'static str, why: String },
    #[error("the export is in {0} format; only DYNAMODB_JSON exports can be restored")]
    Format(String),
    #[error(
        "the export is an incremental export; only a full export (FULL_EXPORT) can be restored"
    )]
    Incremental,
    #[error("bad gzip data: {0}")]
    Gzip(String),
    #[error("the data file inflates to more than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("line {line}: bad JSON at offset {offset}: {message}")]
    Json {
        line: usize,
        offset: usize,
        message: String,
    },
    #[error("line {line}: {error}")]
    Item { line: usize, error: RawItemError },
}

impl ExportSummary {
    /// Reads `manifest-summary.json` and checks the export is one this reader restores: a
    /// full export in DynamoDB JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ExportError> {
        let summary: ExportSummary =
            serde_json::from_slice(bytes).map_err(|e| ExportError::Manifest {
                what: "manifest-summary.json",
                why: crate::batch::describe(&e),
            })?;
        if summary.output_format != "DYNAMODB_JSON" {
            return Err(ExportError::Format(summary.output_format));
        }
        if summary.export_type.as_deref() == Some("INCREMENTAL_EXPORT") {
            return Err(ExportError::Incremental);
        }
        Ok(summary)
    }
}

/// One line of `manifest-files.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportFile {
    pub item_count: u64,
    /// Base64 of the MD5 of the stored (compressed) file.
    pub md5_checksum: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    pub data_file_s3_key: String,
}

/// Reads `manifest-files.json`: one [`ExportFile`] per non-empty line, sorted by key so that
/// every reader splits them across segments the same way ([`segment_files`]).
pub fn parse_manifest_files(bytes: &[u8]) -> Result<Vec<ExportFile>, ExportError> {
    let mut files = Vec::new();
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let file: ExportFile = serde_json::from_slice(line).map_err(|e| ExportError::Manifest {
            what: "manifest-files.json",
            why: format!("line {}: {}", n + 1, crate::batch::describe(&e)),
        })?;
        files.push(file);
    }
    files.sort_by(|a, b| a.data_file_s3_key.cmp(&b.data_file_s3_key));
    Ok(files)
}

/// The files of segment `segment` of `total`: every `total`-th file from the `segment`-th, of
/// files sorted by key (so a segment's share does not depend on listing order).
pub fn segment_files<T>(files: &[T], segment: u32, total: u32) -> impl Iterator<Item = &T> {
    files
        .iter()
        .skip(segment as usize)
        .step_by(total.max(1) as usize)
}

/// Base64 of the MD5 of `body`: what `manifest-files.json`'s `md5Checksum` holds.
pub fn md5_base64(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body))
}

impl ExportFile {
    /// The entry of a data file written as `key`: its item count and MD5, as an export's
    /// `manifest-files.json` holds them (the ETag is S3's, and left out).
    pub fn of(key: &str, body: &[u8], item_count: u64) -> Self {
        ExportFile {
            item_count,
            md5_checksum: md5_base64(body),
            etag: None,
            data_file_s3_key: key.to_owned(),
        }
    }

    /// The entry as one line of `manifest-files.json` (without its newline).
    pub fn to_json_line(&self) -> String {
        // Strings and an integer only: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The `manifest-summary.json` of an export Solace writes (a convert, docs/export.md#convert):
/// a full DYNAMODB_JSON export of `item_count` items whose `manifest-files.json` is at
/// `manifest_files_key` in `bucket`, as of `export_time`.
pub fn summary_json(
    export_time: &str,
    item_count: u64,
    bucket: &str,
    folder: &str,
    manifest_files_key: &str,
) -> Vec<u8> {
    let summary = serde_json::json!({
        "version": "2020-06-30",
        "exportTime": export_time,
        "s3Bucket": bucket,
        "s3Prefix": folder,
        "manifestFilesS3Key": manifest_files_key,
        "itemCount": item_count,
        "outputFormat": "DYNAMODB_JSON",
        "exportType": "FULL_EXPORT",
    });
    serde_json::to_vec_pretty(&summary).unwrap_or_default()
}

/// `<prefix>solace-meta/export.json`: a backup made by a DynamoDB export (`"method":
/// "export"`, docs/export.md#backup-by-export). Written once the export has completed and
/// before the completion record; it names the export and its data files, so every restore
/// of the backup reads the same files in the same order whatever a listing would say later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExportRecord {
    pub format: u32,
    pub task_id: String,
    pub export_arn: String,
    /// The export's folder in the bucket (`…/AWSDynamoDB/<export-id>/`).
    pub export_prefix: String,
    /// The items and bytes DynamoDB says it exported.
    pub item_count: u64,
    pub billed_size_bytes: u64,
    /// Whether each file below carries its `manifest-files.json` entry (item count, MD5);
    /// `false` when the export wrote no manifest and its files were found by listing.
    pub verified: bool,
    /// The data files, sorted by key.
    pub files: Vec<RecordedFile>,
}

/// A data file of an [`ExportRecord`]: its key, and its manifest entry when there was one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RecordedFile {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5_checksum: Option<String>,
}

impl RecordedFile {
    /// The file as a restore reads it: its key, and what to check it against.
    pub fn expected(&self) -> (String, Option<ExportFile>) {
        let entry = match (self.item_count, &self.md5_checksum) {
            (Some(item_count), Some(md5)) => Some(ExportFile {
                item_count,
                md5_checksum: md5.clone(),
                etag: None,
                data_file_s3_key: self.key.clone(),
            }),
            _ => None,
        };
        (self.key.clone(), entry)
    }
}

impl From<&ExportFile> for RecordedFile {
    fn from(f: &ExportFile) -> Self {
        RecordedFile {
            key: f.data_file_s3_key.clone(),
            item_count: Some(f.item_count),
            md5_checksum: Some(f.md5_checksum.clone()),
        }
    }
}

impl ExportRecord {
    /// The `format` this code writes.
    pub const FORMAT: u32 = 1;

    pub fn to_json(&self) -> Vec<u8> {
        // Strings, integers and a list of them: serializing cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ExportError> {
        let record: ExportRecord =
            serde_json::from_slice(bytes).map_err(|e| ExportError::Manifest {
                what: "solace-meta/export.json",
                why: crate::batch::describe(&e),
            })?;
        if record.format != Self::FORMAT {
            return Err(ExportError::Manifest {
                what: "solace-meta/export.json",
                why: format!(
                    "format {} is not one this code reads ({})",
                    record.format,
                    Self::FORMAT
                ),
            });
        }
        Ok(record)
    }
}

/// The `S3Prefix` a backup by export asks DynamoDB to write under: `<prefix>solace-export`.
/// DynamoDB puts the export in `<S3Prefix>/AWSDynamoDB/<export-id>/`.
pub fn export_s3_prefix(prefix: &str) -> String {
    format!("{}solace-export", crate::normalized_prefix(prefix))
}

/// The distinct export folders (`…/AWSDynamoDB/<id>/`) that `keys` lie in, sorted.
pub fn export_folders<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    const MARK: &str = "AWSDynamoDB/";
    let mut folders: Vec<String> = keys
        .into_iter()
        .filter_map(|k| {
            let at = k.rfind(MARK)? + MARK.len();
            let id_len = k[at..].find('/')?;
            Some(k[..at + id_len + 1].to_owned())
        })
        .collect();
    folders.sort();
    folders.dedup();
    folders
}

/// A data file as an export writes it: gzip of one `{"Item":…}` line per item.
pub fn data_file<'a>(items: impl IntoIterator<Item = RawItem<'a>>) -> Vec<u8> {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for item in items {
        // Writing into memory cannot fail.
        let _ = gz.write_all(b"{\"Item\":");
        let _ = gz.write_all(item.as_bytes());
        let _ = gz.write_all(b"}\n");
    }
    gz.finish().unwrap_or_default()
}

/// Decodes data files, reusing its buffers from one file to the next.
#[derive(Debug)]
pub struct ExportDecoder {
    max_inflated: usize,
    json: Vec<u8>,
    ranges: Vec<Range<usize>>,
}

/// One decoded data file: its items, each checked.
#[derive(Debug)]
pub struct DecodedFile<'a> {
    json: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> DecodedFile<'a> {
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Bytes of item JSON (the lines' `Item` values).
    pub fn json_bytes(&self) -> usize {
        self.ranges.iter().map(|r| r.len()).sum()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = RawItem<'a>> + 'a {
        let json = self.json;
        self.ranges
            .iter()
            .map(move |r| RawItem::checked(&json[r.clone()]))
    }
}

impl ExportDecoder {
    /// A decoder that refuses any file inflating past `max_inflated` bytes.
    pub fn new(max_inflated: usize) -> Self {
        ExportDecoder {
            max_inflated,
            json: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// Inflates `body` (gzip, one or more members; a body that is not gzip is read as the
    /// uncompressed lines, as ImportTable's `NONE` compression) and checks every line.
    pub fn decode(&mut self, body: &[u8]) -> Result<DecodedFile<'_>, ExportError> {
        self.inflate(body)?;
        self.ranges.clear();
        split_lines(&self.json, &mut self.ranges, scan_item)?;
        Ok(DecodedFile {
            json: &self.json,
            ranges: &self.ranges,
        })
    }

    /// `body`'s lines into the buffer, within the cap.
    fn inflate(&mut self, body: &[u8]) -> Result<(), ExportError> {
        self.json.clear();
        if body.starts_with(&[0x1f, 0x8b]) {
            let limit = self.max_inflated;
            let mut reader = flate2::bufread::MultiGzDecoder::new(body).take(limit as u64 + 1);
            reader
                .read_to_end(&mut self.json)
                .map_err(|e| ExportError::Gzip(e.to_string()))?;
            if self.json.len() > limit {
                return Err(ExportError::TooLarge { limit });
            }
        } else {
            if body.len() > self.max_inflated {
                return Err(ExportError::TooLarge {
                    limit: self.max_inflated,
                });
            }
            self.json.extend_from_slice(body);
        }
        Ok(())
    }

    /// [`ExportDecoder::decode`], reading each item into `B` as it is checked (one pass, as
    /// [`crate::BatchDecoder::decode_into`]). `items` is cleared first.
    pub fn decode_into<B, M>(
        &mut self,
        body: &[u8],
        items: &mut Vec<M>,
    ) -> Result<DecodedFile<'_>, ExportError>
    where
        B: for<'x> Build<'x, Map = M>,
    {
        items.clear();
        self.inflate(body)?;
        self.ranges.clear();
        split_lines(&self.json, &mut self.ranges, |text, start| {
            let (end, map) = build_item::<B>(text, start)?;
            items.push(map);
            Ok(end)
        })?;
        Ok(DecodedFile {
            json: &self.json,
            ranges: &self.ranges,
        })
    }
}

/// Each line `{"Item": <item>}` (white space allowed around tokens, blank lines skipped): the
/// item's range.
fn split_lines<'a>(
    json: &'a [u8],
    ranges: &mut Vec<Range<usize>>,
    mut item: impl FnMut(&'a str, usize) -> Result<usize, RawItemError>,
) -> Result<(), ExportError> {
    let text = utf8(json).map_err(|(offset, message)| ExportError::Json {
        line: 1 + json[..offset].iter().filter(|b| **b == b'\n').count(),
        offset,
        message,
    })?;
    let mut start = 0;
    for (n, line) in json.split(|b| *b == b'\n').enumerate() {
        let end = start + line.len();
        let bad = |offset: usize, message: &str| ExportError::Json {
            line: n + 1,
            offset,
            message: message.to_owned(),
        };
        // White space within the line only: a newline ends it.
        let ws = |mut i: usize| {
            while i < end && matches!(json[i], b' ' | b'\t' | b'\r') {
                i += 1;
            }
            i
        };
        let mut i = ws(start);
        if i < end {
            if json[i] != b'{' {
                return Err(bad(i, "a line must be an object {\"Item\": …}"));
            }
            i = ws(i + 1);
            if !json[i..end].starts_with(b"\"Item\"") {
                return Err(bad(i, "a line's only field must be \"Item\""));
            }
            i = ws(i + 6);
            if i >= end || json[i] != b':' {
                return Err(bad(i, "expected `:` after \"Item\""));
            }
            i = ws(i + 1);
            let item_end =
                item(text, i).map_err(|error| ExportError::Item { line: n + 1, error })?;
            if item_end > end {
                return Err(bad(i, "an item must end on its line"));
            }
            let close = ws(item_end);
            if close >= end || json[close] != b'}' {
                return Err(bad(close, "a line's only field must be \"Item\""));
            }
            if ws(close + 1) < end {
                return Err(bad(
                    close + 1,
                    "trailing characters after the line's object",
                ));
            }
            ranges.push(i..item_end);
        }
        start = end + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).expect("gzip");
        gz.finish().expect("gzip")
    }

    #[test]
    fn export_folders_are_found_in_aws_and_emulator_keys() {
        // AWS: `<S3Prefix>/AWSDynamoDB/<id>/…`; the emulator doubles the slash.
        let keys = [
            "b/solace-export/AWSDynamoDB/0170-a/manifest-summary.json",
            "b/solace-export/AWSDynamoDB/0170-a/data/x.json.gz",
            "b/solace-export//AWSDynamoDB/u2/data/y.gz",
            "b/solace-export/AWSDynamoDB/no-folder",
            "b/other.json",
        ];
        assert_eq!(
            export_folders(keys),
            vec![
                "b/solace-export//AWSDynamoDB/u2/".to_owned(),
                "b/solace-export/AWSDynamoDB/0170-a/".to_owned(),
            ]
        );
        assert_eq!(export_s3_prefix("b"), "b/solace-export");
        assert_eq!(export_s3_prefix(""), "solace-export");
    }

    #[test]
    fn an_export_record_reads_back_and_its_files_say_what_to_check() {
        let checked = ExportFile::of("e/data/a.json.gz", b"body", 3);
        let record = ExportRecord {
            format: ExportRecord::FORMAT,
            task_id: "t".into(),
            export_arn: "arn:aws:dynamodb:us-east-1:1:table/x/export/1".into(),
            export_prefix: "e/".into(),
            item_count: 3,
            billed_size_bytes: 10,
            verified: false,
            files: vec![
                RecordedFile::from(&checked),
                RecordedFile {
                    key: "e/data/b.gz".into(),
                    item_count: None,
                    md5_checksum: None,
                },
            ],
        };
        let back = ExportRecord::from_json(&record.to_json()).expect("reads back");
        assert_eq!(back, record);
        assert_eq!(
            back.files[0].expected(),
            ("e/data/a.json.gz".into(), Some(checked))
        );
        assert_eq!(back.files[1].expected(), ("e/data/b.gz".into(), None));
        let mut newer = record.clone();
        newer.format = 2;
        let err = ExportRecord::from_json(&newer.to_json()).expect_err("format 2");
        assert!(err.to_string().contains("format 2"), "{err}");
        assert!(ExportRecord::from_json(b"{}").is_err());
    }

    #[test]
    fn a_written_summary_reads_as_a_full_export() {
        let body = summary_json(
            "2026-01-01T00:00:00Z",
            7,
            "b",
            "c/AWSDynamoDB/t/",
            "c/AWSDynamoDB/t/manifest-files.json",
        );
        let summary = ExportSummary::from_json(&body).expect("reads");
        assert_eq!(summary.item_count, Some(7));
        assert_eq!(summary.export_type.as_deref(), Some("FULL_EXPORT"));
        assert_eq!(
            summary.manifest_files_s3_key.as_deref(),
            Some("c/AWSDynamoDB/t/manifest-files.json")
        );
    }

    fn items(file: &DecodedFile<'_>) -> Vec<String> {
        file.iter()
            .map(|i| String::from_utf8_lossy(i.as_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn a_data_file_gives_each_line_s_item_gzip_or_not() {
        let lines = b"{\"Item\":{\"pk\":{\"S\":\"a\"},\"n\":{\"N\":\"1\"}}}\n { \"Item\" : {\"pk\": {\"S\": \"b\"}} } \r\n\n";
        let mut decoder = ExportDecoder::new(1 << 20);
        for body in [gzip(lines), lines.to_vec()] {
            let file = decoder.decode(&body).expect("decoded");
            assert_eq!(
                items(&file),
                [r#"{"pk":{"S":"a"},"n":{"N":"1"}}"#, r#"{"pk": {"S": "b"}}"#]
            );
        }
        assert!(decoder.decode(&gzip(b"")).expect("empty").is_empty());
        // Two gzip members, as a concatenation of files would be.
        let mut two = gzip(b"{\"Item\":{\"k\":{\"S\":\"1\"}}}\n");
        two.extend(gzip(b"{\"Item\":{\"k\":{\"S\":\"2\"}}}\n"));
        assert_eq!(decoder.decode(&two).expect("two members").len(), 2);
    }

    #[test]
    fn a_gzip_bomb_is_an_error_at_the_cap() {
        let bomb = gzip(&vec![b' '; 8 << 20]);
        assert!(bomb.len() * 50 < 8 << 20, "a bomb: {} bytes in", bomb.len());
        let err = ExportDecoder::new(1 << 20)
            .decode(&bomb)
            .expect_err("capped");
        assert_eq!(err, ExportError::TooLarge { limit: 1 << 20 });
        let err = ExportDecoder::new(10)
            .decode(b"{\"Item\":{\"k\":{\"S\":\"1\"}}}")
            .expect_err("capped");
        assert_eq!(err, ExportError::TooLarge { limit: 10 });
        let mut truncated = gzip(b"{\"Item\":{\"k\":{\"S\":\"1\"}}}\n");
        truncated.truncate(truncated.len() - 6);
        assert!(matches!(
            ExportDecoder::new(1 << 20).decode(&truncated),
            Err(ExportError::Gzip(_))
        ));
    }

    #[test]
    fn a_bad_line_is_named_by_its_number() {
        let cases: [(&[u8], usize, &str); 7] = [
            (b"[]", 1, "must be an object"),
            (
                b"{\"Item\":{\"k\":{\"S\":\"1\"}}}\n{\"Keys\":{}}",
                2,
                "only field must be \"Item\"",
            ),
            (
                b"{\"Item\":{\"k\":{\"S\":\"1\"}},\"x\":1}",
                1,
                "only field must be \"Item\"",
            ),
            (
                b"{\"Item\":{\"k\":{\"S\":\"1\"}}} x",
                1,
                "trailing characters",
            ),
            (b"{\"Item\" {}}", 1, "expected `:`"),
            (
                b"{\"Item\":{\"k\":\n{\"S\":\"1\"}}}",
                1,
                "must end on its line",
            ),
            (b"\n\n{\"Item\":{\"k\":{\"X\":\"1\"}}}", 3, ""),
        ];
        let mut decoder = ExportDecoder::new(1 << 20);
        for (body, line, says) in cases {
            let err = decoder.decode(body).expect_err("refused");
            let text = err.to_string();
            assert!(text.starts_with(&format!("line {line}:")), "{text}");
            assert!(text.contains(says), "{text}");
        }
        assert!(decoder.decode(b"\xff").is_err());
    }

    #[test]
    fn only_full_dynamodb_json_exports_are_read() {
        let summary = |format: &str, kind: Option<&str>| {
            let mut v = serde_json::json!({"version": "2023-08-01", "outputFormat": format,
                "exportArn": "arn:aws:dynamodb:us-east-1:1:table/t/export/01", "itemCount": 3,
                "manifestFilesS3Key": "AWSDynamoDB/01/manifest-files.json", "other": [1]});
            if let Some(kind) = kind {
                v["exportType"] = kind.into();
            }
            serde_json::to_vec(&v).expect("json")
        };
        let read = ExportSummary::from_json(&summary("DYNAMODB_JSON", None)).expect("read");
        assert_eq!(read.item_count, Some(3));
        assert!(ExportSummary::from_json(&summary("DYNAMODB_JSON", Some("FULL_EXPORT"))).is_ok());
        assert_eq!(
            ExportSummary::from_json(&summary("ION", None)),
            Err(ExportError::Format("ION".into()))
        );
        assert_eq!(
            ExportSummary::from_json(&summary("DYNAMODB_JSON", Some("INCREMENTAL_EXPORT"))),
            Err(ExportError::Incremental)
        );
        assert!(ExportSummary::from_json(b"{}").is_err());
    }

    #[test]
    fn manifest_files_are_sorted_and_split_across_segments_once_each() {
        let mut text = String::new();
        for name in ["c", "a", "e", "b", "d"] {
            text.push_str(&format!(
                "{{\"itemCount\":1,\"md5Checksum\":\"x\",\"etag\":\"e\",\"dataFileS3Key\":\"AWSDynamoDB/01/data/{name}.json.gz\"}}\n"
            ));
        }
        let files = parse_manifest_files(text.as_bytes()).expect("read");
        let keys: Vec<&str> = files.iter().map(|f| f.data_file_s3_key.as_str()).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        for total in [1, 2, 3, 7] {
            let mut seen: Vec<&str> = (0..total)
                .flat_map(|s| segment_files(&files, s, total))
                .map(|f| f.data_file_s3_key.as_str())
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, sorted, "{total} segments");
        }
        let err = parse_manifest_files(b"{\"itemCount\":1}\n").expect_err("no key");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn md5_is_base64_of_the_stored_bytes() {
        assert_eq!(md5_base64(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(md5_base64(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
    }

    #[test]
    fn a_written_data_file_reads_back_with_its_entry() {
        let lines = [r#"{"pk":{"S":"a"}}"#, r#"{"pk":{"S":"b"},"n":{"N":"2"}}"#];
        let raw: Vec<RawItem<'_>> = lines
            .iter()
            .map(|i| RawItem::parse(i.as_bytes()).expect("item"))
            .collect();
        let body = data_file(raw.iter().copied());
        let entry = ExportFile::of("AWSDynamoDB/01/data/a.json.gz", &body, 2);
        assert_eq!(entry.md5_checksum, md5_base64(&body));
        let line = entry.to_json_line();
        assert_eq!(
            parse_manifest_files(line.as_bytes()).expect("read"),
            [entry]
        );
        let mut decoder = ExportDecoder::new(1 << 20);
        assert_eq!(items(&decoder.decode(&body).expect("decoded")), lines);
        assert!(decoder.decode(&data_file([])).expect("empty").is_empty());
    }
}
