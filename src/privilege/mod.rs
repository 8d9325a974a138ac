//! Least privilege: `--user` and `--group` (gunicorn's flags). The master resolves the names
//! once, at startup, and keeps its identity: it needs it for what it does for the workers (the
//! listeners, `--pid`, the log files, the TLS key read on every swap). Each worker starts with
//! the master's identity, opens what only that identity may (its log files), and then becomes
//! the user for good, supplementary groups included, before it loads the app: no app code ever
//! runs as root when `--user` is given.
//!
//! A worker cannot create a file where only root may (nor, in the sandbox, anywhere but
//! `--sandbox-write`), so the master creates the log files workers reopen (at startup and on
//! every USR1, before the workers are told to reopen) and hands them to the user, with the unix
//! socket files it listens on (gunicorn does the same).
//!
//! The worker gets numbers, never names (`--run-as UID:GID:GROUPS`): it does not consult the
//! user database, and every worker of every generation gets the identity the master resolved.
//!
//! What else a worker gives up before the app's init: `sandbox.rs` (`--sandbox`, `--seccomp`);
//! the resources it may use: `limits.rs` (`--limit-*`). The system calls are in
//! `crate::sys::privilege` and `crate::sys::seccomp`.

use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;

use clap::Args;

pub(crate) mod limits;
pub(crate) mod sandbox;

use crate::logging::{Destination, LogArgs};
use crate::sys::privilege::{self as sys, PasswdEntry};
use limits::LimitArgs;
use sandbox::SandboxArgs;

/// `--user` and `--group`, the master's options.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct PrivilegeArgs {
    /// Run the workers (and so the app) as this user, a name or a numeric uid; the master,
    /// started as root, keeps root for the listeners, --pid and the log files. The
    /// supplementary groups are the user's. Default: the master's own user (a warning when that
    /// is root).
    #[arg(
        long,
        value_name = "NAME|UID",
        env = "WEBSERVER_USER",
        help_heading = "Privilege"
    )]
    pub(crate) user: Option<String>,

    /// The workers' group, a name or a numeric gid (default: the --user's primary group).
    #[arg(
        long,
        value_name = "NAME|GID",
        requires = "user",
        env = "WEBSERVER_GROUP",
        help_heading = "Privilege"
    )]
    pub(crate) group: Option<String>,

    #[command(flatten)]
    pub(crate) sandbox: SandboxArgs,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,
}

/// The identity a worker takes, as numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunAs {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// The supplementary groups.
    pub(crate) groups: Vec<u32>,
}

/// Why `--user`/`--group` cannot be used, or a worker could not take the identity.
#[derive(Debug)]
pub(crate) enum PrivilegeError {
    UnknownUser(String),
    UnknownGroup(String),
    /// A numeric `--user` the passwd database does not know, without `--group`.
    NoPrimaryGroup(u32),
    Lookup(&'static str, String, io::Error),
    /// Only root can make its workers another user.
    NotRoot {
        uid: u32,
    },
    /// A file the workers reopen cannot be handed to the user.
    HandOver(String, io::Error),
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivilegeError::UnknownUser(name) => {
                write!(f, "--user {name}: no such user (name one from /etc/passwd, or a uid)")
            }
            PrivilegeError::UnknownGroup(name) => {
                write!(f, "--group {name}: no such group (name one from /etc/group, or a gid)")
            }
            PrivilegeError::NoPrimaryGroup(uid) => write!(
                f,
                "--user {uid}: no passwd entry, so no primary group: add --group NAME|GID"
            ),
            PrivilegeError::Lookup(what, name, e) => {
                write!(f, "cannot look up {what} {name}: {e}")
            }
            PrivilegeError::NotRoot { uid } => write!(
                f,
                "--user: only a master started as root can run its workers as another user (this one is uid {uid}); start it as root or leave --user out"
            ),
            PrivilegeError::HandOver(path, e) => write!(
                f,
                "cannot prepare {path} for the workers, which reopen it: {e}"
            ),
        }
    }
}

impl std::error::Error for PrivilegeError {}

impl PrivilegeArgs {
    /// The identity the workers take, or `None` to leave them the master's.
    pub(crate) fn resolve(&self) -> Result<Option<RunAs>, PrivilegeError> {
        let Some(user) = &self.user else {
            return Ok(None);
        };
        let entry = find_user(user)?;
        let gid = match (&self.group, &entry) {
            (Some(group), _) => find_group(group)?,
            (None, Some(entry)) => entry.gid,
            (None, None) => {
                return Err(PrivilegeError::NoPrimaryGroup(parse_id(user).unwrap_or(0)))
            }
        };
        let uid = match &entry {
            Some(entry) => entry.uid,
            None => parse_id(user).unwrap_or(0),
        };
        let groups = match &entry {
            Some(entry) => sys::group_list(&entry.name, gid)
                .map_err(|e| PrivilegeError::Lookup("the groups of", entry.name.clone(), e))?,
            None => vec![gid],
        };
        let run_as = RunAs { uid, gid, groups };
        let me = sys::effective_uid();
        if me != 0 {
            if uid != me || gid != sys::effective_gid() {
                return Err(PrivilegeError::NotRoot { uid: me });
            }
            // Already that user: nothing to change (and no right to set groups).
            return Ok(None);
        }
        log::info!("workers run as uid {uid}, gid {gid}");
        Ok(Some(run_as))
    }
}

/// Creates the log files `logging` names if missing, and hands them to the workers' user (if
/// any), so that a worker, which may neither create files there (`--user`) nor create files at
/// all (the sandbox), can reopen them. The master calls it at startup and after it reopened its
/// own files on USR1, before the workers reopen theirs.
pub(crate) fn prepare_logs(
    run_as: Option<&RunAs>,
    logging: &LogArgs,
) -> Result<(), PrivilegeError> {
    for destination in [&logging.access_logfile, &logging.error_logfile] {
        if let Some(Destination::File(path)) = destination {
            let failed = |e| PrivilegeError::HandOver(path.display().to_string(), e);
            let file = crate::sys::logfile::open_append(path).map_err(failed)?;
            if let Some(run_as) = run_as {
                std::os::unix::fs::fchown(&file, Some(run_as.uid), Some(run_as.gid))
                    .map_err(failed)?;
            }
        }
    }
    Ok(())
}

/// Once the server serves: a warning if its workers (without `--user`) run as root. Not a
/// refusal: `sudo webserver hello:app` is how many first try it.
pub(crate) fn warn_if_root(run_as: Option<&RunAs>) {
    let uid = run_as.map_or_else(sys::effective_uid, |run_as| run_as.uid);
    if uid == 0 {
        log::warn!(
            "workers run as root, and so does the app: give them an unprivileged user with --user (e.g. --user nobody)"
        );
    }
}

/// `--user`: a name first (a user may be called `1000`), then a number.
fn find_user(user: &str) -> Result<Option<PasswdEntry>, PrivilegeError> {
    let lookup = |e| PrivilegeError::Lookup("user", user.to_owned(), e);
    if let Some(entry) = sys::user_by_name(user).map_err(lookup)? {
        return Ok(Some(entry));
    }
    let uid = parse_id(user).ok_or_else(|| PrivilegeError::UnknownUser(user.to_owned()))?;
    sys::user_by_id(uid).map_err(lookup)
}

/// `--group`: a name first, then a number.
fn find_group(group: &str) -> Result<u32, PrivilegeError> {
    let found = sys::group_by_name(group)
        .map_err(|e| PrivilegeError::Lookup("group", group.to_owned(), e))?;
    found
        .or_else(|| parse_id(group))
        .ok_or_else(|| PrivilegeError::UnknownGroup(group.to_owned()))
}

fn parse_id(word: &str) -> Option<u32> {
    word.trim().parse().ok()
}

impl RunAs {
    /// Hands a socket file the master created to the workers' user (not following a link).
    pub(crate) fn hand_over_socket(&self, path: &Path) -> Result<(), PrivilegeError> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
            .map_err(|e| PrivilegeError::HandOver(path.display().to_string(), e))
    }

    /// In a worker, before the app is loaded: become the user for good.
    pub(crate) fn take(&self) -> Result<(), String> {
        sys::become_user(self.uid, self.gid, &self.groups).map_err(|e| {
            format!(
                "cannot become uid {} gid {} (--user): {e}",
                self.uid, self.gid
            )
        })
    }
}

/// `UID:GID:G1,G2,...`, a worker's `--run-as`.
impl fmt::Display for RunAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self.groups.iter().map(u32::to_string).collect();
        write!(f, "{}:{}:{}", self.uid, self.gid, groups.join(","))
    }
}

impl FromStr for RunAs {
    type Err = String;

    fn from_str(s: &str) -> Result<RunAs, String> {
        let bad = || format!("expected UID:GID:GROUPS, got {s:?}");
        let [uid, gid, groups] = s.splitn(3, ':').collect::<Vec<_>>()[..] else {
            return Err(bad());
        };
        let groups = match groups {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(|g| parse_id(g).ok_or_else(bad))
                .collect::<Result<_, _>>()?,
        };
        Ok(RunAs {
            uid: parse_id(uid).ok_or_else(bad)?,
            gid: parse_id(gid).ok_or_else(bad)?,
            groups,
        })
    }
}

/// A worker's side: the identity the master resolved (internal), and the sandbox.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct WorkerPrivilegeArgs {
    #[arg(long = "run-as", value_name = "UID:GID:GROUPS", hide = true)]
    pub(crate) run_as: Option<RunAs>,
    #[command(flatten)]
    pub(crate) sandbox: SandboxArgs,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,
}

impl WorkerPrivilegeArgs {
    pub(crate) fn to_args(run_as: Option<&RunAs>) -> Vec<String> {
        run_as
            .map(|run_as| vec![format!("--run-as={run_as}")])
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_reads_back_the_identity_the_master_wrote() {
        let run_as = RunAs {
            uid: 65534,
            gid: 65534,
            groups: vec![65534, 27],
        };
        assert_eq!(run_as.to_string(), "65534:65534:65534,27");
        assert_eq!(run_as.to_string().parse::<RunAs>(), Ok(run_as));
        let no_groups: RunAs = "1:2:".parse().unwrap();
        assert_eq!(no_groups.groups, Vec::<u32>::new());
        assert!("1".parse::<RunAs>().is_err());
        assert!("a:2:".parse::<RunAs>().is_err());
    }

    #[test]
    fn unknown_names_are_refused_with_what_to_write() {
        let args = PrivilegeArgs {
            user: Some("no-such-user-xyz".into()),
            ..PrivilegeArgs::default()
        };
        let e = args.resolve().unwrap_err().to_string();
        assert!(e.contains("no such user"), "{e}");
        let args = PrivilegeArgs {
            user: Some("root".into()),
            group: Some("no-such-group-xyz".into()),
            ..PrivilegeArgs::default()
        };
        let e = args.resolve().unwrap_err().to_string();
        assert!(e.contains("no such group"), "{e}");
    }
}
