//! Processes: a master that never loads app code, generations of workers that do.

pub(crate) mod artifact;
pub(crate) mod children;
pub(crate) mod elf;
pub(crate) mod master;
pub(crate) mod probe;
pub(crate) mod process;
pub(crate) mod reload;
pub(crate) mod worker;
