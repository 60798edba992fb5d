//! Batch encoding and decoding: round trips of every attribute type, and every way a batch
//! can be bad ending in a typed error rather than a panic.

use std::collections::BTreeMap;

use proptest::prelude::*;
use solace_codec::parse::ItemErrorKind;
use solace_codec::sample::{self, Shape};
use solace_codec::{
    BatchDecoder, BatchEncoder, DecodeError, EncoderConfig, Item, RawItem, RawItemError, Value,
    decode_items, encode_items,
};

fn zlib(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("in-memory write");
    e.finish().expect("in-memory finish")
}

fn decode(body: &[u8]) -> Result<Vec<Item>, DecodeError> {
    decode_items(body, 64 << 20)
}

#[test]
fn every_shape_round_trips_exactly_at_every_level() {
    for level in [0, 1, 6, 9] {
        for shape in Shape::ALL {
            let items: Vec<Item> = (0..5).map(|n| sample::item(shape, n)).collect();
            let body = encode_items(&items, level);
            assert_eq!(
                decode(&body).expect("decodes"),
                items,
                "{shape:?} level {level}"
            );
        }
    }
}

#[test]
fn an_empty_batch_is_an_empty_array() {
    let body = encode_items(&[], 6);
    let mut json = Vec::new();
    solace_codec::inflate_capped(&body, 1 << 20, &mut json).expect("inflates");
    assert_eq!(json, b"[]");
    assert_eq!(decode(&body).expect("decodes"), Vec::<Item>::new());
}

#[test]
fn the_encoder_closes_batches_at_the_size_target() {
    let mut encoder = BatchEncoder::new(EncoderConfig {
        target_bytes: 10_000,
        max_items: 1000,
        level: 1,
    });
    let items: Vec<Item> = (0..200).map(|n| sample::item(Shape::Small, n)).collect();
    let mut batches = Vec::new();
    let mut json = Vec::new();
    for item in &items {
        json.clear();
        solace_codec::write_item(item, &mut json);
        encoder.push(RawItem::parse(&json).expect("valid"));
        if encoder.is_full() {
            batches.push(encoder.finish());
        }
    }
    if encoder.items() > 0 {
        batches.push(encoder.finish());
    }
    assert!(batches.len() > 2, "several batches, got {}", batches.len());
    let mut back = Vec::new();
    for b in &batches[..batches.len() - 1] {
        assert!(b.json_bytes >= 10_000, "closed at the target");
        assert!(b.json_bytes < 10_000 + 400, "not far past it");
    }
    for b in &batches {
        let decoded = decode(&b.body).expect("decodes");
        assert_eq!(decoded.len(), b.items);
        back.extend(decoded);
    }
    assert_eq!(back, items, "nothing lost, nothing duplicated, order kept");
}

#[test]
fn the_encoder_closes_batches_at_the_item_count() {
    let mut encoder = BatchEncoder::new(EncoderConfig {
        target_bytes: usize::MAX,
        max_items: 3,
        level: 6,
    });
    let item = sample::item(Shape::Small, 1);
    for n in 1..=3 {
        assert!(!encoder.is_full());
        encoder.push_item(&item);
        assert_eq!(encoder.items(), n);
    }
    assert!(encoder.is_full());
    assert_eq!(encoder.finish().items, 3);
    assert_eq!(encoder.items(), 0);
}

#[test]
fn the_decoder_reuses_its_buffers_across_batches() {
    let mut decoder = BatchDecoder::new(64 << 20);
    for n in 0..3 {
        let items = vec![sample::item(Shape::Medium, n)];
        let body = encode_items(&items, 6);
        let batch = decoder.decode(&body).expect("decodes");
        assert_eq!(batch.to_items(), items);
    }
}

#[test]
fn raw_items_from_a_batch_are_the_bytes_python_would_see() {
    let json = br#"[ {"a": {"S": "x"}} ,{"b":{"N":"1"}}]"#;
    let mut decoder = BatchDecoder::default();
    let batch = decoder.decode(&zlib(json)).expect("decodes");
    let raw: Vec<&[u8]> = batch.iter().map(|r| r.as_bytes()).collect();
    assert_eq!(
        raw,
        vec![&br#"{"a": {"S": "x"}}"#[..], br#"{"b":{"N":"1"}}"#]
    );
}

fn item_error(json: &str) -> (ItemErrorKind, String) {
    match decode(&zlib(json.as_bytes())) {
        Err(DecodeError::Item { error, .. }) => (error.kind, error.path),
        other => panic!("expected an item error for {json}, got {other:?}"),
    }
}

#[test]
fn values_dynamodb_would_reject_are_named_with_their_path() {
    assert_eq!(
        item_error(r#"[{"a":{"SS":[]}}]"#),
        (ItemErrorKind::EmptySet("SS"), "a".into())
    );
    assert_eq!(
        item_error(r#"[{"a":{"M":{"b":{"L":[{"S":"x"},{"NS":[]}]}}}}]"#),
        (ItemErrorKind::EmptySet("NS"), "a.b[1]".into())
    );
    assert_eq!(
        item_error(r#"[{"a":{"N":"12a"}}]"#),
        (ItemErrorKind::BadNumber(3), "a".into())
    );
    assert_eq!(
        item_error(r#"[{"a":{"NS":["1","x"]}}]"#),
        (ItemErrorKind::BadNumber(1), "a".into())
    );
    assert!(matches!(
        item_error(r#"[{"a":{"B":"not base64!"}}]"#).0,
        ItemErrorKind::BadBase64(_)
    ));
    assert!(matches!(
        item_error(r#"[{"a":{"BS":["AAAA","*"]}}]"#).0,
        ItemErrorKind::BadBase64(_)
    ));
    assert_eq!(
        item_error(r#"[{"a":{"NULL":false}}]"#).0,
        ItemErrorKind::NullNotTrue
    );
    assert_eq!(
        item_error(r#"[{"a":{"X":"1"}}]"#).0,
        ItemErrorKind::UnknownType("X".into())
    );
    assert_eq!(
        item_error(r#"[{"a":{"S":"1","N":"1"}}]"#).0,
        ItemErrorKind::NotOneType
    );
    assert_eq!(item_error(r#"[{"a":{}}]"#).0, ItemErrorKind::NotOneType);
    assert_eq!(item_error(r#"[{}]"#).0, ItemErrorKind::EmptyItem);
}

#[test]
fn an_item_error_says_which_item_and_where() {
    let json = r#"[{"a":{"S":"ok"}}, {"b":{"SS":[]}}]"#;
    match decode(&zlib(json.as_bytes())) {
        Err(DecodeError::Item { index, offset, .. }) => {
            assert_eq!(index, 1);
            assert_eq!(offset, json.find(r#"{"b""#).expect("present"));
        }
        other => panic!("expected an item error, got {other:?}"),
    }
}

#[test]
fn bad_json_is_reported_at_its_offset() {
    let cases: [(&str, usize); 6] = [
        (r#"[{"a":{"S":"x"}},]"#, 17),
        (r#"[{"a":{"S":"x"}} {"b":1}]"#, 17),
        (r#"{"a":{"S":"x"}}"#, 0),
        (r#"[{"a":{"S":"x"}}"#, 16),
        (r#"[{"a":{"S":"x"}}] x"#, 18),
        ("[{\"a\":\n{\"S\": 5}}]", 13),
    ];
    for (json, at) in cases {
        match decode(&zlib(json.as_bytes())) {
            Err(DecodeError::Json { offset, .. }) => assert_eq!(offset, at, "{json}"),
            other => panic!("expected a JSON error for {json}, got {other:?}"),
        }
    }
}

#[test]
fn broken_zlib_streams_are_typed_errors() {
    let body = encode_items(&[sample::item(Shape::Medium, 1)], 6);
    assert_eq!(decode(&body[..body.len() / 2]), Err(DecodeError::Truncated));
    assert_eq!(decode(&[]), Err(DecodeError::Truncated));
    assert!(matches!(
        decode(b"this is not zlib"),
        Err(DecodeError::Zlib(_))
    ));
    let mut trailing = body.clone();
    trailing.extend_from_slice(b"junk");
    assert_eq!(decode(&trailing), Err(DecodeError::TrailingData(4)));
    let mut flipped = body.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    assert!(
        decode(&flipped).is_err(),
        "a flipped byte is caught (adler32 at the least)"
    );
}

#[test]
fn a_decompression_bomb_stops_at_the_cap() {
    // 64 MiB of spaces compresses to about 64 KB; the decoder must stop at its cap.
    let mut c = flate2::Compress::new(flate2::Compression::best(), true);
    let zeros = vec![b' '; 1 << 20];
    let mut body = Vec::with_capacity(2 << 20);
    for _ in 0..64 {
        c.compress_vec(&zeros, &mut body, flate2::FlushCompress::None)
            .expect("compresses");
        body.reserve(64 << 10);
    }
    c.compress_vec(b"[]", &mut body, flate2::FlushCompress::Finish)
        .expect("finishes");
    let mut decoder = BatchDecoder::new(16 << 20);
    assert_eq!(
        decoder.decode(&body).map(|b| b.len()),
        Err(DecodeError::TooLarge { limit: 16 << 20 })
    );
    // At exactly the cap a batch is accepted.
    let exact = zlib(b"[]");
    assert!(BatchDecoder::new(2).decode(&exact).is_ok());
    assert_eq!(
        BatchDecoder::new(1).decode(&exact).map(|b| b.len()),
        Err(DecodeError::TooLarge { limit: 1 })
    );
}

#[test]
fn raw_item_parse_rejects_anything_but_one_item() {
    assert!(RawItem::parse(br#" {"a":{"S":"x"}} "#).is_ok());
    assert!(matches!(
        RawItem::parse(br#"{"a":{"S":"x"}} {}"#),
        Err(RawItemError::Json { offset: 16, .. })
    ));
    assert!(matches!(
        RawItem::parse(b""),
        Err(RawItemError::Json { .. })
    ));
    assert!(matches!(
        RawItem::parse(b"[1]"),
        Err(RawItemError::Json { .. })
    ));
    assert!(matches!(
        RawItem::parse(br#"{"a":{"N":"x"}}"#),
        Err(RawItemError::Item(_))
    ));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let mut json = String::from("[{\"a\":");
    for _ in 0..10_000 {
        json.push_str("{\"L\":[");
    }
    assert!(decode(&zlib(json.as_bytes())).is_err());
}

fn value() -> impl Strategy<Value = Value> {
    let num = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        "-?[1-9][0-9]{0,37}",
        "0\\.[0-9]{0,20}[1-9]",
    ];
    let leaf = prop_oneof![
        any::<String>().prop_map(Value::S),
        num.clone().prop_map(Value::N),
        any::<Vec<u8>>().prop_map(Value::B),
        prop::collection::vec(any::<String>(), 1..4).prop_map(Value::Ss),
        prop::collection::vec(num, 1..4).prop_map(Value::Ns),
        prop::collection::vec(any::<Vec<u8>>(), 1..4).prop_map(Value::Bs),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::L),
            prop::collection::btree_map(any::<String>(), inner, 0..6).prop_map(Value::M),
        ]
    })
}

fn item() -> impl Strategy<Value = Item> {
    prop::collection::btree_map(any::<String>(), value(), 1..8)
}

proptest! {
    #[test]
    fn any_items_round_trip(items in prop::collection::vec(item(), 0..8), level in 0u32..10) {
        let body = encode_items(&items, level);
        prop_assert_eq!(decode(&body).expect("decodes"), items);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let _ = decode(&zlib(&bytes));
        let _ = RawItem::parse(&bytes);
    }
}

#[test]
fn typed_map_keys_are_kept_exactly() {
    let mut item = BTreeMap::new();
    item.insert(String::new(), Value::S("empty name".into()));
    item.insert("ключ \"q\" \\ \u{0}".into(), Value::N("1E+5".into()));
    let body = encode_items(std::slice::from_ref(&item), 6);
    assert_eq!(decode(&body).expect("decodes"), vec![item]);
}

#[test]
fn an_item_is_compacted_outside_its_strings_and_checked() {
    let mut out = b"prefix".to_vec();
    let spaced = br#" { "pk" : { "S" : "a b\t\" \\ c" } ,
        "l": {"L": [ {"N": "1"} , {"NULL": true} ]} } "#;
    let item = solace_codec::RawItem::parse_compact(spaced, &mut out).expect("an item");
    assert_eq!(
        item.as_bytes(),
        &br#"{"pk":{"S":"a b\t\" \\ c"},"l":{"L":[{"N":"1"},{"NULL":true}]}}"#[..]
    );
    assert!(out.starts_with(b"prefix"), "appended");
    let before = out.clone();
    let bad = br#"{"pk": {"Q": "x"}}"#;
    assert!(solace_codec::RawItem::parse_compact(bad, &mut out).is_err());
    assert_eq!(out, before, "nothing appended on error");
}
