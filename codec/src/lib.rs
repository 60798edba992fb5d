//! Solace's batch codec: how backups are named and what a batch object holds (SPEC §2).
//!
//! # Layout
//! - [`naming`]: segment and batch ids, `<prefix>0x<segment>/0x<batch>` keys and their parsing.
//! - [`item`]: the typed item model (ten attribute types) and its DynamoDB-JSON writer.
//! - [`parse`]: DynamoDB-JSON reading with DynamoDB's rules, into any [`parse::Build`] target.
//! - [`batch`]: [`RawItem`], the streaming [`BatchEncoder`] and the capped, buffer-reusing
//!   [`BatchDecoder`].
//! - `sdk` (feature `sdk`): conversions to and from `aws_sdk_dynamodb`'s `AttributeValue`.
//!
//! The hot path never builds a tree: an item is a validated byte range, copied into deflate
//! on the way in and sliced out of the inflated buffer on the way out.

pub mod batch;
mod fast;
pub mod fuzzing;
pub mod item;
pub mod naming;
pub mod parse;
pub mod sample;
#[cfg(feature = "sdk")]
pub mod sdk;

pub use batch::{
    BatchDecoder, BatchEncoder, DecodeError, DecodedBatch, EncodedBatch, EncoderConfig, RawItem,
    RawItemError, decode_items, encode_items, inflate_capped,
};
pub use item::{Item, Value, write_item};
pub use naming::{
    BatchId, NameError, SegmentId, batch_key, manifest_key, parse_batch_key, segment_marker_key,
    segment_prefix,
};
pub use parse::{ItemError, ItemErrorKind};
