//! Keeping the partition key's value while the fast check reads it, so a valid event is keyed in the
//! same pass as it is checked.

use std::cell::Cell;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Check, Node, Skipped};

/// Which root property to keep, and where.
#[derive(Clone, Copy)]
pub(super) struct Capture<'s> {
    pub(super) index: usize,
    pub(super) out: &'s Cell<Option<String>>,
}

/// The kept property's value: checked as its node says, and kept if it is a string or an integer.
pub(super) struct KeySeed<'s> {
    pub(super) node: &'s Node,
    pub(super) out: &'s Cell<Option<String>>,
}

impl KeySeed<'_> {
    fn check<E>(&self, f: impl FnOnce(Check<'_>) -> Result<(), E>) -> Result<(), E> {
        match self.node {
            Node::Any => Ok(()),
            Node::Checked(checks) => f(Check::nested(checks)),
        }
    }

    fn keep<E>(&self, checked: Result<(), E>, key: impl FnOnce() -> String) -> Result<(), E> {
        checked?;
        self.out.set(Some(key()));
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a partition key meeting the contract")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.keep(self.check(|c| c.visit_str(v)), || v.to_owned())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.keep(self.check(|c| c.visit_u64(v)), || v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.keep(self.check(|c| c.visit_i64(v)), || v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.check(|c| c.visit_f64(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.check(|c| c.visit_bool(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.check(|c| c.visit_unit())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        match self.node {
            Node::Any => Skipped.visit_seq(seq).map(|_| ()),
            Node::Checked(checks) => Check::nested(checks).visit_seq(seq),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        match self.node {
            Node::Any => Skipped.visit_map(map).map(|_| ()),
            Node::Checked(checks) => Check::nested(checks).visit_map(map),
        }
    }
}
