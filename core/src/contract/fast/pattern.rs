//! A contract's `pattern`, compiled to a fully built DFA: matching needs no cache, so the landing
//! threads that share one contract never wait on the regex crate's cache pool.

use std::collections::HashMap;

use regex_automata::dfa::{Automaton, dense};
use regex_automata::util::{primitives::StateID, start, syntax};
use regex_automata::{Anchored, nfa::thompson};

use super::{Unsupported, unsupported};

/// The most memory one pattern's DFA may take (the shipped contracts' take a few KiB).
const DFA_BYTES: usize = 1 << 20;
/// The row of the state no text leaves once in it without a match (the walk stops: no match).
const DEAD: usize = 0;
/// Where the walk over a string as written stops without an answer (the general path decides).
const UNSURE: usize = 0;
/// Where the walk over a string as written stops at its closing quote with a match.
const ACCEPTED: usize = 1;
/// The first row of a state in the walk over a string as written (the rows before it are its ends).
const QUOTED_FIRST: usize = 2;

/// A pattern's DFA as a flat table walked by hand: strings are short, and a general search's setup and
/// state checks would dominate.
#[derive(Debug)]
pub(super) struct Pattern {
    /// Each byte's class: bytes the DFA never tells apart share one.
    classes: [u8; 256],
    /// `next[row + class]`: the row of the state after a byte of that class, `row` being a state's
    /// first entry; `next[row + end]` is `matched` if the text may end in that state, else `DEAD`.
    next: Vec<u32>,
    end: usize,
    /// The row of the state in which the text has matched (the walk stops: a match).
    matched: usize,
    start: usize,
    /// The walk over a string as the event writes it, from after its opening quote: each byte's column
    /// is its class, but the closing quote's and those of the bytes left to the general path (a
    /// backslash, a control character, a byte beyond ASCII) are columns of their own.
    quoted_columns: [u8; 256],
    /// `quoted[row + column]`, as `next` but over those columns: an early match is `UNSURE` (the rest of
    /// the string is still to be read), the closing quote `ACCEPTED` if the text may end there.
    quoted: Vec<u32>,
    quoted_start: usize,
}

/// The pattern's DFA, built only for bytes (no Unicode classes, no UTF-8 requirement).
fn dfa(pattern: &str) -> Option<dense::DFA<Vec<u32>>> {
    dense::Builder::new()
        .configure(
            dense::Config::new()
                .dfa_size_limit(Some(DFA_BYTES))
                .determinize_size_limit(Some(DFA_BYTES)),
        )
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .thompson(thompson::Config::new().utf8(false))
        .build(pattern)
        .ok()
}

impl Pattern {
    /// A pattern compiled only if it means the same in ECMA-262 (the standard's dialect) and in
    /// regex-automata over bytes: ASCII literals, character classes that are not negated, groups,
    /// alternation, quantifiers, anchors, and the escapes `\d` and `\<punctuation>`.
    pub(super) fn compile(pattern: &str) -> Result<Self, Unsupported> {
        let no = || unsupported(format!("pattern {pattern:?}"));
        if !is_portable(pattern) {
            return no();
        }
        dfa(pattern).and_then(|dfa| Self::table(&dfa)).map_or_else(no, Ok)
    }

    /// The table of every state reachable from the unanchored start, each transition taken as the DFA
    /// takes it: a match state (matches show one byte late) ends the walk with a match, a dead or quit
    /// state without one.
    fn table(dfa: &dense::DFA<Vec<u32>>) -> Option<Self> {
        let start = dfa
            .start_state(&start::Config::new().anchored(Anchored::No))
            .ok()?;
        let mut classes = [0u8; 256];
        let mut representatives: Vec<u8> = Vec::new();
        for byte in 0..=u8::MAX {
            classes[usize::from(byte)] = dfa.byte_classes().get(byte);
            if usize::from(classes[usize::from(byte)]) == representatives.len() {
                representatives.push(byte);
            }
        }
        // Classes are numbered in order of their first byte, so each class has its representative.
        if (classes.iter()).any(|&class| usize::from(class) >= representatives.len()) {
            return None;
        }
        let end = representatives.len();
        // The walk over a string as written needs two more columns, numbered in a byte.
        if end + 2 > 256 {
            return None;
        }
        let width = end + 1;
        let matched = width;
        let mut next: Vec<u32> = Vec::new();
        next.resize(width, DEAD as u32);
        next.resize(2 * width, matched as u32);
        let mut rows: HashMap<StateID, usize> = HashMap::new();
        let mut todo = vec![start];
        rows.insert(start, 2 * width);
        while let Some(state) = todo.pop() {
            let row = rows[&state];
            if next.len() < row + width {
                next.resize(row + width, DEAD as u32);
            }
            for (class, &byte) in representatives.iter().enumerate() {
                let to = dfa.next_state(state, byte);
                let to_row = if dfa.is_match_state(to) {
                    matched
                } else if dfa.is_dead_state(to) || dfa.is_quit_state(to) {
                    DEAD
                } else {
                    let fresh = 2 * width + rows.len() * width;
                    *rows.entry(to).or_insert_with(|| {
                        todo.push(to);
                        fresh
                    })
                };
                next[row + class] = to_row as u32;
            }
            let ends = dfa.is_match_state(dfa.next_eoi_state(state));
            next[row + end] = if ends { matched as u32 } else { DEAD as u32 };
        }
        u32::try_from(next.len()).ok()?;
        let (quoted_columns, quoted) = Self::quoted_table(&classes, &next, end);
        u32::try_from(quoted.len()).ok()?;
        Some(Self {
            classes,
            next,
            end,
            matched,
            start: 2 * width,
            quoted_columns,
            quoted,
            quoted_start: QUOTED_FIRST,
        })
    }

    /// The table of the walk over a string as written, from `next` (whose states start at its third row).
    fn quoted_table(classes: &[u8; 256], next: &[u32], end: usize) -> ([u8; 256], Vec<u32>) {
        let (width, quote, general) = (end + 1, end, end + 1);
        let quoted_width = end + 2;
        let mut columns = [0u8; 256];
        for byte in 0..=u8::MAX {
            columns[usize::from(byte)] = match byte {
                b'"' => quote as u8,
                b'\\' | 0..0x20 | 0x80.. => general as u8,
                _ => classes[usize::from(byte)],
            };
        }
        // A state's row in `next` (from 2 * width) and in the walk (from QUOTED_FIRST).
        let row = |next_row: usize| QUOTED_FIRST + (next_row - 2 * width) / width * quoted_width;
        let states = (next.len() - 2 * width) / width;
        let mut quoted = vec![UNSURE as u32; QUOTED_FIRST + states * quoted_width];
        for state in 0..states {
            let from = 2 * width + state * width;
            let to = row(from);
            for class in 0..end {
                let target = next[from + class] as usize;
                quoted[to + class] = if target >= 2 * width {
                    row(target) as u32
                } else {
                    UNSURE as u32
                };
            }
            if next[from + end] as usize == width {
                quoted[to + quote] = ACCEPTED as u32;
            }
        }
        (columns, quoted)
    }

    /// The length of a string's content, `rest` being the bytes after its opening quote, if it is written
    /// with only ASCII that needs no escape up to its closing quote and the pattern matches it; `None`
    /// leaves the string to the general path (which may find it matches after all).
    #[inline(always)]
    pub(super) fn quoted(&self, rest: &[u8]) -> Option<usize> {
        let (table, columns) = (&self.quoted[..], &self.quoted_columns);
        let mut row = self.quoted_start;
        let mut bytes = rest.iter();
        while let Some(&byte) = bytes.next() {
            row = table[row + usize::from(columns[usize::from(byte)])] as usize;
            if row < QUOTED_FIRST {
                // The length is told by the bytes left after the quote, not counted byte by byte.
                return (row == ACCEPTED).then_some(rest.len() - bytes.len() - 1);
            }
        }
        None
    }

    /// Whether the pattern matches anywhere in `text`; a search the DFA would give up on is no match.
    pub(super) fn is_match(&self, text: &[u8]) -> bool {
        let mut row = self.start;
        for &byte in text {
            row = self.next[row + usize::from(self.classes[usize::from(byte)])] as usize;
            if row <= self.matched {
                return row == self.matched;
            }
        }
        self.next[row + self.end] as usize == self.matched
    }
}

fn is_portable(pattern: &str) -> bool {
    let bytes = pattern.as_bytes();
    let mut in_class = false;
    let mut i = 0;
    while i < bytes.len() {
        let next = bytes.get(i + 1).copied();
        match (bytes[i], in_class) {
            // `\<` and `\>` are word boundaries to regex-syntax, letters are classes or references.
            (b'\\', _) => match next {
                Some(b'd') => i += 1,
                Some(c) if c.is_ascii_punctuation() && c != b'<' && c != b'>' => i += 1,
                _ => return false,
            },
            (b'.', false) => return false,
            (b'[', false) if next == Some(b'^') || next == Some(b']') => return false,
            (b'[', false) => in_class = true,
            (b']', true) => in_class = false,
            // Nested classes, POSIX classes and set operations exist only in regex-syntax.
            (b'[', true) => return false,
            (b'&' | b'-' | b'~', true) if next == Some(bytes[i]) => return false,
            (b'(', false) if next == Some(b'?') && bytes.get(i + 2) != Some(&b':') => return false,
            (b'{', false) if next == Some(b',') => return false,
            (c, _) if !c.is_ascii() || c.is_ascii_control() => return false,
            _ => {}
        }
        i += 1;
    }
    !in_class
}

#[cfg(test)]
mod tests {
    use regex_automata::Input;
    use regex_automata::dfa::Automaton;

    use super::{Pattern, dfa};

    /// The hand-walked table answers as the DFA's own search, for every string over the bytes that
    /// matter to each pattern up to a length (and a few longer ones).
    #[test]
    fn the_table_walk_matches_exactly_where_the_dfa_search_does() {
        let patterns = [
            ("^(0|[1-9][0-9]{0,17})(\\.[0-9]{1,6})?$", &b"019.x"[..]),
            ("^[A-Z]{3}$", b"AZa"),
            ("^sku-[0-9]+$", b"sku-0"),
            ("ab", b"abc"),
            ("a$", b"ab"),
            ("^$", b"a"),
            ("", b"a"),
            ("(x|yz)+q?", b"xyzq"),
            ("^a{2,4}b*$", b"ab\xff"),
        ];
        for (pattern, alphabet) in patterns {
            let full = dfa(pattern).expect("a DFA");
            let fast = Pattern::compile(pattern).expect("a pattern");
            let mut texts = every_text(alphabet, 6);
            // Longer texts: pseudo-random over the same bytes.
            let mut seed = 0x9e37_79b9_u32;
            for len in 7..40 {
                for _ in 0..60 {
                    let text = (0..len).map(|_| {
                        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        alphabet[(seed >> 24) as usize % alphabet.len()]
                    });
                    texts.push(text.collect());
                }
            }
            texts.push(b"12345678901234567.123456".to_vec());
            texts.push(b"123456789012345678.1".to_vec());
            texts.push([b"sku-".as_slice(), &[b'7'; 300]].concat());
            for text in texts {
                let expected = full
                    .try_search_fwd(&Input::new(&text))
                    .expect("no quit bytes")
                    .is_some();
                assert_eq!(
                    fast.is_match(&text),
                    expected,
                    "{pattern} on {:?}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }

    /// Every text of at most `max_len` bytes drawn from `alphabet`, the empty one included.
    fn every_text(alphabet: &[u8], max_len: usize) -> Vec<Vec<u8>> {
        let mut texts: Vec<Vec<u8>> = vec![Vec::new()];
        let mut last: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..max_len {
            last = (last.iter())
                .flat_map(|t| alphabet.iter().map(move |&b| [t.as_slice(), &[b]].concat()))
                .collect();
            texts.extend(last.iter().cloned());
        }
        texts
    }

    /// The walk over a string as written answers only for a plain string that the DFA matches, ending it
    /// at the first quote; for an anchored pattern it answers for every such string.
    #[test]
    fn the_walk_over_a_written_string_ends_at_its_quote_and_matches_as_the_dfa() {
        let patterns = [
            ("^(0|[1-9][0-9]{0,17})(\\.[0-9]{1,6})?$", &b"019."[..], true),
            ("^[A-Z]{3}$", b"AZ", true),
            ("^sku-[0-9]+$", b"sku-0", true),
            ("ab", b"ab", false),
            ("a$", b"ab", false),
            ("^$", b"a", true),
            ("", b"a", false),
        ];
        let special = [b'"', b'\\', 0x01, b'\n', 0xc3, 0xa9, 0xff];
        for (pattern, alphabet, anchored) in patterns {
            let full = dfa(pattern).expect("a DFA");
            let fast = Pattern::compile(pattern).expect("a pattern");
            let bytes: Vec<u8> = alphabet.iter().chain(&special).copied().collect();
            let mut texts = every_text(&bytes, 5);
            texts.push(b"123456789012345678.123456\"".to_vec());
            texts.push(b"1234567890123456789\"".to_vec());
            texts.push([b"sku-".as_slice(), &[b'7'; 300], b"\""].concat());
            for text in texts {
                let cut = (text.iter()).position(|&b| matches!(b, b'"' | b'\\' | ..0x20 | 0x80..));
                let quoted = cut.filter(|&cut| text[cut] == b'"');
                let matches = |len: usize| {
                    (full.try_search_fwd(&Input::new(&text[..len])))
                        .expect("no quit bytes")
                        .is_some()
                };
                let walked = fast.quoted(&text);
                let shown = String::from_utf8_lossy(&text);
                if let Some(len) = walked {
                    assert!(quoted == Some(len) && matches(len), "{pattern} on {shown:?}");
                }
                if anchored && quoted.is_some_and(matches) {
                    assert_eq!(walked, quoted, "{pattern} on {shown:?}");
                }
            }
        }
    }
}
