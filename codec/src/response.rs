//! A DynamoDB Scan or Query response body read in one pass: each item found and checked where
//! it lies in the body ([`ResponsePage`]), the scan position and the counts read beside them.
//!
//! The response's `Items` array is already the batch format's content (DynamoDB JSON items),
//! so a backup hands each item's bytes to the encoder without building anything: the scanner
//! here checks every item once (the same checks as [`RawItem::parse`]), and
//! [`RawItem::compact_into`] removes the white space and the needless escapes some servers
//! put in.
//! Everything else in the body (`ConsumedCapacity`, `ScannedCount`, fields added later) is
//! skipped by serde_json, which checks it is JSON.

use std::ops::Range;

use serde::Deserialize;

use crate::batch::{RawItem, RawItemError, scan_item, skip_ws, utf8};

/// A response body with its items checked: `body` is kept so that [`ResponsePage::items`]
/// can hand out checked [`RawItem`]s without checking them again.
#[derive(Debug, Clone, Default)]
pub struct ResponsePage<B> {
    body: B,
    items: Vec<Range<usize>>,
    last_key: Option<Range<usize>>,
    count: Option<u64>,
    consumed: Option<f64>,
}

/// Why a body is not a Scan or Query response.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResponseError {
    #[error("bad JSON at offset {offset}: {message}")]
    Json { offset: usize, message: String },
    #[error("item {index} (at offset {offset}): {error}")]
    Item {
        index: usize,
        offset: usize,
        error: RawItemError,
    },
    #[error("the LastEvaluatedKey (at offset {offset}): {error}")]
    LastKey { offset: usize, error: RawItemError },
    #[error("the response says Count {count} but holds {items} items")]
    Count { count: u64, items: usize },
}

impl<B: AsRef<[u8]>> ResponsePage<B> {
    /// Reads a response body: a JSON object whose `Items` (absent: none) is an array of
    /// items, `LastEvaluatedKey` (absent or `{}`: the scan is finished) an item-shaped key,
    /// `Count` (when present) the number of items, and `ConsumedCapacity.CapacityUnits` the
    /// capacity used. A field named twice is an error, as any other field is skipped.
    pub fn parse(body: B) -> Result<Self, ResponseError> {
        let (items, last_key, count, consumed) = read(body.as_ref())?;
        if let Some(count) = count
            && count != items.len() as u64
        {
            return Err(ResponseError::Count {
                count,
                items: items.len(),
            });
        }
        Ok(ResponsePage {
            body,
            items,
            last_key,
            count,
            consumed,
        })
    }

    /// The body as received.
    pub fn body(&self) -> &B {
        &self.body
    }

    /// The items, in response order.
    pub fn items(&self) -> impl ExactSizeIterator<Item = RawItem<'_>> + '_ {
        let body = self.body.as_ref();
        self.items
            .iter()
            .map(|r| RawItem::checked(&body[r.clone()]))
    }

    /// How many items the page holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Where the next page starts: `None` when absent or empty (the scan is finished).
    pub fn last_key(&self) -> Option<RawItem<'_>> {
        let key = RawItem::checked(&self.body.as_ref()[self.last_key.clone()?]);
        (!is_empty_object(key.as_bytes())).then_some(key)
    }

    /// The response's `Count`, when it had one (it matched the items).
    pub fn count(&self) -> Option<u64> {
        self.count
    }

    /// `ConsumedCapacity.CapacityUnits`, when the response had it.
    pub fn consumed(&self) -> Option<f64> {
        self.consumed
    }
}

fn is_empty_object(json: &[u8]) -> bool {
    json.iter()
        .filter(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
        .eq(b"{}".iter())
}

type Read = (
    Vec<Range<usize>>,
    Option<Range<usize>>,
    Option<u64>,
    Option<f64>,
);

fn read(json: &[u8]) -> Result<Read, ResponseError> {
    let syntax = |offset: usize, message: &str| ResponseError::Json {
        offset,
        message: message.to_owned(),
    };
    let text = utf8(json).map_err(|(offset, message)| ResponseError::Json { offset, message })?;
    let mut items: Option<Vec<Range<usize>>> = None;
    let mut last_key = None;
    let mut count = None;
    let mut consumed = None;
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return Err(syntax(i, "a response must be a JSON object"));
    }
    i = skip_ws(json, i + 1);
    if json.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            let key_at = i;
            let (key, after) = field_name(text, i)?;
            i = skip_ws(json, after);
            if json.get(i) != Some(&b':') {
                return Err(syntax(i, "expected `:` after a field name"));
            }
            i = skip_ws(json, i + 1);
            let twice = |seen: bool| {
                if seen {
                    Err(syntax(key_at, "a field is named twice"))
                } else {
                    Ok(())
                }
            };
            i = match key.as_ref() {
                "Items" => {
                    twice(items.is_some())?;
                    let mut ranges = Vec::new();
                    let end = item_array(text, i, &mut ranges)?;
                    items = Some(ranges);
                    end
                }
                "LastEvaluatedKey" => {
                    twice(last_key.is_some())?;
                    // `{}` (an empty key: the scan is finished) is not an item.
                    let close = skip_ws(json, i + 1);
                    let end = if json.get(i) == Some(&b'{') && json.get(close) == Some(&b'}') {
                        close + 1
                    } else {
                        scan_item(text, i)
                            .map_err(|error| ResponseError::LastKey { offset: i, error })?
                    };
                    last_key = Some(i..end);
                    end
                }
                "Count" => {
                    twice(count.is_some())?;
                    let (value, end) = value::<u64>(text, i, "Count must be a count")?;
                    count = Some(value);
                    end
                }
                "ConsumedCapacity" => {
                    twice(consumed.is_some())?;
                    let (value, end) =
                        value::<Consumed>(text, i, "ConsumedCapacity is not what DynamoDB sends")?;
                    consumed = value.units;
                    end
                }
                // Read whole, not skipped: serde's skipping checks a `\u` escape's four hex
                // digits but not its surrogate pairing, so a lone surrogate would pass here
                // and fail every JSON reader of the body (fuzzing found it).
                _ => value::<serde_json::Value>(text, i, "malformed JSON")?.1,
            };
            i = skip_ws(json, i);
            match json.get(i) {
                Some(b',') => i = skip_ws(json, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                Some(_) => return Err(syntax(i, "expected `,` or `}` after a field")),
                None => return Err(syntax(i, "the object is not closed")),
            }
        }
    }
    let end = skip_ws(json, i);
    if end != json.len() {
        return Err(syntax(end, "trailing characters after the response"));
    }
    Ok((items.unwrap_or_default(), last_key, count, consumed))
}

/// The field name starting at `i` (a JSON string) and the offset after it. Names without
/// escapes (all of DynamoDB's) are borrowed; others are decoded by serde_json.
fn field_name(text: &str, i: usize) -> Result<(std::borrow::Cow<'_, str>, usize), ResponseError> {
    let json = text.as_bytes();
    if json.get(i) != Some(&b'"') {
        return Err(ResponseError::Json {
            offset: i,
            message: "expected a field name".into(),
        });
    }
    match memchr::memchr2(b'"', b'\\', &json[i + 1..]) {
        // JSON strings hold no raw control characters: a name with one goes to serde, which
        // refuses it.
        Some(n) if json[i + 1 + n] == b'"' && json[i + 1..i + 1 + n].iter().all(|b| *b >= 0x20) => {
            Ok((text[i + 1..i + 1 + n].into(), i + 2 + n))
        }
        _ => value::<String>(text, i, "malformed field name").map(|(s, end)| (s.into(), end)),
    }
}

#[derive(Deserialize)]
struct Consumed {
    #[serde(rename = "CapacityUnits", default)]
    units: Option<f64>,
}

/// One JSON value of type `T` starting at `i`, and the offset after it.
fn value<'de, T: Deserialize<'de>>(
    text: &'de str,
    i: usize,
    what: &str,
) -> Result<(T, usize), ResponseError> {
    let mut stream = serde_json::Deserializer::from_str(&text[i..]).into_iter::<T>();
    match stream.next() {
        Some(Ok(value)) => Ok((value, i + stream.byte_offset())),
        _ => Err(ResponseError::Json {
            offset: i,
            message: what.to_owned(),
        }),
    }
}

/// The array of items starting at `i`: each item's range goes into `ranges`; returns the
/// offset after the array.
fn item_array(
    text: &str,
    mut i: usize,
    ranges: &mut Vec<Range<usize>>,
) -> Result<usize, ResponseError> {
    let json = text.as_bytes();
    let syntax = |offset: usize, message: &str| ResponseError::Json {
        offset,
        message: message.to_owned(),
    };
    if json.get(i) != Some(&b'[') {
        return Err(syntax(i, "Items must be an array"));
    }
    i = skip_ws(json, i + 1);
    if json.get(i) == Some(&b']') {
        return Ok(i + 1);
    }
    loop {
        let start = i;
        let end = scan_item(text, start).map_err(|error| ResponseError::Item {
            index: ranges.len(),
            offset: start,
            error,
        })?;
        ranges.push(start..end);
        i = skip_ws(json, end);
        match json.get(i) {
            Some(b',') => i = skip_ws(json, i + 1),
            Some(b']') => return Ok(i + 1),
            Some(_) => return Err(syntax(i, "expected `,` or `]` after an item")),
            None => return Err(syntax(i, "the Items array is not closed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{self, Shape};

    fn page(json: &str) -> Result<ResponsePage<&[u8]>, ResponseError> {
        ResponsePage::parse(json.as_bytes())
    }

    fn items(page: &ResponsePage<&[u8]>) -> Vec<String> {
        page.items()
            .map(|i| String::from_utf8(i.as_bytes().to_vec()).expect("valid"))
            .collect()
    }

    #[test]
    fn items_key_count_and_capacity_are_read_and_other_fields_skipped() {
        let body = r#" { "Items" : [ {"pk": {"S": "a"}} , {"pk":{"N":"1"},"b":{"BOOL":true}} ],
            "Count": 2, "ScannedCount": 7, "Extra": {"nested": [1, "x", null]},
            "LastEvaluatedKey": {"pk": {"N": "1"}},
            "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.5} } "#;
        let page = page(body).expect("valid");
        assert_eq!(
            items(&page),
            [
                r#"{"pk": {"S": "a"}}"#,
                r#"{"pk":{"N":"1"},"b":{"BOOL":true}}"#
            ]
        );
        assert_eq!(page.count(), Some(2));
        assert_eq!(page.consumed(), Some(1.5));
        assert_eq!(
            page.last_key().expect("valid").as_bytes(),
            br#"{"pk": {"N": "1"}}"#
        );
    }

    #[test]
    fn a_page_without_items_or_key_is_an_empty_finished_page() {
        for body in [
            r#"{}"#,
            r#"{"Items": [], "Count": 0}"#,
            r#"{"LastEvaluatedKey": { }}"#,
        ] {
            let page = page(body).expect("valid");
            assert!(page.is_empty(), "{body}");
            assert!(page.last_key().is_none(), "{body}");
        }
    }

    #[test]
    fn a_count_that_differs_from_the_items_is_refused() {
        let err = page(r#"{"Items": [{"a": {"S": "x"}}], "Count": 2}"#).expect_err("refused");
        assert_eq!(err, ResponseError::Count { count: 2, items: 1 });
    }

    #[test]
    fn an_escaped_field_name_is_decoded() {
        let page = page(r#"{"\u0049tems": [{"a": {"S": "x"}}], "C\"x": 1}"#).expect("valid");
        assert_eq!(page.len(), 1);
    }

    #[test]
    fn bad_bodies_are_refused_with_what_and_where() {
        let cases = [
            ("[]", "a response must be a JSON object"),
            (r#"{"Items": {}}"#, "Items must be an array"),
            (r#"{"Items": [], "Items": []}"#, "a field is named twice"),
            (
                r#"{"Items": [{"a": {"S": "x"}} {"b": {"S": "y"}}]}"#,
                "expected `,` or `]`",
            ),
            (
                r#"{"Items": [{"a": {"S": "x"}}"#,
                "the Items array is not closed",
            ),
            (r#"{"Count": "2"}"#, "Count must be a count"),
            (r#"{"Other": [1,}"#, "malformed JSON"),
            (r#"{"Items": []} x"#, "trailing characters"),
            (r#"{"Items": []"#, "the object is not closed"),
            (r#"{Items: []}"#, "expected a field name"),
        ];
        for (body, message) in cases {
            let err = page(body).expect_err("refused").to_string();
            assert!(err.contains(message), "{body}: {err}");
        }
        let err =
            page(r#"{"Items": [{"a": {"S": "x"}}, {"n": {"N": "x1"}}]}"#).expect_err("refused");
        assert!(
            matches!(err, ResponseError::Item { index: 1, .. }),
            "{err:?}"
        );
        let err = page(r#"{"LastEvaluatedKey": {"k": {"X": "1"}}}"#).expect_err("refused");
        assert!(matches!(err, ResponseError::LastKey { .. }), "{err:?}");
        assert!(page("{\"Items\": [{\"a\": {\"S\": \"\u{0}\"}}]}\u{ff}").is_err());
        // A raw control character in a field name (found by the decode fuzz target).
        let err = page("{\"\u{12}ount\": 1}").expect_err("refused");
        assert!(err.to_string().contains("malformed field name"), "{err}");
        assert!(ResponsePage::parse(&b"{\"Items\": [], \"x\": \"\xff\"}"[..]).is_err());
    }

    /// The emulator's escapes of non-ASCII characters become the characters; escapes a
    /// string needs stay.
    #[test]
    fn escapes_of_characters_that_need_none_are_written_as_the_characters() {
        let body = r#"{"Items": [{"s": {"S": "a\u00e9 \ud83e\udd80\u6771\u0001\u0022\u005c\n\t\"\\\/\u007fx"}}]}"#;
        let page = page(body).expect("valid");
        let mut out = Vec::new();
        let item = page.items().next().expect("an item").compact_into(&mut out);
        assert_eq!(
            std::str::from_utf8(item.as_bytes()).expect("UTF-8"),
            r#"{"s":{"S":"aé 🦀東\u0001\u0022\u005c\n\t\"\\\/\u007fx"}}"#
        );
    }

    /// Sample items of every shape, laid out as a server with spaces and escapes would send
    /// them (serde_json's pretty printer), read back as the items themselves.
    #[test]
    fn sample_pages_give_back_their_items_and_compact_to_the_writer_s_bytes() {
        for shape in [Shape::Small, Shape::Medium, Shape::Large] {
            let written: Vec<Vec<u8>> = (0..20)
                .map(|n| {
                    let mut json = Vec::new();
                    crate::write_item(&sample::item(shape, n), &mut json);
                    json
                })
                .collect();
            let values: Vec<serde_json::Value> = written
                .iter()
                .map(|j| serde_json::from_slice(j).expect("valid"))
                .collect();
            let body = serde_json::to_vec_pretty(&serde_json::json!({
                "Items": values, "Count": values.len(), "ScannedCount": values.len(),
            }))
            .expect("valid");
            let page = ResponsePage::parse(&body[..]).expect("valid");
            assert_eq!(page.len(), written.len());
            let mut out = Vec::new();
            for (item, json) in page.items().zip(&written) {
                out.clear();
                let compact = item.compact_into(&mut out);
                let reparsed: serde_json::Value =
                    serde_json::from_slice(compact.as_bytes()).expect("valid");
                assert_eq!(
                    reparsed,
                    serde_json::from_slice::<serde_json::Value>(json).expect("valid")
                );
                assert!(RawItem::parse(compact.as_bytes()).is_ok());
                // No white space is left outside strings: the compact form of serde_json's
                // own writer, which keeps escapes as they are.
                let value: serde_json::Value =
                    serde_json::from_slice(item.as_bytes()).expect("valid");
                assert_eq!(
                    compact.as_bytes(),
                    serde_json::to_vec(&value).expect("valid")
                );
            }
        }
    }
}
