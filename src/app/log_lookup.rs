//! The environ as the access log reads it: the log sits below the app layer and knows only its
//! [`Lookup`] trait, which the environ implements here.

use super::environ::Environ;
use crate::logging::Lookup;

impl Lookup for Environ {
    fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.var(name)
    }

    fn for_each<'s>(&'s self, f: &mut dyn FnMut(&'s [u8], &'s [u8])) {
        for (name, value) in self.vars() {
            f(name, value);
        }
    }
}
