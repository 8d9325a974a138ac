//! Small helpers of the master: where the status file lives, how `--max-requests` is spread.
//! The system calls themselves are in `crate::sys::process`.

use std::path::{Path, PathBuf};

pub(crate) use crate::sys::process::signal_name;

/// `FILE.status` beside the pid file: what the last swap did, for scripts.
pub(crate) fn status_path(pid_file: &Path) -> PathBuf {
    let mut name = pid_file.as_os_str().to_owned();
    name.push(".status");
    PathBuf::from(name)
}

/// Spread --max-requests so workers do not all recycle at once.
pub(crate) fn jitter(max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos ^ std::process::id()) % (max + 1)
}
