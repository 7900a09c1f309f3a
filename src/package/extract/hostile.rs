//! Test support: hostile archives and a way to compare directory trees.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::package::DeploymentPackage;

/// Every path under `root`, with its kind, mode and contents (or link target).
pub(super) fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for child in fs::read_dir(dir).unwrap() {
            let path = child.unwrap().path();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(relative, format!("link -> {}", target.display()));
            } else if meta.is_dir() {
                out.insert(relative, format!("dir {mode:o}"));
                walk(root, &path, out);
            } else {
                let body = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
                out.insert(relative, format!("file {mode:o} {body}"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A zip written entry by entry with the zip crate's writer, for archives `CodeZip` refuses
/// to make.
pub(super) struct Hostile(ZipWriter<Cursor<Vec<u8>>>);

pub(super) fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::DEFAULT.compression_method(CompressionMethod::Deflated)
}

impl Hostile {
    pub(super) fn new() -> Self {
        Self(ZipWriter::new(Cursor::new(Vec::new())))
    }

    pub(super) fn file(self, name: &str, body: &[u8]) -> Self {
        self.file_with(name, body, deflated())
    }

    pub(super) fn file_with(mut self, name: &str, body: &[u8], options: SimpleFileOptions) -> Self {
        self.0.start_file(name, options).unwrap();
        self.0.write_all(body).unwrap();
        self
    }

    pub(super) fn dir_with(mut self, name: &str, options: SimpleFileOptions) -> Self {
        self.0.add_directory(name, options).unwrap();
        self
    }

    pub(super) fn symlink(mut self, name: &str, target: &str) -> Self {
        self.0.add_symlink(name, target, deflated()).unwrap();
        self
    }

    pub(super) fn bytes(self) -> Vec<u8> {
        self.0.finish().unwrap().into_inner()
    }

    pub(super) fn package(self) -> DeploymentPackage {
        DeploymentPackage::from_zip(self.bytes()).unwrap()
    }
}

/// A one-entry zip holding `1 + 258 * matches` zeros as a hand-made deflate stream.
///
/// The zip crate's writer compresses at a few MB/s in an unoptimised test build, so a
/// 300 MB bomb would take most of a minute to make; this one takes milliseconds and never
/// holds more than its ~2 MB compressed form in memory.
pub(super) fn zero_bomb(matches: u64) -> DeploymentPackage {
    let uncompressed = 1 + 258 * matches;
    let deflate = zeros_deflate(matches);
    let crc = crc32_of_zeros(uncompressed);
    DeploymentPackage::from_zip(single_entry_zip("bomb.bin", &deflate, crc, uncompressed)).unwrap()
}

/// A fixed-Huffman deflate block (RFC 1951 §3.2.6): one literal zero, then `matches`
/// copies of "length 258, distance 1". 13 bits per 258 bytes: about 159:1.
fn zeros_deflate(matches: u64) -> Vec<u8> {
    let mut bits = BitWriter::default();
    bits.put(1, 1); // BFINAL
    bits.put(0b01, 2); // BTYPE: fixed Huffman
    bits.huffman(0x30, 8); // literal 0
    // One match is length symbol 285 (258 bytes, code 0xC5 in 8 bits) then distance
    // symbol 0 (distance 1, code 0 in 5 bits): 13 bits. Four at a time keeps a debug
    // build fast.
    let one = reverse(0xC5, 8);
    let four = one | one << 13 | one << 26 | one << 39;
    for _ in 0..matches / 4 {
        bits.put(four, 52);
    }
    for _ in 0..matches % 4 {
        bits.put(one, 13);
    }
    bits.huffman(0, 7); // end of block, symbol 256
    bits.finish()
}

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    len: u32,
}

impl BitWriter {
    /// Deflate packs values least significant bit first.
    fn put(&mut self, value: u64, count: u32) {
        self.acc |= value << self.len;
        self.len += count;
        while self.len >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.len -= 8;
        }
    }

    /// Huffman codes are packed most significant bit first.
    fn huffman(&mut self, code: u64, count: u32) {
        self.put(reverse(code, count), count);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

fn reverse(code: u64, count: u32) -> u64 {
    code.reverse_bits() >> (64 - count)
}

/// CRC-32 of `len` zero bytes by doubling, without materialising them.
fn crc32_of_zeros(len: u64) -> u32 {
    let mut total = crc32fast::Hasher::new();
    let mut power = crc32fast::Hasher::new();
    power.update(&[0]);
    let mut remaining = len;
    while remaining > 0 {
        if remaining & 1 == 1 {
            total.combine(&power);
        }
        let doubled = power.clone();
        power.combine(&doubled);
        remaining >>= 1;
    }
    total.finalize()
}

/// Local header, data, central directory and end record (APPNOTE 4.3), no zip64.
fn single_entry_zip(name: &str, deflate: &[u8], crc: u32, uncompressed: u64) -> Vec<u8> {
    let compressed = u32::try_from(deflate.len()).unwrap();
    let uncompressed = u32::try_from(uncompressed).unwrap();
    let name_len = u16::try_from(name.len()).unwrap();
    let mut zip = Vec::with_capacity(deflate.len() + 200);
    let u16le = |zip: &mut Vec<u8>, v: u16| zip.extend_from_slice(&v.to_le_bytes());
    let u32le = |zip: &mut Vec<u8>, v: u32| zip.extend_from_slice(&v.to_le_bytes());
    // Fields shared by the local and central headers, from "version needed" on.
    let common = |zip: &mut Vec<u8>| {
        u16le(zip, 20); // version needed: deflate
        u16le(zip, 0); // flags
        u16le(zip, 8); // method: deflate
        u16le(zip, 0); // time 00:00:00
        u16le(zip, 0x21); // date 1980-01-01
        u32le(zip, crc);
        u32le(zip, compressed);
        u32le(zip, uncompressed);
        u16le(zip, name_len);
        u16le(zip, 0); // extra field length
    };
    u32le(&mut zip, 0x0403_4b50);
    common(&mut zip);
    zip.extend_from_slice(name.as_bytes());
    zip.extend_from_slice(deflate);

    let central_start = u32::try_from(zip.len()).unwrap();
    u32le(&mut zip, 0x0201_4b50);
    u16le(&mut zip, (3 << 8) | 20); // made by: unix
    common(&mut zip);
    u16le(&mut zip, 0); // comment length
    u16le(&mut zip, 0); // disk number
    u16le(&mut zip, 0); // internal attributes
    u32le(&mut zip, 0o100_644 << 16); // external attributes: regular file, rw-r--r--
    u32le(&mut zip, 0); // local header offset
    zip.extend_from_slice(name.as_bytes());
    let central_len = u32::try_from(zip.len()).unwrap() - central_start;

    u32le(&mut zip, 0x0605_4b50);
    u16le(&mut zip, 0); // this disk
    u16le(&mut zip, 0); // central directory disk
    u16le(&mut zip, 1); // entries on this disk
    u16le(&mut zip, 1); // entries in total
    u32le(&mut zip, central_len);
    u32le(&mut zip, central_start);
    u16le(&mut zip, 0); // comment length
    zip
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn crc_of_zeros_by_doubling_matches_direct_computation() {
        for len in [0u64, 1, 2, 7, 258, 1000, 65_537] {
            let direct = crc32fast::hash(&vec![0u8; len as usize]);
            assert_eq!(crc32_of_zeros(len), direct, "len {len}");
        }
    }

    #[test]
    fn hand_made_zero_stream_is_a_valid_zip_entry() {
        // 1001 matches: exercises both the four-at-a-time and the single-match paths.
        let package = zero_bomb(1001);
        let mut archive = zip::ZipArchive::new(Cursor::new(package.zip_bytes().clone())).unwrap();
        let mut entry = archive.by_index(0).unwrap();
        let mut body = Vec::new();
        // read_to_end verifies the CRC at the end of the entry.
        entry.read_to_end(&mut body).unwrap();
        assert_eq!(body.len(), 1 + 258 * 1001);
        assert!(body.iter().all(|&b| b == 0));
    }
}
