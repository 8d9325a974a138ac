//! Helpers for the tests that drive swaps the way a deploy script does: copy the new library over
//! one live path (temp file + rename), SIGHUP the master named by `--pid FILE`, and wait for
//! `FILE.status` to say `ready G` (or `failed G ...`) for a generation newer than before; and for
//! running `webserver check` and `scripts/hot-swap.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// Copies `src` over `dst` atomically: a temp file in the same directory, then rename.
pub fn install(src: &Path, dst: &Path) {
    let tmp = dst.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::copy(src, &tmp).unwrap_or_else(|e| panic!("copy {src:?} -> {tmp:?}: {e}"));
    std::fs::rename(&tmp, dst).unwrap_or_else(|e| panic!("rename {tmp:?} -> {dst:?}: {e}"));
}

/// Writes `bytes` over `dst` atomically.
pub fn install_bytes(bytes: &[u8], dst: &Path) {
    let tmp = dst.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dst).unwrap();
}

/// Waits until the status file says `ready G` or `failed G ...` for a G newer than `after`.
pub fn wait_settled(pid_file: &Path, after: u64) -> (String, u64, String) {
    poll(
        SWAP_TIMEOUT,
        "the swap to settle in the status file",
        || {
            read_status(pid_file).filter(|(state, generation, _)| {
                *generation > after && (state == "ready" || state == "failed")
            })
        },
    )
}

/// SIGHUP the master named by the pid file and wait for the outcome.
pub fn hup(pid_file: &Path) -> (String, u64, String) {
    let before = read_status(pid_file).map_or(0, |(_, g, _)| g);
    kill(master_pid(pid_file), libc::SIGHUP);
    wait_settled(pid_file, before)
}

/// A server on a copy of `initial` at `dir/live.so`, with `--pid dir/ws.pid`.
pub fn live_server(dir: &Path, initial: &Path, args: &[&str]) -> (Server, PathBuf, PathBuf) {
    live_server_env(dir, initial, args, &[])
}

/// [`live_server`] with extra environment variables for the server.
pub fn live_server_env(
    dir: &Path,
    initial: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Server, PathBuf, PathBuf) {
    let live = dir.join("live.so");
    install(initial, &live);
    let pid_file = dir.join("ws.pid");
    let mut target = live.clone().into_os_string();
    target.push(":app");
    let mut builder = quiet(server(target));
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    let server = builder
        .args(args.iter().copied())
        .arg_pid(&pid_file)
        .start();
    wait_first_ready(&pid_file);
    (server, live, pid_file)
}

/// `webserver check LIB:app`.
pub fn run_check(lib: &Path) -> Exited {
    run_check_args(lib, &[])
}

/// `webserver check LIB:app ARGS`.
pub fn run_check_args(lib: &Path, args: &[&str]) -> Exited {
    let mut spec = lib.as_os_str().to_owned();
    spec.push(":app");
    let out = Command::new(webserver_exe())
        .arg("check")
        .arg(&spec)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    Exited {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn script() -> PathBuf {
    workspace_dir().join("scripts/hot-swap.sh")
}

pub fn run_script(new: &Path, pid_file: &Path, live: &Path) -> Exited {
    run_script_symbol(new, pid_file, live, None)
}

pub fn run_script_symbol(new: &Path, pid_file: &Path, live: &Path, symbol: Option<&str>) -> Exited {
    run_script_env(new, pid_file, live, symbol, &[])
}

/// `scripts/hot-swap.sh NEW PIDFILE LIVE [SYMBOL]` with extra environment variables.
pub fn run_script_env(
    new: &Path,
    pid_file: &Path,
    live: &Path,
    symbol: Option<&str>,
    env: &[(&str, &str)],
) -> Exited {
    let mut cmd = Command::new("sh");
    cmd.arg(script()).arg(new).arg(pid_file).arg(live);
    if let Some(symbol) = symbol {
        cmd.arg(symbol);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.env("WEBSERVER", webserver_exe()).output().unwrap();
    Exited {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
