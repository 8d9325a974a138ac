//! The "Static files" flags: `--static PREFIX=DIR` (repeatable) and `--static-cache-control`.
//! Workers serve the files, so the flags travel on each worker's command line.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Args;

use crate::http::response_fields::valid_header_value;

/// Options for files the server answers itself.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct StaticArgs {
    /// Answer GET and HEAD under PREFIX with the files in DIR, without calling the app
    /// (repeatable; the longest matching PREFIX wins): e.g. --static /static/=staticfiles after
    /// Django's collectstatic. Other methods there get 405, a missing file, a directory or a
    /// path leaving DIR 404. Siblings NAME.br and NAME.gz are sent to clients that accept
    /// them. The variable takes several, separated by spaces.
    #[arg(
        long = "static",
        value_name = "PREFIX=DIR",
        env = "WEBSERVER_STATIC",
        value_delimiter = ' ',
        help_heading = "Static files"
    )]
    pub(crate) mounts: Vec<StaticMount>,

    /// Cache-Control of every --static answer, e.g. "public, max-age=31536000, immutable" when
    /// the file names carry a hash of their content (Django's ManifestStaticFilesStorage).
    /// Default: none (clients revalidate with ETag / Last-Modified).
    #[arg(
        long,
        value_name = "VALUE",
        env = "WEBSERVER_STATIC_CACHE_CONTROL",
        value_parser = cache_control,
        requires = "mounts",
        help_heading = "Static files"
    )]
    pub(crate) static_cache_control: Option<String>,
}

impl StaticArgs {
    /// The same options as command-line arguments, for a worker's command line.
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut args: Vec<String> = self
            .mounts
            .iter()
            .map(|m| format!("--static={m}"))
            .collect();
        if let Some(value) = &self.static_cache_control {
            args.push(format!("--static-cache-control={value}"));
        }
        args
    }
}

/// One `--static PREFIX=DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaticMount {
    /// Starts and ends with `/` (a trailing one is added): `/static` serves `/static/...`.
    pub(crate) prefix: String,
    pub(crate) dir: PathBuf,
}

impl FromStr for StaticMount {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, String> {
        let Some((prefix, dir)) = arg.split_once('=') else {
            return Err("expected PREFIX=DIR, e.g. /static/=staticfiles".to_owned());
        };
        if !prefix.starts_with('/') {
            return Err(format!(
                "the PREFIX {prefix:?} must start with '/', e.g. /static/={dir}"
            ));
        }
        let odd = |c: char| c.is_whitespace() || c.is_control() || "%?#\\".contains(c);
        if prefix.contains(odd) || prefix.split('/').any(|s| s == ".." || s == ".") {
            return Err(format!(
                "the PREFIX {prefix:?} must be a plain path (no '.' or '..' segments, %, ?, #, \\ or spaces)"
            ));
        }
        if dir.is_empty() {
            return Err(format!("no DIR after {prefix}=, e.g. {prefix}=staticfiles"));
        }
        let mut prefix = prefix.to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(StaticMount {
            prefix,
            dir: PathBuf::from(dir),
        })
    }
}

/// Reads back as the parser takes it (for workers and `--print-config`).
impl fmt::Display for StaticMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.prefix, self.dir.display())
    }
}

/// `--static-cache-control`: a valid header value.
fn cache_control(arg: &str) -> Result<String, String> {
    let value = arg.trim();
    if value.is_empty() || !valid_header_value(value.as_bytes()) {
        return Err("expected a Cache-Control value, e.g. \"public, max-age=3600\"".to_owned());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_and_read_back() {
        let cases = [
            ("/static/=staticfiles", Ok("/static/=staticfiles")),
            ("/static=/srv/app/static", Ok("/static/=/srv/app/static")),
            ("/=public", Ok("/=public")),
            ("/a=b=c", Ok("/a/=b=c")),
            ("static/=x", Err("must start with '/'")),
            ("/static/", Err("expected PREFIX=DIR")),
            ("/s/=", Err("no DIR")),
            ("/s/../x/=d", Err("plain path")),
            ("/s%2e/=d", Err("plain path")),
            ("/s s/=d", Err("plain path")),
        ];
        for (arg, want) in cases {
            let got = arg.parse::<StaticMount>().map(|m| m.to_string());
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{arg}"),
                (Err(e), Err(part)) => assert!(e.contains(part), "{arg}: {e}"),
                (got, want) => panic!("{arg}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn cache_control_must_be_a_header_value() {
        assert_eq!(cache_control(" max-age=60 ").unwrap(), "max-age=60");
        assert!(cache_control("").is_err());
        assert!(cache_control("a\nb").is_err());
    }
}
