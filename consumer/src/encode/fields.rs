//! The top-level fields of an event as slices of its JSON text: a value stays raw until its column reads
//! it, so a Parquet row is built without a tree of the whole event.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A string borrowed from the JSON text when it has no escapes, unescaped into its own buffer otherwise.
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// An event's top-level fields in the order the event has them.
pub struct Fields<'a> {
    entries: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Fields<'a> {
    /// Fails unless `payload` is one JSON object.
    pub fn parse(payload: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(payload)
    }

    /// The value of `name`: the last one if the event repeats it, as a parsed `serde_json::Value` keeps.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.entries
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
    }

    /// Every field whose name `keep` accepts, by name (the last value of a repeated name).
    pub fn others(&self, keep: impl Fn(&str) -> bool) -> BTreeMap<&str, &'a RawValue> {
        self.entries
            .iter()
            .filter(|(key, _)| keep(key))
            .map(|(key, value)| (key.as_ref(), *value))
            .collect()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((Text(key), value)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    entries.push((key, value));
                }
                Ok(Fields { entries })
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
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

pub fn shape(value: &RawValue) -> Shape {
    match value.get().as_bytes().first() {
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

    #[test]
    fn fields_keep_raw_values_and_the_last_of_a_repeated_name() {
        let payload = br#"{"a":"x","b\u0041":{"n":[1, 2]},"c":3.5,"a":"y"}"#;
        let fields = Fields::parse(payload).expect("an object");
        assert_eq!(fields.get("a").map(RawValue::get), Some(r#""y""#));
        assert_eq!(fields.get("bA").map(RawValue::get), Some(r#"{"n":[1, 2]}"#));
        assert!(fields.get("zz").is_none());
        let others: Vec<&str> = fields.others(|k| k != "c").into_keys().collect();
        assert_eq!(others, vec!["a", "bA"]);
        assert!(Fields::parse(b"[1]").is_err());
    }

    #[test]
    fn shapes_and_text() {
        let raw = |t: &str| RawValue::from_string(t.to_owned()).expect("JSON");
        assert_eq!(shape(&raw("null")), Shape::Null);
        assert_eq!(shape(&raw("false")), Shape::Bool(false));
        assert_eq!(shape(&raw("-1.5e3")), Shape::Number);
        assert_eq!(shape(&raw("[]")), Shape::Nested);
        let text: Text<'_> = serde_json::from_str(r#""\u00e9t\u00e9""#).expect("a string");
        assert_eq!(text.0, "été");
    }
}
