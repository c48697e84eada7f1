//! API token authentication as Proxmox does it: `Authorization: PVEAPIToken=user@realm!id=secret`.
//! Anything else is a 401 `authentication failure`.

use std::str::FromStr;

use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The scheme of the header's value.
const SCHEME: &str = "PVEAPIToken=";

/// The one token a sim accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// `user@realm`, the task owner in UPIDs.
    pub user: String,
    /// `tokenid`.
    pub id: String,
    secret: String,
}

/// A token that is not `user@realm!tokenid=secret`.
#[derive(Debug, thiserror::Error)]
#[error("a token is user@realm!tokenid=secret, got {0:?}")]
pub struct BadToken(String);

impl FromStr for Token {
    type Err = BadToken;

    fn from_str(s: &str) -> Result<Token, BadToken> {
        let bad = || BadToken(s.to_owned());
        let (full_id, secret) = s.split_once('=').ok_or_else(bad)?;
        let (user, id) = full_id.split_once('!').ok_or_else(bad)?;
        let (name, realm) = user.split_once('@').ok_or_else(bad)?;
        if [name, realm, id, secret].iter().any(|part| part.is_empty()) {
            return Err(bad());
        }
        Ok(Token { user: user.to_owned(), id: id.to_owned(), secret: secret.to_owned() })
    }
}

impl Token {
    /// `user@realm!tokenid`, as Proxmox names the task owner of a token request.
    pub fn owner(&self) -> String {
        format!("{}!{}", self.user, self.id)
    }

    /// The token as given on the command line (`user@realm!id=secret`).
    pub fn expose(&self) -> String {
        format!("{}={}", self.owner(), self.secret)
    }

    /// Checks an `Authorization` header value; constant time in the secret.
    pub fn check(&self, header: Option<&str>) -> Result<(), ApiError> {
        let failure = || ApiError::new(401, "authentication failure");
        let value = header.and_then(|h| h.trim().strip_prefix(SCHEME)).ok_or_else(failure)?;
        let given: Token = value.parse().map_err(|_| failure())?;
        let same_id = given.user == self.user && given.id == self.id;
        let same_secret = bool::from(given.secret.as_bytes().ct_eq(self.secret.as_bytes()));
        if same_id && same_secret { Ok(()) } else { Err(failure()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_passes() -> Result<(), BadToken> {
        let token: Token = "root@pam!proximity=s3cret".parse()?;
        assert_eq!(token.owner(), "root@pam!proximity");
        assert!(token.check(Some("PVEAPIToken=root@pam!proximity=s3cret")).is_ok());
        for bad in [
            None,
            Some(""),
            Some("PVEAPIToken=root@pam!proximity=wrong"),
            Some("PVEAPIToken=root@pam!other=s3cret"),
            Some("Bearer s3cret"),
            Some("PVEAPIToken=root@pam!proximity"),
        ] {
            let err = token.check(bad).err().map(|e| (e.status, e.message));
            assert_eq!(err, Some((401, "authentication failure".to_owned())), "{bad:?}");
        }
        assert!("root@pam=x".parse::<Token>().is_err());
        assert!("root!id=".parse::<Token>().is_err());
        Ok(())
    }
}
