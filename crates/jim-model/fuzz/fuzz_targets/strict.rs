//! Any JSON through the check for JSON that parsers read differently,
//! against a reference built on serde_json: the check passes exactly the
//! documents the reference reads without finding nesting deeper than the
//! limit, a duplicate key, a lone surrogate or a number beyond a double.
#![no_main]

use std::collections::HashSet;
use std::fmt;

use jim_model::strict;
use libfuzzer_sys::fuzz_target;
use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Reads a value the slow, obvious way: every string decoded (serde_json
/// refuses lone surrogates then), every number read as a double, every
/// key remembered per object, the depth counted.
struct Reference {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Reference {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Reference {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        if v.is_finite() { Ok(()) } else { Err(E::custom("not finite")) }
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.depth + 1;
        if depth > strict::MAX_DEPTH {
            return Err(de::Error::custom("too deep"));
        }
        while seq.next_element_seed(Reference { depth })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let depth = self.depth + 1;
        if depth > strict::MAX_DEPTH {
            return Err(de::Error::custom("too deep"));
        }
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key) {
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(Reference { depth })?;
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    // Only JSON is in the check's contract (the gateway parses first);
    // beyond serde_json's recursion limit (128), both refuse anyway.
    let mut syntax = serde_json::Deserializer::from_slice(data);
    if syntax.deserialize_any(IgnoredAny).and_then(|_| syntax.end()).is_err() {
        return;
    }
    let mut reference = serde_json::Deserializer::from_slice(data);
    let expected = Reference { depth: 0 }
        .deserialize(&mut reference)
        .and_then(|()| reference.end());
    let got = strict::check(data);
    assert_eq!(
        got.is_ok(),
        expected.is_ok(),
        "check: {got:?}, reference: {expected:?}, input: {}",
        String::from_utf8_lossy(data)
    );
});
