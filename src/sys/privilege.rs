//! Identities: looking up users and groups (the C library's passwd and group databases, NSS
//! included), changing a process's user, group and supplementary groups, and giving up the
//! rights a worker never needs (`no_new_privs`, capabilities).

use std::ffi::{CStr, CString};
use std::io;

use super::syscall;

/// A user as the passwd database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PasswdEntry {
    pub(crate) name: String,
    pub(crate) uid: u32,
    /// The user's primary group.
    pub(crate) gid: u32,
}

/// Where `getpw*_r` and `getgr*_r` write the strings of an entry; grown on `ERANGE`.
const FIRST_BUFFER: usize = 1024;
/// No real entry needs more (a group with thousands of members does not reach this).
const LARGEST_BUFFER: usize = 1 << 20;

/// This process's effective user id.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// This process's effective group id.
pub(crate) fn effective_gid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// The user named `name`, or `None` if there is none.
pub(crate) fn user_by_name(name: &str) -> io::Result<Option<PasswdEntry>> {
    let name = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    passwd_lookup(|pwd, buf, len, found| {
        // SAFETY: every pointer is valid for the call: the name is NUL-terminated, `pwd` and
        // `found` point to locals, `buf` has `len` writable bytes.
        unsafe { libc::getpwnam_r(name.as_ptr(), pwd, buf, len, found) }
    })
}

/// The user whose id is `uid`, or `None` if the database has no entry for it.
pub(crate) fn user_by_id(uid: u32) -> io::Result<Option<PasswdEntry>> {
    passwd_lookup(|pwd, buf, len, found| {
        // SAFETY: as in `user_by_name`; `uid` is a plain number.
        unsafe { libc::getpwuid_r(uid, pwd, buf, len, found) }
    })
}

/// Runs one `getpw*_r` call with a buffer grown until the entry fits.
fn passwd_lookup(
    call: impl Fn(*mut libc::passwd, *mut libc::c_char, usize, *mut *mut libc::passwd) -> i32,
) -> io::Result<Option<PasswdEntry>> {
    let mut len = FIRST_BUFFER;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        // SAFETY: `passwd` is plain old data; all zeroes is a valid (empty) value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        match call(&mut pwd, buf.as_mut_ptr(), len, &mut found) {
            libc::ERANGE if len < LARGEST_BUFFER => len *= 2,
            0 if found.is_null() => return Ok(None),
            0 => {
                // SAFETY: on success `pw_name` points to a NUL-terminated string inside `buf`,
                // which is alive here.
                let name = unsafe { CStr::from_ptr(pwd.pw_name) };
                return Ok(Some(PasswdEntry {
                    name: name.to_string_lossy().into_owned(),
                    uid: pwd.pw_uid,
                    gid: pwd.pw_gid,
                }));
            }
            // Some NSS modules say "no such user" with an errno rather than a null result.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            errno => return Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// The id of the group named `name`, or `None` if there is none.
pub(crate) fn group_by_name(name: &str) -> io::Result<Option<u32>> {
    let name = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut len = FIRST_BUFFER;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        // SAFETY: `group` is plain old data; all zeroes is a valid (empty) value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: the name is NUL-terminated, `grp` and `found` point to locals, `buf` has `len`
        // writable bytes.
        let rc =
            unsafe { libc::getgrnam_r(name.as_ptr(), &mut grp, buf.as_mut_ptr(), len, &mut found) };
        match rc {
            libc::ERANGE if len < LARGEST_BUFFER => len *= 2,
            0 if found.is_null() => return Ok(None),
            0 => return Ok(Some(grp.gr_gid)),
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            errno => return Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// The groups `user` belongs to, `gid` among them (what `initgroups` would set), from the group
/// database.
pub(crate) fn group_list(user: &str, gid: u32) -> io::Result<Vec<u32>> {
    let name = CString::new(user).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut count = i32::try_from(groups.len()).unwrap_or(i32::MAX);
        // SAFETY: `groups` has `count` writable entries; getgrouplist writes at most that many
        // and sets `count` to how many there are.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        let count = usize::try_from(count).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(count);
            return Ok(groups);
        }
        // Too small: `count` says how many are needed.
        if count <= groups.len() || count > 65_536 {
            return Err(io::Error::other(
                "the group database gave no usable group list",
            ));
        }
        groups.resize(count, 0);
    }
}

/// Makes this process (every thread of it: the C library applies each call to all threads)
/// `uid`, with `gid` as its group and `groups` as its supplementary groups, for good: real,
/// effective and saved ids all change, so root cannot be taken back. Groups go first, since
/// changing them needs the privilege the user change gives up. Checked afterwards: a process
/// that could still become root again is an error.
///
/// The kernel clears the parent-death signal when the ids change: it is set again afterwards,
/// and a parent that died in between is reported, so that a worker never outlives its master.
pub(crate) fn become_user(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    let mut death_signal: libc::c_int = 0;
    // SAFETY: PR_GET_PDEATHSIG writes one c_int through the pointer, which is live and ours.
    syscall!(prctl(
        libc::PR_GET_PDEATHSIG,
        &mut death_signal as *mut libc::c_int as libc::c_ulong
    ))?;
    // SAFETY: getppid has no preconditions and cannot fail.
    let parent = unsafe { libc::getppid() };
    change_ids(uid, gid, groups)?;
    if death_signal != 0 {
        // SAFETY: plain numbers; only sets this process's own flag.
        syscall!(prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong))?;
        // SAFETY: as above.
        if unsafe { libc::getppid() } != parent {
            return Err(io::Error::other("the parent process ended meanwhile"));
        }
    }
    Ok(())
}

fn change_ids(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` is a live slice of `groups.len()` gids, which setgroups only reads.
    syscall!(setgroups(groups.len(), groups.as_ptr()))?;
    // SAFETY: plain numbers; setgid sets real, effective and saved gid when privileged.
    syscall!(setgid(gid))?;
    // SAFETY: plain numbers; setuid sets real, effective and saved uid when privileged, and
    // clears the capability sets when none of them is 0 any more.
    syscall!(setuid(uid))?;
    if uid != 0 {
        // SAFETY: plain number; must fail now that every uid is unprivileged.
        if syscall!(setuid(0)).is_ok() {
            return Err(io::Error::other(
                "root could be taken back after the change",
            ));
        }
    }
    Ok(())
}

/// `PR_SET_NO_NEW_PRIVS` for the calling thread and the threads and programs it starts: no
/// `execve` can grant privileges again (setuid binaries, file capabilities).
pub(crate) fn set_no_new_privs() -> io::Result<()> {
    let one: libc::c_ulong = 1;
    let zero: libc::c_ulong = 0;
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes four integer arguments and touches no memory.
    syscall!(prctl(libc::PR_SET_NO_NEW_PRIVS, one, zero, zero, zero)).map(drop)
}

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct` (linux/capability.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Empties the calling thread's capability sets (effective, permitted, inheritable, ambient):
/// a worker left as root keeps uid 0 but none of root's powers over the system; the threads it
/// starts inherit the empty sets. Giving up capabilities needs none.
pub(crate) fn drop_capabilities() -> io::Result<()> {
    let zero: libc::c_ulong = 0;
    // SAFETY: prctl with PR_CAP_AMBIENT_CLEAR_ALL takes integer arguments and touches no memory.
    syscall!(prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        zero,
        zero,
        zero
    ))?;
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads a version-3 header and the two data words that version defines, both
    // alive for the call; pid 0 is the calling thread.
    syscall!(syscall(
        libc::SYS_capset,
        &header as *const CapHeader,
        data.as_ptr()
    ))
    .map(drop)
}

/// A resource limit of this process (`setrlimit`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Limit {
    /// `RLIMIT_NOFILE`: descriptors at or above this number cannot be opened.
    OpenFiles,
    /// `RLIMIT_CPU`: CPU seconds; the kernel sends SIGXCPU at the soft limit, SIGKILL at the
    /// hard one.
    CpuSeconds,
}

/// Sets `limit` to `soft` (and `hard`) for this process and the programs it starts. Lowering a
/// limit needs no privilege; raising the hard one back does.
pub(crate) fn set_limit(limit: Limit, soft: u64, hard: u64) -> io::Result<()> {
    let resource = match limit {
        Limit::OpenFiles => libc::RLIMIT_NOFILE,
        Limit::CpuSeconds => libc::RLIMIT_CPU,
    };
    let value = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct, alive for the call.
    syscall!(setrlimit(resource, &value)).map(drop)
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`) this process runs with now.
pub(crate) fn open_files_limit() -> io::Result<u64> {
    let mut value = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct, alive and exclusively borrowed for the call.
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut value))?;
    Ok(value.rlim_cur)
}

/// The size of a memory page, for `/proc/self/statm`'s counts.
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE cannot fail on Linux.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_its_group_are_found_by_name_and_by_id() {
        let root = user_by_name("root")
            .unwrap()
            .expect("every system has root");
        assert_eq!(root.uid, 0);
        assert_eq!(user_by_id(0).unwrap(), Some(root.clone()));
        assert_eq!(group_by_name("root").unwrap(), Some(0));
        assert!(group_list("root", root.gid).unwrap().contains(&root.gid));
    }

    #[test]
    fn unknown_names_are_none_not_errors() {
        assert_eq!(user_by_name("no-such-user-xyz").unwrap(), None);
        assert_eq!(group_by_name("no-such-group-xyz").unwrap(), None);
    }

    #[test]
    fn a_thread_gives_up_privileges_for_itself_and_its_children() {
        // On a thread of its own: the test process keeps its rights.
        std::thread::spawn(|| {
            set_no_new_privs().unwrap();
            drop_capabilities().unwrap();
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            assert!(status.contains("NoNewPrivs:\t1"), "{status}");
            assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
            assert!(status.contains("CapPrm:\t0000000000000000"), "{status}");
        })
        .join()
        .unwrap();
    }
}
