//! In-memory files: bytes that live as long as a descriptor to them (or a mapping of them) does,
//! reachable by no path, so nothing on disk can be deleted, filled or left behind. Sealed ones
//! hold a library; a shared one is a scratch file for the workers of a generation.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::syscall;

/// The longest name `memfd_create` accepts (it shows in `/proc/PID/fd` as `/memfd:NAME`).
const NAME_MAX: usize = 249;
/// Once sealed the file can neither change nor be unsealed: every process that maps it sees the
/// bytes that were written.
const SEALS: libc::c_int =
    libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;

/// An empty close-on-exec in-memory file named `name`, open for reading and writing: a scratch
/// file that the processes handed a descriptor to share, and that is gone with the last one.
pub(crate) fn shared_file(name: &str) -> io::Result<OwnedFd> {
    let name = memfd_name(name)?;
    // SAFETY: name is a NUL-terminated string that outlives the call; the flag is valid.
    let fd = syscall!(memfd_create(name.as_ptr(), libc::MFD_CLOEXEC))?;
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `name` as `memfd_create` takes it: no NUL, at most `NAME_MAX` bytes, not empty.
fn memfd_name(name: &str) -> io::Result<CString> {
    let mut name: Vec<u8> = name.bytes().filter(|&b| b != 0).take(NAME_MAX).collect();
    if name.is_empty() {
        name.push(b'-');
    }
    CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// A close-on-exec in-memory file named `name` (for `/proc/PID/fd`), holding `bytes`, sealed
/// against any change. It is executable: a library in it can be mapped by `dlopen` through
/// `/proc/self/fd/N`.
pub(crate) fn sealed_file(name: &str, bytes: &[u8]) -> io::Result<OwnedFd> {
    let mut file = sealable_file(name)?;
    file.write_all(bytes)?;
    seal(&file)?;
    Ok(OwnedFd::from(file))
}

/// An empty, executable, close-on-exec in-memory file that can be sealed.
fn sealable_file(name: &str) -> io::Result<File> {
    let name = memfd_name(name)?;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // Kernels since 6.3 may be set (vm.memfd_noexec) to make in-memory files non-executable
    // unless asked; older kernels refuse the flag with EINVAL, and their files are executable.
    // SAFETY: name is a NUL-terminated string that outlives the call; the flags are valid.
    let fd = match syscall!(memfd_create(name.as_ptr(), flags | libc::MFD_EXEC)) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // SAFETY: as above.
            syscall!(memfd_create(name.as_ptr(), flags))?
        }
        result => result?,
    };
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// How many times a write seal is asked for while the kernel answers that something holds one of
/// the file's pages (EBUSY). The kernel waits about 150 ms for such a reference before it answers
/// so; the one failure seen (a CI run's hot swap) came with nothing of ours holding the pages, so
/// it was a short-lived reference of the kernel's own, and a hot swap should not fail for one.
const SEAL_TRIES: u32 = 5;

/// Seals `file` against any change, asking again while the kernel finds its pages held.
fn seal(file: &File) -> io::Result<()> {
    let mut tries = 1;
    loop {
        // SAFETY: F_ADD_SEALS only changes the seals of an open memfd; no writable mapping of
        // it exists (it was only written with write(2)), which F_SEAL_WRITE requires.
        match syscall!(fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, SEALS)) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < SEAL_TRIES => tries += 1,
            result => return result.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    /// The kernel refuses a write seal (EBUSY) while anything holds a reference to one of the
    /// file's pages, after waiting about 150 ms for it to go. A fresh-clone CI run had a hot swap
    /// fail that way, once, with nothing of ours holding the pages. Here a pipe holds one (a
    /// page spliced into it) for 400 ms.
    #[test]
    fn a_seal_waits_out_a_page_held_for_a_moment() {
        let mut file = sealable_file("webserver-test-pinned").unwrap();
        file.write_all(&[7; 8192]).unwrap();
        let mut pipe = [0; 2];
        // SAFETY: pipe writes two descriptors into an array of two.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: the descriptors were just created and nothing else owns them.
        let (reader, writer) = unsafe { (File::from_raw_fd(pipe[0]), File::from_raw_fd(pipe[1])) };
        let mut offset: libc::loff_t = 0;
        // SAFETY: splice moves a page of the open memfd into the open pipe; `offset` outlives
        // the call and the null output offset is what a pipe takes.
        let spliced = unsafe {
            libc::splice(
                file.as_raw_fd(),
                &mut offset,
                writer.as_raw_fd(),
                std::ptr::null_mut(),
                4096,
                0,
            )
        };
        assert_eq!(spliced, 4096, "{}", io::Error::last_os_error());
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(400));
            let mut page = vec![0; 4096];
            (&reader).read_exact(&mut page).unwrap();
            drop(writer);
        });
        let sealed = seal(&file);
        release.join().unwrap();
        sealed.expect("sealed once the pipe let go of the page");
        assert_eq!(
            file.write_all(b"more").unwrap_err().raw_os_error(),
            Some(libc::EPERM)
        );
    }

    #[test]
    fn a_sealed_file_holds_its_bytes_and_refuses_changes() {
        let mut file = File::from(sealed_file("webserver-test", b"library bytes").unwrap());
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        assert_eq!(std::fs::read(&path).unwrap(), b"library bytes");
        let link = std::fs::read_link(&path).unwrap();
        assert!(
            link.to_string_lossy().starts_with("/memfd:webserver-test"),
            "{link:?}"
        );
        assert_eq!(
            file.write_all(b"more").unwrap_err().raw_os_error(),
            Some(libc::EPERM)
        );
        assert!(file.set_len(0).is_err());
        file.rewind().unwrap();
        let mut read = Vec::new();
        file.read_to_end(&mut read).unwrap();
        assert_eq!(read, b"library bytes");
    }
}
