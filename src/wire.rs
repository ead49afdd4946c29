//! Byte helpers shared by the HTTP/1 server, the engine client and the access line: numbers
//! written as and read from ASCII digits without the formatting machinery (they run on every
//! request), and the comma-separated tokens of headers such as `Connection` and
//! `Transfer-Encoding`.

/// `n` in decimal, written into the end of `buf`.
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// `n` in lower-case hexadecimal (a chunk size), written into the end of `buf`.
pub fn hex(mut n: u64, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The number that `digits` spell, when they are ASCII digits only and it fits in a `u64`.
pub fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .flatten()
    })
}

/// Whether a comma-separated header value lists `token` (compared without case; `token` as
/// [`eq_lower`] takes it).
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    // The usual value is the one token alone: a value no longer than the token lists it only
    // by being it (and a shorter one is never equal).
    if value.len() <= token.len() {
        return eq_lower(value, token);
    }
    value
        .split(|&b| b == b',')
        .any(|t| eq_lower(t.trim_ascii(), token))
}

/// Whether `bytes` spells `lower` in any case, where `lower` holds only lower-case ASCII
/// letters, digits and `-`, and `bytes` no control character but tab (true of every header
/// name and value httparse and `HeaderValue` accept).
///
/// Under those conditions setting bit 5 of a byte of `bytes` gives the byte of `lower` exactly
/// when the two are the same letter in either case or the same digit or `-` (the other bytes
/// it maps there are control characters: CR to `-`, 0x10-0x19 to the digits). So the
/// comparison runs a word at a time; `eq_ignore_ascii_case` costs about 15 instructions a
/// byte.
pub fn eq_lower(bytes: &[u8], lower: &[u8]) -> bool {
    debug_assert!(lower
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-'));
    if bytes.len() != lower.len() {
        return false;
    }
    let (mut a, mut b) = (bytes.chunks_exact(8), lower.chunks_exact(8));
    for (x, y) in (&mut a).zip(&mut b) {
        let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
        if word(x) | 0x2020_2020_2020_2020 != word(y) {
            return false;
        }
    }
    a.remainder()
        .iter()
        .zip(b.remainder())
        .all(|(x, y)| x | 0x20 == *y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_in_lists_and_alone() {
        for (value, token, listed) in [
            ("close", "close", true),
            ("Close", "close", true),
            ("clos", "close", false),
            ("closer", "close", false),
            ("keep-alive, close", "close", true),
            (" close ", "close", true),
            ("x,y,z", "close", false),
            ("a,b", "abc", false),
            ("", "close", false),
            ("chunked", "chunked", true),
            ("gzip, chunked", "chunked", true),
        ] {
            assert_eq!(
                has_token(value.as_bytes(), token.as_bytes()),
                listed,
                "{value:?}"
            );
        }
    }

    #[test]
    fn lower_case_literals_match_in_any_case_and_nothing_else() {
        for (bytes, lower, equal) in [
            ("Content-Type", "content-type", true),
            ("CONTENT-LENGTH", "content-length", true),
            ("transfer-encoding", "transfer-encoding", true),
            ("Keep-Alive", "keep-alive", true),
            ("keep_alive", "keep-alive", false),
            ("keep-alivf", "keep-alive", false),
            ("Content-Typ", "content-type", false),
            ("x-ms-region-2", "x-ms-region-2", true),
            ("", "", true),
        ] {
            assert_eq!(
                eq_lower(bytes.as_bytes(), lower.as_bytes()),
                equal,
                "{bytes:?}"
            );
            // The same answer as the standard comparison, for the bytes headers can hold.
            assert_eq!(
                equal,
                bytes.eq_ignore_ascii_case(lower),
                "{bytes:?} against {lower:?}"
            );
        }
        // Every byte a header can hold, against every byte a literal can: as the standard
        // comparison, in and out of a word.
        let literal: Vec<u8> = (b'a'..=b'z').chain(b'0'..=b'9').chain([b'-']).collect();
        let held = (0u8..=255).filter(|b| *b == b'\t' || !b.is_ascii_control());
        for x in held {
            for &y in &literal {
                let expected = x.eq_ignore_ascii_case(&y);
                assert_eq!(eq_lower(&[x], &[y]), expected, "{x:#x} {y:#x}");
                let mut word = *b"abcdefgh";
                word[3] = x;
                let mut lit = *b"abcdefgh";
                lit[3] = y;
                assert_eq!(eq_lower(&word, &lit), expected, "{x:#x} {y:#x} in a word");
            }
        }
    }

    #[test]
    fn digits_match_the_formatter() {
        for n in [0u64, 1, 7, 10, 15, 16, 255, 4096, 12345, u64::MAX] {
            assert_eq!(decimal(n, &mut [0; 20]), n.to_string().as_bytes());
            assert_eq!(hex(n, &mut [0; 16]), format!("{n:x}").as_bytes());
        }
    }

    #[test]
    fn digits_parse_as_the_standard_parser_reads_them() {
        for s in [
            "0",
            "7",
            "18",
            "007",
            "18446744073709551615",
            "18446744073709551616",
            "",
            "-1",
            "1.5",
            "1e3",
            " 1",
            "12a",
        ] {
            let expected = s.parse::<u64>().ok().filter(|_| !s.starts_with('+'));
            assert_eq!(parse_u64(s.as_bytes()), expected, "{s:?}");
        }
        assert_eq!(parse_u64(b"+1"), None);
    }

    #[test]
    fn tokens_are_found_in_lists() {
        assert!(has_token(b"keep-alive, Close", b"close"));
        assert!(has_token(b"gzip,chunked", b"chunked"));
        assert!(!has_token(b"closed", b"close"));
        assert!(!has_token(b"", b"close"));
    }
}
