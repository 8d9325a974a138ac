//! The app arguments of ABI 1.1 (`webserver LIB:SYMBOL [ARGS]...` → `ws_init.args`), read by
//! offset so this crate works with servers on either side of 1.1: the fields follow the 1.0
//! `ws_init`, and a server that does not send them has a `size` that does not cover them.

use app_abi::raw::{WsBytes, WsInit};
use core::mem::{offset_of, size_of};

/// `ws_init.args`: right after the 1.0 struct's last field, `error_len`.
const ARGS_OFFSET: usize = offset_of!(WsInit, error_len) + size_of::<*mut usize>();
/// `ws_init.n_args`.
const N_ARGS_OFFSET: usize = ARGS_OFFSET + size_of::<*const WsBytes>();
/// The `size` of a `ws_init` that has both.
const SIZE_WITH_ARGS: usize = N_ARGS_OFFSET + size_of::<usize>();

/// The app arguments as text (invalid UTF-8 replaced); empty when the server sends none.
///
/// # Safety
/// `init` must be the server's `WsInit`, valid for `init.size` bytes, with `args` (when `size`
/// covers it) pointing to `n_args` valid byte slices, as ABI 1.1 specifies.
pub(crate) unsafe fn read(init: &WsInit) -> Vec<String> {
    if (init.size as usize) < SIZE_WITH_ARGS {
        return Vec::new();
    }
    let base = (init as *const WsInit).cast::<u8>();
    // SAFETY: `size` covers both fields, so they are inside the server's struct; they are
    // pointer/usize aligned because they follow the 8-byte aligned 1.0 fields without padding.
    let (args, n_args) = unsafe {
        (
            base.add(ARGS_OFFSET).cast::<*const WsBytes>().read(),
            base.add(N_ARGS_OFFSET).cast::<usize>().read(),
        )
    };
    if args.is_null() || n_args == 0 {
        return Vec::new();
    }
    // SAFETY: ABI 1.1: `args` points to `n_args` slices valid during `init`.
    let args = unsafe { core::slice::from_raw_parts(args, n_args) };
    args.iter()
        // SAFETY: each slice's bytes are valid during `init` (ABI 1.1).
        .map(|a| String::from_utf8_lossy(unsafe { a.as_slice() }).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use app_abi::raw::WsHost;

    /// `ws_init` as an ABI 1.1 server lays it out, spelled out field by field so that this test
    /// means the same whether `raw::WsInit` has the 1.1 fields yet or not.
    #[repr(C)]
    struct InitV11 {
        size: u32,
        reserved: u32,
        host: *const WsHost,
        log_ctx: *const core::ffi::c_void,
        error_buf: *mut u8,
        error_cap: usize,
        error_len: *mut usize,
        args: *const WsBytes,
        n_args: usize,
    }

    fn init(size: usize, args: &[WsBytes]) -> InitV11 {
        InitV11 {
            size: size as u32,
            reserved: 0,
            host: core::ptr::null(),
            log_ctx: core::ptr::null(),
            error_buf: core::ptr::null_mut(),
            error_cap: 0,
            error_len: core::ptr::null_mut(),
            args: args.as_ptr(),
            n_args: args.len(),
        }
    }

    fn read_from(init: &InitV11) -> Vec<String> {
        // SAFETY: InitV11 starts with the 1.0 fields of WsInit in the same order (a prefix of it,
        // or all of it once WsInit has the 1.1 fields); `read` looks past the 1.0 fields only when
        // `size` says they are there, and the args point to valid slices.
        unsafe { read(&*(init as *const InitV11).cast::<WsInit>()) }
    }

    #[test]
    fn args_follow_the_1_0_fields() {
        // The 1.0 struct ends where the 1.1 fields start (48 on LP64: no tail padding).
        assert_eq!(ARGS_OFFSET, offset_of!(InitV11, args));
        assert_eq!(N_ARGS_OFFSET, offset_of!(InitV11, n_args));
        assert_eq!(SIZE_WITH_ARGS, size_of::<InitV11>());
    }

    #[test]
    fn a_1_1_server_passes_words_and_a_1_0_server_none() {
        let words = [
            WsBytes::from_slice(b"flaskapp:app"),
            WsBytes::from_slice(b"--venv=/v"),
        ];
        let v11 = init(size_of::<InitV11>(), &words);
        assert_eq!(read_from(&v11), ["flaskapp:app", "--venv=/v"]);
        // A 1.0 server's size stops before `args`: whatever lies there is not read.
        let v10 = init(ARGS_OFFSET, &words);
        assert!(read_from(&v10).is_empty());
    }
}
