//! An object's declared property names, laid out so a key written without escapes is matched on the
//! event's bytes: the name and its closing quote, their first sixteen bytes as one masked word, then
//! whatever follows. And, since a producer mostly writes an object's members in one order, each name's
//! lead (`,"name":`) and the order last seen: the member expected next is compared in one go, comma and
//! colon included, before a key is read.

use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};

/// Bytes compared with an event's at one place: the first sixteen in one go, as a masked word.
#[derive(Debug)]
struct Token {
    /// Its first sixteen bytes, little-endian, zero past its end.
    word: u128,
    /// Keeps only the bytes of a loaded word that it covers.
    mask: u128,
    len: usize,
    /// Its bytes past the first sixteen.
    rest: Box<[u8]>,
}

impl Token {
    fn new(bytes: &[u8]) -> Self {
        let covered = bytes.len().min(16) as u32;
        Self {
            word: u128::from(word(bytes, 0)) | u128::from(word(bytes, 8)) << 64,
            mask: u128::MAX.checked_shr(128 - 8 * covered).unwrap_or(0),
            len: bytes.len(),
            rest: bytes.get(16..).unwrap_or_default().into(),
        }
    }

    /// Whether `window` starts with the token, `loaded` being its first sixteen bytes (zero past its end)
    /// and `mask` the token's bytes to compare.
    #[inline(always)]
    fn starts(&self, window: &[u8], loaded: u128, mask: u128) -> bool {
        (loaded ^ self.word) & mask == 0
            && (self.rest.is_empty() || window.get(16..self.len) == Some(&*self.rest))
    }
}

/// One declared name as the event writes it between quotes, if it can be written without escapes.
#[derive(Debug)]
struct Written {
    /// The name's place in the properties.
    index: usize,
    /// The name and its closing quote.
    quoted: Token,
}

/// The names of an object schema's `properties`, in their order.
#[derive(Debug)]
pub(super) struct Keys {
    /// Every name but those that need an escape (a quote, a backslash, a control character) in JSON text.
    written: Vec<Written>,
    /// By property index, the name as a compact event writes it after the member before it (`,"name":`),
    /// if it is written without escapes.
    leads: Vec<Option<Token>>,
    /// The property that came first in the last object read with these names (at 0), and the one that
    /// came after each property (at its index + 1): learned as events are read, so that a producer's
    /// order (often not the schema's) is the one expected. A guess, shared by the threads that read.
    follows: Vec<AtomicU8>,
    /// Where one byte of a key tells which written name it can only be, if there is such a place.
    pick: Option<Pick>,
}

/// A place among the first sixteen bytes that every written name and its quote cover, with a different
/// byte in each: the key's byte there picks the one name to compare it with.
#[derive(Debug)]
struct Pick {
    /// The loaded word (0 or 1) and the shift that brings the byte to the bottom.
    word: usize,
    shift: u32,
    /// For each byte value, the place in `written` of the name with that byte there, or `NO_NAME`.
    slots: Box<[u8; 256]>,
}

const NO_NAME: u8 = u8::MAX;

impl Pick {
    /// The first place that tells the names apart, if any (and if there are few enough to number in a byte).
    fn new(written: &[Written]) -> Option<Self> {
        let byte = |w: &Written, at: usize| (w.quoted.word >> (8 * at)) as u8;
        let covered = written.iter().map(|w| w.quoted.len.min(16)).min()?;
        if written.len() >= usize::from(NO_NAME) {
            return None;
        }
        let at = (0..covered).find(|&at| {
            let mut seen = [false; 256];
            written
                .iter()
                .all(|w| !std::mem::replace(&mut seen[usize::from(byte(w, at))], true))
        })?;
        let mut slots = Box::new([NO_NAME; 256]);
        for (slot, w) in written.iter().enumerate() {
            slots[usize::from(byte(w, at))] = slot as u8;
        }
        Some(Self {
            word: at / 8,
            shift: 8 * (at % 8) as u32,
            slots,
        })
    }
}

/// The eight bytes of `bytes` from `at` as a little-endian word, zero-padded if there are fewer.
fn word(bytes: &[u8], at: usize) -> u64 {
    let bytes = bytes.get(at..).unwrap_or_default();
    match bytes.first_chunk::<8>() {
        Some(word) => u64::from_le_bytes(*word),
        None => {
            let mut word = [0; 8];
            word[..bytes.len()].copy_from_slice(bytes);
            u64::from_le_bytes(word)
        }
    }
}

impl Keys {
    pub(super) const NONE: Keys = Keys {
        written: Vec::new(),
        leads: Vec::new(),
        follows: Vec::new(),
        pick: None,
    };

    pub(super) fn new<'n>(names: impl IntoIterator<Item = &'n str>) -> Self {
        let (mut written, mut leads) = (Vec::new(), Vec::new());
        for (index, name) in names.into_iter().enumerate() {
            // A name that needs an escape (a quote, a backslash, a control character) is never matched on
            // bytes.
            let plain = !name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
            leads.push(plain.then(|| Token::new(&[b",\"", name.as_bytes(), b"\":"].concat())));
            if plain {
                let quoted = Token::new(&[name.as_bytes(), b"\""].concat());
                written.push(Written { index, quoted });
            }
        }
        let pick = Pick::new(&written);
        // Until an object is read, the declared order (the properties' order, by name) is expected.
        let count = u8::try_from(leads.len()).unwrap_or(NO_NAME);
        let follows = (0..=count).map(AtomicU8::new).collect();
        Self {
            written,
            leads,
            follows,
            pick,
        }
    }

    /// The property expected at `slot`: first in an object (0), or after property `slot - 1`.
    #[inline(always)]
    pub(super) fn expected(&self, slot: usize) -> Option<usize> {
        let index = self.follows.get(slot)?.load(Ordering::Relaxed);
        (index != NO_NAME).then_some(usize::from(index))
    }

    /// Property `index` came at `slot`: expect it there next time.
    pub(super) fn learn(&self, slot: usize, index: usize) {
        if let (Some(follows), Ok(index)) = (self.follows.get(slot), u8::try_from(index))
            && follows.load(Ordering::Relaxed) != index
        {
            follows.store(index, Ordering::Relaxed);
        }
    }

    /// Where the name of property `index` stands in `bytes` if they hold its lead at `at` (`,"name":`;
    /// with `first`, any byte in place of the comma: the object's bracket or a space after it).
    #[inline(always)]
    pub(super) fn lead(&self, bytes: &[u8], at: usize, index: usize, first: bool) -> Option<Range<usize>> {
        let lead = self.leads.get(index)?.as_ref()?;
        let window = bytes.get(at..)?;
        let loaded = u128::from_le_bytes(*window.first_chunk::<16>()?);
        let mask = if first { lead.mask & !0xff } else { lead.mask };
        // Past the comma and the quote, up to the closing quote and the colon.
        lead.starts(window, loaded, mask)
            .then_some(at + 2..at + lead.len - 2)
    }

    /// The index and length of the name that `rest` (the bytes after a key's opening quote) starts with,
    /// followed by its closing quote: that key is exactly this name. At most one name can match, as none
    /// holds a quote.
    #[inline(always)]
    pub(super) fn find(&self, rest: &[u8]) -> Option<(usize, usize)> {
        // Keys mostly stand sixteen bytes or more before the event's end: one bounds check for both words.
        let loaded = match rest.first_chunk::<16>() {
            Some(bytes) => u128::from_le_bytes(*bytes),
            None => u128::from(word(rest, 0)) | u128::from(word(rest, 8)) << 64,
        };
        let matches = |w: &&Written| w.quoted.starts(rest, loaded, w.quoted.mask);
        let found = match &self.pick {
            Some(pick) => {
                let words = [loaded as u64, (loaded >> 64) as u64];
                let slot = pick.slots[usize::from((words[pick.word & 1] >> pick.shift) as u8)];
                self.written.get(usize::from(slot)).filter(matches)
            }
            None => self.written.iter().find(matches),
        };
        // The name is the token less its closing quote.
        found.map(|w| (w.index, w.quoted.len - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    // Names whose closing quote falls at the end of the first word, past it, at the end of the second
    // and past both.
    const NAMES: [&str; 16] = [
        "",
        "a",
        "ab",
        "abcdefg",
        "abcdefgh",
        "abcdefghijklmno",
        "abcdefghi",
        "abcdefghij_long_name",
        "abcdefghijklmnop",
        "abcdefghijklmnoq",
        "abcdefghijklmnopq",
        "abcdefghijklmnopqrstuvwxyz0123456789",
        "abcdefgx",
        "é",
        "a\"b",
        "a\\",
    ];

    /// Sets of names, and whether one byte of a key picks the name to compare it with.
    const SETS: [(&[&str], bool); 7] = [
        (&NAMES, false),
        (&["quantity", "sku", "unit_price"], true),
        (
            &[
                "amount",
                "created_at",
                "currency",
                "customer_id",
                "line_items",
                "order_id",
            ],
            true,
        ),
        (
            &["abcdefghijklmnop", "abcdefghijklmnoq", "abcdefghijklmnor"],
            true,
        ),
        (&["a\"b", "b", "c\\", "é"], true),
        (&["abcdefghijklmnopqrs", "abcdefghijklmnopqrt"], false),
        (&["b", "ab", "abc"], false),
    ];

    /// What `find` must answer: the one declared name equal to the key read up to the first quote, if the
    /// key has no backslash before that quote and the name can be written without escapes.
    fn expected(names: &[&str], rest: &[u8]) -> Option<usize> {
        let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
        (rest[end] == b'"')
            .then(|| names.iter().position(|n| n.as_bytes() == &rest[..end]))
            .flatten()
            .filter(|&i| !names[i].contains(['"', '\\']))
    }

    #[test]
    fn keys_match_only_the_name_written_exactly_up_to_its_closing_quote() {
        for (names, picks) in SETS {
            let keys = Keys::new(names.iter().copied());
            assert_eq!(keys.pick.is_some(), picks, "{names:?}");
            let mut cases: Vec<Vec<u8>> = Vec::new();
            for name in names.iter().chain(&NAMES) {
                for suffix in [
                    "\"",
                    "\":1",
                    "\":1,\"ab\":2,\"zzzzzzzz\":3",
                    "x\"",
                    "\\\"",
                    "",
                    "\"\u{e9}",
                ] {
                    cases.push(format!("{name}{suffix}").into_bytes());
                }
                // Every prefix (short reads near the end of an event) and every single-byte change.
                let full = format!("{name}\":0").into_bytes();
                for cut in 0..full.len() {
                    cases.push(full[..cut].to_vec());
                    for byte in [b'a', b'"', b'\\', 0, 0xc3, 0xff] {
                        let mut changed = full.clone();
                        changed[cut] = byte;
                        cases.push(changed);
                    }
                }
            }
            for rest in cases {
                assert_eq!(
                    keys.find(&rest).map(|(index, _)| index),
                    expected(names, &rest),
                    "{names:?}: {:?}",
                    String::from_utf8_lossy(&rest)
                );
            }
        }
    }

    #[test]
    fn names_that_need_escapes_never_match_on_bytes() {
        let keys = Keys::new(["a\"b", "a\\", "tab\there"]);
        for rest in [&b"a\"b\""[..], b"a\\\"", b"tab\there\"", b"a\""] {
            assert_eq!(keys.find(rest), None);
        }
        // Plain names after one that needs escapes keep their own places.
        let keys = Keys::new(["a\"b", "x", "a\\", "y"]);
        assert_eq!(
            (keys.find(b"x\""), keys.find(b"y\":1")),
            (Some((1, 1)), Some((3, 1)))
        );
    }
}
