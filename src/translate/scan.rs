//! A validating JSON scanner for the hot path: it checks that bytes are one JSON text (RFC 8259,
//! UTF-8) and walks the fields of a top-level object without building anything.
//!
//! serde_json's `IgnoredAny` does the same check through its generic visitor machinery, at
//! several times the instructions per byte; the engine's answer is checked on every request.
//! What it accepts is serde_json's grammar (the property tests compare the two), with one
//! two differences, both stricter: invalid UTF-8 inside a string is refused here, where
//! serde_json skips it when the value is ignored, and so is nesting deeper than 128 arrays and
//! objects (serde_json's limit when it builds values; it ignores values without one).

/// Why bytes are not one JSON text (no detail: callers that report the error ask serde_json
/// for its message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// Most nested arrays and objects, as serde_json allows when it builds values (the scanner
/// recurses, so the limit also bounds its stack).
const MAX_DEPTH: usize = 128;

/// The end of the run of string bytes at `i` that need no attention: stops at a quote, a
/// backslash or a control character (or the end). Eight bytes at a time: a byte-by-byte loop
/// cost about four times the instructions.
fn plain_run(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `v` that is zero (exact for the lowest such byte).
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    while let Some(chunk) = b.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
        let w = u64::from_le_bytes(chunk);
        let hits = zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// A cursor over JSON bytes.
pub struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

/// Whether `bytes` are exactly one JSON value, with optional whitespace around it.
pub fn is_json(bytes: &[u8]) -> bool {
    let mut s = Scan::new(bytes);
    s.value(0).and_then(|()| s.end()).is_ok()
}

impl<'a> Scan<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Scan { b: bytes, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Result<(), Invalid> {
        if self.peek() == Some(byte) {
            self.i += 1;
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// Only whitespace is left.
    pub fn end(&mut self) -> Result<(), Invalid> {
        self.ws();
        if self.i == self.b.len() {
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// Skips one value (after optional whitespace) nested `depth` containers deep.
    fn value(&mut self, depth: usize) -> Result<(), Invalid> {
        self.ws();
        match self.peek().ok_or(Invalid)? {
            b'"' => self.string().map(|_| ()),
            b'{' => {
                let mut fields = self.object(depth)?;
                while fields.next_field()?.is_some() {
                    fields.skip_value()?;
                }
                Ok(())
            }
            b'[' => self.array(depth),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Invalid),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Invalid> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), Invalid> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Invalid),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(Invalid);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(Invalid);
            }
        }
        Ok(())
    }

    /// Skips a string at the cursor; returns its contents as written (escapes undecoded) and
    /// whether it has escapes.
    fn string(&mut self) -> Result<(&'a [u8], bool), Invalid> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i = plain_run(self.b, self.i);
            match self.peek().ok_or(Invalid)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.i += 1;
                    match self.peek().ok_or(Invalid)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.b.get(self.i + 1..self.i + 5).ok_or(Invalid)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Invalid);
                            }
                            self.i += 5;
                        }
                        _ => return Err(Invalid),
                    }
                }
                // A control character (plain_run stops only at these three kinds).
                _ => return Err(Invalid),
            }
        }
        let raw = &self.b[start..self.i];
        self.i += 1;
        // ASCII is valid UTF-8 as it is; only strings with other bytes need the full check.
        if !raw.is_ascii() && std::str::from_utf8(raw).is_err() {
            return Err(Invalid);
        }
        Ok((raw, escaped))
    }

    fn array(&mut self, depth: usize) -> Result<(), Invalid> {
        if depth >= MAX_DEPTH {
            return Err(Invalid);
        }
        self.eat(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value(depth + 1)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Invalid),
            }
        }
    }

    /// Enters an object at the cursor (after optional whitespace).
    pub fn object(&mut self, depth: usize) -> Result<Fields<'_, 'a>, Invalid> {
        if depth >= MAX_DEPTH {
            return Err(Invalid);
        }
        self.ws();
        self.eat(b'{')?;
        Ok(Fields {
            scan: self,
            depth,
            first: true,
        })
    }
}

/// The fields of an object being scanned.
pub struct Fields<'s, 'a> {
    scan: &'s mut Scan<'a>,
    depth: usize,
    first: bool,
}

/// A field's name as written between its quotes.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    raw: &'a [u8],
    escaped: bool,
}

impl Key<'_> {
    /// Whether the name (escapes decoded) is `name`.
    pub fn is(&self, name: &str) -> bool {
        if !self.escaped {
            return self.raw == name.as_bytes();
        }
        let mut quoted = Vec::with_capacity(self.raw.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(self.raw);
        quoted.push(b'"');
        serde_json::from_slice::<String>(&quoted).is_ok_and(|k| k == name)
    }
}

impl<'a> Fields<'_, 'a> {
    /// The next field's name, the cursor left before its value; `None` after the closing
    /// brace. Call `skip_value` or `value_span` before asking for the next one.
    pub fn next_field(&mut self) -> Result<Option<Key<'a>>, Invalid> {
        let s = &mut *self.scan;
        s.ws();
        if self.first {
            self.first = false;
            if s.peek() == Some(b'}') {
                s.i += 1;
                return Ok(None);
            }
        } else {
            match s.peek() {
                Some(b',') => {
                    s.i += 1;
                    s.ws();
                }
                Some(b'}') => {
                    s.i += 1;
                    return Ok(None);
                }
                _ => return Err(Invalid),
            }
        }
        let (raw, escaped) = s.string()?;
        s.ws();
        s.eat(b':')?;
        Ok(Some(Key { raw, escaped }))
    }

    /// Skips the current field's value.
    pub fn skip_value(&mut self) -> Result<(), Invalid> {
        self.scan.value(self.depth + 1)
    }

    /// Skips the current field's value and returns its text.
    pub fn value_span(&mut self) -> Result<&'a [u8], Invalid> {
        self.scan.ws();
        let start = self.scan.i;
        self.scan.value(self.depth + 1)?;
        Ok(&self.scan.b[start..self.scan.i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// serde_json's verdict on a UTF-8 text.
    fn serde_ok(bytes: &[u8]) -> bool {
        std::str::from_utf8(bytes).is_ok()
            && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    }

    #[test]
    fn agrees_with_serde_json_on_edge_cases() {
        for case in [
            "",
            " ",
            "{}",
            "[]",
            "[1,]",
            "{,}",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "01",
            "-",
            "-0",
            "0.",
            ".5",
            "1e",
            "1e+",
            "1E-2",
            "-12.5e+07",
            "tru",
            "true",
            "nul",
            "null ",
            " false\n",
            "\"\\u12\"",
            "\"\\u12G4\"",
            "\"\\uD800\"",
            "\"\\x\"",
            "\"a\tb\"",
            "\"\\/\"",
            "\"é\"",
            "[1 2]",
            "[[[]]]",
            "{\"a\":{\"b\":[true,null]}}",
            "1 2",
            "{}}",
            "\"abc",
            "[\"a\",",
            "{\"a\":",
            "\u{feff}{}",
            "NaN",
            "Infinity",
            "+1",
            "1.5.2",
        ] {
            assert_eq!(
                is_json(case.as_bytes()),
                serde_ok(case.as_bytes()),
                "{case:?}"
            );
        }
        // Invalid UTF-8 in a string: refused (serde_json would skip it in an ignored value).
        assert!(!is_json(b"\"\xff\""));
        assert!(!is_json(b"{\"a\":\"\xc3\"}"));
    }

    #[test]
    fn long_strings_with_a_special_byte_anywhere() {
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 40] {
            for at in 0..len {
                for special in [b'"', b'\\', 0x01, 0x1f, b'\n', 0xc3, 0xff, b'~', 0x7f, 0x80] {
                    let mut text = vec![b'"'];
                    let mut inner = vec![b'a'; len];
                    inner[at] = special;
                    text.extend_from_slice(&inner);
                    text.push(b'"');
                    assert_eq!(
                        is_json(&text),
                        serde_ok(&text),
                        "{}",
                        String::from_utf8_lossy(&text)
                    );
                }
            }
        }
    }

    #[test]
    fn nesting_is_limited() {
        for depth in [1, 127, 128, 129, 100_000] {
            let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            for text in [arrays, objects] {
                assert!(serde_ok(text.as_bytes()));
                assert_eq!(is_json(text.as_bytes()), depth <= 128, "{depth}");
            }
        }
    }

    #[test]
    fn walks_top_level_fields() {
        let text = br#" {"id":"x", "u\u0073age" : {"a":[1,{"b":2}]}, "n":null} "#;
        let mut s = Scan::new(text);
        let mut fields = s.object(0).unwrap();
        let mut seen = Vec::new();
        while let Some(key) = fields.next_field().unwrap() {
            if key.is("usage") {
                seen.push(String::from_utf8(fields.value_span().unwrap().to_vec()).unwrap());
            } else {
                fields.skip_value().unwrap();
            }
        }
        s.end().unwrap();
        assert_eq!(seen, [r#"{"a":[1,{"b":2}]}"#]);
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            ".{0,24}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::vec((".{0,6}", inner), 0..6)
                    .prop_map(|v| serde_json::Value::Object(v.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn every_serialised_value_is_json(v in json_value(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_vec_pretty(&v).unwrap()
            } else {
                serde_json::to_vec(&v).unwrap()
            };
            prop_assert!(is_json(&text));
        }

        #[test]
        fn damaged_values_get_serde_json_s_verdict(
            v in json_value(),
            cut in any::<prop::sample::Index>(),
            byte in prop::sample::select(&b"{}[]\",:\\ 0-.eE+tfnu\x01"[..]),
            insert in any::<bool>(),
        ) {
            let mut text = serde_json::to_vec(&v).unwrap();
            let at = cut.index(text.len() + 1);
            if insert || at == text.len() {
                text.insert(at, byte);
            } else {
                text[at] = byte;
            }
            prop_assert_eq!(is_json(&text), serde_ok(&text), "{}", String::from_utf8_lossy(&text));
        }

        #[test]
        fn arbitrary_bytes_get_serde_json_s_verdict(text in prop::collection::vec(
            prop::sample::select(&b"{}[]\",: \n0123456789-.eE+truefalsnl\\u/bx\xc3\xa9"[..]), 0..24)) {
            prop_assert_eq!(is_json(&text), serde_ok(&text), "{}", String::from_utf8_lossy(&text));
        }
    }
}
