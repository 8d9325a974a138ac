//! The host side of the ABI: the only place with dlopen and raw pointers.

pub(crate) mod bench;
pub(crate) mod call;
pub(crate) mod environ;
pub(crate) mod exchange;
pub(crate) mod host;
pub(crate) mod host_upgrade;
pub(crate) mod loader;
mod log_lookup;
pub(crate) mod parts;
pub(crate) mod target;
pub(crate) mod trailers;
pub(crate) mod upgraded;
pub(crate) mod waker;
