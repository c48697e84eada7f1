//! The CA proof: `GET /v1/ca.crt` is open (a client needs the CA before it can trust our TLS),
//! so on first contact anyone in the path could hand out their own CA. The answer therefore
//! carries `proximity_config::api::CA_PROOF_HEADER`: HMAC-SHA256 over the exact body bytes,
//! keyed with the 32 raw bytes of the token's SHA-256. A client that holds the token (the
//! provisioner that made it) checks it and then pins the CA: trust on first use, verified. The key is the hash, not the
//! token, so an appliance that only knows `admin.token_sha256` can prove too.

use ring::hmac;

use super::token::Token;

/// The proof for `body` (the served PEM) under `token`: lowercase hex of the HMAC-SHA256.
pub fn ca_proof(token: &Token, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &token.sha256());
    let tag = hmac::sign(&key, body);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231-style check against an independent computation: the key is sha256("token").
    #[test]
    fn the_proof_is_hmac_sha256_keyed_with_the_tokens_hash() {
        let token = Token::new("token");
        let key = ring::digest::digest(&ring::digest::SHA256, b"token");
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()), b"pem");
        let hex: String = expected.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(ca_proof(&token, b"pem"), hex);
        assert_eq!(hex.len(), 64);
        // The same from the hash alone, and different for another token or body.
        let mut digest = [0; 32];
        digest.copy_from_slice(key.as_ref());
        assert_eq!(ca_proof(&Token::from_sha256(digest), b"pem"), hex);
        assert_ne!(ca_proof(&Token::new("other"), b"pem"), hex);
        assert_ne!(ca_proof(&token, b"pem2"), hex);
    }
}
