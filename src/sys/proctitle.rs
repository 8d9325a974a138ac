//! The process title `ps` shows: the argument strings, overwritten in place.
//!
//! Linux shows `/proc/PID/cmdline` (what `ps -o args`, `top -c` and `pgrep -f` read) from the
//! process's own memory between `arg_start` and `arg_end`, which the kernel reports in
//! `/proc/self/stat`; rewriting those bytes renames the process there, as gunicorn's
//! `setproctitle` does. `prctl(PR_SET_NAME)` would only change the 15-byte `comm`, which is left
//! alone so that `pgrep webserver` still finds every process. The title is cut to the space the
//! original arguments took (the environment after them is not touched), and the rest is zeroed,
//! so the last byte stays the terminating NUL and the kernel reads no further.

use std::io;

/// Renames this process in `ps` to `title` (cut to fit, without NUL bytes).
///
/// Call it only when nothing reads the argument strings through `std::env::args` any more (a
/// worker, once its command line is parsed): they read back as the title, then empty strings.
pub(crate) fn set(title: &str) -> io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let (start, end) = argument_area(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no argument area in /proc/self/stat",
        )
    })?;
    let Some(len) = end.checked_sub(start).filter(|&len| len > 0) else {
        return Ok(());
    };
    let title: Vec<u8> = title.bytes().filter(|&b| b != 0).collect();
    // The last byte stays a NUL.
    let n = title.len().min(len - 1);
    let area = start as *mut u8;
    // SAFETY: [arg_start, arg_end) is where the kernel put this process's argument strings, on
    // the initial stack, mapped writable for the process's whole life; the writes stay inside
    // it (`n < len`). Rust holds no reference into it: std keeps raw pointers to the strings and
    // reads them only when `std::env::args` is called, which the caller no longer does, and the
    // bytes remain NUL-terminated strings either way.
    unsafe {
        std::ptr::copy_nonoverlapping(title.as_ptr(), area, n);
        std::ptr::write_bytes(area.add(n), 0, len - n);
    }
    Ok(())
}

/// `arg_start` and `arg_end` (fields 48 and 49, Linux 3.5+) of a `/proc/PID/stat` line. The
/// command name (field 2) is in parentheses and may hold spaces and parentheses itself, so the
/// fields are counted after its last `)`.
fn argument_area(stat: &str) -> Option<(usize, usize)> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts with field 3.
    let mut fields = rest.split_whitespace().skip(48 - 3);
    let start = fields.next()?.parse().ok()?;
    let end = fields.next()?.parse().ok()?;
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_argument_area_is_read_after_the_command_name() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (start, end) = argument_area(&stat).unwrap();
        assert!(start > 0 && end > start, "{start} {end}");
        // A command name with spaces and a parenthesis does not shift the fields.
        let fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        let line = format!("1 (a b) c) {}", fields.join(" "));
        assert_eq!(argument_area(&line), Some((48, 49)));
        assert_eq!(argument_area("1 (x) S 0"), None);
    }
}
