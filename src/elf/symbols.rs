//! What a library's ELF symbol tables say about a name, for the hints of a failed load: whether
//! the symbol the user named is a function or data (so "not a descriptor" can say which), and
//! which mangled names spell it (a C++ descriptor without `extern "C"` is `_ZL3app`, a Rust
//! static without `#[no_mangle]` `_ZN5crate3app17h…E`).
//!
//! Read from the file, not from memory: the tables are what the linker wrote, whatever the
//! dynamic loader did, and reading them needs no `unsafe`. Only the error path reads them, so
//! nothing here is fast. ELF-64 and ELF-32, either byte order; anything unreadable is "unknown".

use super::{Elf, Ident};

/// `sh_type` of the full symbol table (absent once stripped) and of the dynamic one.
const SHT_SYMTAB: u64 = 2;
const SHT_DYNSYM: u64 = 11;
/// `st_info & 0xf`: data, function, and GNU indirect function (a function resolved at load).
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;
/// `st_shndx` of a symbol the library uses but does not define.
const SHN_UNDEF: u64 = 0;
/// The prefix of every Itanium C++ (and legacy Rust) mangled name.
const MANGLED_PREFIX: &str = "_Z";

/// What kind of thing a defined symbol is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SymbolKind {
    Function,
    Data,
    Other,
}

/// One symbol table entry, as far as the hints need it.
#[derive(Debug)]
struct Symbol {
    name: String,
    kind: SymbolKind,
    /// `st_size`: the object's or function's length in bytes (0 when unknown).
    size: u64,
    defined: bool,
    dynamic: bool,
}

/// The kind and size (`st_size`) of the exported (dynamic) symbol `name` defined in the
/// library, if the file says.
pub(crate) fn exported(bytes: &[u8], name: &str) -> Option<(SymbolKind, u64)> {
    symbols(bytes)
        .into_iter()
        .find(|s| s.dynamic && s.defined && s.name == name)
        .map(|s| (s.kind, s.size))
}

/// Defined symbols whose mangled name spells `name` as one of its components, e.g. `_ZL3app`
/// or `_ZN2my3appE` for `app`: the descriptor the author meant, under a name dlsym cannot find.
pub(crate) fn mangled_spellings(bytes: &[u8], name: &str) -> Vec<String> {
    let component = format!("{}{name}", name.len());
    let mut found: Vec<String> = symbols(bytes)
        .into_iter()
        .filter(|s| s.defined && s.name.starts_with(MANGLED_PREFIX))
        .filter(|s| {
            // A length prefix fixes the component: only a non-digit may precede it ("13app…"
            // is a 13-character name, not "app").
            s.name.match_indices(&component).any(|(at, _)| {
                !s.name[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_digit())
            })
        })
        .map(|s| s.name)
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Every entry of `.dynsym` and `.symtab`; empty when the bytes are not an ELF file we can read.
fn symbols(bytes: &[u8]) -> Vec<Symbol> {
    let Ident::Elf(elf) = Elf::identify(bytes) else {
        return Vec::new();
    };
    let layout = elf.layout;
    let (table, table_entsize, count) = elf.section_table();
    let section = |index: u64, field: u64| Elf::entry_field(table, table_entsize, index, field);
    let mut out = Vec::new();
    for index in 0..count {
        let kind = elf.read(section(index, layout.sh_type), 4);
        if kind != SHT_SYMTAB && kind != SHT_DYNSYM {
            continue;
        }
        let strings = elf.read(section(index, layout.sh_link), 4);
        let (str_start, str_size) = (
            elf.word(section(strings, layout.sh_offset)),
            elf.word(section(strings, layout.sh_size)),
        );
        let start = elf.word(section(index, layout.sh_offset));
        let size = elf.word(section(index, layout.sh_size));
        let entsize = elf.word(section(index, layout.sh_entsize));
        if entsize == 0 {
            continue;
        }
        for entry_index in 0..size / entsize {
            let entry = start.saturating_add(entry_index * entsize);
            let name_at = elf.read(entry, 4);
            let info = elf.read(entry.saturating_add(layout.st_info), 1) as u8;
            let shndx = elf.read(entry.saturating_add(layout.st_shndx), 2);
            let size = elf.word(entry.saturating_add(layout.st_size));
            let Some(name) = elf.c_string(str_start, str_size, name_at) else {
                continue;
            };
            out.push(Symbol {
                name,
                kind: match info & 0xf {
                    STT_FUNC | STT_GNU_IFUNC => SymbolKind::Function,
                    STT_OBJECT => SymbolKind::Data,
                    _ => SymbolKind::Other,
                },
                size,
                defined: shndx != SHN_UNDEF,
                dynamic: kind == SHT_DYNSYM,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF file of this platform with both symbol tables: the test binary itself.
    fn this_binary() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[no_mangle]
    static SYMBOLS_TEST_DATA: u32 = 7;

    #[no_mangle]
    extern "C" fn symbols_test_function() -> u32 {
        SYMBOLS_TEST_DATA
    }

    #[test]
    fn kinds_of_exported_symbols() {
        let bytes = this_binary();
        assert_eq!(symbols_test_function(), 7);
        let all = symbols(&bytes);
        let find = |name: &str| all.iter().find(|s| s.name == name && s.defined);
        assert_eq!(find("SYMBOLS_TEST_DATA").unwrap().kind, SymbolKind::Data);
        assert_eq!(find("SYMBOLS_TEST_DATA").unwrap().size, 4);
        assert_eq!(
            find("symbols_test_function").unwrap().kind,
            SymbolKind::Function
        );
    }

    #[test]
    fn mangled_spellings_need_the_length_prefix() {
        let bytes = this_binary();
        // This function's own mangled name (legacy Rust mangling) spells its last component.
        let found = mangled_spellings(&bytes, "mangled_spellings_need_the_length_prefix");
        assert!(!found.is_empty(), "no mangled spelling found");
        assert!(mangled_spellings(&bytes, "spellings_need_the_length_prefix").is_empty());
    }

    #[test]
    fn not_elf_has_no_symbols() {
        assert!(symbols(b"#!/bin/sh\n").is_empty());
        assert!(symbols(b"\x7fELF").is_empty());
        let mut cut = this_binary();
        cut.truncate(cut.len() / 3);
        let _ = symbols(&cut); // whatever it finds, it does not panic
    }
}
