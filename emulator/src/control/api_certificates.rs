//! The portal's certificate routes, for DPS (`/api/certificates…`) and each hub
//! (`/api/hubs/{hub}/certificates…`): the proof-of-possession steps of the X.509 quickstarts —
//! upload a root or intermediate CA, generate a verification code, upload the verification
//! certificate, see it verified — through the instance's `CertificateStore`.
//!
//! | route | operation |
//! |---|---|
//! | `GET …/certificates` | every certificate, as the management API's `CertificateResponse` |
//! | `PUT …/certificates/{name}` | `{"certificate": PEM, "isVerified": bool}`: upload or replace |
//! | `POST …/certificates/{name}/verificationCode` | `{"verificationCode"}`: a fresh code |
//! | `POST …/certificates/{name}/verify` | `{"certificate": PEM}`: the proof, signed by the CA's key, CN = code |
//! | `DELETE …/certificates/{name}` | removes it |
//!
//! Errors carry codes of iotemu's choosing (the portal is not an Azure API): 404000 for an
//! unknown certificate, 400000 for a certificate that is not valid or not the proof, 500000
//! when the change cannot be stored.

use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{ApiRequest, error_reply, method_not_allowed};
use super::reply::{Reply, json_reply};
use crate::certificates::{CertificateError, CertificateStore};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Upload {
    certificate: String,
    #[serde(default)]
    is_verified: bool,
}

/// `path` is what follows `certificates` in the route.
pub(super) async fn route(store: &CertificateStore, req: &ApiRequest, path: &[&str]) -> Reply {
    let result: Result<Value, CertificateError> = match (&req.method, path) {
        (&Method::GET, []) => Ok(Value::Array(store.list().iter().map(with_code).collect())),
        (&Method::PUT, [name]) => match parse::<Upload>(req) {
            Ok(upload) => match store.upload(name, &upload.certificate, upload.is_verified) {
                Ok(pending) => pending
                    .durable()
                    .await
                    .map(|c| with_code(&c))
                    .map_err(Into::into),
                Err(e) => Err(e),
            },
            Err(message) => return bad_request(&message),
        },
        (&Method::POST, [name, "verificationCode"]) => match store.generate_verification_code(name)
        {
            Ok(pending) => pending
                .durable()
                .await
                .map(|code| json!({ "verificationCode": code }))
                .map_err(Into::into),
            Err(e) => Err(e),
        },
        (&Method::POST, [name, "verify"]) => match parse::<Upload>(req) {
            Ok(proof) => match store.verify(name, &proof.certificate) {
                Ok(pending) => pending
                    .durable()
                    .await
                    .map(|c| with_code(&c))
                    .map_err(Into::into),
                Err(e) => Err(e),
            },
            Err(message) => return bad_request(&message),
        },
        (&Method::DELETE, [name]) => match store.delete(name) {
            Ok(pending) => match pending.durable().await {
                Ok(true) => Ok(json!({})),
                Ok(false) => Err(CertificateError::NotFound((*name).to_owned())),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        },
        _ => return method_not_allowed(),
    };
    match result {
        Ok(value) => json_reply(StatusCode::OK, value),
        Err(e) => certificate_error(&e),
    }
}

/// The management API's shape plus the pending verification code, which the portal shows.
fn with_code(certificate: &crate::certificates::CaCertificate) -> Value {
    let mut json = certificate.to_json();
    if let Some(properties) = json.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert(
            "verificationCode".into(),
            json!(certificate.verification_code),
        );
    }
    json
}

/// The body, or the 400 that says why it is not one.
fn parse<T: serde::de::DeserializeOwned>(req: &ApiRequest) -> Result<T, String> {
    serde_json::from_slice(&req.body).map_err(|e| format!("invalid request body: {e}"))
}

fn bad_request(message: &str) -> Reply {
    error_reply(StatusCode::BAD_REQUEST, 400000, message)
}

fn certificate_error(error: &CertificateError) -> Reply {
    let (status, code) = match error {
        CertificateError::NotFound(_) => (StatusCode::NOT_FOUND, 404000),
        CertificateError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, 500000),
        CertificateError::Invalid(_)
        | CertificateError::NoVerificationCode(_)
        | CertificateError::WrongCode { .. }
        | CertificateError::NotSignedByCa(_) => (StatusCode::BAD_REQUEST, 400000),
    };
    error_reply(status, code, &error.to_string())
}
