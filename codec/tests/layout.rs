//! The objects under a backup's prefix are byte for byte what earlier versions wrote: the
//! files in `tests/fixtures/layout/` were written by the code before `layout.rs` existed and
//! are never regenerated. A difference here is a format change: readers of existing backups
//! (and other tools) see it.
//!
//! - `manifest.json`: a [`Manifest`], as the request function writes it.
//! - `segment-marker.json`: the [`SegmentMarker`] a backup of three items wrote (format 1).
//! - `segment-marker-v2.json`: a format-2 marker whose one batch is `batch.zlib` (added with
//!   format 2, pinned from then on).
//! - `batch.zlib`: [`items`] encoded at level 6; `batch.json`: the same batch inflated.
//! - `keys.json`: the keys of each object for the prefixes `""`, `"p"`, `"p/"`, `"a/b"`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use solace_codec::layout::{
    BatchEntry, BatchId, Manifest, SegmentId, SegmentMarker, batch_key, manifest_key,
    segment_marker_key, segment_prefix,
};
use solace_codec::{Item, Value, decode_items, encode_items, inflate_capped};

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/layout")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The items of `batch.zlib`: every attribute type, nesting, escapes, non-ASCII text.
fn items() -> Vec<Item> {
    let s = |v: &str| Value::S(v.to_owned());
    let n = |v: &str| Value::N(v.to_owned());
    vec![
        Item::from([
            ("pk".to_owned(), s("a")),
            ("n".to_owned(), n("1.50")),
            ("b".to_owned(), Value::B(vec![0, 1, 2, 255])),
        ]),
        Item::from([
            ("pk".to_owned(), s("b")),
            ("ss".to_owned(), Value::Ss(vec!["x".into(), "y".into()])),
            ("ns".to_owned(), Value::Ns(vec!["1".into(), "-2E3".into()])),
            ("bs".to_owned(), Value::Bs(vec![vec![1], vec![2, 3]])),
            ("nul".to_owned(), Value::Null),
            ("t".to_owned(), Value::Bool(true)),
        ]),
        Item::from([
            ("pk".to_owned(), s("c")),
            (
                "m".to_owned(),
                Value::M(BTreeMap::from([(
                    "k".to_owned(),
                    Value::L(vec![s("é"), n("0"), Value::Bool(false)]),
                )])),
            ),
            ("u".to_owned(), s("\u{1}\"\\/")),
        ]),
    ]
}

fn manifest() -> Manifest {
    Manifest {
        format: Manifest::FORMAT,
        task_id: "6c1f0b8e-2a44-4d4e-9d3b-5f0e7a9c1d20".into(),
        total_segments: 4,
        table_region: "eu-west-1".into(),
        table_name: "orders".into(),
        created_at: "2024-05-01T12:00:00Z".into(),
        method: None,
    }
}

fn marker() -> SegmentMarker {
    SegmentMarker::v1(1, 3, 94)
}

/// The format-2 marker of a segment whose one batch is `batch.zlib`; the checksum is
/// `sha256sum batch.zlib`.
fn marker_v2() -> SegmentMarker {
    SegmentMarker::v2(vec![BatchEntry {
        batch: 0,
        items: 3,
        bytes: 287,
        stored_bytes: 181,
        sha256: "86896a0cebf97b3057753eca48df0b9d626ab782845c928789084fb9986f30d9".into(),
    }])
}

/// Shows bytes as text where they are text, for a readable assertion failure.
fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn layout_is_byte_identical_to_the_committed_fixture() {
    // The meta objects: written the same, and the fixture reads back.
    let written = manifest().to_json();
    assert_eq!(show(&written), show(&fixture("manifest.json")), "manifest");
    assert_eq!(
        Manifest::from_json(&fixture("manifest.json")).ok(),
        Some(manifest())
    );
    let written = marker().to_json();
    assert_eq!(
        show(&written),
        show(&fixture("segment-marker.json")),
        "segment marker"
    );
    assert_eq!(
        SegmentMarker::from_json(&fixture("segment-marker.json")).ok(),
        Some(marker())
    );
    let written = marker_v2().to_json();
    assert_eq!(
        show(&written),
        show(&fixture("segment-marker-v2.json")),
        "segment marker, format 2"
    );
    assert_eq!(
        SegmentMarker::from_json(&fixture("segment-marker-v2.json")).ok(),
        Some(marker_v2())
    );

    // A batch: the same zlib stream, the same JSON inside, the same items out.
    let body = fixture("batch.zlib");
    assert!(encode_items(&items(), 6) == body, "batch body differs");
    let mut json = Vec::new();
    inflate_capped(&body, 1 << 20, &mut json).expect("the fixture batch inflates");
    assert_eq!(show(&json), show(&fixture("batch.json")), "batch JSON");
    assert_eq!(decode_items(&body, 1 << 20), Ok(items()));
    // The v2 marker's entry describes this very batch.
    let entry = &marker_v2().batch_list[0];
    assert_eq!(
        (entry.items, entry.bytes, entry.stored_bytes),
        (items().len() as u64, json.len() as u64, body.len() as u64)
    );

    // The keys, for prefixes with and without their separator.
    let keys: Vec<BTreeMap<String, String>> =
        serde_json::from_slice(&fixture("keys.json")).expect("keys.json is a list of maps");
    assert_eq!(keys.len(), 4);
    for entry in keys {
        let prefix = entry["prefix"].as_str();
        let expected = BTreeMap::from([
            ("prefix".to_owned(), prefix.to_owned()),
            ("manifest".to_owned(), manifest_key(prefix)),
            (
                "segment-prefix 0x1a".to_owned(),
                segment_prefix(prefix, SegmentId(0x1a)),
            ),
            (
                "batch 0x1a/0x0".to_owned(),
                batch_key(prefix, SegmentId(0x1a), BatchId(0)),
            ),
            (
                "batch 0x0/0xff".to_owned(),
                batch_key(prefix, SegmentId(0), BatchId(0xff)),
            ),
            (
                "segment-marker 0x1a".to_owned(),
                segment_marker_key(prefix, SegmentId(0x1a)),
            ),
        ]);
        assert_eq!(entry, expected, "keys under {prefix:?}");
    }
}

/// The reserved keys (nothing writes them yet) keep their place in the meta folder.
#[test]
fn reserved_keys_are_fixed() {
    use solace_codec::layout::{completion_key, schema_key};
    for (prefix, base) in [("", ""), ("p", "p/"), ("p/", "p/"), ("a/b", "a/b/")] {
        assert_eq!(schema_key(prefix), format!("{base}solace-meta/schema.json"));
        assert_eq!(
            completion_key(prefix),
            format!("{base}solace-meta/complete.json")
        );
    }
}
