//! A seccomp filter that refuses, with `EPERM`, the process-level system calls a web app has no
//! business making: tracing other processes, mounting, loading kernels, modules and BPF
//! programs, rebooting, changing namespaces or the root, the kernel keyring. Everything else is
//! allowed: this is a deny list on top of the sandbox, not an allow list an app must be written
//! for.
//!
//! Hand-built classic BPF (about 40 instructions) rather than a crate: a deny list of fixed
//! numbers is one comparison each, and the `libc` crate already has every constant.

use std::io;

/// `AUDIT_ARCH_*` of the architecture this binary is built for: the filter refuses calls made
/// under another ABI, whose numbers mean other calls.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// x86-64's x32 ABI: the same numbers with this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Refused calls, by number.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const DENIED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_adjtimex,
    libc::SYS_syslog,
    libc::SYS_vhangup,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
];

fn statement(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The filter program: the architecture, then one comparison per refused call.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn program() -> Vec<libc::sock_filter> {
    use libc::{
        BPF_ABS, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W, SECCOMP_RET_ALLOW,
        SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS,
    };
    // struct seccomp_data: int nr; __u32 arch; ...
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    let refuse = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let mut program = vec![
        statement(BPF_LD | BPF_W | BPF_ABS, ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
        statement(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        statement(BPF_LD | BPF_W | BPF_ABS, NR),
        jump(BPF_JMP | BPF_JSET | BPF_K, X32_SYSCALL_BIT, 0, 1),
        statement(BPF_RET | BPF_K, refuse),
    ];
    for &nr in DENIED {
        // Equal: fall through to the refusal; else skip it.
        program.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, 0, 1));
        program.push(statement(BPF_RET | BPF_K, refuse));
    }
    program.push(statement(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    program
}

/// Installs the filter on every thread of this process (`SECCOMP_FILTER_FLAG_TSYNC`), for good:
/// threads and programs started later inherit it. Needs `no_new_privs` (or privilege) first.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn install() -> io::Result<()> {
    let program = program();
    let fprog = libc::sock_fprog {
        len: u16::try_from(program.len()).map_err(|_| io::Error::other("filter too long"))?,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER) reads `fprog` and the `len` instructions it
    // points to, both alive for the call; the kernel copies the program.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &fprog as *const libc::sock_fprog,
        )
    };
    match rc {
        0 => Ok(()),
        // TSYNC answers with the id of a thread it could not synchronise.
        rc if rc > 0 => Err(io::Error::other(format!(
            "thread {rc} has another seccomp filter"
        ))),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn install() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no seccomp filter for this architecture",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refused_call_has_its_comparison() {
        let program = program();
        assert_eq!(program.len(), 6 + 2 * DENIED.len() + 1);
        assert!(program.len() < usize::from(u16::MAX));
    }
}
