//! A JSON request body read as its top-level fields in the order the client sent them, each value
//! kept as the client's own raw text.
//!
//! The proxy checks and rewrites only the top level (drop a field, fill `model`), so it never
//! re-serialises what it does not change: values are copied through byte for byte, and a body that
//! needs no rewrite is forwarded as the very bytes that arrived.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ApiError;
use crate::translate::json::Kind;
use crate::translate::raw::{self, Fields, Raw, SyntaxError};

/// The top-level fields of a JSON object body, in order, values unparsed.
#[derive(Debug)]
pub struct JsonBody<'a> {
    fields: Fields<'a>,
    /// The values that hold a `null` somewhere.
    nulls: Vec<Raw<'a>>,
}

impl<'a> JsonBody<'a> {
    /// Reads `bytes` as a JSON object, checking the whole document once. Anything else
    /// (invalid UTF-8 or JSON, an array, a duplicated key) is the client's error, answered with
    /// a message saying what is wrong and where.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid(
                "The request body is empty; a JSON object is required.",
            ));
        }
        let not_json =
            |e: SyntaxError| ApiError::invalid(format!("The request body is not valid JSON: {e}"));
        let text = std::str::from_utf8(bytes)
            .map_err(|e| not_json(SyntaxError::at(bytes, e.valid_up_to(), "invalid UTF-8")))?;
        let mut fields = Fields::new();
        let mut nulls = Vec::new();
        raw::scan(bytes, |m| {
            let value = Raw::checked(&text[m.value]);
            fields.push((raw::unquote(&text[m.key]), value));
            if m.has_null {
                nulls.push(value);
            }
        })
        .map_err(not_json)?;
        let kind = Kind::of(Raw::checked(text.trim_matches([' ', '\t', '\n', '\r'])));
        if kind != Kind::Object {
            return Err(ApiError::invalid(format!(
                "The request body must be a JSON object, not {}.",
                kind.name()
            )));
        }
        if let Some(key) = raw::repeated_key(&fields) {
            return Err(ApiError::invalid(format!(
                "The request body has the field '{key}' more than once."
            )));
        }
        Ok(JsonBody { fields, nulls })
    }

    /// The raw value of field `name`, if present.
    pub fn get(&self, name: &str) -> Option<Raw<'a>> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// Whether the value of field `name` has a `null` anywhere in it.
    pub fn has_null_in(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| self.nulls.iter().any(|n| std::ptr::eq(n.get(), v.get())))
    }

    /// The raw value of field `name`, treating an explicit `null` as absent.
    pub fn get_non_null(&self, name: &str) -> Option<Raw<'a>> {
        self.get(name).filter(|v| !v.is_null())
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
    fn nulls_inside_values_are_known_without_reading_them_again() {
        let mut body =
            parse(r#"{"a":[1,{"b":null}],"c":"null","d":null,"e":{"f":[true]}}"#).unwrap();
        assert!(body.has_null_in("a"));
        assert!(!body.has_null_in("c"));
        assert!(body.has_null_in("d"));
        assert!(!body.has_null_in("e"));
        assert!(!body.has_null_in("missing"));
        assert!(body.remove("a"));
        assert!(!body.has_null_in("a"));
        assert!(body.has_null_in("d"));
    }

    #[test]
    fn remove_and_null() {
        let mut body = parse(r#"{"a":1,"b":null,"c":3}"#).unwrap();
        assert!(body.get_non_null("b").is_none());
        assert!(body.remove_all(&["a", "c"]));
        assert_eq!(&body.write(&[])[..], br#"{"b":null}"#);
    }
}
