//! Reading ELF files from their bytes, without `unsafe` and without trusting them: the one
//! reader behind both questions the server asks of a library file —
//! whether it is whole (`complete.rs`: a copy caught half-written is refused before a swap) and
//! what its symbol tables say about a name (`symbols.rs`: the hints of a failed load).
//!
//! ELF-64 and ELF-32, either byte order. Reads outside the bytes give 0 (or no string), so a
//! damaged file yields "unknown", never a panic; what must be inside the file is `complete.rs`'s
//! question.

pub(crate) mod complete;
pub(crate) mod symbols;

/// `e_ident` magic.
const MAGIC: &[u8; 4] = b"\x7fELF";
const CLASS_32: u8 = 1;
const CLASS_64: u8 = 2;
const DATA_BIG_ENDIAN: u8 = 2;
/// Bytes of `e_ident` up to and including the class and byte-order fields.
const IDENT_LEN: u64 = 6;

/// Where the fields read here sit, for one ELF class.
struct Layout {
    /// Size of the ELF header.
    header_len: u64,
    phoff: u64,
    shoff: u64,
    phentsize: u64,
    phnum: u64,
    shentsize: u64,
    shnum: u64,
    /// In a program header.
    ph_type: u64,
    ph_offset: u64,
    ph_filesz: u64,
    /// In a section header.
    sh_type: u64,
    sh_offset: u64,
    sh_size: u64,
    sh_link: u64,
    sh_entsize: u64,
    /// In a symbol table entry.
    st_info: u64,
    st_shndx: u64,
    st_size: u64,
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
    sh_link: 40,
    sh_entsize: 56,
    st_info: 4,
    st_shndx: 6,
    st_size: 16,
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
    sh_link: 24,
    sh_entsize: 36,
    st_info: 12,
    st_shndx: 14,
    st_size: 8,
    word: 4,
};

/// What the first bytes say a file is.
enum Ident<'a> {
    /// Not ELF at all.
    NotElf,
    /// ELF magic, but too short to say its class and byte order.
    Cut,
    /// ELF of a class this reader does not know.
    OtherClass,
    Elf(Elf<'a>),
}

/// An ELF file's bytes and how to read its fields.
struct Elf<'a> {
    bytes: &'a [u8],
    big_endian: bool,
    layout: &'static Layout,
}

impl<'a> Elf<'a> {
    fn identify(bytes: &'a [u8]) -> Ident<'a> {
        if !bytes.starts_with(MAGIC) {
            return Ident::NotElf;
        }
        let (Some(&class), Some(&data)) = (bytes.get(4), bytes.get(5)) else {
            return Ident::Cut;
        };
        let layout = match class {
            CLASS_64 => &ELF64,
            CLASS_32 => &ELF32,
            _ => return Ident::OtherClass,
        };
        Ident::Elf(Elf {
            bytes,
            big_endian: data == DATA_BIG_ENDIAN,
            layout,
        })
    }

    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The unsigned field of `width` bytes at `at`; 0 beyond the end.
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

    /// An address-sized field (8 bytes in ELF-64, 4 in ELF-32).
    fn word(&self, at: u64) -> u64 {
        self.read(at, self.layout.word)
    }

    /// The section header table: (offset, entry size, entry count).
    fn section_table(&self) -> (u64, u64, u64) {
        let layout = self.layout;
        (
            self.word(layout.shoff),
            self.read(layout.shentsize, 2),
            self.read(layout.shnum, 2),
        )
    }

    /// The program header table: (offset, entry size, entry count).
    fn program_table(&self) -> (u64, u64, u64) {
        let layout = self.layout;
        (
            self.word(layout.phoff),
            self.read(layout.phentsize, 2),
            self.read(layout.phnum, 2),
        )
    }

    /// Where field `field` of entry `index` of a table at `offset` with `entsize` entries is.
    fn entry_field(offset: u64, entsize: u64, index: u64, field: u64) -> u64 {
        offset
            .saturating_add(index.saturating_mul(entsize))
            .saturating_add(field)
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
