//! The top-level fields of an event as slices of its JSON text: a value stays raw until its column reads
//! it, so a Parquet row is built without a tree of the whole event.
//!
//! The event was already checked (it is one valid JSON object), so finding where each value ends needs
//! no second validation: strings end at an unescaped quote, objects and arrays where their brackets
//! balance, scalars at the next delimiter. Anything unexpected is still an error, never a panic.

use std::borrow::Cow;

use streamlake_core::contract::fast::Member;

#[derive(Debug, thiserror::Error)]
#[error("not a JSON object the contract check passed: {0}")]
pub struct NotAnObject(&'static str);

/// An event's top-level fields in the order the event has them; values are raw JSON text. The same
/// shape as the members the contract's fast check reads ([`Member`]), for events it was not sure of.
pub struct Fields<'a> {
    entries: Vec<Member<'a>>,
}

impl<'a> Fields<'a> {
    /// Fails unless `payload` is one JSON object.
    pub fn parse(payload: &'a [u8]) -> Result<Self, NotAnObject> {
        let text = std::str::from_utf8(payload).map_err(|_| NotAnObject("not UTF-8"))?;
        let mut scan = Scanner { text, at: 0 };
        let mut entries = Vec::with_capacity(16);
        scan.expect(b'{')?;
        scan.skip_whitespace();
        if scan.peek() == Some(b'}') {
            scan.at += 1;
        } else {
            loop {
                let key = scan.string()?;
                scan.expect(b':')?;
                let value = scan.value()?;
                entries.push((unescape(key)?, value));
                match scan.next_byte() {
                    Some(b',') => scan.skip_whitespace(),
                    Some(b'}') => break,
                    _ => return Err(NotAnObject("expected , or } after a member")),
                }
            }
        }
        scan.skip_whitespace();
        if scan.at != text.len() {
            return Err(NotAnObject("text after the object"));
        }
        Ok(Self { entries })
    }

    /// Every field as (name, raw value text), in the event's order; a repeated name appears each time.
    pub fn members(&self) -> &[Member<'a>] {
        &self.entries
    }
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, consumed.
    fn next_byte(&mut self) -> Option<u8> {
        self.skip_whitespace();
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Result<(), NotAnObject> {
        if self.next_byte() != Some(byte) {
            return Err(NotAnObject("unexpected character"));
        }
        Ok(())
    }

    /// A string token, quotes included, starting at the next non-whitespace byte.
    fn string(&mut self) -> Result<&'a str, NotAnObject> {
        self.skip_whitespace();
        let start = self.at;
        self.expect(b'"')?;
        self.skip_string_body()?;
        self.slice(start)
    }

    /// Moves past the closing quote of a string whose opening quote was consumed.
    fn skip_string_body(&mut self) -> Result<(), NotAnObject> {
        let bytes = self.bytes();
        while let Some(&byte) = bytes.get(self.at) {
            self.at += 1;
            match byte {
                b'"' => return Ok(()),
                b'\\' => self.at += 1, // the escaped byte cannot end the string
                _ => {}
            }
        }
        Err(NotAnObject("unterminated string"))
    }

    /// One value's text, starting at the next non-whitespace byte.
    fn value(&mut self) -> Result<&'a str, NotAnObject> {
        self.skip_whitespace();
        let start = self.at;
        match self.peek() {
            Some(b'"') => {
                self.at += 1;
                self.skip_string_body()?;
            }
            Some(b'{' | b'[') => self.skip_nested()?,
            Some(_) => {
                let rest = &self.bytes()[start..];
                let len = rest
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                    .unwrap_or(rest.len());
                if len == 0 {
                    return Err(NotAnObject("missing value"));
                }
                self.at += len;
            }
            None => return Err(NotAnObject("missing value")),
        }
        self.slice(start)
    }

    /// Moves past an object or array, nested ones and strings included.
    fn skip_nested(&mut self) -> Result<(), NotAnObject> {
        let bytes = self.bytes();
        let mut depth = 0usize;
        while let Some(&byte) = bytes.get(self.at) {
            self.at += 1;
            match byte {
                b'"' => self.skip_string_body()?,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Err(NotAnObject("unterminated object or array"))
    }

    fn slice(&self, start: usize) -> Result<&'a str, NotAnObject> {
        self.text
            .get(start..self.at)
            .ok_or(NotAnObject("a token ends inside a character"))
    }
}

/// A key's text without quotes; escapes (rare in keys) are decoded.
fn unescape(quoted: &str) -> Result<Cow<'_, str>, NotAnObject> {
    string_value(quoted).ok_or(NotAnObject("a key is not a valid string"))
}

/// The text of a JSON string token, borrowed unless it has escapes; `None` if it is not a string.
pub fn string_value(quoted: &str) -> Option<Cow<'_, str>> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
}

/// What a raw JSON value is, from its first byte (the text is valid JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Null,
    Bool(bool),
    String,
    Number,
    Nested,
}

pub fn shape(value: &str) -> Shape {
    match value.as_bytes().first() {
        Some(b'n') => Shape::Null,
        Some(b't') => Shape::Bool(true),
        Some(b'f') => Shape::Bool(false),
        Some(b'"') => Shape::String,
        Some(b'{' | b'[') => Shape::Nested,
        _ => Shape::Number,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `name`: the last one if the event repeats it.
    fn get<'a>(fields: &Fields<'a>, name: &str) -> Option<&'a str> {
        (fields.members().iter().rev())
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
    }

    #[test]
    fn fields_keep_raw_values_in_order_with_escaped_names_decoded() {
        let payload = br#"{"a":"x","b\u0041":{"n":[1, 2]},"c":3.5,"a":"y"}"#;
        let fields = Fields::parse(payload).expect("an object");
        let all: Vec<(&str, &str)> = fields.members().iter().map(|(k, v)| (k.as_ref(), *v)).collect();
        assert_eq!(
            all,
            vec![
                ("a", r#""x""#),
                ("bA", r#"{"n":[1, 2]}"#),
                ("c", "3.5"),
                ("a", r#""y""#)
            ]
        );
    }

    #[test]
    fn values_end_where_json_says_whatever_they_contain() {
        let payload = " {\n \"s\" : \"a \\\" } ] , b\\\\\" ,\t\"o\":{\"x\":[\"]\",{\"y\":\"}\"}],\"z\":null} ,\"n\":-1.5e3\n,\"t\":true,\"e\":{},\"l\":[]}\n";
        let fields = Fields::parse(payload.as_bytes()).expect("an object");
        assert_eq!(get(&fields, "s"), Some(r#""a \" } ] , b\\""#));
        assert_eq!(get(&fields, "o"), Some(r#"{"x":["]",{"y":"}"}],"z":null}"#));
        assert_eq!(get(&fields, "n"), Some("-1.5e3"));
        assert_eq!(get(&fields, "t"), Some("true"));
        assert_eq!(get(&fields, "e"), Some("{}"));
        assert_eq!(get(&fields, "l"), Some("[]"));
        assert_eq!(Fields::parse(b" { } ").expect("empty").members().len(), 0);
    }

    #[test]
    fn every_value_matches_what_serde_json_reads() {
        let payload = r#"{"k\n":"é\u00e9","arr":[1,{"a":[true,false,null]},"x\"y"],"num":12345678901234567890,"f":0.1}"#;
        let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(payload).expect("JSON");
        let fields = Fields::parse(payload.as_bytes()).expect("an object");
        for (name, value) in &parsed {
            let raw = get(&fields, name).expect("every field is found");
            let reparsed: serde_json::Value = serde_json::from_str(raw).expect("a whole value");
            assert_eq!(&reparsed, value, "field {name}");
        }
    }

    #[test]
    fn what_is_not_one_object_is_an_error() {
        for bad in [
            &b"[1]"[..],
            b"",
            b"{",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{\"a\":\"x}",
            b"{\"a\":[1}",
            b"{\"a\":1} x",
            b"{\"a\":1 \"b\":2}",
            b"{\"a\xff\":1}",
        ] {
            assert!(Fields::parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn string_values_borrow_unless_escaped() {
        assert!(matches!(string_value(r#""plain""#), Some(Cow::Borrowed("plain"))));
        assert_eq!(string_value(r#""\u00e9t\u00e9""#).as_deref(), Some("été"));
        assert_eq!(string_value("12"), None);
    }

    #[test]
    fn shapes() {
        assert_eq!(shape("null"), Shape::Null);
        assert_eq!(shape("false"), Shape::Bool(false));
        assert_eq!(shape("-1.5e3"), Shape::Number);
        assert_eq!(shape("[]"), Shape::Nested);
        assert_eq!(shape("\"x\""), Shape::String);
    }
}
