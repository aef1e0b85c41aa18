//! Reading an event's partition key from its bytes, with the meaning of [`super::Contract::partition_key`]
//! (a string as is, an `i64`/`u64` integer as decimal text, anything else none; a repeated field counts
//! by its last value, as in a parsed `Value`), without building the event in memory. Other fields are
//! read in full all the same ([`super::skip`]), so a payload the full path cannot parse has no key.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::skip::Skipped;

/// The partition key of `payload`, or `None` if it has none or is not one JSON object.
pub(super) fn from_bytes(payload: &[u8], field: &str) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let key = de.deserialize_map(TopLevel { field }).ok()?;
    de.end().ok()?;
    key
}

/// The event's top-level object: every other field is skipped unread.
struct TopLevel<'f> {
    field: &'f str,
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let mut key = None;
        while let Some(is_key) = map.next_key_seed(IsField(self.field))? {
            if is_key {
                key = map.next_value::<KeyValue>()?.0;
            } else {
                map.next_value::<Skipped>()?;
            }
        }
        Ok(key)
    }
}

/// Whether an object key (unescaped) names the partition key field.
struct IsField<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for IsField<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsField<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// The partition key field's value as key text, if it is a string or an integer.
struct KeyValue(Option<String>);

impl<'de> Deserialize<'de> for KeyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyValueVisitor).map(KeyValue)
    }
}

struct KeyValueVisitor;

impl<'de> Visitor<'de> for KeyValueVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        Ok(Some(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Option<String>, E> {
        Ok(Some(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<String>, A::Error> {
        Skipped.visit_seq(seq).map(|_| None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<String>, A::Error> {
        Skipped.visit_map(map).map(|_| None)
    }
}

#[cfg(test)]
mod tests;
