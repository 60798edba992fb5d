//! A fast validating scanner for DynamoDB JSON items: accepts only what the serde path accepts;
//! anything it is unsure of (an escape in a type tag, number or base64, a lone surrogate escape, deep
//! nesting, any error) returns None and the caller falls back to the serde path, which decides
//! and reports.
//!
//! Precondition: the input is valid UTF-8 (checked once for the whole buffer by the caller).
//!
//! The scanner is generic over the [`Build`] target: with [`Checked`] it only validates (every
//! builder call is of unit types and compiles away); with the SDK's or the typed model's
//! target it checks and builds in the same pass, so a restore reads each item once.
//!
//! Hand-written because no library validates fast enough here: serde_json's syntax-only pass
//! alone takes 0.9-2.2 × inflate's time on these items and simd-json's tape 1.7-2.7 × (and
//! checks syntax only); the serde visitors were 3-7 × (`benches/README.md`). This scanner
//! takes the decode of text batches from 5-7 × inflate's time to about 2 ×. It can only
//! accept less than the serde path, never more: a differential test below, and the `decode`
//! fuzz target (an accepted item that serde refused would fail its re-read).

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::parse::{Build, Checked, check_number};

const MAX_DEPTH: u32 = 32;

struct S<'a> {
    t: &'a str,
    b: &'a [u8],
    i: usize,
}

#[inline]
fn special(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let q = w ^ (LO * b'"' as u64);
    let bs = w ^ (LO * b'\\' as u64);
    let zq = q.wrapping_sub(LO) & !q;
    let zb = bs.wrapping_sub(LO) & !bs;
    let ctl = w.wrapping_sub(LO * 0x20) & !w;
    (zq | zb | ctl) & HI
}

impl<'a> S<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// Scans a string whose opening quote is at `i`; returns (content range, had escapes).
    #[inline]
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        self.ws();
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            // 8 bytes at a time to the next quote, backslash or control character.
            while let Some(chunk) = self.b.get(self.i..self.i + 8) {
                let w = u64::from_le_bytes(chunk.try_into().ok()?);
                let m = special(w);
                if m != 0 {
                    self.i += (m.trailing_zeros() / 8) as usize;
                    break;
                }
                self.i += 8;
            }
            let c = *self.b.get(self.i)?;
            match c {
                b'"' => {
                    let end = self.i;
                    self.i += 1;
                    return Some((start, end, escaped));
                }
                b'\\' => {
                    escaped = true;
                    let e = *self.b.get(self.i + 1)?;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'u' => {
                            let v = hex4(self.b.get(self.i + 2..self.i + 6)?)?;
                            if (0xD800..0xDC00).contains(&v) {
                                // A leading surrogate must be followed by a trailing one
                                // (how JSON escapes a character past U+FFFF: an emoji).
                                let next = self.b.get(self.i + 6..self.i + 12)?;
                                if !next.starts_with(b"\\u")
                                    || !(0xDC00..0xE000).contains(&hex4(&next[2..])?)
                                {
                                    return None; // a lone surrogate: serde decides
                                }
                                self.i += 12;
                            } else if (0xDC00..0xE000).contains(&v) {
                                return None; // a lone trailing surrogate: serde decides
                            } else {
                                self.i += 6;
                            }
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
    }

    /// A string that must have no escapes; its content.
    #[inline]
    fn plain(&mut self) -> Option<&'a [u8]> {
        let (s, e, esc) = self.string()?;
        if esc { None } else { Some(&self.b[s..e]) }
    }

    /// A string's text: borrowed when it has no escapes, unescaped (by serde_json, the
    /// rare case) when it has; nothing at all for a target that keeps nothing.
    #[inline]
    fn text<B: Build<'a>>(&mut self) -> Option<Cow<'a, str>> {
        let (s, e, escaped) = self.string()?;
        if !B::KEEPS {
            Some(Cow::Borrowed(""))
        } else if escaped {
            serde_json::from_str::<String>(self.t.get(s - 1..e + 1)?)
                .ok()
                .map(Cow::Owned)
        } else {
            // Quotes are ASCII: both ends are character boundaries of the valid text.
            self.t.get(s..e).map(Cow::Borrowed)
        }
    }

    fn item<B: Build<'a>>(&mut self) -> Option<B::Map> {
        self.eat(b'{')?;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            return None; // empty item: serde reports it
        }
        let mut map = B::Map::default();
        self.members::<B>(0, &mut map)?;
        Some(map)
    }

    /// `"name": attr, ...}` after the `{`.
    fn members<B: Build<'a>>(&mut self, depth: u32, map: &mut B::Map) -> Option<()> {
        loop {
            let key = self.text::<B>()?;
            self.eat(b':')?;
            let value = self.attr::<B>(depth)?;
            B::insert(map, key, value);
            self.ws();
            match self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn attr<B: Build<'a>>(&mut self, depth: u32) -> Option<B> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        let tag = self.plain()?;
        self.eat(b':')?;
        let value = match tag {
            b"S" => B::s(B::string(self.text::<B>()?)),
            b"N" => B::n(self.number::<B>()?),
            b"B" => B::b(self.base64::<B>()?),
            b"SS" => B::ss(self.set(|s| s.text::<B>().map(B::string))?),
            b"NS" => B::ns(self.set(Self::number::<B>)?),
            b"BS" => B::bs(self.set(Self::base64::<B>)?),
            b"M" => {
                self.eat(b'{')?;
                self.ws();
                let mut map = B::Map::default();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                } else {
                    self.members::<B>(depth + 1, &mut map)?;
                }
                B::m(map)
            }
            b"L" => {
                self.eat(b'[')?;
                self.ws();
                let mut list = Vec::new();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                } else {
                    loop {
                        list.push(self.attr::<B>(depth + 1)?);
                        self.ws();
                        match self.b.get(self.i)? {
                            b',' => self.i += 1,
                            b']' => {
                                self.i += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                B::l(list)
            }
            b"NULL" => {
                self.literal(b"true")?;
                B::null()
            }
            b"BOOL" => {
                self.ws();
                match self.b.get(self.i)? {
                    b't' => {
                        self.literal(b"true")?;
                        B::bool(true)
                    }
                    _ => {
                        self.literal(b"false")?;
                        B::bool(false)
                    }
                }
            }
            _ => return None,
        };
        self.eat(b'}')?;
        Some(value)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.ws();
        if self.b.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    fn set<T>(&mut self, mut element: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.eat(b'[')?;
        let mut out = Vec::new();
        loop {
            out.push(element(self)?); // a set is never empty
            self.ws();
            match self.b.get(self.i)? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(out);
                }
                _ => return None,
            }
        }
    }

    fn number<B: Build<'a>>(&mut self) -> Option<B::Str> {
        let (s, e, escaped) = self.string()?;
        if escaped {
            return None;
        }
        let n = self.t.get(s..e)?;
        check_number(n).ok()?;
        Some(B::string(Cow::Borrowed(if B::KEEPS { n } else { "" })))
    }

    fn base64<B: Build<'a>>(&mut self) -> Option<B::Bin> {
        let text = self.plain()?;
        if !canonical_base64(text) {
            return None;
        }
        if !B::KEEPS {
            return Some(B::binary(&[]));
        }
        let mut bytes = Vec::with_capacity(text.len() / 4 * 3);
        BASE64.decode_vec(text, &mut bytes).ok()?;
        Some(B::binary_owned(bytes))
    }
}

const fn b64_table() -> [u8; 256] {
    let mut t = [0xFFu8; 256];
    let a = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[a[i] as usize] = i as u8;
        i += 1;
    }
    t
}
static B64: [u8; 256] = b64_table();

/// What base64's STANDARD engine accepts: padded to a multiple of 4, canonical trailing bits.
fn canonical_base64(s: &[u8]) -> bool {
    if s.len() % 4 != 0 {
        return false;
    }
    let pad = s.iter().rev().take(2).take_while(|c| **c == b'=').count();
    let data = &s[..s.len() - pad];
    let mut bad = 0u8;
    for c in data {
        bad |= B64[*c as usize];
    }
    if bad & 0x80 != 0 {
        return false;
    }
    match (pad, data.last()) {
        (0, _) => true,
        (1, Some(c)) => B64[*c as usize] & 0x03 == 0,
        (2, Some(c)) => B64[*c as usize] & 0x0F == 0,
        _ => false,
    }
}

/// Four hex digits' value.
#[inline]
fn hex4(hex: &[u8]) -> Option<u32> {
    hex.iter()
        .try_fold(0u32, |v, h| Some(v * 16 + (*h as char).to_digit(16)?))
}

/// The offset just past the item starting at `start` (after white space), if the fast path
/// is sure it is valid.
pub(crate) fn scan_item(text: &str, start: usize) -> Option<usize> {
    build_item::<Checked>(text, start).map(|(end, ())| end)
}

/// The item starting at `start` (after white space) read into `B`, and the offset just past
/// it, if the fast path is sure it is valid: one pass both checks and builds.
pub(crate) fn build_item<'a, B: Build<'a>>(text: &'a str, start: usize) -> Option<(usize, B::Map)> {
    let mut s = S {
        t: text,
        b: text.as_bytes(),
        i: start,
    };
    let map = s.item::<B>()?;
    Some((s.i, map))
}

#[cfg(test)]
mod tests {
    use crate::sample::{self, Rng, Shape};

    /// The serde path alone (what scan_item did before the fast path).
    fn slow(text: &str) -> Option<usize> {
        crate::parse::clear_last();
        let mut stream =
            serde_json::Deserializer::from_str(text).into_iter::<crate::parse::Validated>();
        match stream.next() {
            Some(Ok(_)) => Some(stream.byte_offset()),
            _ => None,
        }
    }

    /// The item as serde's visitors alone read it.
    fn serde_value(text: &str) -> crate::Item {
        use serde::de::DeserializeSeed as _;
        let mut de = serde_json::Deserializer::from_str(text);
        crate::parse::ItemSeed::<crate::Value>(std::marker::PhantomData)
            .deserialize(&mut de)
            .expect("serde accepted it")
    }

    /// Escapes in names and strings, binaries and every set: the one-pass builder reads what
    /// serde reads.
    #[test]
    fn the_builder_reads_escapes_binaries_and_sets_as_serde_does() {
        let text = r#"{"n\u00e9\"q": {"S": "a\nb\u00e9\ud83e\udd80"}, "b": {"B": "AAEC/w=="},
            "bs": {"BS": ["AA==", "AQ=="]}, "ss": {"SS": ["x", "y\t"]}, "ns": {"NS": ["1", "-2.5e3"]},
            "m": {"M": {"in": {"L": [{"NULL": true}, {"BOOL": false}, {"N": "7"}]}}}, "e": {"M": {}}}"#;
        let (end, fast) = super::build_item::<crate::Value>(text, 0).expect("the fast path");
        assert_eq!(end, text.len());
        assert_eq!(fast, serde_value(text));
        for shape in Shape::ALL {
            for n in 0..20 {
                let mut json = Vec::new();
                crate::write_item(&sample::item(shape, n), &mut json);
                let text = std::str::from_utf8(&json).expect("sample items are UTF-8");
                let (_, item) = super::build_item::<crate::Value>(text, 0).expect("fast");
                assert_eq!(item, sample::item(shape, n), "{shape:?} {n}");
            }
        }
    }

    #[test]
    fn fast_path_accepts_only_what_serde_accepts() {
        const ALPHABET: &[u8] =
            b"{}[]\",:\\ SNBLMSSNSBSNULLBOOLtruefalse0123456789.-eE+=/uAQ\xc3\xa9\x01\tn";
        let mut r = Rng::new(7);
        let mut accepted = 0;
        let mut agreed_rejects = 0;
        for n in 0..4000u64 {
            let shape = [Shape::Small, Shape::Medium, Shape::Binary][(n % 3) as usize];
            let mut json = Vec::new();
            crate::write_item(&sample::item(shape, n), &mut json);
            let mutations = 1 + r.below(3);
            for _ in 0..mutations {
                let at = r.below(json.len() as u64) as usize;
                let c = ALPHABET[r.below(ALPHABET.len() as u64) as usize];
                match r.below(3) {
                    0 => json[at] = c,
                    1 => json.insert(at, c),
                    _ => {
                        json.remove(at);
                    }
                }
            }
            let Ok(text) = std::str::from_utf8(&json) else {
                continue;
            };
            let fast = super::scan_item(text, 0);
            let slow = slow(text);
            if let Some(end) = fast {
                assert_eq!(slow, Some(end), "fast accepted, serde did not: {text}");
                assert_eq!(
                    super::build_item::<crate::Value>(text, 0).map(|(_, item)| item),
                    Some(serde_value(text)),
                    "the one-pass builder read another item than serde: {text}"
                );
                accepted += 1;
            } else if slow.is_none() {
                agreed_rejects += 1;
            }
        }
        eprintln!("accepted {accepted}, both rejected {agreed_rejects}");
        // Unmutated items all take the fast path.
        for shape in Shape::ALL {
            for n in 0..50 {
                let mut json = Vec::new();
                crate::write_item(&sample::item(shape, n), &mut json);
                let text = std::str::from_utf8(&json).expect("sample items are UTF-8");
                assert_eq!(super::scan_item(text, 0), Some(json.len()));
            }
        }
    }

    /// A character past U+FFFF escaped as a surrogate pair (how the emulator sends every
    /// emoji) stays on the fast path; a lone or reversed surrogate goes to serde.
    #[test]
    fn surrogate_pairs_are_fast_and_lone_surrogates_are_serde_s() {
        let item = |s: &str| format!(r#"{{"a": {{"S": "x{s}y"}}, "b": {{"SS": ["{s}"]}}}}"#);
        for pair in [
            r"\ud83e\udd80",
            r"\uD83D\uDE00",
            r"\udbff\udfff",
            r"\ud800\udc00",
        ] {
            let text = item(pair);
            assert_eq!(super::scan_item(&text, 0), Some(text.len()), "{pair}");
            assert_eq!(slow(&text), Some(text.len()), "{pair}");
        }
        for lone in [
            r"\ud83e",
            r"\ud83e\u0041",
            r"\udd80",
            r"\udd80\ud83e",
            r"\ud83e\n",
            r"\ud83e\udd8",
        ] {
            let text = item(lone);
            assert_eq!(super::scan_item(&text, 0), None, "{lone}");
        }
    }
}
