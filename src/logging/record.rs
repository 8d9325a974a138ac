//! One access-log line, written from typed facts: the request's environ (what the app saw), the
//! app's response fields, the status and size sent, the duration, and who served it.
//!
//! Nothing is captured for the log while the request runs: the environ is still in the serving
//! thread's buffers when the line is written, and so are the response fields a format prints
//! (the encoder keeps a copy of them for it, as the head they were written into has been sent);
//! header atoms look their value up there. Values from the client or the app are escaped (`\"`, `\\`, `\xHH` for
//! anything that is not printable ASCII) so a line stays one line with its quotes balanced.

use crate::listen::PeerHost;
use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::format::Atom;
use crate::http::response_fields::FieldLines;

/// Values looked up by name: the environ's variables, the response's header fields.
pub(crate) trait Lookup {
    fn get(&self, name: &[u8]) -> Option<&[u8]>;

    /// Every (name, value), in order.
    fn for_each<'s>(&'s self, f: &mut dyn FnMut(&[u8], &'s [u8]));
}

impl Lookup for FieldLines<'_> {
    /// `name` is lower-case (the format compiled it so).
    fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn for_each<'s>(&'s self, f: &mut dyn FnMut(&[u8], &'s [u8])) {
        for (name, value) in self.headers() {
            f(name, value);
        }
    }
}

/// The variables the fixed atoms read, found in one pass over the environ (rather than one
/// search per atom).
#[derive(Default)]
struct Common<'a> {
    method: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    query: Option<&'a [u8]>,
    protocol: Option<&'a [u8]>,
    remote_addr: Option<&'a [u8]>,
    referer: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    authorization: Option<&'a [u8]>,
}

impl<'a> Common<'a> {
    fn of(environ: Option<&'a dyn Lookup>) -> Common<'a> {
        let mut common = Common::default();
        if let Some(environ) = environ {
            environ.for_each(&mut |name, value| {
                let slot = match name {
                    b"REQUEST_METHOD" => &mut common.method,
                    b"PATH_INFO" => &mut common.path,
                    b"QUERY_STRING" => &mut common.query,
                    b"SERVER_PROTOCOL" => &mut common.protocol,
                    b"REMOTE_ADDR" => &mut common.remote_addr,
                    b"HTTP_REFERER" => &mut common.referer,
                    b"HTTP_USER_AGENT" => &mut common.user_agent,
                    b"HTTP_AUTHORIZATION" => &mut common.authorization,
                    _ => return,
                };
                slot.get_or_insert(value);
            });
        }
        common
    }
}

/// One served (or refused) request.
pub(crate) struct AccessRecord<'a> {
    /// The connection's peer: the address when there is no environ.
    pub(crate) peer: PeerHost,
    /// The request as the app saw it; `None` for a request refused before the app saw it.
    pub(crate) environ: Option<&'a dyn Lookup>,
    /// The app's response header fields; `None` when the response was not the app's.
    pub(crate) response: Option<&'a dyn Lookup>,
    pub(crate) status: u16,
    /// Response body bytes sent.
    pub(crate) body_bytes: u64,
    /// How long it took, when the format asks for it.
    pub(crate) elapsed: Option<Duration>,
}

/// Who wrote the line: the same for every line of a worker.
#[derive(Debug, Clone, Default)]
pub(crate) struct Served {
    pub(crate) generation: u64,
    pub(crate) library: String,
    pub(crate) pid: u32,
}

impl AccessRecord<'_> {
    fn var(&self, name: &[u8]) -> Option<&[u8]> {
        self.environ.and_then(|environ| environ.get(name))
    }
}

impl Common<'_> {
    /// Basic authentication's user name (RFC 7617), if the request carries one.
    fn user(&self) -> Option<Vec<u8>> {
        let credentials = self.authorization?;
        let encoded = credentials
            .strip_prefix(b"Basic ")
            .or_else(|| credentials.strip_prefix(b"basic "))?;
        let mut decoded = base64_decode(encoded.trim_ascii())?;
        decoded.truncate(decoded.iter().position(|&b| b == b':')?);
        Some(decoded)
    }

    /// `REMOTE_ADDR`, or the connection's peer when the environ has none or an empty one (a
    /// unix-socket client: `unix`), so the line never starts with a blank field.
    fn remote_addr(&self, peer: PeerHost, out: &mut Vec<u8>) {
        match self.remote_addr.filter(|addr| !addr.is_empty()) {
            Some(addr) => escape_into(addr, out),
            None => write_display(out, &peer),
        }
    }
}

/// Appends the line for `record` (without its newline) as `atoms` say.
pub(crate) fn render_text(
    atoms: &[Atom],
    record: &AccessRecord<'_>,
    served: &Served,
    out: &mut Vec<u8>,
) {
    let micros = record.elapsed.map_or(0, |d| d.as_micros());
    let common = Common::of(record.environ);
    for atom in atoms {
        match atom {
            Atom::Literal(text) => out.extend_from_slice(text),
            Atom::RemoteAddr => common.remote_addr(record.peer, out),
            Atom::Dash => out.push(b'-'),
            Atom::User => match common.user() {
                Some(user) => escape_into(&user, out),
                None => out.push(b'-'),
            },
            Atom::Time => clf_time(SystemTime::now(), out),
            Atom::RequestLine => match record.environ {
                Some(_) => {
                    value_or_dash(common.method, out);
                    out.push(b' ');
                    value_or_dash(common.path, out);
                    if let Some(query) = common.query.filter(|q| !q.is_empty()) {
                        out.push(b'?');
                        escape_into(query, out);
                    }
                    out.push(b' ');
                    value_or_dash(common.protocol, out);
                }
                None => out.push(b'-'),
            },
            Atom::Method => value_or_dash(common.method, out),
            Atom::Path => value_or_dash(common.path, out),
            Atom::Query => escape_into(common.query.unwrap_or_default(), out),
            Atom::Protocol => value_or_dash(common.protocol, out),
            Atom::Status => push_u64(out, u64::from(record.status)),
            Atom::Bytes => push_u64(out, record.body_bytes),
            Atom::BytesOrDash if record.body_bytes == 0 => out.push(b'-'),
            Atom::BytesOrDash => push_u64(out, record.body_bytes),
            Atom::Referer => value_or_dash(common.referer, out),
            Atom::UserAgent => value_or_dash(common.user_agent, out),
            Atom::Seconds => push_u64(out, (micros / 1_000_000) as u64),
            Atom::Micros => push_u64(out, micros as u64),
            Atom::Millis => push_u64(out, (micros / 1_000) as u64),
            Atom::SecondsDecimal => {
                push_u64(out, (micros / 1_000_000) as u64);
                out.push(b'.');
                let fraction = (micros % 1_000_000) as u64;
                let start = out.len();
                push_u64(out, fraction);
                let digits = out.len() - start;
                out.splice(start..start, std::iter::repeat_n(b'0', 6 - digits));
            }
            Atom::Pid => {
                out.push(b'<');
                push_u64(out, u64::from(served.pid));
                out.push(b'>');
            }
            Atom::RequestHeader(name) | Atom::Environ(name) => {
                value_or_dash(record.var(name), out);
            }
            Atom::ResponseHeader(name) => {
                value_or_dash(record.response.and_then(|r| r.get(name)), out);
            }
            Atom::Generation => push_u64(out, served.generation),
            Atom::Library => escape_into(served.library.as_bytes(), out),
        }
    }
}

/// Appends the JSON object for `record` (one line, without its newline).
pub(crate) fn render_json(record: &AccessRecord<'_>, served: &Served, out: &mut Vec<u8>) {
    let common = Common::of(record.environ);
    out.extend_from_slice(b"{\"time\":\"");
    rfc3339_time(SystemTime::now(), out);
    out.extend_from_slice(b"\",\"remote_addr\":\"");
    common.remote_addr(record.peer, out);
    out.push(b'"');
    let user = common.user();
    let strings: [(&str, Option<&[u8]>); 7] = [
        ("method", common.method),
        ("path", common.path),
        ("query", common.query),
        ("protocol", common.protocol),
        ("referer", common.referer),
        ("user_agent", common.user_agent),
        ("user", user.as_deref()),
    ];
    for (key, value) in strings {
        json_key(key, out);
        match value {
            Some(value) => json_string(value, out),
            None => out.extend_from_slice(b"null"),
        }
    }
    let numbers = [
        ("status", u64::from(record.status)),
        ("bytes", record.body_bytes),
        ("generation", served.generation),
        ("pid", u64::from(served.pid)),
    ];
    for (key, value) in numbers {
        json_key(key, out);
        push_u64(out, value);
    }
    json_key("duration_us", out);
    match record.elapsed {
        Some(elapsed) => push_u64(out, elapsed.as_micros() as u64),
        None => out.extend_from_slice(b"null"),
    }
    json_key("library", out);
    json_string(served.library.as_bytes(), out);
    out.push(b'}');
}

fn json_key(key: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A JSON string: bytes that are not UTF-8 become U+FFFD.
fn json_string(value: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let text = String::from_utf8_lossy(value);
    let mut bytes = text.as_bytes();
    // Runs that need no escape are copied whole (UTF-8 included).
    while let Some(at) = bytes
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f)
    {
        out.extend_from_slice(&bytes[..at]);
        match bytes[at] {
            b @ (b'"' | b'\\') => out.extend_from_slice(&[b'\\', b]),
            b => {
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            }
        }
        bytes = &bytes[at + 1..];
    }
    out.extend_from_slice(bytes);
    out.push(b'"');
}

fn value_or_dash(value: Option<&[u8]>, out: &mut Vec<u8>) {
    match value {
        Some(value) if !value.is_empty() => escape_into(value, out),
        _ => out.push(b'-'),
    }
}

/// Printable ASCII as is, but `"` and `\` escaped; every other byte as `\xHH` (Apache's rule).
fn escape_into(mut value: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Runs that need no escape are copied whole.
    while let Some(at) = value
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || !(0x20..=0x7e).contains(&b))
    {
        out.extend_from_slice(&value[..at]);
        match value[at] {
            b @ (b'"' | b'\\') => out.extend_from_slice(&[b'\\', b]),
            b => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        value = &value[at + 1..];
    }
    out.extend_from_slice(value);
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn write_display(out: &mut Vec<u8>, value: &dyn std::fmt::Display) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{value}");
}

/// A UTC calendar time to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    /// Howard Hinnant's days-to-civil algorithm.
    fn from_unix(secs: u64) -> Civil {
        let days = (secs / 86_400) as i64;
        let rem = (secs % 86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: rem / 3_600,
            minute: rem / 60 % 60,
            second: rem % 60,
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

thread_local! {
    /// The last second `clf_time` formatted on this thread, and its text: lines within one
    /// second share it.
    static CLF_CACHE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `[25/Nov/2026:22:36:47 +0000]`.
fn clf_time(now: SystemTime, out: &mut Vec<u8>) {
    let secs = unix_secs(now);
    CLF_CACHE.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            let c = Civil::from_unix(secs);
            text.clear();
            write_display(
                text,
                &format_args!(
                    "[{:02}/{}/{}:{:02}:{:02}:{:02} +0000]",
                    c.day,
                    MONTHS[(c.month - 1) as usize],
                    c.year,
                    c.hour,
                    c.minute,
                    c.second
                ),
            );
            *cached = secs;
        }
        out.extend_from_slice(text);
    });
}

thread_local! {
    /// As [`CLF_CACHE`], for `rfc3339_time`'s text up to the seconds.
    static RFC3339_CACHE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

/// `2026-11-25T22:36:47.123Z`.
fn rfc3339_time(now: SystemTime, out: &mut Vec<u8>) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    RFC3339_CACHE.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            let c = Civil::from_unix(secs);
            text.clear();
            write_display(
                text,
                &format_args!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                    c.year, c.month, c.day, c.hour, c.minute, c.second
                ),
            );
            *cached = secs;
        }
        out.extend_from_slice(text);
    });
    let millis = since.subsec_millis();
    out.extend_from_slice(&[
        b'0' + (millis / 100) as u8,
        b'0' + (millis / 10 % 10) as u8,
        b'0' + (millis % 10) as u8,
        b'Z',
    ]);
}

/// Standard base64 (RFC 4648 §4), padding optional; `None` if it is not base64.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let text = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in text {
        acc = (acc << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::format::{AccessFormat, FormatKind};

    struct Vars(Vec<(&'static str, &'static [u8])>);

    impl Lookup for Vars {
        fn get(&self, name: &[u8]) -> Option<&[u8]> {
            self.0
                .iter()
                .find(|(n, _)| n.as_bytes() == name)
                .map(|(_, v)| *v)
        }

        fn for_each<'s>(&'s self, f: &mut dyn FnMut(&[u8], &'s [u8])) {
            for (name, value) in &self.0 {
                f(name.as_bytes(), value);
            }
        }
    }

    fn request() -> Vars {
        Vars(vec![
            ("REQUEST_METHOD", b"GET"),
            ("PATH_INFO", b"/a \"b\"\n"),
            ("QUERY_STRING", b"x=1"),
            ("SERVER_PROTOCOL", b"HTTP/1.1"),
            ("REMOTE_ADDR", b"10.0.0.7"),
            ("HTTP_USER_AGENT", b"curl/8"),
            ("HTTP_AUTHORIZATION", b"Basic YWxpY2U6c2VjcmV0"),
            ("HTTP_X_ID", b"abc"),
        ])
    }

    fn text(format: &str, record: &AccessRecord<'_>) -> String {
        let FormatKind::Text(atoms) = &*AccessFormat::parse(format).unwrap().kind else {
            panic!("text");
        };
        let served = Served {
            generation: 3,
            library: "00ff".into(),
            pid: 42,
        };
        let mut out = Vec::new();
        render_text(atoms, record, &served, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn atoms_render_the_request() {
        let vars = request();
        let record = AccessRecord {
            peer: PeerHost(Some([127, 0, 0, 1].into())),
            environ: Some(&vars),
            response: None,
            status: 200,
            body_bytes: 0,
            elapsed: Some(Duration::from_micros(1_234_567)),
        };
        assert_eq!(
            text(
                r#"%(h)s %(l)s %(u)s "%(r)s" %(s)s %(b)s/%(B)s "%(f)s" "%(a)s""#,
                &record
            ),
            r#"10.0.0.7 - alice "GET /a \"b\"\x0a?x=1 HTTP/1.1" 200 -/0 "-" "curl/8""#
        );
        assert_eq!(
            text("%(m)s %(q)s %(H)s %(T)s %(D)s %(M)s %(L)s %(p)s %(generation)s %(library)s %({x-id}i)s %({X-Missing}i)s %({REMOTE_ADDR}e)s %({x}o)s", &record),
            "GET x=1 HTTP/1.1 1 1234567 1234 1.234567 <42> 3 00ff abc - 10.0.0.7 -"
        );
    }

    #[test]
    fn a_refused_request_has_no_request_line() {
        let record = AccessRecord {
            peer: PeerHost(Some([10, 1, 2, 3].into())),
            environ: None,
            response: None,
            status: 400,
            body_bytes: 0,
            elapsed: None,
        };
        assert_eq!(
            text(r#"%(h)s "%(r)s" %(s)s %(u)s %(U)s"#, &record),
            r#"10.1.2.3 "-" 400 - -"#
        );
    }

    #[test]
    fn json_lines_escape_and_name_every_field() {
        let vars = request();
        let record = AccessRecord {
            peer: PeerHost(Some([127, 0, 0, 1].into())),
            environ: Some(&vars),
            response: None,
            status: 201,
            body_bytes: 5,
            elapsed: Some(Duration::from_micros(77)),
        };
        let mut out = Vec::new();
        render_json(&record, &Served::default(), &mut out);
        let line = String::from_utf8(out).unwrap();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["path"], "/a \"b\"\n");
        assert_eq!(value["status"], 201);
        assert_eq!(value["duration_us"], 77);
        assert_eq!(value["user"], "alice");
        assert_eq!(value["referer"], serde_json::Value::Null);
    }

    #[test]
    fn calendar_and_clf_time() {
        assert_eq!(
            Civil::from_unix(0),
            Civil {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
        // 2024-02-29T12:34:56Z: a leap day.
        assert_eq!(
            Civil::from_unix(1_709_210_096),
            Civil {
                year: 2024,
                month: 2,
                day: 29,
                hour: 12,
                minute: 34,
                second: 56
            }
        );
        let mut out = Vec::new();
        clf_time(UNIX_EPOCH + Duration::from_secs(1_709_210_096), &mut out);
        assert_eq!(out, b"[29/Feb/2024:12:34:56 +0000]");
        out.clear();
        rfc3339_time(
            UNIX_EPOCH + Duration::from_millis(1_709_210_096_007),
            &mut out,
        );
        assert_eq!(out, b"2024-02-29T12:34:56.007Z");
    }

    #[test]
    fn base64_user_names() {
        assert_eq!(base64_decode(b"YWxpY2U6c2VjcmV0").unwrap(), b"alice:secret");
        assert_eq!(base64_decode(b"YTpi").unwrap(), b"a:b");
        assert_eq!(base64_decode(b"YQ==").unwrap(), b"a");
        assert_eq!(base64_decode(b"!!"), None);
    }
}
