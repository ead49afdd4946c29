//! JSON text checked once, then read without checking it again.
//!
//! [`scan`] validates a whole document in one pass (the grammar of RFC 8259, as strict as
//! serde_json: no trailing commas, no control characters in strings, at most 127 levels) and
//! reports the top-level object's members on the way. A [`Raw`] is a slice of text that passed
//! that check: splitting it into elements or members only looks for where each value ends (the
//! next unescaped quote, the matching bracket), which is several times cheaper than checking it.
//! Reading nested values with serde_json's `RawValue` validated them again at every level.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// Containers nested this deep are refused (127 levels pass): serde_json's limit when it
/// builds a value, and a guard for engines that parse bodies recursively.
pub const MAX_DEPTH: usize = 128;

/// Where and why a document is not valid JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What is wrong, in a few words.
    pub what: &'static str,
    line: usize,
    column: usize,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.what, self.line, self.column
        )
    }
}

impl SyntaxError {
    /// An error at `offset` of `bytes`, with its line and column (1-based, column in bytes).
    pub fn at(bytes: &[u8], offset: usize, what: &'static str) -> SyntaxError {
        let before = &bytes[..offset.min(bytes.len())];
        let line = 1 + memchr::memchr_iter(b'\n', before).count();
        let column = 1 + before.len() - memchr::memrchr(b'\n', before).map_or(0, |n| n + 1);
        SyntaxError {
            offset,
            what,
            line,
            column,
        }
    }
}

/// Byte classes inside a string: 0 plain, 1 the closing quote, 2 a backslash, 3 a control
/// character (which JSON requires to be escaped).
static STRING_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = 3;
        i += 1;
    }
    t[b'"' as usize] = 1;
    t[b'\\' as usize] = 2;
    t
};

/// A word with the high bit set in each byte (of eight, little-endian) that is a quote, a
/// backslash or a control character; the lowest set bit marks the first such byte exactly
/// (bits above it may be false alarms, from borrows).
fn special_bytes(x: u64) -> u64 {
    let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    quote_or_backslash(x) | control
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Like [`special_bytes`], for quotes and backslashes only.
fn quote_or_backslash(x: u64) -> u64 {
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    zero_in(x ^ (ONES * u64::from(b'"'))) | zero_in(x ^ (ONES * u64::from(b'\\')))
}

/// Where the next quote or backslash (and, with `controls`, control character) at or after
/// `i` is, or the end of `b`. The runs of plain text in prompts are the hot loop of reading a
/// body: eight bytes at a time in the word's registers, which also suits text dense with escapes
/// (a call per escape costs more than the search); a run past 64 plain bytes goes to memchr's
/// vector search for the next quote or backslash and is then checked for control characters in
/// one pass that the compiler vectorises.
#[inline(always)]
fn next_special(b: &[u8], mut i: usize, controls: bool) -> usize {
    const LONG_RUN: usize = 8;
    let mut words = 0;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(sixteen) = b.get(i..i + 16).and_then(|s| <&[u8; 16]>::try_from(s).ok()) {
        let special = sse2::special(sixteen, controls);
        if special != 0 {
            return i + special.trailing_zeros() as usize;
        }
        i += 16;
        words += 2;
        if words >= LONG_RUN {
            return long_run(b, i, controls);
        }
    }
    while let Some(word) = b.get(i..i + 8) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let x = u64::from_le_bytes(eight);
        let special = if controls {
            special_bytes(x)
        } else {
            quote_or_backslash(x)
        };
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
        words += 1;
        if words >= LONG_RUN {
            return long_run(b, i, controls);
        }
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || (controls && c < 0x20) {
            break;
        }
        i += 1;
    }
    i
}

/// `next_special` for a long run of plain text: memchr's vector search for the next quote or
/// backslash, then one vectorised pass for control characters before it.
fn long_run(b: &[u8], i: usize, controls: bool) -> usize {
    let end = memchr::memchr2(b'"', b'\\', &b[i..]).map_or(b.len(), |n| i + n);
    if !controls {
        return end;
    }
    i + first_control(&b[i..end]).unwrap_or(end - i)
}

/// Sixteen bytes at once with SSE2, which every x86-64 CPU has.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    /// A mask with bit `k` set when byte `k` of `sixteen` is a quote or a backslash, or with
    /// `controls` a control character.
    #[inline(always)]
    pub(super) fn special(sixteen: &[u8; 16], controls: bool) -> u32 {
        // SAFETY: the build enables SSE2 (the cfg on this module), and the one load reads the
        // 16 bytes of `sixteen`, which its type guarantees; unaligned loads are allowed.
        unsafe {
            let v = _mm_loadu_si128(sixteen.as_ptr().cast());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            let mut m = _mm_or_si128(quote, backslash);
            if controls {
                // c < 0x20 (unsigned) exactly when min(c, 0x1f) == c.
                let low = _mm_set1_epi8(0x1f);
                m = _mm_or_si128(m, _mm_cmpeq_epi8(_mm_min_epu8(v, low), v));
            }
            _mm_movemask_epi8(m) as u32
        }
    }
}

/// Where the first control character in `run` is.
fn first_control(run: &[u8]) -> Option<usize> {
    let mut at = 0;
    for chunk in run.chunks(64) {
        // No early exit inside a chunk, so that the test is done sixteen or more bytes at once.
        if chunk.iter().fold(0u8, |any, &c| any | u8::from(c < 0x20)) != 0 {
            return chunk.iter().position(|&c| c < 0x20).map(|n| at + n);
        }
        at += chunk.len();
    }
    None
}

/// Checks that `bytes` hold exactly one JSON value (with optional whitespace around it) and
/// calls `member` with each [`Member`] when that value is an object. Bytes of 0x80 and above are taken as they
/// are inside strings; callers that need UTF-8 check it first.
pub fn scan(bytes: &[u8], mut member: impl FnMut(Member)) -> Result<(), SyntaxError> {
    let mut s = Scanner { b: bytes, i: 0 };
    s.document::<false>(&mut member, &mut |_| {})
        .map_err(|what| SyntaxError::at(bytes, s.i, what))
}

/// Like [`scan`], and also calls `nested` with each member of an object that is the value of
/// a top-level member (one level down: an answer's `usage` counts), in the same pass.
pub fn scan_nested(
    bytes: &[u8],
    mut member: impl FnMut(Member),
    mut nested: impl FnMut(NestedMember),
) -> Result<(), SyntaxError> {
    let mut s = Scanner { b: bytes, i: 0 };
    s.document::<true>(&mut member, &mut nested)
        .map_err(|what| SyntaxError::at(bytes, s.i, what))
}

/// One member of an object that is the value of a top-level member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedMember {
    /// Where the enclosing top-level member's key is, quotes included.
    pub parent: Range<usize>,
    /// Where this member's key is, quotes included.
    pub key: Range<usize>,
    /// Where its value is.
    pub value: Range<usize>,
}

/// One member of a document's top-level object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Where the key is, quotes included.
    pub key: Range<usize>,
    /// Where the value is.
    pub value: Range<usize>,
    /// Whether a `null` appears anywhere in the value (so that looking for null fields in a
    /// large value can be skipped when there is none).
    pub has_null: bool,
}

struct Scanner<'b> {
    b: &'b [u8],
    i: usize,
}

type Step = Result<(), &'static str>;

/// Which containers enclose the current position: `objects[d]` tells whether the container at
/// depth `d + 1` is an object. One loop with this stack instead of a call per value: documents
/// of many small values spend their time in calls and returns otherwise. What every value asks
/// (is the innermost container an object) is kept up to date on each push and pop rather than
/// looked up.
struct Nesting {
    objects: [bool; MAX_DEPTH],
    depth: usize,
    in_object: bool,
}

impl Nesting {
    fn new() -> Self {
        Nesting {
            objects: [false; MAX_DEPTH],
            depth: 0,
            in_object: false,
        }
    }

    /// Whether the position is inside the top-level object: at a member's value.
    fn top_member(&self) -> bool {
        self.depth == 1 && self.in_object
    }

    /// Whether the position is inside an object that is a top-level member's value.
    fn second_member(&self) -> bool {
        self.depth == 2 && self.in_object && self.objects[0]
    }

    fn push(&mut self, object: bool) -> Step {
        match self.objects.get_mut(self.depth) {
            Some(slot) if self.depth + 1 < MAX_DEPTH => *slot = object,
            _ => return Err("recursion limit exceeded"),
        }
        self.depth += 1;
        self.in_object = object;
        Ok(())
    }

    fn pop(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        self.in_object = self.depth > 0 && self.objects.get(self.depth - 1) == Some(&true);
    }
}

impl Scanner<'_> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// A key, the colon after it and the whitespace before the value; returns the key's range.
    #[inline(always)]
    fn key(&mut self) -> Result<Range<usize>, &'static str> {
        match self.peek() {
            Some(b'"') => {}
            None => return Err("EOF while parsing an object"),
            Some(_) => return Err("key must be a string"),
        }
        let start = self.i;
        self.string()?;
        let key = start..self.i;
        self.ws();
        match self.peek() {
            Some(b':') => self.i += 1,
            None => return Err("EOF while parsing an object"),
            Some(_) => return Err("expected `:`"),
        }
        self.ws();
        Ok(key)
    }

    /// The document; with `NESTED`, members one level down go to `nested` too (a constant,
    /// so that plain scans carry none of its checks).
    fn document<const NESTED: bool>(
        &mut self,
        member: &mut impl FnMut(Member),
        nested: &mut impl FnMut(NestedMember),
    ) -> Step {
        let mut nest = Nesting::new();
        // The key and value start of the top-level member being read.
        let mut key = 0..0;
        let mut value_start = 0;
        let mut has_null = false;
        // The same for the member one level down (with NESTED).
        let mut key2 = 0..0;
        let mut value_start2 = 0;
        self.ws();
        loop {
            // At the start of a value.
            if nest.top_member() {
                value_start = self.i;
                has_null = false;
            } else if NESTED && nest.second_member() {
                value_start2 = self.i;
            }
            match self.peek() {
                None => return Err("EOF while parsing a value"),
                Some(open @ (b'{' | b'[')) => {
                    let object = open == b'{';
                    nest.push(object)?;
                    self.i += 1;
                    self.ws();
                    let close = if object { b'}' } else { b']' };
                    if self.peek() != Some(close) {
                        if object {
                            let k = self.key()?;
                            if nest.depth == 1 {
                                key = k;
                            } else if NESTED && nest.depth == 2 {
                                key2 = k;
                            }
                        }
                        continue;
                    }
                    self.i += 1;
                    nest.pop();
                }
                Some(b'"') => self.string()?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => {
                    self.literal(b"null")?;
                    has_null = true;
                }
                Some(_) => return Err("expected value"),
            }
            // After a value: close the containers it ends, until a comma asks for another.
            loop {
                if nest.top_member() {
                    member(Member {
                        key: key.clone(),
                        value: value_start..self.i,
                        has_null,
                    });
                } else if NESTED && nest.second_member() {
                    nested(NestedMember {
                        parent: key.clone(),
                        key: key2.clone(),
                        value: value_start2..self.i,
                    });
                }
                self.ws();
                if nest.depth == 0 {
                    return match self.peek() {
                        None => Ok(()),
                        Some(_) => Err("trailing characters"),
                    };
                }
                let object = nest.in_object;
                match (self.peek(), object) {
                    (Some(b','), _) => {
                        self.i += 1;
                        self.ws();
                        if object {
                            if self.peek() == Some(b'}') {
                                return Err("trailing comma");
                            }
                            let k = self.key()?;
                            if nest.depth == 1 {
                                key = k;
                            } else if NESTED && nest.depth == 2 {
                                key2 = k;
                            }
                        } else if self.peek() == Some(b']') {
                            return Err("trailing comma");
                        }
                        break;
                    }
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        self.i += 1;
                        nest.pop();
                    }
                    (None, true) => return Err("EOF while parsing an object"),
                    (None, false) => return Err("EOF while parsing a list"),
                    (Some(_), true) => return Err("expected `,` or `}`"),
                    (Some(_), false) => return Err("expected `,` or `]`"),
                }
            }
        }
    }

    #[inline(always)]
    fn string(&mut self) -> Step {
        let b = self.b;
        let mut i = self.i + 1;
        loop {
            i = next_special(b, i, true);
            match b.get(i).map(|&c| STRING_CLASS[usize::from(c)]) {
                Some(1) => {
                    self.i = i + 1;
                    return Ok(());
                }
                Some(2) => {
                    // The usual escapes inline; `\u` and mistakes in the full reading.
                    if let Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') =
                        b.get(i + 1)
                    {
                        i += 2;
                        continue;
                    }
                    self.i = i;
                    self.escape()?;
                    i = self.i;
                }
                Some(_) => {
                    self.i = i;
                    return Err("control character (\\u0000-\\u001F) found while parsing a string");
                }
                None => {
                    self.i = i;
                    return Err("EOF while parsing a string");
                }
            }
        }
    }

    /// An escape, at its backslash.
    fn escape(&mut self) -> Step {
        self.i += 1;
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.i += 1;
                Ok(())
            }
            Some(b'u') => {
                self.i += 1;
                for _ in 0..4 {
                    match self.peek() {
                        Some(c) if c.is_ascii_hexdigit() => self.i += 1,
                        None => return Err("EOF while parsing a string"),
                        Some(_) => return Err("invalid escape"),
                    }
                }
                Ok(())
            }
            None => Err("EOF while parsing a string"),
            Some(_) => Err("invalid escape"),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Step {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err("invalid number");
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Step {
        for &c in word {
            match self.peek() {
                Some(got) if got == c => self.i += 1,
                None => return Err("EOF while parsing a value"),
                Some(_) => return Err("expected ident"),
            }
        }
        Ok(())
    }
}

/// The text of one JSON value that [`scan`] has checked (or a part of such text).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(&'a str);

impl fmt::Debug for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl<'a> Raw<'a> {
    /// Checks `text` (one JSON value, whitespace around it allowed) and returns the value.
    pub fn parse(text: &'a str) -> Result<Raw<'a>, SyntaxError> {
        scan(text.as_bytes(), |_| {})?;
        Ok(Raw(
            text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
        ))
    }

    /// A slice of text that `scan` accepted: one whole value, without whitespace around it.
    pub(crate) fn checked(text: &'a str) -> Raw<'a> {
        Raw(text)
    }

    /// The value's text, as the client sent it.
    pub fn get(self) -> &'a str {
        self.0
    }

    /// Whether the value is `null`.
    pub fn is_null(self) -> bool {
        self.0 == "null"
    }

    /// The elements of an array (none when the value is not an array).
    pub fn elements(self) -> Elements<'a> {
        Elements(Items::open(self.0, b'['))
    }

    /// The members of an object, keys decoded (none when the value is not an object).
    pub fn members(self) -> Members<'a> {
        Members(Items::open(self.0, b'{'))
    }

    /// The decoded text of a string (`None` when the value is not a string): borrowed unless
    /// it has escapes.
    pub fn as_str(self) -> Option<Cow<'a, str>> {
        self.0.starts_with('"').then(|| unquote(self.0))
    }
}

/// Walks the items of a checked array or object.
#[derive(Clone)]
struct Items<'a> {
    text: &'a str,
    /// Next byte to read; `None` once the closing bracket is reached.
    at: Option<usize>,
    /// Once closed, where the closing bracket ends.
    end: usize,
}

impl<'a> Items<'a> {
    fn open(text: &'a str, open: u8) -> Items<'a> {
        let b = text.as_bytes();
        let at = (b.first() == Some(&open)).then(|| skip_ws(b, 1));
        let mut items = Items { text, at, end: 0 };
        items.close_if_end();
        items
    }

    fn close_if_end(&mut self) {
        if let Some(i) = self.at {
            if matches!(self.text.as_bytes().get(i), Some(b']' | b'}') | None) {
                self.at = None;
                self.end = (i + 1).min(self.text.len());
            }
        }
    }

    /// Moves past the comma after a value that ends at `end`.
    fn after(&mut self, end: usize) {
        let b = self.text.as_bytes();
        let mut next = skip_ws(b, end);
        if b.get(next) == Some(&b',') {
            next = skip_ws(b, next + 1);
        }
        self.at = Some(next);
        self.close_if_end();
    }

    /// The next value (at `at`), moving past it and the comma after it.
    fn value(&mut self, start: usize) -> Raw<'a> {
        let end = value_end(self.text.as_bytes(), start);
        self.after(end);
        Raw(&self.text[start..end])
    }
}

/// The elements of an array, in order.
#[derive(Clone)]
pub struct Elements<'a>(Items<'a>);

impl<'a> Elements<'a> {
    /// Whether no elements are left.
    pub fn is_empty(&self) -> bool {
        self.0.at.is_none()
    }

    /// The next element, with `members` set to its members when it is an object (cleared
    /// otherwise): one walk over the element, where reading it and then its members took two.
    pub fn next_with_members(&mut self, members: &mut Fields<'a>) -> Option<Raw<'a>> {
        members.clear();
        let start = self.0.at?;
        let text = self.0.text;
        if text.as_bytes()[start] != b'{' {
            return Some(self.0.value(start));
        }
        // The members of the text from here on stop at this object's closing brace.
        let mut inner = Members(Items::open(&text[start..], b'{'));
        members.extend(&mut inner);
        let end = start + inner.0.end;
        self.0.after(end);
        Some(Raw(&text[start..end]))
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = Raw<'a>;

    fn next(&mut self) -> Option<Raw<'a>> {
        let start = self.0.at?;
        Some(self.0.value(start))
    }
}

/// The members of an object, in order: (decoded key, value).
#[derive(Clone)]
pub struct Members<'a>(Items<'a>);

impl<'a> Iterator for Members<'a> {
    type Item = (Cow<'a, str>, Raw<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.0.at?;
        let text = self.0.text;
        let b = text.as_bytes();
        let key_end = string_end(b, start);
        let colon = skip_ws(b, key_end);
        let value_start = skip_ws(b, colon + 1);
        let key = unquote(&text[start..key_end]);
        Some((key, self.0.value(value_start)))
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// Where the checked string starting at `start` (its opening quote) ends, past its closing
/// quote.
fn string_end(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    loop {
        i = next_special(b, i, false);
        match b.get(i) {
            Some(b'"') => return i + 1,
            // A backslash and the byte it escapes (a `\u` escape's hex digits are plain).
            Some(_) => i += 2,
            None => return b.len(),
        }
    }
}

/// The bytes that matter when skipping a checked container: quotes and brackets.
static NESTING: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t
};

/// Where the checked value starting at `start` ends.
fn value_end(b: &[u8], start: usize) -> usize {
    match b.get(start) {
        Some(b'"') => string_end(b, start),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = start;
            while let Some(n) = b[i..].iter().position(|&c| NESTING[usize::from(c)]) {
                i += n;
                match b[i] {
                    b'"' => {
                        i = string_end(b, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    _ => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                }
                i += 1;
            }
            b.len()
        }
        _ => {
            let mut i = start;
            while let Some(c) = b.get(i) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                i += 1;
            }
            i
        }
    }
}

/// Whether a checked key (with its quotes, as [`Member::key`] gives it) names `name`: compared
/// as it is, decoded only when it has escapes.
pub fn key_is(key: &[u8], name: &str) -> bool {
    key_position(key, &[name]).is_some()
}

/// An object's members as read: inline up to eight (a message, a request's top level), so that
/// reading them allocates nothing in the usual case.
pub type Fields<'a> = smallvec::SmallVec<[(Cow<'a, str>, Raw<'a>); 8]>;

/// Which of `names` a checked key (with its quotes) names, if any: the key is looked at for
/// escapes once, not once per name.
pub fn key_position(key: &[u8], names: &[&str]) -> Option<usize> {
    let inner = key.get(1..key.len().saturating_sub(1)).unwrap_or_default();
    // The names hold no backslash, so a key spelled as one of them has no escape: compared
    // as it is first, and looked at for escapes only when it matched none.
    if let Some(i) = names.iter().position(|n| short_eq(inner, n.as_bytes())) {
        return Some(i);
    }
    if !has_backslash(inner) {
        return None;
    }
    let decoded = std::str::from_utf8(key).map(unquote).ok()?;
    names.iter().position(|n| *n == decoded)
}

/// Whether two short byte strings (keys, names) are equal, compared a word at a time: for the
/// dozen bytes of a key this costs less than the call into `memcmp` that slice equality makes,
/// and a byte loop took about four instructions a byte.
#[inline(always)]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // Two loads that overlap when the length is not a multiple of theirs cover every byte.
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        _ => a == b,
    }
}

#[inline(always)]
fn word4(s: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_ne_bytes(w)
}

#[inline(always)]
fn word8(s: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_ne_bytes(w)
}

/// Whether `s` holds a backslash. Keys and short strings are most of what is asked about:
/// for them a plain loop costs less than setting up a vectorised search.
fn has_backslash(s: &[u8]) -> bool {
    if s.len() < 32 {
        // (Not `contains`: for bytes that is the vectorised search this avoids.)
        for &b in s {
            if b == b'\\' {
                return true;
            }
        }
        false
    } else {
        memchr::memchr(b'\\', s).is_some()
    }
}

/// The first key given twice among `fields`, if any.
pub fn repeated_key<'f>(fields: &'f [(Cow<'_, str>, Raw<'_>)]) -> Option<&'f str> {
    fields
        .iter()
        .enumerate()
        .find(|(i, (key, _))| fields[..*i].iter().any(|(k, _)| k == key))
        .map(|(_, (key, _))| key.as_ref())
}

/// The decoded contents of a checked string literal (with its quotes): borrowed when it has
/// no escapes. A `\u` escape of a lone surrogate, which JSON's grammar allows but text cannot
/// hold, becomes U+FFFD.
pub fn unquote(quoted: &str) -> Cow<'_, str> {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(quoted);
    if !has_backslash(inner.as_bytes()) {
        return Cow::Borrowed(inner);
    }
    Cow::Owned(decode_escapes(inner))
}

/// The text of a string literal's contents that hold escapes. Apart from `unquote` so that
/// the usual call, with nothing to decode, does not pay for this one's set-up.
#[cold]
#[inline(never)]
fn decode_escapes(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(n) = rest.find('\\') {
        out.push_str(&rest[..n]);
        let esc = &rest[n + 1..];
        let (c, used) = match esc.as_bytes().first() {
            Some(b'b') => ('\u{8}', 1),
            Some(b'f') => ('\u{c}', 1),
            Some(b'n') => ('\n', 1),
            Some(b'r') => ('\r', 1),
            Some(b't') => ('\t', 1),
            Some(b'u') => {
                let unit = hex4(esc.get(1..5));
                let low = esc
                    .get(5..7)
                    .filter(|s| *s == "\\u")
                    .and_then(|_| hex4(esc.get(7..11)))
                    .filter(|l| (0xDC00..0xE000).contains(l));
                match (unit, low) {
                    (Some(hi @ 0xD800..=0xDBFF), Some(lo)) => {
                        let code = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        (char::from_u32(code).unwrap_or('\u{FFFD}'), 11)
                    }
                    (Some(u), _) => (char::from_u32(u).unwrap_or('\u{FFFD}'), 5),
                    (None, _) => ('\u{FFFD}', esc.len().min(5)),
                }
            }
            Some(&c) if c.is_ascii() => (char::from(c), 1),
            _ => ('\u{FFFD}', esc.chars().next().map_or(0, char::len_utf8)),
        };
        out.push(c);
        rest = &esc[used..];
    }
    out.push_str(rest);
    out
}

fn hex4(s: Option<&str>) -> Option<u32> {
    s.filter(|s| s.len() == 4 && s.bytes().all(|c| c.is_ascii_hexdigit()))
        .and_then(|s| u32::from_str_radix(s, 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::IgnoredAny;

    fn serde_accepts(b: &[u8]) -> bool {
        serde_json::from_slice::<IgnoredAny>(b).is_ok()
    }

    fn ok(s: &str) -> bool {
        scan(s.as_bytes(), |_| {}).is_ok()
    }

    #[test]
    fn key_position_reads_plain_and_escaped_keys() {
        let names = ["id", "object", "usage"];
        assert_eq!(key_position(br#""usage""#, &names), Some(2));
        assert_eq!(key_position(br#""\u0069d""#, &names), Some(0));
        assert_eq!(key_position(br#""obj\u0065ct""#, &names), Some(1));
        assert_eq!(key_position(br#""usages""#, &names), None);
        assert_eq!(key_position(br#""""#, &names), None);
        for (key, name) in [
            (&br#""\u0069d""#[..], "id"),
            (br#""id""#, "id"),
            (br#""ids""#, "id"),
        ] {
            assert_eq!(key_position(key, &[name]).is_some(), key_is(key, name));
        }
    }

    #[test]
    fn short_eq_agrees_with_slice_equality() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..base.len() {
            let a = &base[..n];
            assert!(short_eq(a, a), "{n}");
            assert!(!short_eq(a, &base[..n + 1]), "{n}");
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert_eq!(short_eq(a, &b), a == &b[..], "{n} {at}");
            }
        }
    }

    #[test]
    fn accepts_and_refuses_as_serde_json_does() {
        let cases = [
            "{}",
            "[]",
            " {\"a\" : [1, -2.5e+3, true, false, null, \"x\\u00e9\\n\"]} ",
            "0",
            "-0",
            "01",
            "1.",
            ".5",
            "1e",
            "1e+",
            "-",
            "+1",
            "[1,]",
            "{\"a\":1,}",
            "{,}",
            "[,1]",
            "{\"a\" 1}",
            "{1:2}",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12G4\"",
            "\"a\u{1}\"",
            "tru",
            "nul",
            "[1 2]",
            "{\"a\":1 \"b\":2}",
            "",
            " ",
            "[",
            "{",
            "\"",
            "[1]x",
            "1 2",
            "\"\\",
            "[\"\\ud800\"]",
            "\u{feff}{}",
            "{\"a\":{\"b\":[{}]}}",
            "[[[]]]",
            "-01",
            "1E5",
            "2e-0",
        ];
        for c in cases {
            assert_eq!(ok(c), serde_accepts(c.as_bytes()), "{c:?}");
        }
    }

    /// The limit is the one serde_json applies when it builds a value (skipping a value it
    /// does not build has none).
    #[test]
    fn nesting_limit_matches_serde_json_values() {
        for depth in [126, 127, 128, 129, 130] {
            for doc in [
                format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
                format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
            ] {
                let serde = serde_json::from_str::<serde_json::Value>(&doc).is_ok();
                assert_eq!(ok(&doc), serde, "depth {depth}: {doc}");
            }
        }
    }

    #[test]
    fn long_strings_are_checked_to_their_end() {
        let long = "x".repeat(300);
        for (doc, good) in [
            (format!("[\"{long}\"]"), true),
            (format!("[\"{long}\\n{long}\"]"), true),
            (format!("[\"{long}\u{1}{long}\"]"), false),
            (format!("[\"{long}{long}\u{1f}\"]"), false),
            (format!("[\"{long}"), false),
            (format!("[\"{long}\\q\"]"), false),
        ] {
            assert_eq!(ok(&doc), good, "{}", doc.len());
            assert_eq!(ok(&doc), serde_accepts(doc.as_bytes()));
        }
        let e = scan(format!("[\"{long}\u{1}\"]").as_bytes(), |_| {}).unwrap_err();
        assert_eq!(e.offset, 302);
        // Skipping long strings, with escapes dense and sparse, finds the same ends.
        let doc = format!(
            r#"[ "{long}", "{long}\"{long}\\", "a\"b\\\"c\u00e9{long}\n", {{"k{long}": "v"}} ]"#
        );
        let want: Vec<&serde_json::value::RawValue> = serde_json::from_str(&doc).unwrap();
        let got: Vec<&str> = Raw::parse(&doc).unwrap().elements().map(Raw::get).collect();
        assert_eq!(got, want.iter().map(|r| r.get()).collect::<Vec<_>>());
    }

    #[test]
    fn errors_say_where() {
        let e = scan(b"{\"a\":1,\n \"b\" 2}", |_| {}).unwrap_err();
        assert_eq!(e.to_string(), "expected `:` at line 2 column 6");
        assert_eq!(e.offset, 13);
    }

    #[test]
    fn top_members_are_reported() {
        let doc = br#" {"a" : 1 , "b\"c":{"x":[1]},"d":"s"} "#;
        let mut seen = Vec::new();
        scan(doc, |m| {
            seen.push((doc[m.key].to_vec(), doc[m.value].to_vec()))
        })
        .unwrap();
        let seen: Vec<(String, String)> = seen
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                ("\"a\"".into(), "1".into()),
                ("\"b\\\"c\"".into(), "{\"x\":[1]}".into()),
                ("\"d\"".into(), "\"s\"".into())
            ]
        );
    }

    #[test]
    fn members_one_level_down_are_reported() {
        let doc = br#"{"a":{"x":1,"y":{"z":[{"w":2}]}},"b":[{"v":3}],"c":{},"d":{"e":"s"}}"#;
        let mut top = Vec::new();
        let mut seen = Vec::new();
        let text = |r: Range<usize>| String::from_utf8(doc[r].to_vec()).unwrap();
        scan_nested(
            doc,
            |m| top.push(text(m.key)),
            |m| seen.push((text(m.parent), text(m.key), text(m.value))),
        )
        .unwrap();
        assert_eq!(top, ["\"a\"", "\"b\"", "\"c\"", "\"d\""]);
        let seen: Vec<(&str, &str, &str)> = seen
            .iter()
            .map(|(p, k, v)| (p.as_str(), k.as_str(), v.as_str()))
            .collect();
        // Members of arrays' objects and of deeper objects are not reported.
        assert_eq!(
            seen,
            [
                ("\"a\"", "\"x\"", "1"),
                ("\"a\"", "\"y\"", "{\"z\":[{\"w\":2}]}"),
                ("\"d\"", "\"e\"", "\"s\""),
            ]
        );
        // A top-level array's objects are one level down too, but not members' values.
        let mut none = 0;
        scan_nested(br#"[{"a":{"b":1}}]"#, |_| {}, |_| none += 1).unwrap();
        assert_eq!(none, 0);
        // The check is the same as scan's.
        assert!(scan_nested(br#"{"a":{"b":1,}}"#, |_| {}, |_| {}).is_err());
    }

    #[test]
    fn splits_and_decodes() {
        let raw =
            Raw::parse(r#" [ {"k\u0041" : "v\"}" , "n": [1,{"x":"]"}] } , 2 ,"s\\" ] "#).unwrap();
        let items: Vec<Raw<'_>> = raw.elements().collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[1].get(), "2");
        assert_eq!(items[2].as_str().unwrap(), "s\\");
        let members: Vec<_> = items[0].members().collect();
        assert_eq!(members[0].0, "kA");
        assert_eq!(members[0].1.as_str().unwrap(), "v\"}");
        assert_eq!(members[1].1.get(), r#"[1,{"x":"]"}]"#);
        // Elements with their members in one walk agree with the two walks.
        let mut walk = raw.elements();
        let mut members = Fields::new();
        let mut seen = Vec::new();
        while let Some(item) = walk.next_with_members(&mut members) {
            assert_eq!(members[..], item.members().collect::<Vec<_>>()[..]);
            seen.push(item);
        }
        assert_eq!(seen, items);
        let objects = Raw::parse(r#"[{}, { "a" : {"b":"}"} } ,{"c":[1]}]"#).unwrap();
        let mut walk = objects.elements();
        let mut got = Vec::new();
        while let Some(item) = walk.next_with_members(&mut members) {
            got.push((item.get(), members.len()));
        }
        assert_eq!(
            got,
            [
                ("{}", 0),
                (r#"{ "a" : {"b":"}"} }"#, 1),
                (r#"{"c":[1]}"#, 1)
            ]
        );
        assert_eq!(Raw::parse("[]").unwrap().elements().count(), 0);
        assert_eq!(Raw::parse("{ }").unwrap().members().count(), 0);
        assert_eq!(Raw::parse("3").unwrap().elements().count(), 0);
        assert!(matches!(
            Raw::parse("\"plain\"").unwrap().as_str(),
            Some(Cow::Borrowed("plain"))
        ));
    }

    #[test]
    fn unquote_matches_serde_json() {
        for s in [
            r#""a\"b\\c\/d\b\f\n\r\t""#,
            r#""\u00e9\u20ac\ud83d\ude00x""#,
            r#""plain""#,
            r#""\u0000""#,
        ] {
            let want: String = serde_json::from_str(s).unwrap();
            assert_eq!(unquote(s), want, "{s}");
        }
        assert_eq!(unquote(r#""\ud800x""#), "\u{FFFD}x");
        assert_eq!(unquote(r#""\udc00\ud800""#), "\u{FFFD}\u{FFFD}");
    }

    /// JSON-like text: valid documents, pieces of them, and bytes JSON treats specially.
    fn jsonish() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| f.to_string()),
            "\"([a-z \\\\\"\u{e9}\u{1}]|\\\\u[0-9a-fA-F]{4}|\\\\[nrt/bfx])*\"",
            Just("1e5".to_string()),
            // Long enough for the vector search, now and then with a control character.
            "\"([a-z \u{e9}]{0,40}(\\\\[n\"]|\u{1}|\u{1f})?){1,4}\"",
        ];
        let value = leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z\"]{0,3}", inner), 0..5).prop_map(|v| {
                    let m: Vec<String> = v
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\" : {v}"))
                        .collect();
                    format!("{{{}}}", m.join(" ,"))
                }),
            ]
        });
        // Then damage some of them.
        (
            value,
            prop::collection::vec(
                (any::<prop::sample::Index>(), "[\\[\\]{},:\" 0-9a\\\\-]?"),
                0..3,
            ),
        )
            .prop_map(|(mut doc, edits)| {
                for (at, with) in edits {
                    let chars: Vec<char> = doc.chars().collect();
                    if chars.is_empty() {
                        doc = with;
                        continue;
                    }
                    let i = at.index(chars.len());
                    let mut s: String = chars[..i].iter().collect();
                    s.push_str(&with);
                    s.extend(&chars[i + 1..]);
                    doc = s;
                }
                doc
            })
    }

    proptest! {
        #[test]
        fn eight_at_a_time_finds_the_first_special_byte(bytes in prop::array::uniform8(
            prop_oneof![Just(b'"'), Just(b'\\'), Just(0u8), Just(0x1f), Just(0x20), Just(0x7f),
                Just(0x80), Just(0xff), Just(b'a'), Just(0x21), Just(0x5d), Just(0x23)])) {
            let first = bytes.iter().position(|&c| STRING_CLASS[usize::from(c)] != 0);
            let special = special_bytes(u64::from_le_bytes(bytes));
            let found = (special != 0).then(|| (special.trailing_zeros() / 8) as usize);
            prop_assert_eq!(found, first);
        }

        #[test]
        fn every_search_finds_the_first_special_byte(
            bytes in prop::collection::vec(prop_oneof![
                8 => Just(b'a'), 1 => Just(b'"'), 1 => Just(b'\\'), 1 => Just(0x1f),
                1 => Just(0x20), 1 => Just(0x80), 1 => Just(0xff), 1 => Just(0u8)], 0..300),
            from in 0usize..40,
        ) {
            let from = from.min(bytes.len());
            for controls in [false, true] {
                let want = bytes[from..]
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || (controls && c < 0x20))
                    .map_or(bytes.len(), |n| from + n);
                prop_assert_eq!(next_special(&bytes, from, controls), want);
            }
        }

        #[test]
        fn agrees_with_serde_json(doc in jsonish()) {
            prop_assert_eq!(ok(&doc), serde_accepts(doc.as_bytes()), "{:?}", doc);
        }

        #[test]
        fn splits_as_serde_json_reads(doc in jsonish()) {
            let Ok(raw) = Raw::parse(&doc) else { return Ok(()) };
            if let Ok(want) = serde_json::from_str::<Vec<&serde_json::value::RawValue>>(&doc) {
                let got: Vec<&str> = raw.elements().map(Raw::get).collect();
                let want: Vec<&str> = want.iter().map(|r| r.get()).collect();
                prop_assert_eq!(got, want);
                let mut walk = raw.elements();
                let mut members = Fields::new();
                let mut one_walk = Vec::new();
                while let Some(item) = walk.next_with_members(&mut members) {
                    prop_assert_eq!(&members[..], &item.members().collect::<Vec<_>>()[..]);
                    one_walk.push(item.get());
                }
                prop_assert_eq!(one_walk, raw.elements().map(Raw::get).collect::<Vec<_>>());
            }
            if let Ok(want) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&doc) {
                // Members in order, with decoded keys and values equal to serde_json's.
                let got: Vec<(String, serde_json::Value)> = raw
                    .members()
                    .map(|(k, v)| (k.into_owned(), serde_json::from_str(v.get()).unwrap()))
                    .collect();
                let mut dedup: Vec<(String, serde_json::Value)> = Vec::new();
                for (k, v) in got {
                    match dedup.iter_mut().find(|(dk, _)| *dk == k) {
                        Some(slot) => slot.1 = v,
                        None => dedup.push((k, v)),
                    }
                }
                let want: Vec<(String, serde_json::Value)> = want.into_iter().collect();
                prop_assert_eq!(dedup, want);
            }
        }
    }
}
