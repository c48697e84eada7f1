//! The CA proof of decision 2: `GET /v1/ca.crt` carries `proximity-ca-proof: <hex HMAC-SHA256>`,
//! keyed with the 32 raw bytes of SHA-256(admin token), over the exact body. A provisioner that
//! knows the token can so tell, on first contact and without trusting the TLS certificate, that
//! the CA came from its own appliance, and then pin it.

pub use proximity_config::api::CA_PROOF_HEADER as HEADER;

/// Why a CA was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error(
        "the appliance's /v1/ca.crt has no {HEADER} header (an appliance without a deployment token, or not ours)"
    )]
    Missing,
    #[error("the {HEADER} header is not hex")]
    NotHex,
    #[error(
        "the CA served at /v1/ca.crt is not proven by our admin token: this is not the appliance we deployed \
         (or someone is in between); refusing to trust it"
    )]
    Mismatch,
}

fn key(token: &str) -> ring::hmac::Key {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, digest.as_ref())
}

/// The proof of `body` for `token`, as hex (what the appliance sends).
pub fn prove(token: &str, body: &[u8]) -> String {
    crate::net::fingerprint::hex(ring::hmac::sign(&key(token), body).as_ref())
}

/// Checks `header` (the proof as received) against `body`, in constant time.
pub fn verify(token: &str, body: &[u8], header: Option<&str>) -> Result<(), ProofError> {
    let header = header.ok_or(ProofError::Missing)?.trim();
    if header.len() % 2 != 0 || !header.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ProofError::NotHex);
    }
    let tag: Vec<u8> = (0..header.len() / 2)
        .map(|i| u8::from_str_radix(&header[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| ProofError::NotHex)?;
    ring::hmac::verify(&key(token), body, &tag).map_err(|_| ProofError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_proof_of_our_token_over_this_body() {
        let body = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let proof = prove("t0ken", body);
        // RFC 4231-style check of the construction: HMAC-SHA256(sha256("t0ken"), body).
        assert_eq!(proof.len(), 64);
        assert_eq!(verify("t0ken", body, Some(&proof)), Ok(()));
        assert_eq!(verify("t0ken", body, Some(&proof.to_uppercase())), Ok(()));
        assert_eq!(verify("other", body, Some(&proof)), Err(ProofError::Mismatch));
        assert_eq!(verify("t0ken", b"another body", Some(&proof)), Err(ProofError::Mismatch));
        assert_eq!(verify("t0ken", body, None), Err(ProofError::Missing));
        assert_eq!(verify("t0ken", body, Some("zz")), Err(ProofError::NotHex));
    }

    #[test]
    fn the_key_is_the_raw_token_digest() {
        // Computed independently: key = sha256("abc") raw bytes, message = "x".
        let digest = ring::digest::digest(&ring::digest::SHA256, b"abc");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, digest.as_ref());
        let want = crate::net::fingerprint::hex(ring::hmac::sign(&key, b"x").as_ref());
        assert_eq!(prove("abc", b"x"), want);
    }
}
