//! A strict JSON reader: duplicate keys, non-integer numbers, NUL characters and oversized
//! documents are refused instead of being silently "fixed".

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The largest document accepted. LUKS2 token metadata cannot hold more than a few MiB, and
/// homed never produces records of this size; anything larger is hostile or broken.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// Why a document was refused. The message names the place and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(pub String);

/// Parses `bytes` as one JSON document under the rules records must follow.
///
/// Nesting is bounded by serde_json's recursion limit (128), so hostile depth is an error, not
/// a stack overflow.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, JsonError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(JsonError(format!(
            "document is {} bytes, more than the {} bytes a record may have",
            bytes.len(),
            MAX_DOCUMENT_BYTES
        )));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue::deserialize(&mut deserializer)
        .map_err(|e| JsonError(format!("invalid JSON: {e}")))?;
    deserializer
        .end()
        .map_err(|e| JsonError(format!("invalid JSON: {e}")))?;
    Ok(value.0)
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

fn checked_string<E: de::Error>(s: &str) -> Result<(), E> {
    if s.contains('\0') {
        return Err(E::custom("string contains a NUL character"));
    }
    Ok(())
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(Number::from(v))))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(Number::from(v))))
    }

    // serde_json hands every number that is not an integer in -2^63..2^64-1 to visit_f64:
    // fractions, exponents and integers too large. sd-json prints reals with a precision that
    // differs between architectures, so a record holding one cannot be signed portably.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrictValue, E> {
        Err(E::custom(format!(
            "number {v} is not an integer between -2^63 and 2^64-1; records hold integers only"
        )))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StrictValue, E> {
        checked_string(v)?;
        Ok(StrictValue(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<StrictValue, E> {
        checked_string(&v)?;
        Ok(StrictValue(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(StrictValue(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictValue, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            checked_string(&key)?;
            let StrictValue(value) = access.next_value()?;
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key \"{key}\"")));
            }
            map.insert(key, value);
        }
        Ok(StrictValue(Value::Object(map)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &[u8]) -> String {
        parse_strict(text).expect_err("must be refused").0
    }

    #[test]
    fn accepts_full_integer_range() {
        let v = parse_strict(br#"{"a":-9223372036854775808,"b":18446744073709551615}"#).unwrap();
        assert_eq!(v["a"].as_i64(), Some(i64::MIN));
        assert_eq!(v["b"].as_u64(), Some(u64::MAX));
    }

    #[test]
    fn refuses_what_cannot_be_signed() {
        assert!(refused(br#"{"a":18446744073709551616}"#).contains("not an integer"));
        assert!(refused(br#"{"a":1.5}"#).contains("not an integer"));
        assert!(refused(br#"{"a":1e3}"#).contains("not an integer"));
        assert!(refused(br#"{"a":1,"a":2}"#).contains("duplicate key \"a\""));
        assert!(refused(br#"{"a":"x\u0000y"}"#).contains("NUL"));
        assert!(refused(b"{\"a\":\"\xff\"}").contains("invalid JSON"));
        assert!(refused(br#"{"a":1} {}"#).contains("invalid JSON"));
    }

    #[test]
    fn refuses_deep_nesting_without_overflowing() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(refused(deep.as_bytes()).contains("recursion limit"));
    }

    #[test]
    fn refuses_oversized_documents() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(10 * 1024 * 1024));
        assert!(refused(big.as_bytes()).contains("more than"));
    }
}
