//! The Proxmox API token (`user@realm!tokenid=secret`): parsed and checked before any request, and
//! never shown: `Debug` and `Display` print the token id only.

use std::fmt;
use std::str::FromStr;

/// Why a token text was refused. The messages never contain the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the API token must look like user@realm!tokenid=secret (missing '!')")]
    MissingBang,
    #[error("the API token must look like user@realm!tokenid=secret (missing '=' after the token id)")]
    MissingSecret,
    #[error("the API token's user {0:?} must be user@realm (e.g. root@pam)")]
    BadUser(String),
    #[error("the API token id {0:?} must start with a letter and hold only letters, digits, '.', '-', '_'")]
    BadTokenId(String),
    #[error("the API token's secret is empty or contains white space")]
    BadSecret,
}

/// A Proxmox API token, sent as `Authorization: PVEAPIToken=user@realm!tokenid=secret`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    user: String,
    token_id: String,
    secret: String,
}

impl ApiToken {
    /// `user@realm!tokenid`, the part that may be shown.
    pub fn id(&self) -> String {
        format!("{}!{}", self.user, self.token_id)
    }

    /// The `Authorization` header value.
    pub fn header_value(&self) -> String {
        format!("PVEAPIToken={}!{}={}", self.user, self.token_id, self.secret)
    }
}

impl FromStr for ApiToken {
    type Err = TokenError;

    fn from_str(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        let (user, rest) = text.split_once('!').ok_or(TokenError::MissingBang)?;
        let (token_id, secret) = rest.split_once('=').ok_or(TokenError::MissingSecret)?;
        let user_ok = match user.split_once('@') {
            Some((name, realm)) => {
                !name.is_empty()
                    && !realm.is_empty()
                    && !realm.contains('@')
                    && !user.chars().any(|c| c.is_whitespace() || c == ':' || c == '=')
            }
            None => false,
        };
        if !user_ok {
            return Err(TokenError::BadUser(user.to_owned()));
        }
        // pve-access-control's token id rule: [A-Za-z][A-Za-z0-9\.\-_]+
        let mut chars = token_id.chars();
        let id_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && token_id.len() >= 2
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !id_ok {
            return Err(TokenError::BadTokenId(token_id.to_owned()));
        }
        if secret.is_empty() || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TokenError::BadSecret);
        }
        Ok(ApiToken { user: user.to_owned(), token_id: token_id.to_owned(), secret: secret.to_owned() })
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiToken({}=<hidden>)", self.id())
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0b1f3c2e-5a4d-4c1b-9a8e-7f6d5c4b3a29";

    #[test]
    fn parses_a_proxmox_token() -> Result<(), TokenError> {
        let token: ApiToken = format!("root@pam!proximity={SECRET}").parse()?;
        assert_eq!(token.id(), "root@pam!proximity");
        assert_eq!(token.header_value(), format!("PVEAPIToken=root@pam!proximity={SECRET}"));
        Ok(())
    }

    #[test]
    fn never_shows_the_secret() -> Result<(), TokenError> {
        let token: ApiToken = format!("deploy@pve!ci-1={SECRET}").parse()?;
        assert!(!format!("{token:?}").contains(SECRET));
        assert!(!format!("{token}").contains(SECRET));
        let err = format!("deploy@pve!ci-1 {SECRET}").parse::<ApiToken>().err();
        assert!(err.is_some_and(|e| !e.to_string().contains(SECRET)));
        Ok(())
    }

    #[test]
    fn refuses_malformed_tokens() {
        let cases = [
            ("root@pam", TokenError::MissingBang),
            ("root@pam!proximity", TokenError::MissingSecret),
            ("root!proximity=s", TokenError::BadUser("root".into())),
            ("@pam!proximity=s", TokenError::BadUser("@pam".into())),
            ("root@pam!1abc=s", TokenError::BadTokenId("1abc".into())),
            ("root@pam!a b=s", TokenError::BadTokenId("a b".into())),
            ("root@pam!proximity=", TokenError::BadSecret),
            ("root@pam!proximity=a b", TokenError::BadSecret),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<ApiToken>().err(), Some(want), "{text}");
        }
    }
}
