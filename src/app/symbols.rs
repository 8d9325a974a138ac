//! What a library's ELF symbol tables say about a name, for the hints of a failed load: whether
//! the symbol the user named is a function or data (so "not a descriptor" can say which), and
//! which mangled names spell it (a C++ descriptor without `extern "C"` is `_ZL3app`, a Rust
//! static without `#[no_mangle]` `_ZN5crate3app17h…E`).
//!
//! Read from the file, not from memory: the tables are what the linker wrote, whatever the
//! dynamic loader did, and reading them needs no `unsafe`. Only the error path reads them, so
//! nothing here is fast. ELF-64 and ELF-32, either byte order; anything unreadable is "unknown".

/// `e_ident` magic.
const MAGIC: &[u8; 4] = b"\x7fELF";
const CLASS_32: u8 = 1;
const CLASS_64: u8 = 2;
const DATA_BIG_ENDIAN: u8 = 2;
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
    let Some(elf) = Elf::new(bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for section in 0..elf.section_count() {
        let kind = elf.section_field(section, elf.layout.sh_type, 4);
        if kind != SHT_SYMTAB && kind != SHT_DYNSYM {
            continue;
        }
        let strings = elf.section_field(section, elf.layout.sh_link, 4);
        let (str_start, str_size) = (
            elf.section_field(strings, elf.layout.sh_offset, elf.layout.word),
            elf.section_field(strings, elf.layout.sh_size, elf.layout.word),
        );
        let start = elf.section_field(section, elf.layout.sh_offset, elf.layout.word);
        let size = elf.section_field(section, elf.layout.sh_size, elf.layout.word);
        let entsize = elf.section_field(section, elf.layout.sh_entsize, elf.layout.word);
        if entsize == 0 {
            continue;
        }
        for index in 0..size / entsize {
            let entry = start.saturating_add(index * entsize);
            let name_at = elf.read(entry, 4);
            let info = elf.read(entry + elf.layout.st_info, 1) as u8;
            let shndx = elf.read(entry + elf.layout.st_shndx, 2);
            let size = elf.read(entry + elf.layout.st_size, elf.layout.word);
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

/// Where the fields read here sit, for one ELF class.
struct Layout {
    shoff: u64,
    shentsize: u64,
    shnum: u64,
    sh_type: u64,
    sh_offset: u64,
    sh_size: u64,
    sh_link: u64,
    sh_entsize: u64,
    st_info: u64,
    st_shndx: u64,
    st_size: u64,
    word: usize,
}

const ELF64: Layout = Layout {
    shoff: 40,
    shentsize: 58,
    shnum: 60,
    sh_type: 4,
    sh_offset: 24,
    sh_size: 32,
    sh_link: 40,
    sh_entsize: 56,
    st_info: 4,
    st_shndx: 6,
    st_size: 16,
    word: 8,
};

const ELF32: Layout = Layout {
    shoff: 32,
    shentsize: 46,
    shnum: 48,
    sh_type: 4,
    sh_offset: 16,
    sh_size: 20,
    sh_link: 24,
    sh_entsize: 36,
    st_info: 12,
    st_shndx: 14,
    st_size: 8,
    word: 4,
};

/// An ELF file's bytes; reads outside them give 0 (or no string), so a damaged file yields
/// fewer symbols, never a panic.
struct Elf<'a> {
    bytes: &'a [u8],
    big_endian: bool,
    layout: &'static Layout,
}

impl<'a> Elf<'a> {
    fn new(bytes: &'a [u8]) -> Option<Elf<'a>> {
        if !bytes.starts_with(MAGIC) {
            return None;
        }
        let layout = match *bytes.get(4)? {
            CLASS_64 => &ELF64,
            CLASS_32 => &ELF32,
            _ => return None,
        };
        Some(Elf {
            bytes,
            big_endian: *bytes.get(5)? == DATA_BIG_ENDIAN,
            layout,
        })
    }

    fn section_count(&self) -> u64 {
        self.read(self.layout.shnum, 2)
    }

    fn section_field(&self, section: u64, field: u64, width: usize) -> u64 {
        let table = self.read(self.layout.shoff, self.layout.word);
        let entsize = self.read(self.layout.shentsize, 2);
        self.read(
            table
                .saturating_add(section.saturating_mul(entsize))
                .saturating_add(field),
            width,
        )
    }

    fn read(&self, at: u64, width: usize) -> u64 {
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

    /// The NUL-terminated string at `offset` of the string table at `start` (`size` bytes).
    fn c_string(&self, start: u64, size: u64, offset: u64) -> Option<String> {
        if offset == 0 || offset >= size {
            return None;
        }
        let from = usize::try_from(start.checked_add(offset)?).ok()?;
        let to = usize::try_from(start.checked_add(size)?).ok()?;
        let table = self.bytes.get(from..to.min(self.bytes.len()))?;
        let end = table.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&table[..end]).into_owned())
    }
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
