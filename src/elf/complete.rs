//! Is this shared library whole? A library copied while it was still being written can be cut
//! anywhere; when the cut falls after its loadable segments, `dlopen` maps it without complaint
//! and the truncated tail (symbol tables, debug info, the section header table) goes unnoticed
//! until something needs it. The ELF headers say how long the file must be: every table and
//! every section they point to has to lie inside the bytes we have.
//!
//! Only what decides completeness is read (ELF-64 and ELF-32, either byte order); whether the
//! library suits this machine stays `dlopen`'s question.

use std::fmt;

use super::{Elf, Ident, IDENT_LEN};

/// `p_type` of a segment mapped from the file.
const PT_LOAD: u64 = 1;
/// `sh_type` of a section that occupies no file bytes (`.bss`).
const SHT_NOBITS: u64 = 8;

/// The ELF headers point past the end of the file: what ends where.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Truncated {
    /// What lies (partly) beyond the end, e.g. "the section header table".
    pub(crate) what: String,
    /// The byte offset it needs the file to reach.
    pub(crate) ends_at: u64,
    /// The file's length.
    pub(crate) len: u64,
}

impl fmt::Display for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ends at byte {} but the file has {} bytes",
            self.what, self.ends_at, self.len
        )
    }
}

/// Checks that an ELF file holds everything its headers announce. Bytes that are not ELF at all
/// pass: `dlopen` explains those better.
pub(crate) fn check_complete(bytes: &[u8]) -> Result<(), Truncated> {
    let len = bytes.len() as u64;
    let truncated = |what: &str, ends_at: u64| Truncated {
        what: what.to_owned(),
        ends_at,
        len,
    };
    let elf = match Elf::identify(bytes) {
        Ident::NotElf | Ident::OtherClass => return Ok(()),
        Ident::Cut => return Err(truncated("the ELF identification", IDENT_LEN)),
        Ident::Elf(elf) => elf,
    };
    let layout = elf.layout;
    if elf.len() < layout.header_len {
        return Err(truncated("the ELF header", layout.header_len));
    }
    // Each table must fit, and so must every entry's bytes that it says are in the file.
    let tables = [
        Table {
            name: "the program header table",
            entry: "loadable segment",
            header: elf.program_table(),
            fields: (layout.ph_type, layout.ph_offset, layout.ph_filesz),
            counts: |kind| kind == PT_LOAD,
        },
        Table {
            name: "the section header table",
            entry: "section",
            header: elf.section_table(),
            fields: (layout.sh_type, layout.sh_offset, layout.sh_size),
            counts: |kind| kind != SHT_NOBITS,
        },
    ];
    for table in tables {
        let (offset, entsize, count) = table.header;
        if offset == 0 && count == 0 {
            continue; // the table is absent: nothing is announced
        }
        let end = offset.saturating_add(entsize.saturating_mul(count));
        if end > len {
            return Err(truncated(table.name, end));
        }
        let (type_field, start_field, size_field) = table.fields;
        for index in 0..count {
            let field = |at| Elf::entry_field(offset, entsize, index, at);
            if !(table.counts)(elf.read(field(type_field), 4)) {
                continue;
            }
            let end = elf
                .word(field(start_field))
                .saturating_add(elf.word(field(size_field)));
            if end > len {
                return Err(truncated(&format!("{} {index}", table.entry), end));
            }
        }
    }
    Ok(())
}

/// One table of the ELF headers and which of an entry's fields say where its bytes are.
struct Table {
    name: &'static str,
    entry: &'static str,
    /// The table's file offset, entry size and entry count.
    header: (u64, u64, u64),
    /// Offsets in an entry of its type, its file offset and its size in the file.
    fields: (u64, u64, u64),
    /// Whether an entry of this type occupies bytes of the file.
    counts: fn(u64) -> bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF file of this platform with program and section headers: the test binary itself.
    fn real_library() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn a_whole_file_passes_and_every_cut_of_its_tail_is_caught() {
        let whole = real_library();
        assert_eq!(check_complete(&whole), Ok(()));
        for cut in [1, 64, 4096, whole.len() / 2, whole.len() - 70] {
            let short = &whole[..whole.len() - cut];
            let err = check_complete(short).expect_err(&format!("cut {cut} bytes"));
            assert_eq!(err.len, short.len() as u64);
            assert!(err.ends_at > err.len, "{err}");
        }
    }

    #[test]
    fn headers_cut_short() {
        let whole = real_library();
        let cases: [(usize, &str); 3] = [
            (5, "the ELF identification"),
            (40, "the ELF header"),
            (70, "the program header table"),
        ];
        for (keep, what) in cases {
            let err = check_complete(&whole[..keep]).unwrap_err();
            assert_eq!(err.what, what, "keep {keep}");
        }
    }

    #[test]
    fn not_elf_is_left_to_dlopen() {
        assert_eq!(check_complete(b"#!/bin/sh\necho hi\n"), Ok(()));
        assert_eq!(check_complete(b""), Ok(()));
    }
}
