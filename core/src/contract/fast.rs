//! A streaming check of an event against its contract, over the event's bytes, without building a tree.
//!
//! It models the JSON Schema keywords contracts commonly use (types, object properties, `required`,
//! `additionalProperties`, string lengths, safe patterns, `date-time`, numeric bounds, array items and
//! sizes, string enums) and answers only "certainly valid" or "not sure". Everything else — an invalid
//! event, a duplicate key, a number it cannot compare exactly — is "not sure", and goes to the full
//! validator, which has the last word and writes the error messages. A contract using any keyword
//! outside that set gets no fast check at all. The differential tests hold it to one rule: the fast
//! check never calls an event valid that the full validator rejects.

use std::borrow::Cow;

use serde_json::Value;

use compile::compile;
use keys::Keys;
use pattern::Pattern;
use scan::{Root, Scan};

mod compile;
mod keys;
mod pattern;
mod scan;

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

/// A top-level member of an event as its text has it: the name (decoded if it has escapes) and the
/// value's JSON text.
pub type Member<'a> = (Cow<'a, str>, &'a str);

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
            Node::Any => Checks::ANY,
            Node::Checked(checks) => *checks,
        };
        Ok(Self { root })
    }

    /// True only when `payload` is one JSON object that meets the contract and has none of the
    /// `reserved` top-level fields; false means "ask the full validator".
    pub fn certainly_valid(&self, payload: &[u8], reserved: &[&str]) -> bool {
        Scan::root(payload, &self.root, Root { reserved, keep: None }, None).is_some()
    }

    /// [`Self::certainly_valid`], and the event's top-level members in `members` (cleared first) from the
    /// same pass when it is.
    pub fn certainly_valid_members<'a>(
        &self,
        payload: &'a [u8],
        reserved: &[&str],
        members: &mut Vec<Member<'a>>,
    ) -> bool {
        members.clear();
        let root = Root { reserved, keep: None };
        let valid = Scan::root(payload, &self.root, root, Some(&mut *members)).is_some();
        if !valid {
            members.clear();
        }
        valid
    }

    /// The top-level `key_field` of a `payload` that is certainly valid, read in the same pass (a string
    /// as is, an integer as decimal text); `None` means "ask the full validator" or no such key.
    pub fn certainly_valid_key(&self, payload: &[u8], reserved: &[&str], key_field: &str) -> Option<String> {
        let keep = self
            .root
            .properties
            .iter()
            .position(|(name, _)| name == key_field);
        Scan::root(
            payload,
            &self.root,
            Root {
                reserved,
                keep: Some(keep?),
            },
            None,
        )?
    }
}

#[derive(Debug)]
enum Node {
    Any,
    Checked(Box<Checks>),
}

impl Node {
    fn checks(&self) -> &Checks {
        match self {
            Node::Any => &ANY,
            Node::Checked(checks) => checks,
        }
    }
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
    /// The integers that meet the four numeric bounds, as an inclusive range (set once they are known);
    /// empty if no integer is admitted.
    integers: (i64, i64),
    /// The byte lengths within which a string of ASCII meets every check but the pattern, when its
    /// length alone decides that (set once the checks are known).
    ascii_lengths: Option<(usize, usize)>,
    min_items: Option<usize>,
    max_items: Option<usize>,
    items: Node,
    properties: Vec<(String, Node)>,
    /// The names of `properties`, for matching keys on the event's bytes.
    keys: Keys,
    /// Bit i set: `properties[i]` is required.
    required: u64,
    additional: Additional,
}

/// The checks of `true`, the schema every value meets (compiling starts from them).
static ANY: Checks = Checks::ANY;

impl Checks {
    const ANY: Checks = Checks {
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
        integers: (i64::MIN, i64::MAX),
        ascii_lengths: Some((0, usize::MAX)),
        min_items: None,
        max_items: None,
        items: Node::Any,
        properties: Vec::new(),
        keys: Keys::NONE,
        required: 0,
        additional: Additional::Any,
    };
}

/// RFC 3339 date-time, stricter than the full validator's (no leap second, upper-case `T` and `Z`).
fn is_date_time(b: &[u8]) -> bool {
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

/// What a value must be; each answers whether the value certainly meets its checks.
impl Checks {
    /// A value of `kind` that is neither a string nor a number: only its type is checked.
    fn admits(&self, kind: u8) -> bool {
        self.types & kind != 0 && self.enum_strings.is_none()
    }

    /// An integer of `magnitude`, negative or not, compared with the bounds as integers.
    #[inline(always)]
    fn integer(&self, magnitude: u64, negative: bool) -> bool {
        // Beyond 2^53 a bound could not be compared exactly.
        if magnitude > EXACT_F64_INTEGER {
            return false;
        }
        let n = if negative {
            -(magnitude as i64)
        } else {
            magnitude as i64
        };
        (self.integers.0..=self.integers.1).contains(&n)
    }

    /// The integers that meet the bounds: rounded inward; a bound beyond `i64` saturates, still
    /// beyond every integer compared (those are at most 2^53 in magnitude). None if not admitted.
    fn integer_range(&self) -> (i64, i64) {
        if !self.admits(INTEGER) {
            return (i64::MAX, i64::MIN);
        }
        let mut range = (i64::MIN, i64::MAX);
        if let Some(m) = self.minimum {
            range.0 = range.0.max(m.ceil() as i64);
        }
        if let Some(m) = self.exclusive_minimum {
            range.0 = range.0.max((m.floor() as i64).saturating_add(1));
        }
        if let Some(m) = self.maximum {
            range.1 = range.1.min(m.floor() as i64);
        }
        if let Some(m) = self.exclusive_maximum {
            range.1 = range.1.min((m.ceil() as i64).saturating_sub(1));
        }
        range
    }

    /// A number with a fraction or an exponent: an integral one may be an "integer" to the full
    /// validator; that is left to it.
    fn number(&self, n: f64) -> bool {
        self.admits(NUMBER) && self.bounds(n)
    }

    fn bounds(&self, n: f64) -> bool {
        self.minimum.is_none_or(|m| n >= m)
            && self.maximum.is_none_or(|m| n <= m)
            && self.exclusive_minimum.is_none_or(|m| n > m)
            && self.exclusive_maximum.is_none_or(|m| n < m)
    }

    /// The byte lengths that decide a string of ASCII but for the pattern, if nothing else does: a
    /// string's length in code points is then its length in bytes.
    fn ascii_lengths(&self) -> Option<(usize, usize)> {
        (self.types & STRING != 0 && self.enum_strings.is_none() && !self.date_time).then(|| {
            (
                self.min_length.unwrap_or(0),
                self.max_length.unwrap_or(usize::MAX),
            )
        })
    }

    /// A string of ASCII that the pattern (if any) matches.
    #[inline(always)]
    fn ascii_string(&self, written: &[u8]) -> bool {
        match self.ascii_lengths {
            Some((min, max)) => (min..=max).contains(&written.len()),
            None => self.string_but_pattern(written),
        }
    }

    /// A string's bytes, which are valid UTF-8.
    #[inline(always)]
    fn string(&self, s: &[u8]) -> bool {
        self.string_but_pattern(s) && self.pattern.as_ref().is_none_or(|p| p.is_match(s))
    }

    /// [`Self::string`] but for the pattern, which the caller has matched.
    #[inline(always)]
    fn string_but_pattern(&self, s: &[u8]) -> bool {
        if self.types & STRING == 0 {
            return false;
        }
        if let Some(allowed) = &self.enum_strings
            && !allowed.iter().any(|a| a.as_bytes() == s)
        {
            return false;
        }
        // Lengths count code points (the bytes that do not continue one): at most the byte length, at
        // least a quarter of it.
        let chars = || s.iter().filter(|&&b| b & 0xc0 != 0x80).count();
        let too_long = (self.max_length).is_some_and(|max| s.len() > max && chars() > max);
        let too_short = (self.min_length)
            .is_some_and(|min| s.len() < min || (s.len() < min.saturating_mul(4) && chars() < min));
        !too_long && !too_short && (!self.date_time || is_date_time(s))
    }

    fn items(&self, count: usize) -> bool {
        self.min_items.is_none_or(|min| count >= min) && self.max_items.is_none_or(|max| count <= max)
    }
}

#[cfg(test)]
mod tests;
