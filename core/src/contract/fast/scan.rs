//! Reading an event's bytes against its checks in one pass, without serde: it follows JSON's grammar
//! exactly and answers `None` ("not sure") for whatever it does not model. Strings with escapes and
//! numbers with a fraction or an exponent are decoded by serde_json, as the full path decodes them.

use std::borrow::Cow;

use super::{ANY, ARRAY, Additional, BOOLEAN, Checks, Member, NULL, OBJECT};

/// Nesting deeper than this is "not sure" (serde_json, which the full path parses with, stops at 128).
const MAX_DEPTH: usize = 100;

/// What only the root object is read with.
#[derive(Clone, Copy)]
pub(super) struct Root<'r> {
    /// Top-level field names the event may not carry.
    pub(super) reserved: &'r [&'r str],
    /// The index of the root property whose value is kept (the partition key), if asked for.
    pub(super) keep: Option<usize>,
}

const NESTED: Root<'static> = Root {
    reserved: &[],
    keep: None,
};

/// A cursor over an event that is valid UTF-8.
pub(super) struct Scan<'a> {
    bytes: &'a [u8],
    /// The event as text, when its members are read (their values are slices of it).
    text: Option<&'a str>,
    at: usize,
    depth: usize,
}

/// A string's content: as written between its quotes, or decoded from its escapes.
enum Content<'a> {
    Written(&'a [u8]),
    Decoded(String),
}

impl<'a> Content<'a> {
    fn bytes(&self) -> &[u8] {
        match self {
            Content::Written(bytes) => bytes,
            Content::Decoded(text) => text.as_bytes(),
        }
    }

    fn into_text(self) -> Option<Cow<'a, str>> {
        match self {
            Content::Written(bytes) => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
            Content::Decoded(text) => Some(Cow::Owned(text)),
        }
    }
}

/// How many leading bytes of `bytes` stand in a string as they are (not `"`, `\` or a control
/// character), looked at eight at a time; and whether any of them may be beyond ASCII (a few bytes past
/// the run may count: then the caller checks the run itself).
#[inline(always)]
fn plain_run(bytes: &[u8]) -> (usize, bool) {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH_BITS: u64 = ONES * 0x80;
    // High bit set in the lowest byte below `n` (higher bytes may be wrong, they are not looked at).
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH_BITS;
    let mut run = 0;
    let mut read = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(chunk);
        read |= word;
        let special = below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1)
            | below(word, 0x20);
        if special != 0 {
            return (run + special.trailing_zeros() as usize / 8, read & HIGH_BITS != 0);
        }
        run += 8;
    }
    let tail = bytes[run..]
        .iter()
        .take_while(|&&b| b != b'"' && b != b'\\' && b >= 0x20);
    let beyond_ascii = read & HIGH_BITS != 0;
    tail.fold((run, beyond_ascii), |(run, beyond), &b| {
        (run + 1, beyond || !b.is_ascii())
    })
}

/// The length of a string's content, `rest` being the bytes after its opening quote, if the quote that
/// closes it stands within sixteen bytes with only ASCII that needs no escape before it (then `None`
/// leaves the string to `string_end`).
#[inline(always)]
fn short_plain(rest: &[u8]) -> Option<usize> {
    const ONES: u128 = u128::from_ne_bytes([1; 16]);
    const HIGH_BITS: u128 = ONES * 0x80;
    let bytes = rest.first_chunk::<16>()?;
    let word = u128::from_le_bytes(*bytes);
    // High bit set in the lowest byte that is a quote, a backslash, a control character or beyond ASCII
    // (the borrows can only mark bytes above it).
    let below = |word: u128, n: u8| word.wrapping_sub(ONES * u128::from(n)) & !word;
    let special = (below(word ^ (ONES * u128::from(b'"')), 1)
        | below(word ^ (ONES * u128::from(b'\\')), 1)
        | below(word, 0x20)
        | word)
        & HIGH_BITS;
    let len = special.trailing_zeros() as usize / 8;
    (bytes.get(len) == Some(&b'"')).then_some(len)
}

/// How many ASCII digits `bytes` starts with.
fn leading_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// A quoted string with escapes, decoded as serde_json decodes it.
#[cold]
fn decode(quoted: &[u8]) -> Option<String> {
    serde_json::from_slice(quoted).ok()
}

fn check(ok: bool) -> Option<()> {
    ok.then_some(())
}

impl<'a> Scan<'a> {
    /// `Some` when `payload` is certainly one object meeting `checks`, with the kept property's value if
    /// `root` asks for one and it is a string or an integer; the object's members go into `members` if
    /// given (unspecified when the answer is `None`).
    pub(super) fn root(
        payload: &'a [u8],
        checks: &Checks,
        root: Root<'_>,
        members: Option<&mut Vec<Member<'a>>>,
    ) -> Option<Option<String>> {
        // Members are slices of the text, checked as UTF-8 once (a vector at a time); otherwise each
        // string is checked where it is read (outside strings the grammar admits only ASCII).
        let text = match members {
            Some(_) => Some(simdutf8::basic::from_utf8(payload).ok()?),
            None => None,
        };
        let mut scan = Scan {
            bytes: payload,
            text,
            at: 0,
            depth: 0,
        };
        let mut kept = None;
        scan.space();
        check(scan.peek()? == b'{')?;
        scan.object(checks, root, &mut kept, members)?;
        scan.space();
        check(scan.at == payload.len())?;
        Some(kept)
    }

    /// The event's text from `start` to the cursor.
    fn text_from(&self, start: usize) -> Option<&'a str> {
        match self.text {
            Some(text) => text.get(start..self.at),
            None => std::str::from_utf8(self.bytes.get(start..self.at)?).ok(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// One value meeting `checks`; its text goes into `keep` if it is a string or an integer.
    fn value(&mut self, checks: &Checks, keep: Option<&mut Option<String>>) -> Option<()> {
        match self.peek()? {
            b'"' => self.string_value(checks, keep)?,
            b'{' => self.nested(|scan| scan.object(checks, NESTED, &mut None, None))?,
            b'[' => self.nested(|scan| scan.array(checks))?,
            b't' => self.literal(b"true", checks.admits(BOOLEAN))?,
            b'f' => self.literal(b"false", checks.admits(BOOLEAN))?,
            b'n' => self.literal(b"null", checks.admits(NULL))?,
            _ => {
                let start = self.at;
                if self.number(checks)?
                    && let Some(out) = keep
                {
                    *out = Some(self.text_from(start)?.to_owned());
                }
            }
        }
        Some(())
    }

    /// A string value meeting `checks`, at its opening quote; its text goes into `keep`.
    #[inline(always)]
    fn string_value(&mut self, checks: &Checks, keep: Option<&mut Option<String>>) -> Option<()> {
        let start = self.at;
        let rest = self.bytes.get(start + 1..)?;
        // A short string's end is found sixteen bytes at a time even when a pattern applies: the
        // pattern's walk (a chain of loads) then decides only the answer, not where reading goes on.
        if let Some(len) = short_plain(rest) {
            let written = &rest[..len];
            self.at = start + len + 2;
            check(
                checks.ascii_string(written) && checks.pattern.as_ref().is_none_or(|p| p.is_match(written)),
            )?;
            if let Some(out) = keep {
                *out = Some(std::str::from_utf8(written).ok()?.to_owned());
            }
            return Some(());
        }
        // A longer pattern is walked over the string as it is written, its end found on the way.
        if let Some(pattern) = &checks.pattern
            && let Some(len) = pattern.quoted(rest)
        {
            let written = &rest[..len];
            self.at = start + len + 2;
            check(checks.ascii_string(written))?;
            if let Some(out) = keep {
                *out = Some(std::str::from_utf8(written).ok()?.to_owned());
            }
            return Some(());
        }
        if self.string_end()? {
            let decoded = decode(self.bytes.get(start..self.at)?)?;
            check(checks.string(decoded.as_bytes()))?;
            if let Some(out) = keep {
                *out = Some(decoded);
            }
        } else {
            let written = self.bytes.get(start + 1..self.at - 1)?;
            check(checks.string(written))?;
            if let Some(out) = keep {
                *out = Some(std::str::from_utf8(written).ok()?.to_owned());
            }
        }
        Some(())
    }

    fn nested(&mut self, read: impl FnOnce(&mut Self) -> Option<()>) -> Option<()> {
        self.depth += 1;
        check(self.depth <= MAX_DEPTH)?;
        read(self)?;
        self.depth -= 1;
        Some(())
    }

    fn literal(&mut self, word: &[u8], admitted: bool) -> Option<()> {
        check(admitted && self.bytes.get(self.at..)?.starts_with(word))?;
        self.at += word.len();
        Some(())
    }

    /// Past a string at its opening quote: whether it has escapes.
    #[inline(always)]
    fn string_end(&mut self) -> Option<bool> {
        let bytes = self.bytes;
        let mut end = self.at + 1;
        let mut escaped = false;
        let mut beyond_ascii = false;
        loop {
            let (run, beyond) = plain_run(bytes.get(end..)?);
            end += run;
            beyond_ascii |= beyond;
            match *bytes.get(end)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    end += 2;
                }
                _ => return None, // a control character
            }
        }
        // With escapes, serde_json checks the text as it decodes it.
        if beyond_ascii && !escaped {
            check(std::str::from_utf8(bytes.get(self.at + 1..end)?).is_ok())?;
        }
        self.at = end + 1;
        Some(escaped)
    }

    /// A string at its opening quote, escapes decoded as serde_json decodes them.
    fn string(&mut self) -> Option<Content<'a>> {
        let start = self.at;
        if self.string_end()? {
            decode(self.bytes.get(start..self.at)?).map(Content::Decoded)
        } else {
            self.bytes.get(start + 1..self.at - 1).map(Content::Written)
        }
    }

    /// A number meeting `checks`; true if serde_json reads it as an integer (`-0` it reads as a float,
    /// and integers beyond 19 digits are left to the full validator).
    #[inline(always)]
    fn number(&mut self, checks: &Checks) -> Option<bool> {
        // Integers are the common case: their digits are read once, as they are summed.
        let rest = self.bytes.get(self.at..)?;
        // One or two digits (a count, a quantity) are the commonest integers of all: read without a branch
        // on which, since quantities mix them at random and such a branch was mispredicted.
        if let [first @ b'0'..=b'9', second, third, ..] = *rest {
            let two = second.is_ascii_digit();
            let after = if two { third } else { second };
            if (first != b'0' || !two) && !matches!(after, b'0'..=b'9' | b'.' | b'e' | b'E') {
                let (first, second) = (u64::from(first - b'0'), u64::from(second.wrapping_sub(b'0')));
                let n = if two { first * 10 + second } else { first };
                self.at += 1 + usize::from(two);
                return check(checks.integer(n, false)).map(|()| true);
            }
        }
        let negative = rest.first() == Some(&b'-');
        let unsigned = &rest[usize::from(negative)..];
        let digits = leading_digits(unsigned);
        if let Some(b'.' | b'e' | b'E') = unsigned.get(digits) {
            return self.fraction_or_exponent(checks);
        }
        // What follows an integer is not looked at here: anything but space, a comma or a closing
        // bracket fails the container it stands in.
        check(digits == 1 || (digits > 1 && digits <= 19 && unsigned[0] != b'0'))?;
        self.at += usize::from(negative) + digits;
        let magnitude = (unsigned[..digits].iter()).fold(0u64, |n, digit| n * 10 + u64::from(digit - b'0'));
        // serde_json reads `-0` as a float.
        check(!negative || magnitude != 0)?;
        check(checks.integer(magnitude, negative)).map(|()| true)
    }

    /// A number with a fraction or an exponent, held to the grammar and decoded by serde_json: never an
    /// integer to it.
    #[cold]
    fn fraction_or_exponent(&mut self, checks: &Checks) -> Option<bool> {
        // Past every byte a number may hold, then the token is held to the grammar.
        let rest = self.bytes.get(self.at..)?;
        let len = (rest.iter())
            .take_while(|&&b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .count();
        self.at += len;
        let text = &rest[..len];
        let negative = text.first() == Some(&b'-');
        let unsigned = &text[usize::from(negative)..];
        let digits = leading_digits(unsigned);
        check(digits == 1 || (digits > 1 && unsigned[0] != b'0'))?;
        let mut at = digits;
        if unsigned.get(at) == Some(&b'.') {
            let fraction = leading_digits(&unsigned[at + 1..]);
            check(fraction > 0)?;
            at += 1 + fraction;
        }
        if let Some(b'e' | b'E') = unsigned.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = unsigned.get(at) {
                at += 1;
            }
            let exponent = leading_digits(&unsigned[at..]);
            check(exponent > 0)?;
            at += exponent;
        }
        check(at == unsigned.len())?;
        let n: f64 = serde_json::from_slice(text).ok()?;
        check(checks.number(n)).map(|()| false)
    }

    /// Past the opening bracket of a container that is `admitted`, and any space.
    fn open(&mut self, admitted: bool) -> Option<()> {
        check(admitted)?;
        self.at += 1;
        self.space();
        Some(())
    }

    /// After a member: `Some(true)` past the closing `close`, `Some(false)` past a comma.
    fn closed(&mut self, close: u8) -> Option<bool> {
        // Compact text: a comma right after the value and the next one right after it.
        if let Some(&[b',', after]) = self.bytes.get(self.at..self.at + 2)
            && after > b' '
        {
            self.at += 1;
            return Some(false);
        }
        self.space();
        let next = self.peek()?;
        // Past it whatever it is (anything else fails the event): the cursor then does not wait on the
        // byte's value.
        self.at += 1;
        if next == close {
            return Some(true);
        }
        check(next == b',')?;
        self.space();
        Some(false)
    }

    /// Past the colon after a key, and any space around it.
    #[inline(always)]
    fn colon(&mut self) -> Option<()> {
        // Compact text: the colon right after the key and the value right after it (no byte above the
        // space is one).
        if let Some(&[b':', after]) = self.bytes.get(self.at..self.at + 2)
            && after > b' '
        {
            self.at += 1;
            return Some(());
        }
        self.space();
        self.expect(b':')?;
        self.space();
        Some(())
    }

    /// Past `byte`, which must be next.
    fn expect(&mut self, byte: u8) -> Option<()> {
        check(self.peek()? == byte)?;
        self.at += 1;
        Some(())
    }

    fn array(&mut self, checks: &Checks) -> Option<()> {
        let items = checks.items.checks();
        let mut count = 0usize;
        self.open(checks.admits(ARRAY))?;
        // Empty: a return of its own, so the cursor does not wait on the byte's value.
        if self.peek() == Some(b']') {
            self.at += 1;
            return check(checks.items(0));
        }
        loop {
            count += 1;
            check(checks.max_items.is_none_or(|max| count <= max))?;
            // Arrays of objects are common: an item object is read here, without a call to value().
            if self.peek() == Some(b'{') {
                self.nested(|scan| scan.object(items, NESTED, &mut None, None))?;
            } else {
                self.value(items, None)?;
            }
            if self.closed(b']')? {
                break;
            }
        }
        check(checks.items(count))
    }

    /// An object's key, not a `reserved` one: the index of the declared property it names, if any, and
    /// the name.
    fn key(&mut self, checks: &Checks, reserved: &[&str]) -> Option<(Option<usize>, Content<'a>)> {
        check(self.peek()? == b'"')?;
        // Most keys are written as declared, with no escapes: matched on the bytes, not decoded.
        let start = self.at + 1;
        let written = checks.keys.find(self.bytes.get(start..)?);
        let name = match written {
            Some((_, len)) => {
                let end = start + len;
                self.at = end + 1;
                Content::Written(self.bytes.get(start..end)?)
            }
            None => self.string()?,
        };
        let bytes = name.bytes();
        check(!reserved.iter().any(|r| r.as_bytes() == bytes))?;
        let index = written
            .map(|(index, _)| index)
            .or_else(|| (checks.properties.iter()).position(|(n, _)| n.as_bytes() == bytes));
        Some((index, name))
    }

    fn object(
        &mut self,
        checks: &Checks,
        root: Root<'_>,
        kept: &mut Option<String>,
        mut members: Option<&mut Vec<Member<'a>>>,
    ) -> Option<()> {
        let mut seen = 0u64;
        self.open(checks.admits(OBJECT))?;
        if self.peek() == Some(b'}') {
            self.at += 1;
            return check(checks.required == 0);
        }
        // A producer mostly writes its members compactly and in one order: the next one's comma, quoted
        // name and colon are compared with those of the member that came next last time, in one go,
        // before a key is read.
        let keys = &checks.keys;
        // Where the member stands in the order learned: first (0), after property `slot - 1`, or
        // after a member that is not a property (None).
        let mut slot = Some(0);
        let mut next = (keys.expected(0))
            .and_then(|index| Some((index, keys.lead(self.bytes, self.at - 1, index, true)?)));
        loop {
            let (property, name) = match next {
                Some((index, name)) => {
                    self.at = name.end + 2;
                    self.space();
                    let name = self.bytes.get(name)?;
                    check(!root.reserved.iter().any(|r| r.as_bytes() == name))?;
                    (Some(index), Content::Written(name))
                }
                None => {
                    let (property, name) = self.key(checks, root.reserved)?;
                    if let (Some(slot), Some(index)) = (slot, property) {
                        keys.learn(slot, index);
                    }
                    self.colon()?;
                    (property, name)
                }
            };
            let start = self.at;
            match property {
                Some(index) => {
                    // A duplicate key: the full validator sees only the last value.
                    check(seen & 1 << index == 0)?;
                    seen |= 1 << index;
                    let keep = (root.keep == Some(index)).then_some(&mut *kept);
                    let checks = checks.properties[index].1.checks();
                    // Most values are strings, then numbers: read here, without a call (a kept number's
                    // text is taken by value()).
                    match self.peek() {
                        Some(b'"') => self.string_value(checks, keep)?,
                        Some(b'0'..=b'9') if keep.is_none() => {
                            self.number(checks)?;
                        }
                        _ => self.value(checks, keep)?,
                    }
                }
                None => match &checks.additional {
                    Additional::Forbidden => return None,
                    Additional::Any => self.value(&ANY, None)?,
                    Additional::Schema(node) => self.value(node.checks(), None)?,
                },
            }
            if let Some(members) = members.as_deref_mut() {
                members.push((name.into_text()?, self.text_from(start)?));
            }
            slot = property.map(|index| index + 1);
            next = (slot.and_then(|slot| keys.expected(slot)))
                .and_then(|index| Some((index, keys.lead(self.bytes, self.at, index, false)?)));
            if next.is_none() && self.closed(b'}')? {
                break;
            }
        }
        check(seen & checks.required == checks.required)
    }
}

#[cfg(test)]
#[test]
fn a_plain_run_stops_at_the_first_quote_backslash_or_control_character_and_sees_non_ascii() {
    let filler = [b'a', 0xc3, 0xa9, b' ', 0x7f, b'~', 0xff, b'!'];
    for len in 0..24 {
        let plain: Vec<u8> = filler.iter().copied().cycle().take(len).collect();
        assert_eq!(plain_run(&plain), (len, len > 1));
        for at in 0..len {
            for special in [b'"', b'\\', 0, b'\n', 0x1f] {
                let mut bytes = plain.clone();
                bytes[at] = special;
                bytes.extend_from_slice(b"\"\\\x01");
                let (run, beyond_ascii) = plain_run(&bytes);
                // A byte beyond ASCII in the run is always seen (0xc3 stands at 1).
                assert_eq!((run, beyond_ascii || at <= 1), (at, true), "{bytes:?}");
            }
        }
    }
}
