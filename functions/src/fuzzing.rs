//! The functions' readers of untrusted text as plain functions over arbitrary bytes, shared
//! by the fuzz targets in `fuzz/` (`validate_request`, `messages`) and
//! `tests/fuzz_regressions.rs`. Each takes any bytes, never fails on bad input, and panics
//! only when the code is wrong.
//!
//! - [`validate_request`]: a body on the request queue, read as a request
//!   ([`request::validate`]) and as a cancel. An accepted request validates again, unchanged,
//!   from the form the status table and a fan-out continuation keep, and its segment
//!   messages and fan-out continuation read back as sent; a refusal's reason is bounded, and
//!   its rejection record ([`request::rejection_record`]) is JSON that fits in an SQS message
//!   and describes the body exactly.
//! - [`parse_message`]: a body on a work queue or a dead-letter queue, read by the reader the
//!   backup, restore and redrive functions share ([`message::parse_segment_message`]: first
//!   messages, continuations and dead letters), and as a fan-out continuation on the request
//!   queue. What reads serializes and reads back to itself, and so do the continuation and
//!   re-routed copies the handlers send of it; what does not read is [`Unreadable`] with a
//!   bounded reason, its size and SHA-256, and a reason that does not depend on (so never
//!   quotes) the key values a checkpoint carries.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::value::RawValue;
use solace_pipeline::{RestoreCheckpoint, sha256_hex};

use crate::message::{
    self, Checkpoint, MAX_UNREADABLE_REASON, Request, SegmentMessage, Unreadable,
    parse_segment_message,
};
use crate::queues::MAX_BATCH;
use crate::request::{self, FanOutFields, REJECTED_BODY_KEPT, REJECTED_REASON_KEPT};

/// SQS's largest message body, and the largest SendMessageBatch payload.
pub const SQS_MAX_MESSAGE: usize = 256 << 10;

/// The deployments' default `SOLACE_MAX_SEGMENTS`.
const MAX_SEGMENTS: u32 = 1000;

/// A task id as the request function makes them (an SQS message id).
const TASK_ID: &str = "1f0c7a52-0000-4000-8000-000000000001";

/// Bodies arrive as text (SQS holds Unicode only); other bytes are read as their lossy
/// conversion, so what follows an invalid byte is still reached.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A body on the request queue: as a request, then as a cancel. A large version of a
/// refused body (1 input in 16) checks that its record is cut, and still fits; versions
/// with a string field made long (1 in 16) check what a long value does.
pub fn validate_request(bytes: &[u8]) {
    let body = text(bytes);
    let reason = match request::validate(&body, MAX_SEGMENTS) {
        Ok(request) => {
            accepted(&request);
            None
        }
        Err(invalid) => {
            let reason = invalid.to_string();
            refused(&body, &reason);
            Some(reason)
        }
    };
    match request::parse_cancel(&body) {
        Ok(id) => assert!(message::check_task_id(&id).is_ok(), "a cancel of {id:?}"),
        Err(reason) => refused(&body, &reason),
    }
    // Chosen by the length: most inputs begin with the same `{`.
    match (reason, bytes.len() % 16) {
        (Some(reason), 0) => {
            let times = (REJECTED_BODY_KEPT + 1).div_ceil(body.len().max(1));
            let large = body.repeat(times);
            if large.len() <= SQS_MAX_MESSAGE {
                refused(&large, &reason);
            }
        }
        // Past the fuzzer's input size: each string field made long in turn, as a body on
        // the queue may be (what a bound on a reason or a record is about).
        (_, 1) => {
            for long in stretched(&body) {
                match request::validate(&long, MAX_SEGMENTS) {
                    Ok(request) => accepted(&request),
                    Err(invalid) => refused(&long, &invalid.to_string()),
                }
            }
        }
        _ => {}
    }
}

/// `body`'s JSON object once for each of its string fields, with that field's value
/// repeated past the 16 KiB a rejection record keeps of a body; none if it is no object.
fn stretched(body: &str) -> Vec<String> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(body) else {
        return Vec::new();
    };
    fields
        .iter()
        .filter_map(|(key, value)| {
            let s = value.as_str().filter(|s| !s.is_empty())?;
            let mut long = fields.clone();
            long.insert(
                key.clone(),
                s.repeat((REJECTED_BODY_KEPT + 1024) / s.len() + 1).into(),
            );
            Some(serde_json::Value::Object(long).to_string())
        })
        .collect()
}

/// An accepted request: the forms it travels in read back to it.
fn accepted(request: &Request) {
    // The status table's and the fan-out continuation's form validates to the same request.
    let json = serde_json::to_string(request).expect("a request serializes");
    assert_eq!(
        request::validate(&json, MAX_SEGMENTS).as_ref(),
        Ok(request),
        "the request as the function keeps it: {json}"
    );
    // Each segment's first message, ten of which go in one SendMessageBatch.
    let first = SegmentMessage {
        task_id: TASK_ID.to_owned(),
        segment: request.total_segments - 1,
        request: request.clone(),
        checkpoint: None,
        redrives: 0,
    };
    let sent = first.to_json();
    assert!(
        sent.len() <= SQS_MAX_MESSAGE / MAX_BATCH,
        "a first message of {} bytes",
        sent.len()
    );
    assert_eq!(parse_segment_message(&sent), Ok(first), "{sent}");
    let fan_out = FanOutFields {
        action: "fan-out".to_owned(),
        task_id: TASK_ID.to_owned(),
        request: request.clone(),
    };
    let sent = fan_out
        .to_json()
        .expect("a fan-out continuation serializes");
    assert_eq!(request::parse_fan_out(&sent), Ok(fan_out), "{sent}");
}

/// A refused body: a reason the record keeps whole, and a record that fits in a message and
/// holds the body's first bytes, its size and its SHA-256.
fn refused(body: &str, reason: &str) {
    assert!(!reason.is_empty(), "a refusal says why");
    assert!(
        reason.len() <= REJECTED_REASON_KEPT,
        "a reason of {} bytes: {}…",
        reason.len(),
        reason.chars().take(200).collect::<String>()
    );
    let record = request::rejection_record(TASK_ID, reason, body, "2026-11-24T09:30:00Z");
    assert!(
        record.len() <= SQS_MAX_MESSAGE,
        "a record of {} bytes",
        record.len()
    );
    let v: serde_json::Value = serde_json::from_str(&record).expect("a record is JSON");
    assert_eq!(v["reason"].as_str(), Some(reason), "the reason, whole");
    assert_eq!(v["request-bytes"].as_u64(), Some(body.len() as u64));
    assert_eq!(
        v["request-sha256"].as_str(),
        Some(sha256_hex(body.as_bytes()).as_str())
    );
    let kept = v["request"].as_str().expect("the body as a string");
    let whole = body.len().min(REJECTED_BODY_KEPT);
    // Cut at a character: at most 3 bytes short of the limit.
    assert!(
        body.starts_with(kept) && kept.len() <= whole && kept.len() + 3 >= whole,
        "{} of {} bytes kept",
        kept.len(),
        body.len()
    );
    assert_eq!(
        v["request-truncated"].as_bool(),
        Some(body.len() > REJECTED_BODY_KEPT)
    );
}

/// A body on a work queue, a dead-letter queue, or the request queue as a fan-out
/// continuation.
pub fn parse_message(bytes: &[u8]) {
    let body = text(bytes);
    match parse_segment_message(&body) {
        Ok(message) => {
            let sent = message.to_json();
            assert_eq!(
                parse_segment_message(&sent).as_ref(),
                Ok(&message),
                "{sent}"
            );
            // What the handlers send on from it: a continuation (a new checkpoint) and a
            // re-routed copy (one more redrive).
            let continuation = SegmentMessage {
                checkpoint: Some(Checkpoint::Restore(RestoreCheckpoint {
                    next_batch: u64::MAX,
                    items: u64::MAX,
                    bytes: 0,
                })),
                ..message.clone()
            };
            let rerouted = SegmentMessage {
                redrives: message.redrives.saturating_add(1),
                ..message.clone()
            };
            for next in [continuation, rerouted] {
                let sent = next.to_json();
                assert_eq!(parse_segment_message(&sent), Ok(next), "{sent}");
            }
        }
        Err(u) => {
            unreadable(&body, &u);
            reason_ignores_key_values(&body, &u);
        }
    }
    match request::parse_fan_out(&body) {
        Ok(fields) => {
            let sent = fields.to_json().expect("a fan-out continuation serializes");
            assert_eq!(request::parse_fan_out(&sent), Ok(fields), "{sent}");
        }
        Err(u) => unreadable(&body, &u),
    }
}

/// What a handler logs of a body it cannot read: a short reason, the body's size and hash.
fn unreadable(body: &str, u: &Unreadable) {
    assert!(!u.reason.is_empty(), "an unreadable body says why");
    assert!(
        u.reason.chars().count() <= MAX_UNREADABLE_REASON + 1,
        "a reason of {} characters",
        u.reason.chars().count()
    );
    assert_eq!(u.bytes, body.len());
    assert_eq!(u.sha256, sha256_hex(body.as_bytes()));
}

/// The reason a segment message is unreadable is the same when every key value its
/// checkpoint carries is replaced by another value of the same kind and length: it depends
/// on none of them, so it quotes none (docs/settings.md#logs: no item data in logs).
fn reason_ignores_key_values(body: &str, u: &Unreadable) {
    let spans = key_value_spans(body);
    if spans.is_empty() {
        return;
    }
    let mut other = body.to_owned();
    for (range, replacement) in spans.iter().rev() {
        other.replace_range(range.clone(), replacement);
    }
    if other == body {
        return;
    }
    let again = parse_segment_message(&other).map(|_| ());
    assert_eq!(
        again.map_err(|e| e.reason),
        Err(u.reason.clone()),
        "the reason depends on the checkpoint's key values: {other}"
    );
}

/// The byte ranges of the values inside `checkpoint.start-key` (a continuation's key values:
/// item data), each with what may replace it: a string of as many bytes of `Q`, a number
/// (or a number string) with each digit but 0 made 1 (as valid, or as invalid, as before).
/// Binaries are left alone (their validity depends on every character).
fn key_value_spans(body: &str) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    let key = object(body)
        .and_then(|top| top.get("checkpoint").copied())
        .and_then(|c| object(c.get()))
        .and_then(|c| c.get("start-key").copied());
    if let Some(key) = key {
        values(body, key, "", &mut out);
    }
    out
}

fn object(text: &str) -> Option<BTreeMap<String, &RawValue>> {
    serde_json::from_str(text).ok()
}

fn values(body: &str, raw: &RawValue, tag: &str, out: &mut Vec<(Range<usize>, String)>) {
    let text = raw.get();
    let start = text.as_ptr() as usize - body.as_ptr() as usize;
    let range = start..start + text.len();
    match text.as_bytes().first() {
        Some(b'{') => {
            for (k, v) in object(text).unwrap_or_default() {
                values(body, v, &k, out);
            }
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).unwrap_or_default();
            for v in items {
                // A set's elements are of its type.
                values(body, v, tag, out);
            }
        }
        Some(b'"') if tag == "B" || tag == "BS" => {}
        Some(b'"') if tag == "N" || tag == "NS" => out.push((range, ones(text))),
        Some(b'"') => {
            let inner = text.len() - 2;
            out.push((range, format!("\"{}\"", "Q".repeat(inner))));
        }
        // Past 18 digits a number may change between integer and float.
        Some(b'-' | b'0'..=b'9') if text.bytes().filter(u8::is_ascii_digit).count() <= 18 => {
            out.push((range, ones(text)));
        }
        _ => {}
    }
}

fn ones(text: &str) -> String {
    text.chars()
        .map(|c| if matches!(c, '1'..='9') { '1' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = r#"{"task-id":"1f0c7a52-0000-4000-8000-000000000001","segment":1,"action":"backup","total-segments":2,"table-region":"us-east-1","table-name":"orders","bucket-region":"eu-west-1","bucket-name":"backups","bucket-prefix":"orders/2026-12-01/","redrives":0"#;

    fn with_checkpoint(checkpoint: &str) -> String {
        format!("{MESSAGE},\"checkpoint\":{checkpoint}}}")
    }

    #[test]
    fn good_and_bad_messages_and_requests_hold_the_properties() {
        let good = with_checkpoint(
            r#"{"kind":"backup","next-batch":3,"start-key":{"pk":{"S":"item-000042"},"n":{"N":"42"}},"items":2}"#,
        );
        assert!(parse_segment_message(&good).is_ok());
        for body in [
            good.clone(),
            format!("{MESSAGE}}}"),
            with_checkpoint(r#"{"kind":"backup","next-batch":3,"start-key":{"pk":"secret-key"}}"#),
            with_checkpoint(r#"{"kind":"backup","next-batch":3,"start-key":{"pk":{"S":7}}}"#),
            with_checkpoint(
                r#"{"kind":"backup","next-batch":3,"start-key":{"pk":{"S":"a"},"pk":{"S":"b"}}}"#,
            ),
            "not json".to_owned(),
            String::new(),
        ] {
            parse_message(body.as_bytes());
            validate_request(body.as_bytes());
        }
        let request = r#"{"action": "backup", "total-segments": 8, "table-region": "eu-west-1",
            "table-name": "orders", "bucket-region": "us-east-1",
            "bucket-name": "example-dynamodb-backups", "bucket-prefix": "orders/2026-11-24T00-00/"}"#;
        validate_request(request.as_bytes());
        validate_request(&[0, 159, 146, 150]);
    }

    #[test]
    fn key_values_are_found_with_what_replaces_them() {
        let body = with_checkpoint(
            r#"{"kind":"backup","next-batch":3,"start-key": {"pk": {"S": "ab\"c"}, "n":{"N":"-205.5"},"b":{"B":"AAE="},"x": 17 }}"#,
        );
        let found: Vec<(String, String)> = key_value_spans(&body)
            .into_iter()
            .map(|(r, with)| (body[r].to_owned(), with))
            .collect();
        let want = [
            (r#""AAE=""#, None),
            (r#""-205.5""#, Some(r#""-101.1""#)),
            (r#""ab\"c""#, Some(r#""QQQQQ""#)),
            ("17", Some("11")),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .filter_map(|(v, with)| Some(((*v).to_owned(), (*with)?.to_owned())))
            .collect();
        assert_eq!(found, want);
    }
}
