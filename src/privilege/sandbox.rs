//! The worker sandbox (`--sandbox`, on by default): what a worker gives up right before the
//! app's init, once its library and everything it links are mapped
//! (`LoadedApp::load_path_then`), on the thread that runs init and starts every serving thread:
//!
//! - `no_new_privs`: no program the app starts can gain privileges (setuid binaries, file
//!   capabilities);
//! - every capability: a worker left as root keeps uid 0 but none of root's powers over the
//!   system (with `--user` they are gone already);
//! - a Landlock rule set (the `landlock` crate, best effort: what the kernel enforced is said in
//!   the worker's serving line): reading only the system's libraries and programs, the few
//!   `/etc` files the C library and TLS need, `/proc/self`, the directories of every library
//!   mapped (the app's, the Python install's), the working directory, Python's `VIRTUAL_ENV`,
//!   `PYTHONHOME` and `PYTHONPATH`, existing paths among the app's arguments (`--venv PATH`) and
//!   `--sandbox-read`, and the `--static` directories;
//!   writing only into `--sandbox-write` and to the log files (in place: the master creates the
//!   fresh ones on USR1);
//! - with `--seccomp`, a filter (`sys::seccomp`) that refuses process-level system calls on
//!   every thread of the worker.
//!
//! Each of these holds for the calling thread and the threads it starts from then on: the
//! server's own helper threads, started before (heartbeat, signals, captured output), are
//! outside; app code never runs on them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use landlock::{
    path_beneath_rules, Access, AccessFs, LandlockStatus, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetError, RulesetStatus, ABI,
};

use crate::logging::{Destination, LogArgs};
use crate::sys::privilege::{drop_capabilities, set_no_new_privs};
use crate::sys::seccomp;

/// The Landlock ABI whose filesystem rights are asked for (Linux 6.10: up to ioctl on devices);
/// an older kernel enforces what it knows.
const LANDLOCK_ABI: ABI = ABI::V5;

/// Read (and run) beneath these when they exist: the system's programs and libraries.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/opt",
    // What the C library reads on its own: name service, time zone, locale, the loader cache.
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/locale.alias",
    "/etc/mime.types",
    // TLS clients' certificate stores.
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/crypto-policies",
    // The process's own /proc entries, and what thread-count probes read.
    "/proc/self",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup",
    "/dev/zero",
    "/dev/urandom",
    "/dev/random",
];

/// Read and written: the one device every program may write to.
const SYSTEM_WRITE: &[&str] = &["/dev/null"];

/// `--sandbox`, `--sandbox-read`, `--sandbox-write`: the master's options, passed on to each
/// worker as they are (plus the library's directory as a `--sandbox-read`).
#[derive(Args, Debug, Clone)]
pub(crate) struct SandboxArgs {
    /// Sandbox each worker before the app's init: no_new_privs, no capabilities, and (Landlock,
    /// where the kernel has it) reading only system libraries, the app's directories and
    /// --sandbox-read, writing only --sandbox-write and the log files. `off` for debugging.
    #[arg(
        long,
        value_name = "on|off",
        default_value = "on",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        env = "WEBSERVER_SANDBOX",
        help_heading = "Privilege"
    )]
    pub(crate) sandbox: bool,

    /// Also let the app read (and run) files beneath PATH (repeatable, or several separated by
    /// ':'): data, templates, a Python app's packages outside the working directory.
    #[arg(
        long = "sandbox-read",
        value_name = "PATH",
        value_delimiter = ':',
        value_parser = absolute,
        env = "WEBSERVER_SANDBOX_READ",
        help_heading = "Privilege"
    )]
    pub(crate) sandbox_read: Vec<PathBuf>,

    /// Let the app create, write and remove files beneath PATH (repeatable, or several
    /// separated by ':'); nothing else is writable but the log files.
    #[arg(
        long = "sandbox-write",
        value_name = "PATH",
        value_delimiter = ':',
        value_parser = absolute,
        env = "WEBSERVER_SANDBOX_WRITE",
        help_heading = "Privilege"
    )]
    pub(crate) sandbox_write: Vec<PathBuf>,

    /// With the sandbox, also refuse (EPERM) the process-level system calls apps have no
    /// business making: ptrace, mount, kexec_load, bpf, init_module, reboot, unshare, setns,
    /// keyctl, ... (a seccomp filter on every thread of the worker).
    #[arg(
        long,
        env = "WEBSERVER_SECCOMP",
        value_parser = clap::builder::FalseyValueParser::new(),
        help_heading = "Privilege"
    )]
    pub(crate) seccomp: bool,
}

impl Default for SandboxArgs {
    fn default() -> Self {
        SandboxArgs {
            sandbox: true,
            sandbox_read: Vec::new(),
            sandbox_write: Vec::new(),
            seccomp: false,
        }
    }
}

/// A path as given, made absolute, so a worker reads it the same whatever its directory.
fn absolute(arg: &str) -> Result<PathBuf, String> {
    if arg.is_empty() {
        return Err("an empty path".into());
    }
    std::path::absolute(arg).map_err(|e| format!("{arg}: {e}"))
}

impl SandboxArgs {
    /// The worker's command-line arguments; `library_dir`, the directory of the library the
    /// user named, is readable too (an app's files beside it).
    pub(crate) fn to_args(&self, library_dir: Option<&Path>) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![format!("--sandbox={}", on_off(self.sandbox)).into()];
        if self.seccomp {
            args.push("--seccomp".into());
        }
        for path in self
            .sandbox_read
            .iter()
            .map(PathBuf::as_path)
            .chain(library_dir)
        {
            let mut arg = OsString::from("--sandbox-read=");
            arg.push(path);
            args.push(arg);
        }
        for path in &self.sandbox_write {
            let mut arg = OsString::from("--sandbox-write=");
            arg.push(path);
            args.push(arg);
        }
        args
    }

    /// In a worker, right before the app's init: put the sandbox in place, or say why it could
    /// not be; `served` are directories the worker itself reads from (`--static`). The text
    /// describes what is enforced (`off`, or the list), for the worker's serving line.
    pub(crate) fn apply(
        &self,
        logging: &LogArgs,
        app_args: &[OsString],
        served: impl Iterator<Item = PathBuf>,
    ) -> Result<String, String> {
        if !self.sandbox {
            return Ok("off".into());
        }
        set_no_new_privs().map_err(|e| format!("cannot set no_new_privs (--sandbox): {e}"))?;
        let landlock = self
            .landlock(logging, app_args, served)
            .map_err(|e| format!("cannot apply the Landlock rules (--sandbox): {e}"))?;
        drop_capabilities()
            .map_err(|e| format!("cannot drop the capabilities (--sandbox): {e}"))?;
        let seccomp = if self.seccomp {
            seccomp::install().map_err(|e| format!("cannot install --seccomp: {e}"))?;
            ", seccomp"
        } else {
            ""
        };
        Ok(format!(
            "no_new_privs, no capabilities, {landlock}{seccomp}"
        ))
    }

    fn landlock(
        &self,
        logging: &LogArgs,
        app_args: &[OsString],
        served: impl Iterator<Item = PathBuf>,
    ) -> Result<String, RulesetError> {
        let read = AccessFs::from_read(LANDLOCK_ABI);
        let all = AccessFs::from_all(LANDLOCK_ABI);
        let mut readable: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
        readable.extend(mapped_directories());
        readable.extend(std::env::current_dir().ok());
        // Where Python finds the app's packages.
        for variable in ["VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH"] {
            if let Some(paths) = std::env::var_os(variable) {
                readable.extend(std::env::split_paths(&paths).filter(|p| p.is_absolute()));
            }
        }
        readable.extend(
            app_args
                .iter()
                .map(PathBuf::from)
                .filter(|p| p.exists())
                .filter_map(|p| std::path::absolute(p).ok())
                .filter(|p| p != Path::new("/")),
        );
        readable.extend(self.sandbox_read.iter().cloned());
        readable.extend(served);
        let log_dirs = [&logging.access_logfile, &logging.error_logfile]
            .into_iter()
            .filter_map(|d| match d {
                Some(Destination::File(path)) => path.parent().map(Path::to_owned),
                _ => None,
            });
        let status = Ruleset::default()
            .handle_access(all)?
            .create()?
            .add_rules(path_beneath_rules(&readable, read))?
            .add_rules(path_beneath_rules(SYSTEM_WRITE, read | AccessFs::WriteFile))?
            // In place only: a rule holds for the files beneath a directory, and a rotation
            // makes a new file (which the master creates).
            .add_rules(path_beneath_rules(log_dirs, AccessFs::WriteFile))?
            .add_rules(path_beneath_rules(&self.sandbox_write, all))?
            .restrict_self()?;
        let abi = match status.landlock {
            LandlockStatus::Available { effective_abi, .. } => effective_abi.to_string(),
            LandlockStatus::NotEnabled => "not enabled at boot".into(),
            LandlockStatus::NotImplemented => "not built into this kernel".into(),
        };
        Ok(match status.ruleset {
            RulesetStatus::FullyEnforced => format!("landlock ABI {abi} enforced"),
            RulesetStatus::PartiallyEnforced => format!("landlock ABI {abi} partly enforced"),
            RulesetStatus::NotEnforced => format!("landlock not enforced ({abi})"),
        })
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// The directories of the files mapped into this process (`/proc/self/maps`): the libraries
/// the app links and those they need, wherever they were installed (a Python built into a
/// home directory reads its standard library beside its libpython). The root directory and
/// memory files are left out.
fn mapped_directories() -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.starts_with('/') && !path.starts_with("/memfd:"))
        .filter_map(|path| Path::new(path).parent().map(Path::to_owned))
        .filter(|dir| dir != Path::new("/"))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_libraries_this_process_maps_are_found_by_directory() {
        let dirs = mapped_directories();
        let exe = std::env::current_exe().unwrap();
        assert!(dirs.contains(&exe.parent().unwrap().to_owned()), "{dirs:?}");
        assert!(!dirs.contains(&PathBuf::from("/")));
    }

    #[test]
    fn worker_arguments_carry_the_switch_and_the_paths() {
        let args = SandboxArgs {
            sandbox: false,
            sandbox_read: vec!["/srv/data".into()],
            sandbox_write: vec!["/srv/uploads".into()],
            seccomp: true,
        };
        let words: Vec<OsString> = args.to_args(Some(Path::new("/srv/app")));
        assert_eq!(
            words,
            [
                "--sandbox=off",
                "--seccomp",
                "--sandbox-read=/srv/data",
                "--sandbox-read=/srv/app",
                "--sandbox-write=/srv/uploads"
            ]
            .map(OsString::from)
        );
    }
}
