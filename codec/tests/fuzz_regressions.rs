//! Inputs that once broke an invariant of `solace_codec::fuzzing`, kept as files in
//! `tests/fuzz-regressions/` named `<target>-<what it broke>`, where `<target>` is the fuzz
//! target (`decode`, `round_trip`, `parse_key`) whose function replays it.
//!
//! A new crash from `fuzz/`: copy the artifact here under such a name and add a named test;
//! [`every_file_replays_through_its_target`] covers it even before that.

use std::path::{Path, PathBuf};

use solace_codec::fuzzing;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions")
}

fn input(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn replay(name: &str, data: &[u8]) {
    if name.starts_with("decode-") {
        fuzzing::decode_arbitrary(data);
    } else if name.starts_with("round_trip-") {
        fuzzing::round_trip(data);
    } else if name.starts_with("parse_key-") {
        // As libfuzzer-sys hands a `&str` target its input: the longest UTF-8 prefix.
        let valid = match std::str::from_utf8(data) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&data[..e.valid_up_to()]).expect("a valid prefix"),
        };
        fuzzing::parse_key(valid);
    } else {
        panic!("{name}: a regression file is named <target>-<what it broke>");
    }
}

/// `RawItem::parse` let a form feed (`\x0c`, ASCII white space but not JSON's) follow an
/// item, so it accepted input that is not one JSON value and that Python's `json.loads`
/// rejects.
#[test]
fn raw_item_rejects_a_trailing_form_feed() {
    let name = "decode-raw-item-accepted-trailing-form-feed";
    let data = input(name);
    assert!(solace_codec::RawItem::parse(&data).is_err());
    replay(name, &data);
}

/// `ResponsePage::parse` took a field name holding a raw control character (`\x12`), which
/// JSON does not allow, as a name: it accepted a body serde_json rejects.
#[test]
fn a_response_rejects_a_control_character_in_a_field_name() {
    let name = "decode-response-accepted-a-control-character-in-a-field-name";
    let data = input(name);
    assert!(solace_codec::ResponsePage::parse(&data[..]).is_err());
    replay(name, &data);
}

/// `ResponsePage::parse` skipped an unknown field's string holding a lone surrogate escape
/// (`"A\ud800AH+/w=="`) with serde's `IgnoredAny`, which checks the escape's hex digits but
/// not its pairing: it accepted a body serde_json rejects.
#[test]
fn a_response_rejects_a_lone_surrogate_in_an_unknown_field() {
    let name = "decode-response-ignored-a-lone-surrogate-in-an-unknown-field";
    let data = input(name);
    assert!(solace_codec::ResponsePage::parse(&data[..]).is_err());
    replay(name, &data);
}

#[test]
fn every_file_replays_through_its_target() {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .expect("the regressions folder")
        .map(|e| {
            e.expect("a folder entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for name in names {
        replay(&name, &input(&name));
    }
}
