//! A streaming check of an event against its contract, over the event's bytes, without building a tree.
//!
//! It models the JSON Schema keywords contracts commonly use (types, object properties, `required`,
//! `additionalProperties`, string lengths, safe patterns, `date-time`, numeric bounds, array items and
//! sizes, string enums) and answers only "certainly valid" or "not sure". Everything else — an invalid
//! event, a duplicate key, a number it cannot compare exactly — is "not sure", and goes to the full
//! validator, which has the last word and writes the error messages. A contract using any keyword
//! outside that set gets no fast check at all. The differential tests hold it to one rule: the fast
//! check never calls an event valid that the full validator rejects.

use std::cell::Cell;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::skip::Skipped;
use capture::{Capture, KeySeed};
use compile::compile;
use pattern::Pattern;

mod capture;
mod compile;
mod pattern;

const NULL: u8 = 1;
const BOOLEAN: u8 = 1 << 1;
const INTEGER: u8 = 1 << 2;
const NUMBER: u8 = 1 << 3;
const STRING: u8 = 1 << 4;
const ARRAY: u8 = 1 << 5;
const OBJECT: u8 = 1 << 6;
const ANY_TYPE: u8 = NULL | BOOLEAN | INTEGER | NUMBER | STRING | ARRAY | OBJECT;

/// Properties an object schema may declare for the fast check (one bit each while an object is read).
const MAX_PROPERTIES: usize = 64;
/// Integers up to this magnitude compare exactly with an `f64` bound.
const EXACT_F64_INTEGER: u64 = 1 << 53;

/// Keywords that only annotate: they never make an event invalid.
const ANNOTATIONS: [&str; 9] = [
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "examples",
    "default",
    "deprecated",
    "readOnly",
];

/// Why a contract gets no fast check (kept for the contract's debug output).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(String);

fn unsupported<T>(why: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(why.into()))
}

/// A contract compiled for the streaming check.
#[derive(Debug)]
pub struct FastSchema {
    root: Checks,
}

impl FastSchema {
    pub fn compile(schema: &Value) -> Result<Self, Unsupported> {
        let root = match compile(schema)? {
            Node::Any => Checks::default(),
            Node::Checked(checks) => *checks,
        };
        Ok(Self { root })
    }

    /// True only when `payload` is one JSON object that meets the contract and has none of the
    /// `reserved` top-level fields; false means "ask the full validator".
    pub fn certainly_valid(&self, payload: &[u8], reserved: &[&str]) -> bool {
        self.read_root(payload, reserved, None)
    }

    /// The top-level `key_field` of a `payload` that is certainly valid, read in the same pass (a string
    /// as is, an integer as decimal text); `None` means "ask the full validator" or no such key.
    pub fn certainly_valid_key(&self, payload: &[u8], reserved: &[&str], key_field: &str) -> Option<String> {
        let key = Cell::new(None);
        let capture = (self.root.properties.iter())
            .position(|(name, _)| name == key_field)
            .map(|index| Capture { index, out: &key });
        self.read_root(payload, reserved, capture)
            .then(|| key.take())
            .flatten()
    }

    fn read_root(&self, payload: &[u8], reserved: &[&str], capture: Option<Capture<'_>>) -> bool {
        let mut de = serde_json::Deserializer::from_slice(payload);
        let root = Check {
            checks: &self.root,
            reserved,
            capture,
        };
        de.deserialize_map(root).is_ok() && de.end().is_ok()
    }
}

#[derive(Debug)]
enum Node {
    Any,
    Checked(Box<Checks>),
}

#[derive(Debug)]
enum Additional {
    Any,
    Forbidden,
    Schema(Node),
}

#[derive(Debug)]
struct Checks {
    types: u8,
    enum_strings: Option<Vec<String>>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<Pattern>,
    date_time: bool,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    min_items: Option<usize>,
    max_items: Option<usize>,
    items: Node,
    properties: Vec<(String, Node)>,
    /// Bit i set: `properties[i]` is required.
    required: u64,
    additional: Additional,
}

impl Default for Checks {
    fn default() -> Self {
        Self {
            types: ANY_TYPE,
            enum_strings: None,
            min_length: None,
            max_length: None,
            pattern: None,
            date_time: false,
            minimum: None,
            maximum: None,
            exclusive_minimum: None,
            exclusive_maximum: None,
            min_items: None,
            max_items: None,
            items: Node::Any,
            properties: Vec::new(),
            required: 0,
            additional: Additional::Any,
        }
    }
}

/// RFC 3339 date-time, stricter than the full validator's (no leap second, upper-case `T` and `Z`).
fn is_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let date_ok = || -> Option<bool> {
        let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Some(false),
        };
        let time = digits(11..13)? <= 23 && digits(14..16)? <= 59 && digits(17..19)? <= 59;
        let punctuation = b.get(4) == Some(&b'-')
            && b.get(7) == Some(&b'-')
            && b.get(10) == Some(&b'T')
            && b.get(13) == Some(&b':')
            && b.get(16) == Some(&b':');
        Some(punctuation && (1..=days).contains(&day) && time)
    };
    if date_ok() != Some(true) {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        let fraction = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if fraction == 0 {
            return false;
        }
        i += 1 + fraction;
    }
    match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len()
                && b[i + 3] == b':'
                && digits(i + 1..i + 3).is_some_and(|h| h <= 23)
                && digits(i + 4..i + 6).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// Reading a value against its checks; any error means "not sure".
struct Check<'s> {
    checks: &'s Checks,
    /// Top-level field names the event may not carry (only checked on the root object).
    reserved: &'s [&'s str],
    /// The root property whose value is kept (the partition key), if asked for.
    capture: Option<Capture<'s>>,
}

fn fail<E: de::Error>() -> Result<(), E> {
    Err(E::custom("not certainly valid"))
}

struct NodeSeed<'s>(&'s Node);

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.0 {
            Node::Any => Skipped::deserialize(deserializer).map(|_| ()),
            Node::Checked(checks) => deserializer.deserialize_any(Check::nested(checks)),
        }
    }
}

impl<'s> Check<'s> {
    /// The check of a value below the root: no reserved names, nothing kept.
    fn nested(checks: &'s Checks) -> Self {
        Self {
            checks,
            reserved: &[],
            capture: None,
        }
    }

    fn integer<E: de::Error>(&self, magnitude: u64, as_f64: f64) -> Result<(), E> {
        if self.checks.types & INTEGER == 0 || self.checks.enum_strings.is_some() {
            return fail();
        }
        if magnitude > EXACT_F64_INTEGER {
            return fail(); // a bound could not be compared exactly
        }
        self.bounds(as_f64)
    }

    fn bounds<E: de::Error>(&self, n: f64) -> Result<(), E> {
        let c = self.checks;
        let ok = c.minimum.is_none_or(|m| n >= m)
            && c.maximum.is_none_or(|m| n <= m)
            && c.exclusive_minimum.is_none_or(|m| n > m)
            && c.exclusive_maximum.is_none_or(|m| n < m);
        if ok { Ok(()) } else { fail() }
    }

    fn string<E: de::Error>(&self, s: &str) -> Result<(), E> {
        let c = self.checks;
        if c.types & STRING == 0 {
            return fail();
        }
        if let Some(allowed) = &c.enum_strings
            && !allowed.iter().any(|a| a == s)
        {
            return fail();
        }
        // Lengths count code points; the byte length bounds them from above.
        let too_long = c
            .max_length
            .is_some_and(|max| s.len() > max && s.chars().count() > max);
        let too_short = c
            .min_length
            .is_some_and(|min| s.len() < min || s.chars().count() < min);
        if too_long || too_short {
            return fail();
        }
        if c.pattern.as_ref().is_some_and(|p| !p.is_match(s.as_bytes())) {
            return fail();
        }
        if c.date_time && !is_date_time(s) {
            return fail();
        }
        Ok(())
    }

    fn not_a_string_or_number<E: de::Error>(&self, kind: u8) -> Result<(), E> {
        if self.checks.types & kind == 0 || self.checks.enum_strings.is_some() {
            return fail();
        }
        Ok(())
    }
}

/// A key of an object: which declared property it is, or none.
struct Key<'s> {
    properties: &'s [(String, Node)],
    reserved: &'s [&'s str],
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        if self.reserved.contains(&key) {
            return Err(E::custom("reserved field"));
        }
        Ok(self.properties.iter().position(|(name, _)| name == key))
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a value meeting the contract")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_a_string_or_number(BOOLEAN)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_a_string_or_number(NULL)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.integer(v, v as f64)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.integer(v.unsigned_abs(), v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // An integral float may be an "integer" to the full validator; leave that to it.
        if self.checks.types & NUMBER == 0 || self.checks.enum_strings.is_some() {
            return fail();
        }
        self.bounds(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.string(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let c = self.checks;
        self.not_a_string_or_number(ARRAY)?;
        let mut count = 0usize;
        while seq.next_element_seed(NodeSeed(&c.items))?.is_some() {
            count += 1;
            if c.max_items.is_some_and(|max| count > max) {
                return fail();
            }
        }
        if c.min_items.is_some_and(|min| count < min) {
            return fail();
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let c = self.checks;
        self.not_a_string_or_number(OBJECT)?;
        let mut seen = 0u64;
        let key = || Key {
            properties: &c.properties,
            reserved: self.reserved,
        };
        while let Some(found) = map.next_key_seed(key())? {
            match (found, &c.additional) {
                (Some(index), _) => {
                    let bit = 1u64 << index;
                    if seen & bit != 0 {
                        return fail(); // a duplicate key: the full validator sees only the last value
                    }
                    seen |= bit;
                    let node = &c.properties[index].1;
                    match self.capture {
                        Some(capture) if capture.index == index => map.next_value_seed(KeySeed {
                            node,
                            out: capture.out,
                        })?,
                        _ => map.next_value_seed(NodeSeed(node))?,
                    }
                }
                (None, Additional::Forbidden) => return fail(),
                (None, Additional::Any) => {
                    map.next_value::<Skipped>()?;
                }
                (None, Additional::Schema(node)) => map.next_value_seed(NodeSeed(node))?,
            }
        }
        if seen & c.required != c.required {
            return fail();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
