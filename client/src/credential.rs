//! The one rule both builders share about credentials: exactly one of a symmetric key (SAS
//! token in the CONNECT password) or an X.509 identity (client certificate in the TLS
//! handshake, no password) — never both, because the services would then see two competing
//! claims and which one wins is not documented.

use crate::x509::X509Identity;

/// The credential a builder was given, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Credential<'a> {
    SymmetricKey(&'a str),
    X509(&'a X509Identity),
}

impl<'a> Credential<'a> {
    /// Picks the single credential set on a builder; the error is the `Config` message.
    pub(crate) fn choose(
        symmetric_key: Option<&'a str>,
        x509: Option<&'a X509Identity>,
    ) -> Result<Self, String> {
        match (symmetric_key, x509) {
            (Some(key), None) => Ok(Self::SymmetricKey(key)),
            (None, Some(identity)) => Ok(Self::X509(identity)),
            (None, None) => Err(
                "a credential is required: a symmetric key (.symmetric_key) or an X.509 identity (.x509)"
                    .into(),
            ),
            (Some(_), Some(_)) => Err(
                "both a symmetric key and an X.509 identity were given; use one of .symmetric_key and .x509"
                    .into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::device_identity;

    #[test]
    fn exactly_one() {
        let identity = device_identity("dev");
        assert!(matches!(
            Credential::choose(Some("k"), None),
            Ok(Credential::SymmetricKey("k"))
        ));
        assert!(matches!(
            Credential::choose(None, Some(&identity)),
            Ok(Credential::X509(_))
        ));
        assert!(Credential::choose(None, None).is_err());
        assert!(Credential::choose(Some("k"), Some(&identity)).is_err());
    }
}
