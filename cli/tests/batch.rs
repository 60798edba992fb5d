//! `solace batch encode|decode` as an operator runs it: every attribute type round-trips
//! exactly, and bad input is a message and a non-zero exit, never a panic.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use solace_codec::sample::{self, Shape};
use solace_codec::{Item, RawItem, write_item};

fn solace(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_solace"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("solace starts");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().expect("solace ends");
    writer.join().expect("writer");
    out
}

fn lines(items: &[Item]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        write_item(item, &mut out);
        out.push(b'\n');
    }
    out
}

#[test]
fn encode_then_decode_round_trips_every_attribute_type() {
    let items: Vec<Item> = Shape::ALL
        .iter()
        .flat_map(|&s| (0..2).map(move |n| sample::item(s, n)))
        .collect();
    let input = lines(&items);
    for level in ["0", "1", "6", "9"] {
        let encoded = solace(&["batch", "encode", "--level", level], &input);
        assert!(
            encoded.status.success(),
            "{}",
            String::from_utf8_lossy(&encoded.stderr)
        );
        let decoded = solace(&["batch", "decode"], &encoded.stdout);
        assert!(
            decoded.status.success(),
            "{}",
            String::from_utf8_lossy(&decoded.stderr)
        );
        let back: Vec<Item> = decoded
            .stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| RawItem::parse(l).expect("valid line").to_item())
            .collect();
        assert_eq!(back, items, "level {level}");
    }
}

fn fails_with(args: &[&str], stdin: &[u8], needle: &str) {
    let out = solace(args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a clean exit code, not a panic: {stderr}"
    );
    assert!(
        stderr.contains(needle),
        "{stderr:?} should mention {needle:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_is_named_and_exits_non_zero() {
    fails_with(
        &["batch", "encode"],
        b"{\"a\":{\"S\":\"x\"}}\n{oops\n",
        "line 2",
    );
    fails_with(
        &["batch", "encode"],
        b"{\"a\":{\"SS\":[]}}\n",
        "SS set is empty",
    );
    fails_with(
        &["batch", "encode"],
        b"{\"a\":{\"N\":\"1x\"}}\n",
        "not a DynamoDB number",
    );
    fails_with(&["batch", "encode"], b"\xff\xfe\n", "not UTF-8");
    fails_with(&["batch", "encode", "--level", "12"], b"", "out of range");
    fails_with(&["batch", "decode"], b"not a batch", "bad zlib data");
    fails_with(&["batch", "decode"], b"", "truncated");
    fails_with(
        &["batch", "decode", "--max-inflated", "10"],
        &{
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&[b' '; 1000]).expect("write");
            e.finish().expect("finish")
        },
        "more than 10 bytes",
    );
}

#[test]
fn an_empty_input_encodes_an_empty_batch() {
    let encoded = solace(&["batch", "encode"], b"\n\n");
    assert!(encoded.status.success());
    let decoded = solace(&["batch", "decode"], &encoded.stdout);
    assert!(decoded.status.success());
    assert!(decoded.stdout.is_empty());
}

/// A batch another tool wrote with white space (even newlines) inside its items still decodes
/// to one compact item per line, attributes in the order stored.
#[test]
fn a_batch_with_white_space_in_its_items_decodes_to_one_compact_item_per_line() {
    let json = b"[\n  {\n    \"b\": {\"S\": \"x y\\n\"},\n    \"a\" : { \"N\" : \"1\" }\n  },\n  {\"c\":\t{\"L\": [ {\"BOOL\": true} ]}}\n]\n";
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(json).expect("write");
    let body = e.finish().expect("finish");
    let decoded = solace(&["batch", "decode"], &body);
    assert!(
        decoded.status.success(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&decoded.stdout),
        "{\"b\":{\"S\":\"x y\\n\"},\"a\":{\"N\":\"1\"}}\n{\"c\":{\"L\":[{\"BOOL\":true}]}}\n"
    );
}
