//! `solace_functions::fuzzing` on stable, in `cargo test`: every seed of the fuzz targets
//! `validate_request` and `messages` (`fuzz/seeds/<target>/`) and every input that once broke
//! one of them (`tests/fuzz-regressions/<target>-<what it broke>`), each through both
//! functions (any bytes are input to either). The targets pull in the AWS SDK and take
//! minutes to build with the fuzzing instrumentation, so the CI's fuzz smoke run
//! (`scripts/fuzz-smoke`) leaves them out; this test is how CI runs their functions.
//!
//! A new crash from `fuzz/`: fix its cause, copy the artifact here under such a name and add
//! a named test; [`every_seed_and_regression_replays`] covers it even before that.

use std::path::{Path, PathBuf};

use solace_functions::fuzzing;
use solace_functions::message::parse_segment_message;

const TARGETS: [&str; 2] = ["validate_request", "messages"];

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions")
}

fn seeds(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a folder entry").path())
        .collect();
    files.sort();
    files
}

fn input(name: &str) -> Vec<u8> {
    let path = regressions().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn replay(data: &[u8]) {
    fuzzing::validate_request(data);
    fuzzing::parse_message(data);
}

/// A checkpoint key of the wrong shape was refused with serde's text, which quotes the value
/// it found: the log of the unreadable message held the item's key.
#[test]
fn an_unreadable_message_does_not_quote_its_checkpoint_key() {
    let name = "messages-reason-quoted-a-checkpoint-key-value";
    let data = input(name);
    let reason = parse_segment_message(&String::from_utf8_lossy(&data))
        .expect_err("a key attribute that is a plain string")
        .reason;
    assert!(!reason.contains("4111"), "{reason}");
    assert!(reason.contains("(not shown)"), "{reason}");
    replay(&data);
}

/// A continuation whose key named an attribute twice was read (the last one kept), so the
/// segment went on from a key its writer may not have meant.
#[test]
fn a_key_attribute_named_twice_is_unreadable() {
    let name = "messages-a-key-attribute-named-twice-was-read";
    let data = input(name);
    let u = parse_segment_message(&String::from_utf8_lossy(&data)).expect_err("named twice");
    assert!(u.reason.contains("a key is named twice"), "{}", u.reason);
    replay(&data);
}

/// A segment message (or dead letter) with an empty task id was read, and DynamoDB refuses
/// an empty key on every call: the message was handed back until dead-lettered, and a dead
/// letter (its queue has none) until it expired.
#[test]
fn a_message_with_an_empty_task_id_is_unreadable() {
    let name = "messages-an-empty-task-id-was-read";
    let data = input(name);
    let u = parse_segment_message(&String::from_utf8_lossy(&data)).expect_err("no task id");
    assert!(u.reason.contains("is not a task id"), "{}", u.reason);
    replay(&data);
}

/// The same for the request function's own fan-out continuation (handed back until it
/// reached the request queue's dead-letter queue).
#[test]
fn a_fan_out_with_an_empty_task_id_is_consumed() {
    let name = "messages-a-fan-out-of-an-empty-task-id-was-read";
    replay(&input(name));
}

/// A mistyped value was refused with serde's text quoting all of it: a 6 KB value made a
/// reason of 21 KB (each combining character escaped), more than the rejection record keeps.
#[test]
fn a_request_reason_quotes_at_most_100_characters_of_a_value() {
    let name = "validate_request-reason-quoted-a-whole-value";
    let data = input(name);
    let reason = solace_functions::request::validate(&String::from_utf8_lossy(&data), 1000)
        .expect_err("a string segment count")
        .to_string();
    assert!(reason.chars().count() < 300, "{reason}");
    assert!(reason.contains("expected u32"), "{reason}");
    replay(&data);
}

/// A convert whose copy overlaps the backup quoted both prefixes whole, before the
/// bucket-prefix's length was checked: a 4 KB prefix of combining characters made a reason
/// of 14 KB.
#[test]
fn an_overlapping_convert_quotes_at_most_100_characters_of_a_prefix() {
    let name = "validate_request-an-overlapping-convert-quoted-its-whole-prefix";
    let data = input(name);
    let reason = solace_functions::request::validate(&String::from_utf8_lossy(&data), 1000)
        .expect_err("overlapping prefixes")
        .to_string();
    assert!(reason.contains("overlaps"), "{reason}");
    assert!(reason.chars().count() < 1_500, "{reason}");
    replay(&data);
}

/// The same, as the fuzz target found it: 257 bytes (a length the target stretches each
/// string field of to 17 KiB), whose bucket-prefix made a reason of 17 KB.
#[test]
fn a_stretched_overlapping_convert_is_refused_with_a_short_reason() {
    let name = "validate_request-a-stretched-overlapping-convert-prefix-was-quoted-whole";
    let data = input(name);
    assert_eq!(data.len() % 16, 1, "the length that stretches it");
    replay(&data);
}

#[test]
fn every_seed_and_regression_replays() {
    for target in TARGETS {
        let seeds = files(&seeds(target));
        assert!(seeds.len() >= 10, "{target}: {} seeds", seeds.len());
        for seed in seeds {
            let data = std::fs::read(&seed).expect("a seed");
            eprintln!("{}", seed.display());
            replay(&data);
        }
    }
    for file in files(&regressions()) {
        let name = file
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        assert!(
            TARGETS.iter().any(|t| name.starts_with(&format!("{t}-"))),
            "{name}: a regression file is named <target>-<what it broke>"
        );
        replay(&std::fs::read(&file).expect("a regression"));
    }
}
