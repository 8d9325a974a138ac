//! `--access-logformat`: gunicorn's atoms (`%(h)s`, `%({header}i)s`, …), compiled once at startup
//! into a list of [`Atom`]s, so writing a line is a walk over that list with no parsing; or the
//! word `json` for JSON lines with a fixed set of keys (`json.rs`).

use std::fmt;
use std::sync::Arc;

/// Apache's combined log format, gunicorn's default spelled out.
pub(crate) const COMBINED: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// The `--access-logformat` value that selects JSON lines.
pub(crate) const JSON: &str = "json";

/// One piece of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Atom {
    /// Text between atoms, copied as is.
    Literal(Box<[u8]>),
    /// `h`: the client's address (`REMOTE_ADDR`).
    RemoteAddr,
    /// `l`: always `-` (identd).
    Dash,
    /// `u`: the user name of HTTP Basic authentication, or `-`.
    User,
    /// `t`: `[25/Nov/2026:22:36:47 +0000]` (UTC).
    Time,
    /// `r`: `GET /path?query HTTP/1.1`.
    RequestLine,
    /// `m`: the method.
    Method,
    /// `U`: the path, percent-decoded (`PATH_INFO`).
    Path,
    /// `q`: the query string, raw.
    Query,
    /// `H`: `HTTP/1.1` or `HTTP/1.0`.
    Protocol,
    /// `s`: the status sent.
    Status,
    /// `B`: response body bytes.
    Bytes,
    /// `b`: response body bytes, `-` for none (CLF).
    BytesOrDash,
    /// `f`: the Referer header.
    Referer,
    /// `a`: the User-Agent header.
    UserAgent,
    /// `T`: the request's duration in whole seconds.
    Seconds,
    /// `D`: … in microseconds.
    Micros,
    /// `M`: … in milliseconds.
    Millis,
    /// `L`: … in seconds with six decimals.
    SecondsDecimal,
    /// `p`: `<PID>` of the worker.
    Pid,
    /// `{name}i`: a request header; holds the environ variable it is found in (`HTTP_X_ID`).
    RequestHeader(Box<[u8]>),
    /// `{name}o`: a header of the app's response; holds the name, lower-case.
    ResponseHeader(Box<[u8]>),
    /// `{name}e`: an environ variable (`REMOTE_PORT`, `webserver.url_scheme`, …).
    Environ(Box<[u8]>),
    /// `generation`: the generation (hot swap count) of the worker that served the request.
    Generation,
    /// `library`: the hash of the app library that served it (as the master's log prints it).
    Library,
}

/// Atoms in the order `--help` and errors list them.
const SIMPLE_ATOMS: &[(&str, Atom)] = &[
    ("h", Atom::RemoteAddr),
    ("l", Atom::Dash),
    ("u", Atom::User),
    ("t", Atom::Time),
    ("r", Atom::RequestLine),
    ("m", Atom::Method),
    ("U", Atom::Path),
    ("q", Atom::Query),
    ("H", Atom::Protocol),
    ("s", Atom::Status),
    ("B", Atom::Bytes),
    ("b", Atom::BytesOrDash),
    ("f", Atom::Referer),
    ("a", Atom::UserAgent),
    ("T", Atom::Seconds),
    ("D", Atom::Micros),
    ("M", Atom::Millis),
    ("L", Atom::SecondsDecimal),
    ("p", Atom::Pid),
    ("generation", Atom::Generation),
    ("library", Atom::Library),
];

/// A compiled `--access-logformat`; keeps its source to hand it on to the workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessFormat {
    pub(crate) source: Arc<str>,
    /// Shared: every worker's copy of the command line holds one.
    pub(crate) kind: Arc<FormatKind>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FormatKind {
    Text(Vec<Atom>),
    Json,
}

/// Why a `--access-logformat` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FormatError {
    UnknownAtom(String),
    Unclosed(usize),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<&str> = SIMPLE_ATOMS.iter().map(|(name, _)| *name).collect();
        match self {
            FormatError::UnknownAtom(name) => write!(
                f,
                "unknown atom %({name})s; known: {}, {{header}}i, {{header}}o, {{variable}}e (or the word `json`)",
                known.join(" ")
            ),
            FormatError::Unclosed(at) => write!(
                f,
                "`%(` at byte {at} is not closed by `)s` (write `%%` for a literal %)"
            ),
        }
    }
}

impl std::error::Error for FormatError {}

impl AccessFormat {
    /// Compiles `source`: `json`, or text with `%(NAME)s` atoms (`%%` is a literal `%`).
    pub(crate) fn parse(source: &str) -> Result<AccessFormat, FormatError> {
        let kind = if source.trim() == JSON {
            FormatKind::Json
        } else {
            FormatKind::Text(compile(source)?)
        };
        Ok(AccessFormat {
            source: source.into(),
            kind: Arc::new(kind),
        })
    }

    /// Whether a line needs the request's duration (else no clock is read per request).
    pub(crate) fn needs_clock(&self) -> bool {
        match &*self.kind {
            FormatKind::Json => true,
            FormatKind::Text(atoms) => atoms.iter().any(|atom| {
                matches!(
                    atom,
                    Atom::Seconds | Atom::Micros | Atom::Millis | Atom::SecondsDecimal
                )
            }),
        }
    }

    /// Whether a line prints the app's response fields (`%{name}o`), which then must be kept
    /// once the response head has left (else nothing is copied for the log).
    pub(crate) fn reads_response_fields(&self) -> bool {
        match &*self.kind {
            FormatKind::Json => false,
            FormatKind::Text(atoms) => atoms
                .iter()
                .any(|atom| matches!(atom, Atom::ResponseHeader(_))),
        }
    }
}

impl Default for AccessFormat {
    fn default() -> Self {
        AccessFormat::parse(COMBINED).unwrap_or_else(|_| unreachable!("COMBINED compiles"))
    }
}

fn compile(source: &str) -> Result<Vec<Atom>, FormatError> {
    let bytes = source.as_bytes();
    let mut atoms = Vec::new();
    let mut literal = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match (bytes[at], bytes.get(at + 1)) {
            (b'%', Some(b'%')) => {
                literal.push(b'%');
                at += 2;
            }
            (b'%', Some(b'(')) => {
                let rest = &source[at + 2..];
                let end = rest.find(")s").ok_or(FormatError::Unclosed(at))?;
                if !literal.is_empty() {
                    atoms.push(Atom::Literal(std::mem::take(&mut literal).into()));
                }
                atoms.push(atom(&rest[..end])?);
                at += 2 + end + 2;
            }
            (byte, _) => {
                literal.push(byte);
                at += 1;
            }
        }
    }
    if !literal.is_empty() {
        atoms.push(Atom::Literal(literal.into()));
    }
    Ok(atoms)
}

fn atom(name: &str) -> Result<Atom, FormatError> {
    if let Some((_, atom)) = SIMPLE_ATOMS.iter().find(|(n, _)| *n == name) {
        return Ok(atom.clone());
    }
    let unknown = || FormatError::UnknownAtom(name.to_owned());
    let inner = name.strip_prefix('{').ok_or_else(unknown)?;
    let (key, kind) = inner.rsplit_once('}').ok_or_else(unknown)?;
    if key.is_empty() {
        return Err(unknown());
    }
    match kind {
        "i" => Ok(Atom::RequestHeader(environ_name(key).into())),
        "o" => Ok(Atom::ResponseHeader(
            key.to_ascii_lowercase().into_bytes().into(),
        )),
        "e" => Ok(Atom::Environ(key.as_bytes().into())),
        _ => Err(unknown()),
    }
}

/// Where the environ keeps request header `name` (PEP 3333: `HTTP_` + upper snake case, but
/// Content-Type and Content-Length without the prefix).
fn environ_name(name: &str) -> Vec<u8> {
    let upper: Vec<u8> = name
        .bytes()
        .map(|b| match b {
            b'-' => b'_',
            b => b.to_ascii_uppercase(),
        })
        .collect();
    if upper == b"CONTENT_TYPE" || upper == b"CONTENT_LENGTH" {
        upper
    } else {
        [&b"HTTP_"[..], &upper].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_compiles_to_its_atoms() {
        let FormatKind::Text(atoms) = &*AccessFormat::default().kind else {
            panic!("text");
        };
        let lit = |s: &str| Atom::Literal(s.as_bytes().into());
        assert_eq!(
            *atoms,
            vec![
                Atom::RemoteAddr,
                lit(" "),
                Atom::Dash,
                lit(" "),
                Atom::User,
                lit(" "),
                Atom::Time,
                lit(" \""),
                Atom::RequestLine,
                lit("\" "),
                Atom::Status,
                lit(" "),
                Atom::BytesOrDash,
                lit(" \""),
                Atom::Referer,
                lit("\" \""),
                Atom::UserAgent,
                lit("\""),
            ]
        );
        assert!(!AccessFormat::default().needs_clock());
    }

    #[test]
    fn header_and_environ_atoms_and_escapes() {
        let format = AccessFormat::parse(
            "%({X-Request-Id}i)s %({Content-Type}o)s %({REMOTE_PORT}e)s 100%% %(D)s",
        )
        .unwrap();
        let FormatKind::Text(atoms) = &*format.kind else {
            panic!("text");
        };
        assert_eq!(
            atoms[0],
            Atom::RequestHeader(b"HTTP_X_REQUEST_ID"[..].into())
        );
        assert_eq!(atoms[2], Atom::ResponseHeader(b"content-type"[..].into()));
        assert_eq!(atoms[4], Atom::Environ(b"REMOTE_PORT"[..].into()));
        assert_eq!(atoms[5], Atom::Literal(b" 100% "[..].into()));
        assert!(format.needs_clock());
        assert_eq!(
            *AccessFormat::parse("%({content-length}i)s").unwrap().kind,
            FormatKind::Text(vec![Atom::RequestHeader(b"CONTENT_LENGTH"[..].into())])
        );
    }

    #[test]
    fn mistakes_are_refused_with_what_to_write() {
        assert_eq!(
            AccessFormat::parse("%(x)s"),
            Err(FormatError::UnknownAtom("x".into()))
        );
        assert_eq!(
            AccessFormat::parse("%({x}z)s"),
            Err(FormatError::UnknownAtom("{x}z".into()))
        );
        assert_eq!(AccessFormat::parse("a %(h"), Err(FormatError::Unclosed(2)));
        assert!(FormatError::UnknownAtom("x".into())
            .to_string()
            .contains("{header}i"));
        assert_eq!(
            *AccessFormat::parse(" json ").unwrap().kind,
            FormatKind::Json
        );
    }
}
