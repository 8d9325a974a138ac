//! The environ as the access log reads it: the log sits below the app layer and knows only its
//! [`Lookup`] trait, which the environ implements here.
//!
//! The environ of an app that reads the parts holds no `HTTP_*` variables (its fields are in
//! the parts only): the log finds them there, under the names they would have had, so a line
//! reads the same whichever way the app takes its requests. Only a repeated field differs: the
//! environ joins repeats, the parts keep them apart, and the log shows the first.

use super::environ::{cgi_byte, Environ};
use crate::logging::Lookup;

/// Room for most `HTTP_` names on the stack (a longer one is spelled in a `Vec`).
const NAME_ROOM: usize = 64;

impl Lookup for Environ {
    fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.var(name).or_else(|| {
            let cgi = name.strip_prefix(b"HTTP_")?;
            self.fields_apart()?
                .find(|(field, _)| is_cgi_name_of(cgi, field))
                .map(|(_, value)| value)
        })
    }

    fn for_each<'s>(&'s self, f: &mut dyn FnMut(&[u8], &'s [u8])) {
        for (name, value) in self.vars() {
            f(name, value);
        }
        let Some(fields) = self.fields_apart() else {
            return;
        };
        let mut room = [0u8; NAME_ROOM];
        let mut long = Vec::new();
        for (field, value) in fields {
            let cgi = cgi_name(field, &mut room, &mut long);
            // Already in the environ under their CGI names.
            if cgi != b"HTTP_CONTENT_TYPE" && cgi != b"HTTP_CONTENT_LENGTH" {
                f(cgi, value);
            }
        }
    }
}

/// `cgi` (a CGI name without `HTTP_`) is how field name `field` is spelled in an environ.
fn is_cgi_name_of(cgi: &[u8], field: &[u8]) -> bool {
    cgi.len() == field.len()
        && cgi != b"CONTENT_TYPE"
        && cgi != b"CONTENT_LENGTH"
        && field.iter().zip(cgi).all(|(&f, &c)| cgi_byte(f) == c)
}

/// `HTTP_` + `field` in CGI spelling, in `room` when it fits, else in `long`.
fn cgi_name<'b>(field: &[u8], room: &'b mut [u8; NAME_ROOM], long: &'b mut Vec<u8>) -> &'b [u8] {
    let spelled = b"HTTP_"
        .iter()
        .copied()
        .chain(field.iter().map(|&b| cgi_byte(b)));
    if 5 + field.len() <= NAME_ROOM {
        for (to, b) in room.iter_mut().zip(spelled) {
            *to = b;
        }
        &room[..5 + field.len()]
    } else {
        long.clear();
        long.extend(spelled);
        long
    }
}
