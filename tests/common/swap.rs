//! Hot swaps the way a deploy script drives them: write the new library over the live path
//! (temp file + rename), SIGHUP the master named by `--pid FILE`, wait for `FILE.status` to say
//! `ready G` (or `failed G ...`) for a generation newer than before.

use super::poll;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one swap (boot of a generation) may take before the test fails.
pub const SWAP_TIMEOUT: Duration = Duration::from_secs(15);

/// Writes `bytes` over `dst` atomically: a temp file in the same directory, then rename.
pub fn install_bytes(bytes: &[u8], dst: &Path) {
    let tmp = dst.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).unwrap_or_else(|e| panic!("write {tmp:?}: {e}"));
    std::fs::rename(&tmp, dst).unwrap_or_else(|e| panic!("rename {tmp:?} -> {dst:?}: {e}"));
}

fn status_file(pid_file: &Path) -> PathBuf {
    let mut name = pid_file.as_os_str().to_owned();
    name.push(".status");
    PathBuf::from(name)
}

/// `FILE.status` split into (state, generation, rest).
pub fn read_status(pid_file: &Path) -> Option<(String, u64, String)> {
    let text = std::fs::read_to_string(status_file(pid_file)).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.splitn(3, ' ');
    let state = parts.next()?.to_owned();
    let generation = parts.next()?.parse().ok()?;
    Some((state, generation, parts.next().unwrap_or("").to_owned()))
}

/// Waits for the first generation to be ready; returns its number.
pub fn wait_first_ready(pid_file: &Path) -> u64 {
    poll(SWAP_TIMEOUT, "generation 1 ready", || {
        read_status(pid_file).filter(|(state, _, _)| state == "ready")
    })
    .1
}

/// SIGHUPs the master named by the pid file and waits for the outcome: (state, generation, rest).
pub fn hup(pid_file: &Path) -> (String, u64, String) {
    let before = read_status(pid_file).map_or(0, |(_, g, _)| g);
    let pid: i32 = std::fs::read_to_string(pid_file)
        .unwrap_or_else(|e| panic!("read {pid_file:?}: {e}"))
        .trim()
        .parse()
        .expect("a pid in the pid file");
    // SAFETY: kill(2) takes plain integers; the pid is the master this test started.
    let rc = unsafe { libc::kill(pid, libc::SIGHUP) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, SIGHUP): {}",
        std::io::Error::last_os_error()
    );
    poll(
        SWAP_TIMEOUT,
        "the swap to settle in the status file",
        || {
            read_status(pid_file).filter(|(state, generation, _)| {
                *generation > before && (state == "ready" || state == "failed")
            })
        },
    )
}
