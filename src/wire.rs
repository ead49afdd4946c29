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

/// Whether a comma-separated header value lists `token` (compared without case).
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    // The usual value is the one token alone: a value no longer than the token lists it only
    // by being it (and a shorter one is never equal).
    if value.len() <= token.len() {
        return value.eq_ignore_ascii_case(token);
    }
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
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
