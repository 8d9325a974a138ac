//! Is this shared library whole? A library copied while it was still being written can be cut
//! anywhere; when the cut falls after its loadable segments, `dlopen` maps it without complaint
//! and the truncated tail (symbol tables, debug info, the section header table) goes unnoticed
//! until something needs it. The ELF headers say how long the file must be: every table and
//! every section they point to has to lie inside the bytes we have.
//!
//! Only what decides completeness is read (ELF-64 and ELF-32, either byte order); whether the
//! library suits this machine stays `dlopen`'s question.

use std::fmt;

const MAGIC: &[u8; 4] = b"\x7fELF";
const CLASS_32: u8 = 1;
const CLASS_64: u8 = 2;
const DATA_BIG_ENDIAN: u8 = 2;
/// `p_type` of a segment mapped from the file.
const PT_LOAD: u32 = 1;
/// `sh_type` of a section that occupies no file bytes (`.bss`).
const SHT_NOBITS: u32 = 8;

/// Where the fields this check reads sit, for one ELF class.
struct Layout {
    header_len: usize,
    phoff: usize,
    shoff: usize,
    phentsize: usize,
    phnum: usize,
    shentsize: usize,
    shnum: usize,
    /// In a program header: p_type, p_offset, p_filesz.
    ph_type: usize,
    ph_offset: usize,
    ph_filesz: usize,
    /// In a section header: sh_type, sh_offset, sh_size.
    sh_type: usize,
    sh_offset: usize,
    sh_size: usize,
    /// Width of an address/offset field.
    word: usize,
}

const ELF64: Layout = Layout {
    header_len: 64,
    phoff: 32,
    shoff: 40,
    phentsize: 54,
    phnum: 56,
    shentsize: 58,
    shnum: 60,
    ph_type: 0,
    ph_offset: 8,
    ph_filesz: 32,
    sh_type: 4,
    sh_offset: 24,
    sh_size: 32,
    word: 8,
};

const ELF32: Layout = Layout {
    header_len: 52,
    phoff: 28,
    shoff: 32,
    phentsize: 42,
    phnum: 44,
    shentsize: 46,
    shnum: 48,
    ph_type: 0,
    ph_offset: 4,
    ph_filesz: 16,
    sh_type: 4,
    sh_offset: 16,
    sh_size: 20,
    word: 4,
};

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
    if !bytes.starts_with(MAGIC) {
        return Ok(());
    }
    let len = bytes.len() as u64;
    let truncated = |what: &str, ends_at: u64| Truncated {
        what: what.to_owned(),
        ends_at,
        len,
    };
    let (layout, big_endian) = match (bytes.get(4), bytes.get(5)) {
        (Some(&CLASS_64), Some(&data)) => (&ELF64, data == DATA_BIG_ENDIAN),
        (Some(&CLASS_32), Some(&data)) => (&ELF32, data == DATA_BIG_ENDIAN),
        (Some(_), Some(_)) => return Ok(()),
        _ => return Err(truncated("the ELF identification", 6)),
    };
    if bytes.len() < layout.header_len {
        return Err(truncated("the ELF header", layout.header_len as u64));
    }
    let read = Reader { bytes, big_endian };

    // Each table must fit, and so must every entry's bytes that it says are in the file.
    let tables = [
        Table {
            name: "the program header table",
            entry: "loadable segment",
            header: (layout.phoff, layout.phentsize, layout.phnum),
            fields: (layout.ph_type, layout.ph_offset, layout.ph_filesz),
            counts: |kind| kind == PT_LOAD,
        },
        Table {
            name: "the section header table",
            entry: "section",
            header: (layout.shoff, layout.shentsize, layout.shnum),
            fields: (layout.sh_type, layout.sh_offset, layout.sh_size),
            counts: |kind| kind != SHT_NOBITS,
        },
    ];
    for table in tables {
        let (offset_field, entsize_field, num_field) = table.header;
        let offset = read.at(offset_field as u64, layout.word);
        let entsize = read.at(entsize_field as u64, 2);
        let count = read.at(num_field as u64, 2);
        if offset == 0 && count == 0 {
            continue; // the table is absent: nothing is announced
        }
        let end = table_end(offset, entsize, count);
        if end > len {
            return Err(truncated(table.name, end));
        }
        let (type_field, start_field, size_field) = table.fields;
        for index in 0..count {
            let field = |at: usize| (offset + index * entsize).saturating_add(at as u64);
            if !(table.counts)(read.at(field(type_field), 4) as u32) {
                continue;
            }
            let start = read.at(field(start_field), layout.word);
            let size = read.at(field(size_field), layout.word);
            let end = start.saturating_add(size);
            if end > len {
                return Err(truncated(&format!("{} {index}", table.entry), end));
            }
        }
    }
    Ok(())
}

/// One table of the ELF headers: where its header fields are, and which of an entry's fields
/// say where its bytes are.
struct Table {
    name: &'static str,
    entry: &'static str,
    /// Offsets in the ELF header of the table's file offset, entry size and entry count.
    header: (usize, usize, usize),
    /// Offsets in an entry of its type, its file offset and its size in the file.
    fields: (usize, usize, usize),
    /// Whether an entry of this type occupies bytes of the file.
    counts: fn(u32) -> bool,
}

fn table_end(offset: u64, entsize: u64, count: u64) -> u64 {
    offset.saturating_add(entsize.saturating_mul(count))
}

/// Unsigned fields of either byte order; reads beyond the end give 0 (callers have checked
/// that the tables they walk are inside the file).
struct Reader<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl Reader<'_> {
    fn at(&self, at: u64, width: usize) -> u64 {
        let Some(field) = usize::try_from(at)
            .ok()
            .and_then(|at| self.bytes.get(at..at.checked_add(width)?))
        else {
            return 0;
        };
        let fold = |n: u64, &b: &u8| (n << 8) | u64::from(b);
        if self.big_endian {
            field.iter().fold(0, fold)
        } else {
            field.iter().rev().fold(0, fold)
        }
    }
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
