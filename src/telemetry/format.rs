//! How log lines look. The per-request access line is written here directly (one small buffer,
//! no `tracing` span or field visitors: it is the one line every request pays for); every other
//! event goes through `tracing`'s formatter, with the id of the request it belongs to appended.
//! Both formats match: text (`2026-11-24T02:41:48.123456Z  INFO request method=POST ...`) and
//! one JSON object per line.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::Duration;

use axum::http::HeaderValue;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

thread_local! {
    /// The id of the request whose future or body is being polled on this thread, if any.
    static CURRENT_ID: RefCell<Option<HeaderValue>> = const { RefCell::new(None) };
    /// The access line being built (reused: no allocation per request).
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` with `id` as the current request id, so that log lines written meanwhile carry it.
/// The id is moved in and out of the slot, not cloned.
pub fn with_request_id<R>(id: &mut Option<HeaderValue>, f: impl FnOnce() -> R) -> R {
    struct Restore<'a> {
        id: &'a mut Option<HeaderValue>,
        previous: Option<HeaderValue>,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let previous = self.previous.take();
            *self.id = CURRENT_ID.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous));
        }
    }
    let previous = CURRENT_ID.with(|c| std::mem::replace(&mut *c.borrow_mut(), id.take()));
    let _restore = Restore { id, previous };
    f()
}

fn current_id() -> Option<HeaderValue> {
    CURRENT_ID.with(|c| c.borrow().clone())
}

/// One request's access line.
pub struct AccessLine<'a> {
    pub level: Level,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    /// Absent for the platform's probes, whose lines are short.
    pub detail: Option<AccessDetail<'a>>,
    pub elapsed: Duration,
    pub request_id: &'a [u8],
}

/// What an access line says about a request that reached (or could have reached) an engine.
pub struct AccessDetail<'a> {
    pub deployment: &'a str,
    pub upstream: &'a str,
    pub ttft: Option<Duration>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub disconnected: bool,
}

impl AccessLine<'_> {
    /// Formats the line (with its newline) and hands it to `emit`.
    pub fn write(&self, json: bool, emit: impl FnOnce(&[u8])) {
        LINE.with(|cell| {
            let Ok(mut out) = cell.try_borrow_mut() else {
                return;
            };
            out.clear();
            if json {
                self.json(&mut out);
            } else {
                self.text(&mut out);
            }
            out.push('\n');
            emit(out.as_bytes());
            if out.capacity() > 64 * 1024 {
                *out = String::new();
            }
        });
    }

    fn text(&self, out: &mut String) {
        timestamp(out);
        out.push(' ');
        if self.level.as_str().len() < 5 {
            out.push(' ');
        }
        out.push_str(self.level.as_str());
        out.push_str(" request method=");
        text_value(out, self.method);
        out.push_str(" path=");
        text_value(out, self.path);
        out.push_str(" status=");
        uint(out, self.status.into(), 0);
        if let Some(d) = &self.detail {
            out.push_str(" deployment=");
            text_value(out, d.deployment);
            out.push_str(" upstream=");
            text_value(out, d.upstream);
            out.push_str(" ms=");
            millis(out, self.elapsed);
            out.push_str(" ttft_ms=");
            match d.ttft {
                Some(t) => millis(out, t),
                None => out.push('-'),
            }
            for (name, v) in [
                (" prompt_tokens=", d.prompt_tokens),
                (" completion_tokens=", d.completion_tokens),
            ] {
                out.push_str(name);
                match v {
                    Some(n) => uint(out, n, 0),
                    None => out.push('-'),
                }
            }
            out.push_str(if d.disconnected {
                " disconnected=true"
            } else {
                " disconnected=false"
            });
        } else {
            out.push_str(" ms=");
            millis(out, self.elapsed);
        }
        out.push_str(" request_id=");
        match std::str::from_utf8(self.request_id) {
            Ok(id) => text_value(out, id),
            Err(_) => text_value(out, &String::from_utf8_lossy(self.request_id)),
        }
    }

    fn json(&self, out: &mut String) {
        out.push_str("{\"timestamp\":\"");
        timestamp(out);
        out.push_str("\",\"level\":\"");
        out.push_str(self.level.as_str());
        out.push_str("\",\"message\":\"request\",\"method\":");
        json_str(out, self.method);
        out.push_str(",\"path\":");
        json_str(out, self.path);
        out.push_str(",\"status\":");
        uint(out, self.status.into(), 0);
        if let Some(d) = &self.detail {
            out.push_str(",\"deployment\":");
            json_str(out, d.deployment);
            out.push_str(",\"upstream\":");
            json_str(out, d.upstream);
            out.push_str(",\"ms\":");
            millis(out, self.elapsed);
            out.push_str(",\"ttft_ms\":");
            match d.ttft {
                Some(t) => millis(out, t),
                None => out.push_str("null"),
            }
            for (name, v) in [
                (",\"prompt_tokens\":", d.prompt_tokens),
                (",\"completion_tokens\":", d.completion_tokens),
            ] {
                out.push_str(name);
                match v {
                    Some(n) => uint(out, n, 0),
                    None => out.push_str("null"),
                }
            }
            out.push_str(if d.disconnected {
                ",\"disconnected\":true"
            } else {
                ",\"disconnected\":false"
            });
        } else {
            out.push_str(",\"ms\":");
            millis(out, self.elapsed);
        }
        out.push_str(",\"request_id\":");
        json_str(out, &String::from_utf8_lossy(self.request_id));
        out.push('}');
    }
}

/// A value in a text line: as is when it is one plain word, else quoted and escaped, so a
/// client-chosen value (a deployment name) cannot forge fields or lines.
fn text_value(out: &mut String, v: &str) {
    // Byte by byte for the usual ASCII value; characters only when there are others.
    let plain_byte = |b: &u8| PLAIN[usize::from(*b)];
    let plain = !v.is_empty()
        && (v.as_bytes().iter().all(plain_byte)
            || (!v.is_ascii()
                && v.chars()
                    .all(|c| !c.is_control() && !c.is_whitespace() && c != '"' && c != '\\')));
    if plain {
        out.push_str(v);
    } else {
        let _ = write!(out, "{v:?}");
    }
}

/// The ASCII bytes a text value may hold unquoted: graphic, but no quote or backslash.
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_graphic() && c != b'"' && c != b'\\';
        b += 1;
    }
    t
};

/// A JSON string literal.
fn json_str(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => drop(write!(out, "\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `v` in decimal, zero-padded to `width` digits (without `fmt` machinery: this runs for every
/// request).
fn uint(out: &mut String, v: u64, width: usize) {
    // The digits are written at the end of a buffer of zeros, so the padding is already there.
    let mut buf = [b'0'; 20];
    let len = crate::wire::decimal(v, &mut buf).len().max(width.min(20));
    // A few ASCII digits: pushed one by one, which costs less than checking them as UTF-8.
    for &d in &buf[20 - len..] {
        out.push(char::from(d));
    }
}

/// A duration in milliseconds with three decimals (microseconds, truncated).
fn millis(out: &mut String, t: Duration) {
    let us = u64::try_from(t.as_micros()).unwrap_or(u64::MAX);
    uint(out, us / 1000, 0);
    out.push('.');
    uint(out, us % 1000, 3);
}

thread_local! {
    /// The date and time to the second of the last timestamp written on this thread.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// The current time as RFC 3339 UTC with microseconds, as `tracing`'s formatter writes it.
fn timestamp(out: &mut String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with(|cell| {
        let Ok(mut cached) = cell.try_borrow_mut() else {
            return rfc3339(out, secs, now.subsec_micros());
        };
        if cached.0 != secs {
            cached.1.clear();
            date_time(&mut cached.1, secs);
            cached.0 = secs;
        }
        out.push_str(&cached.1);
        out.push('.');
        uint(out, now.subsec_micros().into(), 6);
        out.push('Z');
    });
}

fn rfc3339(out: &mut String, secs: u64, micros: u32) {
    date_time(out, secs);
    out.push('.');
    uint(out, micros.into(), 6);
    out.push('Z');
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time.
fn date_time(out: &mut String, secs: u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    uint(out, u64::try_from(year).unwrap_or(0), 4);
    for (sep, v) in [
        ('-', month as u64),
        ('-', day as u64),
        ('T', rem / 3600),
        (':', rem / 60 % 60),
        (':', rem % 60),
    ] {
        out.push(sep);
        uint(out, v, 2);
    }
}

/// `tracing`'s own format (text or JSON) with the current request's id appended to events
/// written while a request is being served.
pub struct WithRequestId<F> {
    pub inner: F,
    pub json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let Some(id) = current_id() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.trim_end_matches('\n');
        let id = String::from_utf8_lossy(id.as_bytes());
        let mut tail = String::new();
        if self.json {
            let Some(body) = line.strip_suffix('}') else {
                return writeln!(writer, "{line}");
            };
            tail.push_str(",\"request_id\":");
            json_str(&mut tail, &id);
            writeln!(writer, "{body}{tail}}}")
        } else {
            text_value(&mut tail, &id);
            writeln!(writer, "{line} request_id={tail}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_padded_to_their_width() {
        for (v, width, want) in [
            (0, 0, "0"),
            (5, 3, "005"),
            (45, 6, "000045"),
            (1234, 3, "1234"),
            (2026, 4, "2026"),
            (u64::MAX, 0, "18446744073709551615"),
        ] {
            let mut out = String::from("x");
            uint(&mut out, v, width);
            assert_eq!(out, format!("x{want}"));
        }
    }

    fn line(json: bool, detail: bool) -> String {
        let mut got = String::new();
        AccessLine {
            level: Level::INFO,
            method: "POST",
            path: "/openai/deployments/a b/chat/completions",
            status: 200,
            detail: detail.then_some(AccessDetail {
                deployment: "a \"b\"\nstatus=500",
                upstream: "default",
                ttft: Some(Duration::from_micros(1_500)),
                prompt_tokens: Some(9),
                completion_tokens: None,
                disconnected: false,
            }),
            elapsed: Duration::from_micros(12_345),
            request_id: b"id-1",
        }
        .write(json, |b| got = String::from_utf8(b.to_vec()).unwrap());
        got
    }

    #[test]
    fn text_access_line() {
        let l = line(false, true);
        let (ts, rest) = l.split_once(' ').unwrap();
        assert_eq!(ts.len(), "2026-11-24T02:41:48.123456Z".len(), "{ts}");
        assert!(ts.ends_with('Z'));
        assert_eq!(
            rest,
            " INFO request method=POST path=\"/openai/deployments/a b/chat/completions\" status=200 \
             deployment=\"a \\\"b\\\"\\nstatus=500\" upstream=default ms=12.345 ttft_ms=1.500 \
             prompt_tokens=9 completion_tokens=- disconnected=false request_id=id-1\n"
        );
        assert_eq!(
            l.lines().count(),
            1,
            "a client's value cannot start a new line"
        );
        assert!(line(false, false).ends_with(" status=200 ms=12.345 request_id=id-1\n"));
    }

    #[test]
    fn text_values_are_quoted_unless_plain() {
        for (v, plain) in [
            ("gpt-4o", true),
            ("café", true),
            ("a b", false),
            ("a\u{2003}b", false),
            ("\u{85}", false),
            ("x\"", false),
            ("\\", false),
            ("", false),
        ] {
            let mut out = String::new();
            text_value(&mut out, v);
            assert_eq!(out == v, plain, "{v:?} -> {out}");
            assert!(!out.contains('\n') && !out.contains('\u{2003}'), "{out}");
        }
    }

    #[test]
    fn json_access_line_is_one_json_object() {
        let l = line(true, true);
        assert!(l.ends_with("}\n") && l.lines().count() == 1);
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "request");
        assert_eq!(v["deployment"], "a \"b\"\nstatus=500");
        assert_eq!(v["status"], 200);
        assert_eq!(v["ms"], 12.345);
        assert_eq!(v["ttft_ms"], 1.5);
        assert_eq!(v["prompt_tokens"], 9);
        assert!(v["completion_tokens"].is_null());
        assert_eq!(v["request_id"], "id-1");
        let short: serde_json::Value = serde_json::from_str(&line(true, false)).unwrap();
        assert!(short.get("deployment").is_none() && short["ms"] == 12.345);
    }

    #[test]
    fn civil_dates() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, "2000-02-29T00:00:00.000000Z"),
            (1_795_999_999, "2026-11-30T00:53:19.000042Z"),
            (4_107_542_400, "2100-03-01T00:00:00.000000Z"),
        ] {
            let mut s = String::new();
            rfc3339(&mut s, secs, if secs == 1_795_999_999 { 42 } else { 0 });
            assert_eq!(s, want);
        }
    }

    #[test]
    fn the_request_id_is_set_only_inside_the_scope() {
        let mut id = Some(HeaderValue::from_static("abc"));
        assert!(current_id().is_none());
        let seen = with_request_id(&mut id, current_id);
        assert_eq!(seen.as_ref().map(HeaderValue::as_bytes), Some(&b"abc"[..]));
        assert!(current_id().is_none());
        assert_eq!(id.as_ref().map(HeaderValue::as_bytes), Some(&b"abc"[..]));
    }
}
