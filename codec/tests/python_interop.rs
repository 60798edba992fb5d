//! Interoperability with plain Python (docs/layout.md#python-interoperability): `json.loads(zlib.decompress(body))`
//! reads what the codec writes, and what `zlib.compress(json.dumps(items))` writes decodes.

use std::process::Command;

use solace_codec::sample::{self, Shape};
use solace_codec::{Item, decode_items, encode_items, write_item};

fn fixture_items() -> Vec<Item> {
    let mut items: Vec<Item> = Shape::ALL
        .iter()
        .flat_map(|&shape| (0..3).map(move |n| sample::item(shape, n)))
        .collect();
    items.extend((100..150).map(sample::mixed));
    items
}

#[test]
fn python_reads_our_batches_and_we_read_pythons() {
    let dir = tempfile::tempdir().expect("temp dir");
    let items = fixture_items();
    assert!(
        items.iter().any(|i| {
            let mut json = Vec::new();
            write_item(i, &mut json);
            json.len() > 390_000
        }),
        "the fixture holds a near-400 KB item"
    );
    std::fs::write(dir.path().join("rust.batch"), encode_items(&items, 6)).expect("write");
    let mut expected = Vec::new();
    for item in &items {
        write_item(item, &mut expected);
        expected.push(b'\n');
    }
    std::fs::write(dir.path().join("expected.jsonl"), expected).expect("write");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(dir.path())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    for name in [
        "python-default.batch",
        "python-unicode-indent.batch",
        "python-level1.batch",
    ] {
        let body = std::fs::read(dir.path().join(name)).expect("python wrote it");
        let decoded = decode_items(&body, 64 << 20).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded, items, "{name} decodes to the same items");
    }
}
