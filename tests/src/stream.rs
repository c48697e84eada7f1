//! Large bodies the lab streams through the proxy: a deterministic byte pattern both ends can
//! make without storing it, and a running SHA-256 with the byte count, so a test checks 64 MiB by
//! its digest instead of keeping it.

use ring::digest::{Context, SHA256};

/// Chunk size used when producing the pattern.
pub const CHUNK: usize = 64 * 1024;

/// Fills `buf` with the pattern's bytes starting at stream offset `offset`. Each 8-byte word is a
/// mix of its index, so no two chunks are equal and reordered or repeated chunks change the digest.
pub fn fill(offset: u64, buf: &mut [u8]) {
    for (i, byte) in buf.iter_mut().enumerate() {
        let at = offset + i as u64;
        let word = splitmix(at / 8).to_le_bytes();
        *byte = word[(at % 8) as usize];
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Byte count and SHA-256 of a stream, fed as it passes.
#[derive(Clone)]
pub struct Digest {
    bytes: u64,
    sha: Context,
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest").field("bytes", &self.bytes).finish_non_exhaustive()
    }
}

impl Default for Digest {
    fn default() -> Self {
        Digest { bytes: 0, sha: Context::new(&SHA256) }
    }
}

impl Digest {
    pub fn update(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        self.sha.update(data);
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The SHA-256 so far, lower-case hex.
    pub fn hex(&self) -> String {
        self.sha.clone().finish().as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The digest of the first `len` bytes of the pattern.
pub fn pattern_digest(len: u64) -> Digest {
    let mut digest = Digest::default();
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0;
    while offset < len {
        let n = usize::try_from((len - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
        fill(offset, &mut buf[..n]);
        digest.update(&buf[..n]);
        offset += n as u64;
    }
    digest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_the_same_whatever_the_chunking() {
        let mut whole = vec![0u8; 1000];
        fill(0, &mut whole);
        let mut parts = vec![0u8; 1000];
        fill(0, &mut parts[..333]);
        fill(333, &mut parts[333..]);
        assert_eq!(whole, parts);
        assert_ne!(whole[..8], whole[8..16]);
        let mut digest = Digest::default();
        digest.update(&whole);
        assert_eq!(digest.hex(), pattern_digest(1000).hex());
        assert_eq!(digest.bytes(), 1000);
    }
}
