//! A contract's `pattern`, compiled to a fully built DFA: matching needs no cache, so the landing
//! threads that share one contract never wait on the regex crate's cache pool.

use regex_automata::dfa::{Automaton, dense};
use regex_automata::util::{primitives::StateID, start, syntax};
use regex_automata::{Anchored, nfa::thompson};

use super::{Unsupported, unsupported};

/// The most memory one pattern's DFA may take (the shipped contracts' take a few KiB).
const DFA_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub(super) struct Pattern {
    dfa: dense::DFA<Vec<u32>>,
    /// Where every search starts: the beginning of a string, unanchored.
    start: StateID,
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
            .and_then(|dfa| {
                let start = dfa
                    .start_state(&start::Config::new().anchored(Anchored::No))
                    .ok()?;
                Some(Self { dfa, start })
            })
            .map_or_else(no, Ok)
    }

    /// Whether the pattern matches anywhere in `text`; a search the DFA gives up on is no match.
    pub(super) fn is_match(&self, text: &[u8]) -> bool {
        // The DFA's transitions walked by hand: the strings are short, a search's setup would dominate.
        let dfa = &self.dfa;
        let mut state = self.start;
        for &byte in text {
            state = dfa.next_state(state, byte);
            if dfa.is_special_state(state) {
                if dfa.is_match_state(state) {
                    return true; // matches show one byte late: one ended before `byte`
                }
                if dfa.is_dead_state(state) || dfa.is_quit_state(state) {
                    return false;
                }
            }
        }
        dfa.is_match_state(dfa.next_eoi_state(state))
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
