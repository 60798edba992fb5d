//! Solace's batch codec: how backups are named and what a batch object holds (docs/layout.md#batch-format).
//!
//! # Layout
//! - [`layout`]: every object under a backup's prefix: segment and batch ids,
//!   `<prefix>0x<segment>/0x<batch>` keys and their parsing, the `solace-meta/` objects
//!   ([`Manifest`], [`SegmentMarker`], reserved keys) and their bytes.
//! - [`item`]: the typed item model (ten attribute types) and its DynamoDB-JSON writer.
//! - [`parse`]: DynamoDB-JSON reading with DynamoDB's rules, into any [`parse::Build`] target.
//! - `fast` (private): the validating fast scanner in front of `parse`'s serde visitors.
//! - [`batch`]: [`RawItem`], the streaming [`BatchEncoder`] and the capped, buffer-reusing
//!   [`BatchDecoder`].
//! - [`export`]: DynamoDB's own Export to S3 layout, read: its manifests and capped gzip data
//!   files of `{"Item": …}` lines.
//! - [`schema`]: the table's schema as a backup keeps it (`solace-meta/schema.json`), in the
//!   shape CreateTable takes.
//! - [`response`]: a DynamoDB Scan response body read in one pass: its items checked where
//!   they lie ([`ResponsePage`]), for a backup that never parses them into SDK values.
//! - `sdk` (feature `sdk`): conversions to and from `aws_sdk_dynamodb`'s `AttributeValue`.
//! - `sample` (feature `sample`): deterministic sample items for tests, benchmarks and the
//!   demo.
//! - `fuzzing` (feature `fuzzing`): the codec's invariants as plain functions, called by the
//!   fuzz targets (`fuzz/`) and the regression tests.
//!
//! Modules import without circles (`tests/no_import_cycles.rs`): `parse` uses `item`; `fast`
//! uses `parse`; `batch` uses `fast` and `parse`; `response` uses `batch`; `sdk` uses `batch`,
//! `fuzzing` `batch` and `response`; `sample` uses only `item` (the unit tests of `fast` and
//! `sdk` use `sample`); `layout` uses nothing else of the codec.
//!
//! The hot path never builds a tree: an item is a validated byte range, copied into deflate
//! on the way in and sliced out of the inflated buffer on the way out.

pub mod batch;
pub mod export;
mod fast;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod item;
pub mod layout;
pub mod parse;
pub mod response;
#[cfg(any(test, feature = "sample"))]
pub mod sample;
pub mod schema;
#[cfg(feature = "sdk")]
pub mod sdk;

pub use batch::{
    BatchDecoder, BatchEncoder, DecodeError, DecodedBatch, EncodedBatch, EncoderConfig, RawItem,
    RawItemError, decode_items, encode_items, inflate_capped,
};
pub use item::{Item, Value, write_item};
pub use layout::{
    BatchId, Completion, META_FOLDER, Manifest, NameError, SegmentId, SegmentMarker, batch_key,
    completion_key, export_record_key, manifest_key, normalized_prefix, parse_batch_key,
    schema_key, segment_marker_key, segment_prefix,
};
pub use parse::{ItemError, ItemErrorKind};
pub use response::{ResponseError, ResponsePage};
