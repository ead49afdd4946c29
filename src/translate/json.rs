//! Small checks on raw JSON values: their kind from the first byte, and typed reads of the few
//! values the proxy needs, with messages that name the field's path.

use std::borrow::Cow;
use std::fmt::{self, Display};

use serde::Deserialize;

use crate::error::ApiError;
use crate::translate::raw::{Elements, Fields, Raw};

/// The kind of a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

impl Kind {
    /// The kind of an already-validated raw value, read off its first byte.
    pub fn of(raw: Raw<'_>) -> Kind {
        match raw.get().as_bytes().first() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            _ => Kind::Number,
        }
    }

    /// The kind with its article, as messages name it ("an array").
    pub fn name(self) -> &'static str {
        match self {
            Kind::Object => "an object",
            Kind::Array => "an array",
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Bool => "a boolean",
            Kind::Null => "null",
        }
    }
}

/// A 400 saying that `path` should be `expected` but is of another kind.
pub fn wrong_kind(path: &(impl Display + ?Sized), expected: &str, raw: Raw<'_>) -> ApiError {
    ApiError::invalid_param(
        path.to_string(),
        format!(
            "Invalid type for '{path}': expected {expected}, but got {}.",
            Kind::of(raw).name()
        ),
    )
}

/// Checks that `raw` is one of `kinds`.
pub fn expect_kind(
    path: &(impl Display + ?Sized),
    raw: Raw<'_>,
    kinds: &[Kind],
) -> Result<(), ApiError> {
    let k = Kind::of(raw);
    if kinds.contains(&k) {
        return Ok(());
    }
    let expected: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    Err(wrong_kind(path, &expected.join(" or "), raw))
}

/// Reads a JSON string (escapes decoded).
pub fn string<'a>(path: &(impl Display + ?Sized), raw: Raw<'a>) -> Result<Cow<'a, str>, ApiError> {
    raw.as_str()
        .ok_or_else(|| wrong_kind(path, "a string", raw))
}

/// A JSON string borrowed from the input when it has no escapes, copied only when it has:
/// serde's own `Cow<str>` always copies, which made every field name and string of every
/// request an allocation on the hot path.
pub struct CowStr<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;

        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = CowStr<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }

        d.deserialize_str(Visit)
    }
}

/// Reads a string that must be one of `allowed`.
pub fn one_of<'a>(
    path: &(impl Display + ?Sized),
    raw: Raw<'a>,
    allowed: &[&str],
) -> Result<Cow<'a, str>, ApiError> {
    let s = string(path, raw)?;
    if allowed.contains(&s.as_ref()) {
        return Ok(s);
    }
    let list: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    Err(ApiError::invalid_param(
        path.to_string(),
        format!(
            "Invalid value for '{path}': '{}'. Supported values are: {}.",
            s.chars().take(64).collect::<String>(),
            list.join(", ")
        ),
    ))
}

/// The elements of an array, as raw values.
pub fn array<'a>(path: &(impl Display + ?Sized), raw: Raw<'a>) -> Result<Elements<'a>, ApiError> {
    expect_kind(path, raw, &[Kind::Array])?;
    Ok(raw.elements())
}

/// The fields of an object as (name, raw value) pairs in order; a name given twice is refused.
pub fn object<'a>(
    path: &(impl Display + ?Sized),
    raw: Raw<'a>,
) -> Result<Vec<(Cow<'a, str>, Raw<'a>)>, ApiError> {
    expect_kind(path, raw, &[Kind::Object])?;
    let fields: Vec<(Cow<'a, str>, Raw<'a>)> = raw.members().collect();
    no_repeats(path, &fields)?;
    Ok(fields)
}

/// Calls `check` with the path and fields of each element of an array of objects, reading
/// each element and its fields in one walk (the messages of a long conversation are the bulk
/// of a request).
pub fn each_object<'a>(
    path: &Path<'_>,
    raw: Raw<'a>,
    mut check: impl FnMut(&Path<'_>, &[(Cow<'a, str>, Raw<'a>)]) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let mut elements = array(path, raw)?;
    let mut fields = Fields::new();
    let mut i = 0;
    while let Some(element) = elements.next_with_members(&mut fields) {
        let element_path = path.index(i);
        expect_kind(&element_path, element, &[Kind::Object])?;
        no_repeats(&element_path, &fields)?;
        check(&element_path, &fields)?;
        i += 1;
    }
    Ok(())
}

fn no_repeats(
    path: &(impl Display + ?Sized),
    fields: &[(Cow<'_, str>, Raw<'_>)],
) -> Result<(), ApiError> {
    match crate::translate::raw::repeated_key(fields) {
        Some(key) => Err(ApiError::invalid_param(
            path.to_string(),
            format!("'{path}' has the field '{key}' more than once."),
        )),
        None => Ok(()),
    }
}

/// Checks that `raw` is an integer (no fraction or exponent) within `min..=max`.
pub fn integer(
    path: &(impl Display + ?Sized),
    raw: Raw<'_>,
    min: i64,
    max: i64,
) -> Result<i64, ApiError> {
    let value = serde_json::from_str::<i64>(raw.get()).ok();
    match value {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(v) => Err(ApiError::invalid_param(
            path.to_string(),
            format!("Invalid value for '{path}': {v}. It must be between {min} and {max}."),
        )),
        None => Err(wrong_kind(path, "an integer", raw)),
    }
}

/// The value of a field in an object read by [`object`].
pub fn field<'a>(fields: &[(Cow<'a, str>, Raw<'a>)], name: &str) -> Option<Raw<'a>> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
        .filter(|v| !v.is_null())
}

/// A 400 for a required field that is missing.
pub fn missing(path: &(impl Display + ?Sized)) -> ApiError {
    ApiError::invalid_param(
        path.to_string(),
        format!("Missing required field '{path}'."),
    )
}

/// Where a value sits in the body (`messages[2].content[0].type`), for error messages. Built
/// on the stack as the checks descend and written out only when an error names it: checking a
/// long conversation allocates no path strings.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    /// A top-level field.
    Top(&'a str),
    /// A field of an object.
    Field(&'a Path<'a>, &'a str),
    /// An element of an array.
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    /// The path of field `name` below this one.
    pub fn field(&'a self, name: &'a str) -> Path<'a> {
        Path::Field(self, name)
    }

    /// The path of element `i` below this one.
    pub fn index(&'a self, i: usize) -> Path<'a> {
        Path::Index(self, i)
    }
}

impl Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Top(name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        assert!(matches!(
            string("model", raw(r#""gpt-4o""#)).unwrap(),
            Cow::Borrowed("gpt-4o")
        ));
        let s = string("model", raw(r#""a\"b""#)).unwrap();
        assert!(matches!(s, Cow::Owned(_)));
        assert_eq!(s, "a\"b");
    }

    fn raw(s: &str) -> Raw<'_> {
        Raw::parse(s).unwrap()
    }

    #[test]
    fn kinds_and_messages() {
        assert_eq!(Kind::of(raw("-1.5e3")), Kind::Number);
        assert_eq!(Kind::of(raw("false")), Kind::Bool);
        let err = expect_kind("x.y", raw("[]"), &[Kind::String, Kind::Null]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid type for 'x.y': expected a string or null, but got an array."
        );
        assert_eq!(integer("n", raw("3"), 0, 5).unwrap(), 3);
        assert!(integer("n", raw("3.5"), 0, 5).is_err());
        assert!(integer("n", raw("9"), 0, 5).is_err());
        assert_eq!(string("s", raw(r#""a\nb""#)).unwrap(), "a\nb");
        assert!(one_of("t", raw(r#""x""#), &["a", "b"])
            .unwrap_err()
            .to_string()
            .contains("'a', 'b'"));
    }
}
