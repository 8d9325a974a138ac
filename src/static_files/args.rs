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

    /// Cache-Control of the --static answers, e.g. "public, max-age=31536000, immutable" where
    /// the file names carry a hash of their content (Django's ManifestStaticFilesStorage).
    /// PREFIX=VALUE sets it for the mount with that PREFIX only (repeatable), a bare VALUE for
    /// the others. Default: none (clients revalidate with ETag / Last-Modified).
    #[arg(
        long,
        value_name = "[PREFIX=]VALUE",
        env = "WEBSERVER_STATIC_CACHE_CONTROL",
        value_parser = cache_control,
        requires = "mounts",
        help_heading = "Static files"
    )]
    pub(crate) static_cache_control: Vec<CacheControl>,
}

/// One `--static-cache-control [PREFIX=]VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheControl {
    /// A mount's PREFIX (normalised as `--static`'s), or `None`: every other mount.
    pub(crate) prefix: Option<String>,
    pub(crate) value: String,
}

impl fmt::Display for CacheControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.prefix {
            Some(prefix) => write!(f, "{prefix}={}", self.value),
            None => f.write_str(&self.value),
        }
    }
}

impl StaticArgs {
    /// The Cache-Control of the mount with `prefix`: its own, else the one without a prefix.
    pub(crate) fn cache_control_for(&self, prefix: &str) -> Option<String> {
        let find = |want: Option<&str>| {
            self.static_cache_control
                .iter()
                .find(|rule| rule.prefix.as_deref() == want)
                .map(|rule| rule.value.clone())
        };
        find(Some(prefix)).or_else(|| find(None))
    }

    /// A PREFIX= rule that names no mount: the message for the worker to stop with.
    pub(crate) fn unmatched_cache_control(&self) -> Option<String> {
        let rule = self.static_cache_control.iter().find(|rule| {
            rule.prefix
                .as_ref()
                .is_some_and(|p| !self.mounts.iter().any(|m| &m.prefix == p))
        })?;
        Some(format!(
            "--static-cache-control {rule}: no --static mount has the PREFIX {} (give the PREFIX as in --static)",
            rule.prefix.as_deref().unwrap_or_default()
        ))
    }
}

impl StaticArgs {
    /// The same options as command-line arguments, for a worker's command line.
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut args: Vec<String> = self
            .mounts
            .iter()
            .map(|m| format!("--static={m}"))
            .collect();
        for rule in &self.static_cache_control {
            args.push(format!("--static-cache-control={rule}"));
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

/// `--static-cache-control`: a valid header value, after a mount's `PREFIX=` if it starts with
/// `/` (a Cache-Control value never does).
fn cache_control(arg: &str) -> Result<CacheControl, String> {
    let (prefix, value) = match arg.trim().split_once('=') {
        Some((prefix, value)) if prefix.starts_with('/') => {
            let mut prefix = prefix.to_owned();
            if !prefix.ends_with('/') {
                prefix.push('/');
            }
            (Some(prefix), value.trim())
        }
        _ => (None, arg.trim()),
    };
    if value.is_empty() || !valid_header_value(value.as_bytes()) {
        return Err(
            "expected a Cache-Control value, e.g. \"public, max-age=3600\" or \"/assets/=public, max-age=31536000, immutable\""
                .to_owned(),
        );
    }
    Ok(CacheControl {
        prefix,
        value: value.to_owned(),
    })
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
    fn cache_control_must_be_a_header_value_after_an_optional_prefix() {
        let rule = |prefix: Option<&str>, value: &str| CacheControl {
            prefix: prefix.map(str::to_owned),
            value: value.to_owned(),
        };
        assert_eq!(
            cache_control(" max-age=60 ").unwrap(),
            rule(None, "max-age=60")
        );
        assert_eq!(
            cache_control("/assets=public, max-age=9").unwrap(),
            rule(Some("/assets/"), "public, max-age=9")
        );
        assert!(cache_control("").is_err());
        assert!(cache_control("/a/=").is_err());
        assert!(cache_control("a\nb").is_err());
        let args = StaticArgs {
            mounts: vec![
                "/assets/=dist".parse().unwrap(),
                "/media/=m".parse().unwrap(),
            ],
            static_cache_control: vec![rule(None, "no-cache"), rule(Some("/assets/"), "immutable")],
        };
        assert_eq!(
            args.cache_control_for("/assets/").as_deref(),
            Some("immutable")
        );
        assert_eq!(
            args.cache_control_for("/media/").as_deref(),
            Some("no-cache")
        );
        assert_eq!(args.unmatched_cache_control(), None);
        let typo = StaticArgs {
            static_cache_control: vec![rule(Some("/asset/"), "immutable")],
            ..args
        };
        assert!(typo.unmatched_cache_control().unwrap().contains("/asset/"));
    }
}
