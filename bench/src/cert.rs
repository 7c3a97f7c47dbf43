//! A CA and a server certificate for mosquitto's TLS listener (ECDSA P-256, SAN `localhost`
//! and 127.0.0.1): the same kind of key and chain length iotemu's own server certificate has,
//! so both servers pay for the same handshake.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// Writes `ca.pem`, `server.pem` and `server.key.pem` into `dir`.
pub fn write_server_certificate(dir: &Path) -> Result<(), String> {
    let fail = |e: rcgen::Error| format!("making the certificate: {e}");
    let ca_key = KeyPair::generate().map_err(fail)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "iotemu-loadgen test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(fail)?;
    let issuer = Issuer::new(ca_params, &ca_key);
    let server_key = KeyPair::generate().map_err(fail)?;
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(fail)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(fail)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, text) in [
        ("ca.pem", ca_cert.pem()),
        ("server.pem", server_cert.pem()),
        ("server.key.pem", server_key.serialize_pem()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Endpoint;

    #[test]
    fn the_written_ca_is_accepted_as_a_trust_anchor() {
        let dir = std::env::temp_dir().join(format!("loadgen-cert-{}", std::process::id()));
        write_server_certificate(&dir).unwrap();
        let ca = dir.join("ca.pem");
        let endpoint = Endpoint::new(
            "127.0.0.1:1".parse().unwrap(),
            "localhost",
            ca.to_str().unwrap(),
        );
        assert!(endpoint.is_ok());
        assert!(
            std::fs::read_to_string(dir.join("server.key.pem"))
                .unwrap()
                .contains("PRIVATE KEY")
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
