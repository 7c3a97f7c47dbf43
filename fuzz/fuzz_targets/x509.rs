//! X.509 handling (emulator/src/auth/x509.rs) on arbitrary input: certificate text as users
//! paste it (PEM or base64 DER), DER inspection, thumbprints, chains validated against
//! anchors, and proof-of-possession signatures. The input is split at the first NUL byte:
//! the part before is text, both parts are also tried as DER.
#![no_main]

use std::time::SystemTime;

use iotemu::internals::auth::x509;
use libfuzzer_sys::fuzz_target;
use rustls_pki_types::CertificateDer;

fuzz_target!(|data: &[u8]| {
    let (first, second) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], data.get(at + 1..).unwrap_or_default()),
        None => (data, &[][..]),
    };
    let now = SystemTime::now();
    if let Ok(text) = std::str::from_utf8(first) {
        let _ = x509::normalize_thumbprint(text);
        if let Ok(der) = x509::decode_certificate(text)
            && let Ok(info) = x509::inspect(&der)
        {
            let _ = info.is_valid_at(now);
            let _ = info.to_dps_json();
        }
        if let Ok(chain) = x509::decode_pem_chain(text) {
            let anchors: Vec<Vec<u8>> = chain.iter().map(|c| c.to_vec()).collect();
            let _ = x509::validate_chain(&chain, &anchors, now);
        }
    }
    for der in [first, second] {
        if let Ok(info) = x509::inspect(der) {
            let _ = info.is_valid_at(now);
            let _ = info.to_dps_json();
        }
        let _ = x509::thumbprints(der);
    }
    let _ = x509::signed_by(first, second);
    let _ = x509::signed_by(second, second);
    let chain = [CertificateDer::from(first), CertificateDer::from(second)];
    let _ = x509::validate_chain(&chain, &[second.to_vec()], now);
    let _ = x509::validate_chain(&chain[..1], &[first.to_vec()], now);
});
