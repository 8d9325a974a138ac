//! The values the serve options accept, each with its range. Flags, `WEBSERVER_*` variables and
//! the `--config` file all go through these parsers (clap runs them on every source), so a value
//! outside its range is refused the same way wherever it came from, with one line that says what
//! is accepted. A value whose meaning would be a surprise is refused rather than reinterpreted:
//! `--timeout 0` used to mean "no limit" and now asks for `--timeout off`. A leaf: every
//! layer's clap group may use it.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::time::Duration;

/// More worker processes than this is a typo, not a deployment.
pub(crate) const MAX_WORKERS: usize = 1024;
/// More serving threads per worker than this is a typo (each one has its own stack).
pub(crate) const MAX_THREADS: usize = 4096;
/// The longest timeout accepted: a day. Longer ones are typos, and the deadlines computed
/// from them must stay far from `Instant`'s overflow.
pub(crate) const MAX_TIMEOUT_SECS: u64 = 86_400;
/// The largest `--max-requests` and `--max-requests-jitter`: their sum must not overflow.
pub(crate) const MAX_REQUESTS: u64 = 1_000_000_000_000;

/// A timeout in whole seconds that can also be turned off explicitly (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SecondsOrOff(Option<NonZeroU64>);

impl SecondsOrOff {
    /// The word that turns the timeout off.
    pub(crate) const OFF: &'static str = "off";

    /// The timeout, or `None` when it is off.
    pub(crate) fn duration(self) -> Option<Duration> {
        self.0.map(|secs| Duration::from_secs(secs.get()))
    }
}

/// Prints what the parser reads back (`off` or the seconds), for a worker's command line.
impl fmt::Display for SecondsOrOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str(Self::OFF),
            Some(secs) => write!(f, "{secs}"),
        }
    }
}

/// `--workers`: 1 to [`MAX_WORKERS`].
pub(crate) fn workers(arg: &str) -> Result<usize, String> {
    whole_number(arg, 1, MAX_WORKERS)
}

/// `--threads`: 1 to [`MAX_THREADS`].
pub(crate) fn threads(arg: &str) -> Result<usize, String> {
    whole_number(arg, 1, MAX_THREADS)
}

/// A timeout for which 0 makes no sense (a connection or request could never make progress):
/// 1 to [`MAX_TIMEOUT_SECS`] seconds.
pub(crate) fn positive_seconds(arg: &str) -> Result<u64, String> {
    seconds(arg, 1)
}

/// A wait for which 0 means "do not wait" (`--graceful-timeout 0` stops at once): 0 to
/// [`MAX_TIMEOUT_SECS`] seconds.
pub(crate) fn seconds_or_zero(arg: &str) -> Result<u64, String> {
    seconds(arg, 0)
}

/// `--timeout`: `off`, or 1 to [`MAX_TIMEOUT_SECS`] seconds. `0` is refused with a pointer to
/// `off`, since it once meant that silently.
pub(crate) fn seconds_or_off(arg: &str) -> Result<SecondsOrOff, String> {
    if arg.eq_ignore_ascii_case(SecondsOrOff::OFF) {
        return Ok(SecondsOrOff(None));
    }
    if arg.trim() == "0" {
        return Err(format!(
            "0 is not a timeout: write `{}` for no limit, or 1 to {MAX_TIMEOUT_SECS} seconds",
            SecondsOrOff::OFF
        ));
    }
    let secs = seconds(arg, 1).map_err(|e| format!("{e}, or `{}`", SecondsOrOff::OFF))?;
    Ok(SecondsOrOff(NonZeroU64::new(secs)))
}

/// `--max-body`: any number of bytes; 0 refuses every request that has a body (413).
pub(crate) fn bytes(arg: &str) -> Result<u64, String> {
    whole_number(arg, 0, u64::MAX)
}

/// `--ws-max-message`: 1 KiB to 1 GiB (a smaller limit could not carry a close reason and a
/// frame header; a larger one is memory no client should be able to ask for).
pub(crate) fn ws_message_size(arg: &str) -> Result<u64, String> {
    whole_number(arg, 1024, 1 << 30)
}

/// `--max-requests` and its jitter: 0 (never / none) to [`MAX_REQUESTS`].
pub(crate) fn request_count(arg: &str) -> Result<u64, String> {
    whole_number(arg, 0, MAX_REQUESTS)
}

fn seconds(arg: &str, min: u64) -> Result<u64, String> {
    in_range(arg, "a whole number of seconds", min, MAX_TIMEOUT_SECS)
}

fn whole_number<T>(arg: &str, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + fmt::Display,
{
    in_range(arg, "a whole number", min, max)
}

/// `arg` as a `what` in `min..=max`, or a message that states the range.
fn in_range<T>(arg: &str, what: &str, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + fmt::Display,
{
    let expected = || format!("expected {what} from {min} to {max}");
    let n: T = arg.trim().parse().map_err(|_| expected())?;
    if n < min || n > max {
        return Err(expected());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_inclusive_and_refusals_state_them() {
        assert_eq!(workers("1"), Ok(1));
        assert_eq!(workers(&MAX_WORKERS.to_string()), Ok(MAX_WORKERS));
        assert_eq!(
            workers("0"),
            Err("expected a whole number from 1 to 1024".to_owned())
        );
        assert!(workers("1025").is_err());
        assert!(workers("-1").is_err());
        assert!(workers("two").is_err());
        assert_eq!(seconds_or_zero("0"), Ok(0));
        assert_eq!(
            positive_seconds("0"),
            Err("expected a whole number of seconds from 1 to 86400".to_owned())
        );
        assert_eq!(bytes("0"), Ok(0));
    }

    #[test]
    fn timeout_off_is_explicit_and_zero_points_to_it() {
        let off = seconds_or_off("off").unwrap();
        assert_eq!(off.duration(), None);
        assert_eq!(off.to_string(), "off");
        assert_eq!(seconds_or_off("OFF"), Ok(off));
        let thirty = seconds_or_off("30").unwrap();
        assert_eq!(thirty.duration(), Some(Duration::from_secs(30)));
        assert_eq!(seconds_or_off(&thirty.to_string()), Ok(thirty));
        assert!(seconds_or_off("0").unwrap_err().contains("`off`"));
        assert!(seconds_or_off("never").unwrap_err().contains("`off`"));
    }
}
