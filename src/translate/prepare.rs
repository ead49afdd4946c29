//! Turning a checked body into the bytes sent to the engine: the client's own bytes when
//! nothing changed, otherwise the same fields in the same order with the changes applied.

use bytes::Bytes;

use crate::translate::body::{write_json_string, JsonBody};

/// Whether the body lacks a usable `model` (absent or null), so one should be filled in.
pub fn lacks_model(body: &JsonBody<'_>) -> bool {
    body.get_non_null("model").is_none()
}

/// The bytes to forward. `changed` says whether fields were removed; `model` is filled in (in
/// place of an explicit null) when given; `set` adds or replaces fields with raw JSON values.
pub fn finish(
    original: &Bytes,
    mut body: JsonBody<'_>,
    changed: bool,
    model: Option<&str>,
    set: &[(&str, &str)],
) -> Bytes {
    if !changed && model.is_none() && set.is_empty() {
        return original.clone();
    }
    let quoted = model.map(|m| {
        let mut b = bytes::BytesMut::with_capacity(m.len() + 2);
        write_json_string(&mut b, m);
        b
    });
    let mut extra: Vec<(&str, &str)> = Vec::with_capacity(set.len() + 1);
    if let Some(q) = &quoted {
        body.remove("model");
        // The quoted form of a &str is valid UTF-8.
        extra.push(("model", std::str::from_utf8(q).unwrap_or("null")));
    }
    for (name, value) in set {
        body.remove(name);
        extra.push((name, value));
    }
    body.write(&extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_body_is_the_same_allocation() {
        let original = Bytes::from_static(br#"{"messages":[] , "model":"m"}"#);
        let body = JsonBody::parse(&original).unwrap();
        let out = finish(&original, body, false, None, &[]);
        assert_eq!(out.as_ptr(), original.as_ptr());
    }

    #[test]
    fn fills_model_in_place_of_null_and_sets_fields() {
        let original =
            Bytes::from_static(br#"{"model":null,"input":"x","encoding_format":"int8"}"#);
        let body = JsonBody::parse(&original).unwrap();
        assert!(lacks_model(&body));
        let out = finish(
            &original,
            body,
            false,
            Some("org/m\"1"),
            &[("encoding_format", "\"float\"")],
        );
        assert_eq!(
            &out[..],
            br#"{"input":"x","model":"org/m\"1","encoding_format":"float"}"#
        );
    }
}
