//! systemd socket activation: the sockets a service manager (or `systemd-socket-activate`)
//! opened for this process, `sd_listen_fds_with_names(3)` without libsystemd.
//!
//! The manager passes them at descriptors 3, 4, ... and says how many in `LISTEN_FDS`, for
//! which process in `LISTEN_PID` (a variable inherited by a grandchild is not for it), and
//! their names (`FileDescriptorName=`, `--fdname`) colon-separated in `LISTEN_FDNAMES`.
//! Only the master reads them; workers are started without these variables.

use std::os::fd::RawFd;

/// The first descriptor a service manager passes (`SD_LISTEN_FDS_START`).
pub(crate) const LISTEN_FDS_START: RawFd = 3;
/// systemd's name for a socket that was given none.
const UNNAMED: &str = "unknown";

/// The environment variables of socket activation (removed from the workers' environment).
pub(crate) const VARIABLES: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/// One socket the manager passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Passed {
    pub(crate) fd: RawFd,
    pub(crate) name: String,
}

/// The sockets passed to this process, if it was socket-activated.
pub(crate) fn from_env() -> Result<Option<Vec<Passed>>, String> {
    let var = |name| std::env::var(name).ok();
    parse(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )
}

fn parse(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    my_pid: u32,
) -> Result<Option<Vec<Passed>>, String> {
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    match pid.trim().parse::<u32>() {
        Ok(pid) if pid == my_pid => {}
        // Meant for another process (this one inherited the variables): not activated.
        Ok(_) => return Ok(None),
        Err(_) => return Err(format!("LISTEN_PID={pid} is not a process id")),
    }
    let count: RawFd = fds
        .trim()
        .parse()
        .ok()
        .filter(|&n| n >= 0)
        .ok_or_else(|| format!("LISTEN_FDS={fds} is not a number of descriptors"))?;
    let names: Vec<String> = match names {
        Some(names) => names.split(':').map(str::to_owned).collect(),
        None => vec![UNNAMED.to_owned(); count as usize],
    };
    if names.len() != count as usize {
        return Err(format!(
            "LISTEN_FDNAMES names {} sockets but LISTEN_FDS says {count}",
            names.len()
        ));
    }
    Ok(Some(
        names
            .into_iter()
            .enumerate()
            .map(|(i, name)| Passed {
                fd: LISTEN_FDS_START + i as RawFd,
                name: if name.is_empty() {
                    UNNAMED.to_owned()
                } else {
                    name
                },
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed(fd: RawFd, name: &str) -> Passed {
        Passed {
            fd,
            name: name.into(),
        }
    }

    #[test]
    fn sockets_for_this_process_are_numbered_from_three_with_their_names() {
        assert_eq!(
            parse(Some("42"), Some("2"), Some("web:admin"), 42),
            Ok(Some(vec![passed(3, "web"), passed(4, "admin")]))
        );
        assert_eq!(
            parse(Some("42"), Some("1"), None, 42),
            Ok(Some(vec![passed(3, "unknown")]))
        );
    }

    #[test]
    fn variables_meant_for_another_process_or_absent_mean_not_activated() {
        assert_eq!(parse(Some("41"), Some("1"), None, 42), Ok(None));
        assert_eq!(parse(None, Some("1"), None, 42), Ok(None));
        assert_eq!(parse(Some("42"), None, None, 42), Ok(None));
    }

    #[test]
    fn inconsistent_variables_are_refused() {
        assert!(parse(Some("x"), Some("1"), None, 42).is_err());
        assert!(parse(Some("42"), Some("-1"), None, 42).is_err());
        let err = parse(Some("42"), Some("2"), Some("web"), 42).unwrap_err();
        assert!(err.contains("LISTEN_FDNAMES names 1"), "{err}");
    }
}
