//! Lists the entries of a zip file (a .vsix) from its central directory, without extracting.
//! Enough for a .vsix: no zip64, which tfx never writes for an archive under 4 GiB.

/// One entry: its name and its sizes.
#[derive(Debug)]
pub(crate) struct ZipEntry {
    pub(crate) name: String,
    pub(crate) compressed_size: u64,
    pub(crate) size: u64,
}

const END_OF_CENTRAL_DIRECTORY: u32 = 0x0605_4b50;
const CENTRAL_DIRECTORY_HEADER: u32 = 0x0201_4b50;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The entries of the archive `bytes`. Panics (it is a test helper) on a malformed archive.
pub(crate) fn entries(bytes: &[u8]) -> Vec<ZipEntry> {
    let eocd = (0..=bytes.len() - 22)
        .rev()
        .find(|&at| u32_at(bytes, at) == END_OF_CENTRAL_DIRECTORY)
        .expect("no end of central directory record: not a zip file");
    let count = usize::from(u16_at(bytes, eocd + 10));
    let mut at = u32_at(bytes, eocd + 16) as usize;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        assert_eq!(
            u32_at(bytes, at),
            CENTRAL_DIRECTORY_HEADER,
            "bad central directory"
        );
        let name_len = usize::from(u16_at(bytes, at + 28));
        let extra_len = usize::from(u16_at(bytes, at + 30));
        let comment_len = usize::from(u16_at(bytes, at + 32));
        entries.push(ZipEntry {
            name: String::from_utf8_lossy(&bytes[at + 46..at + 46 + name_len]).into_owned(),
            compressed_size: u64::from(u32_at(bytes, at + 20)),
            size: u64::from(u32_at(bytes, at + 24)),
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    entries
}
