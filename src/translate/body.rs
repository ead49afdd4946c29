//! A JSON request body read as its top-level fields in the order the client sent them, each value
//! kept as the client's own raw text.
//!
//! The proxy checks and rewrites only the top level (drop a field, fill `model`), so it never
//! re-serialises what it does not change: values are copied through byte for byte, and a body that
//! needs no rewrite is forwarded as the very bytes that arrived.

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::ApiError;

/// The top-level fields of a JSON object body, in order, values unparsed.
#[derive(Debug)]
pub struct JsonBody<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> JsonBody<'a> {
    /// Reads `bytes` as a JSON object. Anything else (invalid UTF-8 or JSON, an array, a
    /// duplicated key) is the client's error, answered with a message saying what is wrong.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid(
                "The request body is empty; a JSON object is required.",
            ));
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::parse_str(text),
            // Not UTF-8: serde_json's reading of the bytes says where, in its usual words.
            Err(_) => {
                let mut de = serde_json::Deserializer::from_slice(bytes);
                Self::read(&mut de)
            }
        }
    }

    /// Like `parse`, for text already known to be UTF-8 (a nested raw value): values are
    /// borrowed without checking their UTF-8 again, which reading from bytes does for each one.
    pub fn parse_str(text: &'a str) -> Result<Self, ApiError> {
        let mut de = serde_json::Deserializer::from_str(text);
        Self::read(&mut de)
    }

    fn read<R: serde_json::de::Read<'a>>(
        de: &mut serde_json::Deserializer<R>,
    ) -> Result<Self, ApiError> {
        let fields = de
            .deserialize_any(FieldsVisitor)
            .and_then(|f| de.end().map(|()| f))
            .map_err(|e| ApiError::invalid(format!("The request body is not valid JSON: {e}")))?;
        let fields = fields.map_err(ApiError::invalid)?;
        Ok(JsonBody { fields })
    }

    /// The raw value of field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// The raw value of field `name`, treating an explicit `null` as absent.
    pub fn get_non_null(&self, name: &str) -> Option<&'a RawValue> {
        self.get(name).filter(|v| v.get() != "null")
    }

    /// The fields, in order, for callers that walk a nested object.
    pub fn into_fields(self) -> Vec<(Cow<'a, str>, &'a RawValue)> {
        self.fields
    }

    /// Field names in the order sent.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_ref())
    }

    /// Removes the named fields; returns whether anything was removed.
    pub fn remove_all(&mut self, names: &[&str]) -> bool {
        let before = self.fields.len();
        self.fields.retain(|(k, _)| !names.contains(&k.as_ref()));
        before != self.fields.len()
    }

    /// Removes one field; returns whether it was present.
    pub fn remove(&mut self, name: &str) -> bool {
        self.remove_all(&[name])
    }

    /// Writes the object back out: the same fields in the same order with the same raw values,
    /// followed by `extra` fields (name, already-serialised JSON value).
    pub fn write(&self, extra: &[(&str, &str)]) -> Bytes {
        let size: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 8)
            .chain(extra.iter().map(|(k, v)| k.len() + v.len() + 8))
            .sum();
        let mut out = BytesMut::with_capacity(size + 2);
        out.put_u8(b'{');
        let mut first = true;
        let all = self
            .fields
            .iter()
            .map(|(k, v)| (k.as_ref(), v.get()))
            .chain(extra.iter().copied());
        for (k, v) in all {
            if !first {
                out.put_u8(b',');
            }
            first = false;
            write_json_string(&mut out, k);
            out.put_u8(b':');
            out.put_slice(v.as_bytes());
        }
        out.put_u8(b'}');
        out.freeze()
    }
}

/// Writes `s` as a JSON string literal.
pub fn write_json_string(out: &mut BytesMut, s: &str) {
    // serde_json's escaping of a &str into a Vec cannot fail.
    let quoted = serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""));
    out.put_slice(quoted.as_bytes());
}

type Fields<'a> = Result<Vec<(Cow<'a, str>, &'a RawValue)>, String>;

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(Cow<'de, str>, &'de RawValue)> =
            Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(crate::translate::json::CowStr(key)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            if fields.iter().any(|(k, _)| *k == key) {
                return Ok(Err(format!(
                    "The request body has the field '{key}' more than once."
                )));
            }
            fields.push((key, value));
        }
        Ok(Ok(fields))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Err(
            "The request body must be a JSON object, not an array.".into()
        ))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(
            "The request body must be a JSON object, not a string.".into()
        ))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(
            "The request body must be a JSON object, not a number.".into()
        ))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(
            "The request body must be a JSON object, not a number.".into()
        ))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(
            "The request body must be a JSON object, not a number.".into()
        ))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(
            "The request body must be a JSON object, not a boolean.".into(),
        ))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Err(
            "The request body must be a JSON object, not null.".into()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<JsonBody<'_>, ApiError> {
        JsonBody::parse(s.as_bytes())
    }

    #[test]
    fn keeps_order_and_raw_values() {
        let src = r#"{"z": 1.50, "a": {"x" : [1, 2]}, "m": "caf\u00e9"}"#;
        let body = parse(src).unwrap();
        assert_eq!(body.names().collect::<Vec<_>>(), ["z", "a", "m"]);
        let out = body.write(&[("model", "\"x\"")]);
        assert_eq!(
            &out[..],
            br#"{"z":1.50,"a":{"x" : [1, 2]},"m":"caf\u00e9","model":"x"}"#
        );
    }

    #[test]
    fn escaped_keys_are_read_and_rewritten() {
        let body = parse(r#"{"a\"b": 1}"#).unwrap();
        assert!(body.get("a\"b").is_some());
        assert_eq!(&body.write(&[])[..], br#"{"a\"b":1}"#);
    }

    #[test]
    fn rejects_non_objects_and_duplicates() {
        for bad in [
            "",
            "  ",
            "[1]",
            "\"s\"",
            "1",
            "true",
            "null",
            "{",
            "{}x",
            "{\"a\":1,\"a\":2}",
        ] {
            let err = parse(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!err.is_empty(), "{bad:?} should be rejected");
        }
        assert!(JsonBody::parse(b"{\"a\":\"\xff\"}").is_err());
    }

    #[test]
    fn remove_and_null() {
        let mut body = parse(r#"{"a":1,"b":null,"c":3}"#).unwrap();
        assert!(body.get_non_null("b").is_none());
        assert!(body.remove_all(&["a", "c"]));
        assert_eq!(&body.write(&[])[..], br#"{"b":null}"#);
    }
}
