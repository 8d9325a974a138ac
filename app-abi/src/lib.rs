//! The contract between `webserver` and the apps it loads.
//!
//! - [`raw`]: the `#[repr(C)]` ABI, field for field the C header `include/webserver_app.h`.
//! - The crate root: a safe Rust layer (an [`App`] trait, [`Request`] accessors, a [`Response`]
//!   builder, [`Body`] kinds) and the [`export_app!`] macro, so a Rust app is about ten lines and no
//!   panic ever unwinds across the ABI.
#![deny(missing_docs)]

pub mod raw;
mod safe;

pub use safe::*;
