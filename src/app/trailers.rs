//! A request's trailer fields as the app receives them (ABI 1.3 `request_trailers`): one byte
//! buffer and the `ws_pair` array pointing into it, kept by the request's transport until the
//! request ends, so the pointers the app got stay valid until `close` returns as the header
//! promises.

use app_abi::raw::{WsBytes, WsPair};

/// Trailer fields in the ABI's shape. Built once, never changed: the pairs point into `bytes`'
/// heap buffer, which does not move when the list does.
#[derive(Default)]
pub(crate) struct FieldList {
    /// What the pairs point into: only kept alive, never read or written after `new`.
    _bytes: Vec<u8>,
    pairs: Vec<WsPair>,
}

// SAFETY: the raw pointers in `pairs` only point into `_bytes`, owned by the same value and
// never written after `new`; moving the list to another thread (a parked request resumed there)
// moves both together.
unsafe impl Send for FieldList {}

impl FieldList {
    pub(crate) fn new<'f>(fields: impl Iterator<Item = (&'f [u8], &'f [u8])>) -> Self {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        for (name, value) in fields {
            let start = bytes.len();
            bytes.extend_from_slice(name);
            bytes.extend_from_slice(value);
            spans.push((start, name.len(), value.len()));
        }
        // Every byte is in: from here on `bytes` never reallocates.
        let base = bytes.as_ptr();
        let slice = |at: usize, len: usize| WsBytes {
            // `wrapping_add` keeps this free of unsafe; `at + len <= bytes.len()` by construction.
            ptr: base.wrapping_add(at),
            len,
        };
        let pairs = spans
            .into_iter()
            .map(|(at, name, value)| WsPair {
                name: slice(at, name),
                value: slice(at + name, value),
            })
            .collect();
        FieldList {
            _bytes: bytes,
            pairs,
        }
    }

    /// The pairs, valid as long as this list.
    pub(crate) fn pairs(&self) -> &[WsPair] {
        &self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_read_back_after_the_list_moves() {
        let fields: [(&[u8], &[u8]); 3] = [(b"grpc-status", b"0"), (b"x-empty", b""), (b"a", b"b")];
        let list = FieldList::new(fields.iter().copied());
        let moved = Box::new(list);
        // SAFETY: the pairs point into the list's own buffer, alive here.
        let back: Vec<_> = moved
            .pairs()
            .iter()
            .map(|p| unsafe { (p.name.as_slice(), p.value.as_slice()) })
            .collect();
        assert_eq!(back, fields);
    }
}
