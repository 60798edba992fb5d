//! Deterministic sample items for tests, benchmarks and the demo: every attribute type,
//! nesting, unicode, empty strings, 38-digit numbers, and sizes from ~200 B to near 400 KB.

use std::collections::BTreeMap;

use crate::{Item, Value};

/// The item shapes the benchmarks and tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// ~200 B of JSON: a few scalar attributes.
    Small,
    /// ~2 KB: every attribute type, a nested map and list.
    Medium,
    /// ~100 KB: long strings and lists.
    Large,
    /// ~20 KB, mostly binary and binary sets.
    Binary,
    /// Just under DynamoDB's 400 KB item limit.
    Huge,
}

impl Shape {
    pub const ALL: [Shape; 5] = [
        Shape::Small,
        Shape::Medium,
        Shape::Large,
        Shape::Binary,
        Shape::Huge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Small => "small",
            Shape::Medium => "medium",
            Shape::Large => "large",
            Shape::Binary => "binary",
            Shape::Huge => "huge",
        }
    }
}

/// A small deterministic generator (SplitMix64), so samples need no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// Text with some variety: ASCII words, escapes, and multi-byte unicode.
    pub fn text(&mut self, n: usize) -> String {
        const WORDS: [&str; 12] = [
            "alpha",
            "beta",
            "gamma",
            "δέλτα",
            "東京",
            "emoji🦀",
            "quote\"",
            "back\\slash",
            "tab\t",
            "line\n",
            "zeta",
            "omega",
        ];
        let mut s = String::with_capacity(n + 16);
        while s.len() < n {
            s.push_str(WORDS[self.below(WORDS.len() as u64) as usize]);
            s.push(' ');
        }
        s
    }

    pub fn number(&mut self) -> String {
        match self.below(6) {
            0 => self.below(1000).to_string(),
            1 => format!("-{}.{}", self.below(1 << 40), self.below(1000)),
            // 38 significant digits, the most DynamoDB keeps.
            2 => format!(
                "{}{:019}{:018}",
                1 + self.below(9),
                self.below(10u64.pow(19)),
                self.below(10u64.pow(18))
            ),
            3 => format!("0.{:030}1", self.below(1_000_000)),
            4 => format!("{}E+120", 1 + self.below(9)),
            _ => "0".to_owned(),
        }
    }
}

/// The key attributes of sample item `n`: `pk` (S) and `sk` (N).
pub fn key(n: u64) -> Item {
    let mut item = BTreeMap::new();
    item.insert("pk".to_owned(), Value::S(format!("item#{n:08}")));
    item.insert("sk".to_owned(), Value::N((n % 7).to_string()));
    item
}

/// Sample item `n` of a shape: the same `n` gives the same item.
pub fn item(shape: Shape, n: u64) -> Item {
    let mut r = Rng::new(n.wrapping_mul(31).wrapping_add(shape as u64));
    let mut item = key(n);
    let mut put = |k: &str, v: Value| {
        item.insert(k.to_owned(), v);
    };
    match shape {
        Shape::Small => {
            put("name", Value::S(r.text(40)));
            put("count", Value::N(r.number()));
            put("active", Value::Bool(r.below(2) == 0));
            put("tags", Value::Ss(vec!["a".into(), r.text(8)]));
        }
        Shape::Medium => {
            every_type(&mut r, &mut put);
            put("body", Value::S(r.text(900)));
            put(
                "history",
                Value::L((0..8).map(|_| Value::N(r.number())).collect()),
            );
        }
        Shape::Large => {
            every_type(&mut r, &mut put);
            for i in 0..8 {
                put(&format!("chapter{i}"), Value::S(r.text(10_000)));
            }
            put(
                "rows",
                Value::L(
                    (0..200)
                        .map(|_| {
                            let mut m = BTreeMap::new();
                            m.insert("v".to_owned(), Value::N(r.number()));
                            m.insert("t".to_owned(), Value::S(r.text(30)));
                            Value::M(m)
                        })
                        .collect(),
                ),
            );
        }
        Shape::Binary => {
            put("blob", Value::B(r.bytes(12_000)));
            put(
                "chunks",
                Value::Bs((0..4).map(|i| r.bytes(500 + i)).collect()),
            );
            put("thumb", Value::B(r.bytes(300)));
        }
        Shape::Huge => {
            every_type(&mut r, &mut put);
            // DynamoDB counts binary bytes, not base64: 380 KB of binary stays under 400 KB.
            put("payload", Value::B(r.bytes(380_000)));
        }
    }
    item
}

fn every_type(r: &mut Rng, put: &mut impl FnMut(&str, Value)) {
    put("s", Value::S(r.text(20)));
    put("empty_s", Value::S(String::new()));
    put("n", Value::N(r.number()));
    put(
        "n38",
        Value::N("-12345678901234567890123456789012345678".into()),
    );
    put("b", Value::B(r.bytes(16)));
    put("empty_b", Value::B(Vec::new()));
    put("ss", Value::Ss(vec![r.text(5), "ü".into(), String::new()]));
    put("ns", Value::Ns(vec![r.number(), "1".into()]));
    put("bs", Value::Bs(vec![r.bytes(3), r.bytes(4)]));
    put("null", Value::Null);
    put("yes", Value::Bool(true));
    put("no", Value::Bool(false));
    put("empty_l", Value::L(Vec::new()));
    put("empty_m", Value::M(BTreeMap::new()));
    let mut inner = BTreeMap::new();
    inner.insert(
        "deep".to_owned(),
        Value::L(vec![Value::Null, Value::S("ünï".into())]),
    );
    inner.insert("k e y/with.dots".to_owned(), Value::Bool(false));
    let mut outer = BTreeMap::new();
    outer.insert("inner".to_owned(), Value::M(inner));
    outer.insert(
        "list".to_owned(),
        Value::L(vec![Value::N("1".into()), Value::Ss(vec!["x".into()])]),
    );
    put("m", Value::M(outer));
}

/// A mix of shapes, as a real table would have: mostly small and medium items.
pub fn mixed(n: u64) -> Item {
    let shape = match n % 100 {
        0 => Shape::Large,
        1..=4 => Shape::Binary,
        5..=40 => Shape::Medium,
        _ => Shape::Small,
    };
    item(shape, n)
}
