//! A response leaves as a list of byte slices (a head, a body, a chunk frame around it) handed
//! to one vectored write; every writer — the plain socket's, waiting or not, and TLS's — walks
//! the list the same way: the slices after the bytes already taken.

use std::io::IoSlice;

/// Slices handed to one vectored write: enough for a head, a body and a chunk frame around it.
pub(crate) const MAX_WRITE_SLICES: usize = 8;

/// Fills `slices` with the non-empty rest of `parts` after their first `skip` bytes (up to
/// [`MAX_WRITE_SLICES`]); returns how many it filled (0: nothing left).
pub(crate) fn slices_after<'a>(
    parts: &[&'a [u8]],
    mut skip: usize,
    slices: &mut [IoSlice<'a>; MAX_WRITE_SLICES],
) -> usize {
    let mut count = 0;
    for part in parts {
        if count == slices.len() {
            break;
        }
        let rest = part.get(skip.min(part.len())..).unwrap_or_default();
        skip = skip.saturating_sub(part.len());
        if !rest.is_empty() {
            slices[count] = IoSlice::new(rest);
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_after_skip_without_empty_parts() {
        let parts: [&[u8]; 4] = [b"head", b"", b"body", b"!"];
        let rest = |skip| {
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
            let count = slices_after(&parts, skip, &mut slices);
            slices[..count]
                .iter()
                .map(|s| s.to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(rest(0), [b"head".to_vec(), b"body".to_vec(), b"!".to_vec()]);
        assert_eq!(rest(2), [b"ad".to_vec(), b"body".to_vec(), b"!".to_vec()]);
        assert_eq!(rest(4), [b"body".to_vec(), b"!".to_vec()]);
        assert_eq!(rest(8), [b"!".to_vec()]);
        assert!(rest(9).is_empty());
        assert!(rest(100).is_empty());
    }
}
