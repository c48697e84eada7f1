//! A certificate's SHA-256 fingerprint, as `pvenode cert info` prints it (`AA:BB:...`) or as plain
//! hex, and the comparison a pinning verifier makes.

use std::fmt;
use std::str::FromStr;

/// Why a fingerprint text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a SHA-256 fingerprint: give 32 bytes as hex, e.g. AA:BB:...:FF as `pvenode cert info` \
     prints it on the node, or 64 hex digits"
)]
pub struct FingerprintError(pub String);

/// The SHA-256 of a certificate's DER bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of `der`.
    pub fn of(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(text: &str) -> Result<Self, FingerprintError> {
        let err = || FingerprintError(text.to_owned());
        let trimmed = text.trim();
        let hex: String = if trimmed.contains(':') {
            let parts: Vec<&str> = trimmed.split(':').collect();
            if parts.len() != 32 || parts.iter().any(|p| p.len() != 2) {
                return Err(err());
            }
            parts.concat()
        } else {
            trimmed.to_owned()
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err());
        }
        let mut bytes = [0; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| err())?;
        }
        Ok(Fingerprint(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        f.write_str(&parts.join(":"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLONS: &str =
        "9F:86:D0:81:88:4C:7D:65:9A:2F:EA:A0:C5:5A:D0:15:A3:BF:4F:1B:2B:0B:82:2C:D1:5D:6C:15:B0:F0:0A:08";

    #[test]
    fn parses_pvenode_output_and_plain_hex() -> Result<(), FingerprintError> {
        let a: Fingerprint = COLONS.parse()?;
        let b: Fingerprint = COLONS.replace(':', "").to_lowercase().parse()?;
        assert_eq!(a, b);
        assert_eq!(a.to_string(), COLONS);
        // sha256("test")
        assert_eq!(Fingerprint::of(b"test"), a);
        Ok(())
    }

    #[test]
    fn refuses_wrong_lengths_and_digits() {
        for text in ["", "9F:86", &COLONS[3..], &COLONS.replace("9F", "ZZ"), "9F86D0:81", &"a".repeat(63)] {
            assert!(text.parse::<Fingerprint>().is_err(), "{text}");
        }
    }
}
