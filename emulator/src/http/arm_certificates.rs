//! CA certificates of the DPS instance and of each hub over HTTPS, in the shape of Azure's
//! management-plane (ARM) certificate APIs, so tooling written against
//! `Microsoft.Devices/provisioningServices/{name}/certificates` and
//! `Microsoft.Devices/IotHubs/{name}/certificates` runs against the emulator:
//!
//! | route (under `/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Devices/{provisioningServices\|IotHubs}/{name}`) | operation |
//! |---|---|
//! | `GET …/certificates` | `{"value": [CertificateResponse…]}` |
//! | `GET …/certificates/{c}` | one `CertificateResponse` |
//! | `PUT …/certificates/{c}` | `{"properties": {"certificate": PEM or base64 DER, "isVerified"?}}`: upload or replace |
//! | `DELETE …/certificates/{c}` | removes it (200; 204 when there was none) |
//! | `POST …/certificates/{c}/generateVerificationCode` | `VerificationCodeResponse`: a fresh code |
//! | `POST …/certificates/{c}/verify` | `{"certificate": PEM}`: the proof of possession, CN = code, signed by the CA's key |
//!
//! The rules are the instance's [`CertificateStore`], the same operations the control port's
//! portal routes call (`control/api_certificates.rs`); this file only speaks ARM's wire.
//!
//! Which instance: `{name}` is the first DNS label of the DPS or hub host name (`localhost`
//! for the quickstart fixture); the subscription and resource group may be anything, since an
//! emulator has neither. Who may: the caller signs the request as it signs the rest of that
//! instance's service API, with a shared-access-policy SAS for the instance's host — for DPS
//! a policy with `ServiceConfig`, for a hub `RegistryRead` to read and `RegistryWrite` to
//! change. `If-Match`, when sent, must match the certificate's etag (412 otherwise); every
//! route needs `api-version` (any value). docs/differences.md lists these choices.
//!
//! Errors are ARM's `ErrorDetails` (`code`, `httpStatusCode`, `message`) with 6-digit codes:
//! 400053 when the proof of possession fails (the code IoT Hub reports as `IH400053`), 400004
//! for a body or certificate that is not valid, 404000 for an unknown certificate or instance,
//! 412002 for a stale `If-Match`, 401002 for a missing or insufficient token, 500000 when the
//! change cannot be stored. A refused request changes nothing.

use std::time::SystemTime;

use hyper::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::HttpContext;
use super::reply::{self, Refusal, Reply};
use super::request::Request;
use crate::auth;
use crate::auth::policy::SharedAccessPolicy;
use crate::certificates::{CaCertificate, CertificateError, CertificateStore};
use crate::etag;
use crate::timefmt::http_date;

/// Whether a lower-cased path is under an ARM certificate collection: the router's test.
pub(super) fn is_certificate_path(fixed: &[&str]) -> bool {
    matches!(
        fixed,
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.devices",
            "provisioningservices" | "iothubs",
            _,
            "certificates",
            ..
        ]
    )
}

/// Which kind of instance the path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dps,
    Hub,
}

impl Kind {
    /// The path segment and resource type ARM spells for this kind.
    fn provider_names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Dps => (
                "provisioningServices",
                "Microsoft.Devices/ProvisioningServices/Certificates",
            ),
            Kind::Hub => ("IotHubs", "Microsoft.Devices/IotHubs/Certificates"),
        }
    }
}

/// One certificate operation, with the certificate name borrowed from the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation<'p> {
    List,
    Get(&'p str),
    Put(&'p str),
    Delete(&'p str),
    GenerateVerificationCode(&'p str),
    Verify(&'p str),
}

impl Operation<'_> {
    fn writes(self) -> bool {
        !matches!(self, Operation::List | Operation::Get(_))
    }
}

/// A parsed route: the ids as sent (for the `id` field of responses) and the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route<'p> {
    kind: Kind,
    subscription: &'p str,
    resource_group: &'p str,
    instance: &'p str,
    operation: Operation<'p>,
}

/// The route `method` + path asks for; `None` when the method is not one of the route's.
fn parse<'p>(method: &Method, fixed: &[&str], segments: &[&'p str]) -> Option<Route<'p>> {
    let (
        [
            _,
            subscription,
            _,
            resource_group,
            _,
            _,
            _,
            instance,
            _,
            rest @ ..,
        ],
        [_, _, _, _, _, _, kind, ..],
    ) = (segments, fixed)
    else {
        return None;
    };
    let kind = match *kind {
        "provisioningservices" => Kind::Dps,
        "iothubs" => Kind::Hub,
        _ => return None,
    };
    let lower_rest = fixed.get(9..).unwrap_or_default();
    let operation = match (method, rest, lower_rest) {
        (&Method::GET, [], _) => Operation::List,
        (&Method::GET, [name], _) => Operation::Get(name),
        (&Method::PUT, [name], _) => Operation::Put(name),
        (&Method::DELETE, [name], _) => Operation::Delete(name),
        (&Method::POST, [name, _], [_, "generateverificationcode"]) => {
            Operation::GenerateVerificationCode(name)
        }
        (&Method::POST, [name, _], [_, "verify"]) => Operation::Verify(name),
        _ => return None,
    };
    Some(Route {
        kind,
        subscription,
        resource_group,
        instance,
        operation,
    })
}

/// A refusal in ARM's `ErrorDetails` shape.
#[derive(Debug)]
struct ArmError {
    status: u16,
    code: u32,
    message: String,
}

impl ArmError {
    fn new(status: u16, code: u32, message: impl Into<String>) -> ArmError {
        ArmError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> ArmError {
        ArmError::new(400, 400004, message)
    }

    fn reply(&self) -> Reply {
        let status_name = match self.status {
            400 => "BadRequest",
            401 => "Unauthorized",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            412 => "PreconditionFailed",
            _ => "InternalServerError",
        };
        let body = json!({
            "code": self.code.to_string(),
            "httpStatusCode": status_name,
            "message": self.message,
        });
        reply::with_header(
            reply::json(self.status, &body),
            "x-ms-error-code",
            &self.code.to_string(),
        )
    }
}

impl From<CertificateError> for ArmError {
    fn from(error: CertificateError) -> ArmError {
        let message = error.to_string();
        match error {
            CertificateError::NotFound(_) => ArmError::new(404, 404000, message),
            CertificateError::Invalid(_) => ArmError::bad_request(message),
            CertificateError::NoVerificationCode(_)
            | CertificateError::WrongCode { .. }
            | CertificateError::NotSignedByCa(_) => ArmError::new(
                400,
                400053,
                format!("Proof-Of-Possession failed. {message}"),
            ),
            CertificateError::Storage(_) => ArmError::new(500, 500000, message),
        }
    }
}

impl From<crate::store::StoreError> for ArmError {
    fn from(error: crate::store::StoreError) -> ArmError {
        CertificateError::from(error).into()
    }
}

/// The instance a route names: its certificates and what a caller's token is checked against.
struct Instance<'c> {
    store: &'c CertificateStore,
    host_name: &'c str,
    policies: &'c [SharedAccessPolicy],
}

/// The first DNS label of a host name: the resource name ARM knows an instance by.
fn resource_name(host_name: &str) -> &str {
    host_name.split('.').next().unwrap_or(host_name)
}

fn instance<'c>(ctx: &'c HttpContext, route: &Route<'_>) -> Result<Instance<'c>, ArmError> {
    let found = match route.kind {
        Kind::Dps => Some(&ctx.dps)
            .filter(|dps| resource_name(dps.host_name()).eq_ignore_ascii_case(route.instance))
            .map(|dps| Instance {
                store: dps.certificates(),
                host_name: dps.host_name(),
                policies: dps.policies(),
            }),
        Kind::Hub => ctx
            .hubs
            .all()
            .iter()
            .find(|hub| resource_name(hub.host_name()).eq_ignore_ascii_case(route.instance))
            .map(|hub| Instance {
                store: hub.certificates(),
                host_name: hub.host_name(),
                policies: hub.policies(),
            }),
    };
    found.ok_or_else(|| {
        let (segment, _) = route.kind.provider_names();
        ArmError::new(
            404,
            404000,
            format!(
                "No {segment} resource named '{}' (the name is the first label of its host name)",
                route.instance
            ),
        )
    })
}

/// The checks on the head (route, api-version, instance, token and right), run by the router
/// before the body is read; [`handle`] makes them again.
pub(super) fn admit(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Result<(), Refusal> {
    admitted(ctx, req, fixed, segments)
        .map(drop)
        .map_err(|e| Box::new(e.reply()))
}

fn admitted<'c, 'p>(
    ctx: &'c HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&'p str],
) -> Result<(Route<'p>, Instance<'c>), ArmError> {
    let route = parse(&req.method, fixed, segments).ok_or_else(|| {
        ArmError::new(
            405,
            405000,
            format!("{} is not supported on /{}", req.method, segments.join("/")),
        )
    })?;
    if req.query_value("api-version").is_none() {
        return Err(ArmError::bad_request(
            "The api-version query parameter is required (for example ?api-version=2022-02-05).",
        ));
    }
    let instance = instance(ctx, &route)?;
    let right = match (route.kind, route.operation.writes()) {
        (Kind::Dps, _) => "ServiceConfig",
        (Kind::Hub, false) => "RegistryRead",
        (Kind::Hub, true) => "RegistryWrite",
    };
    if let Err(e) = auth::authenticate_service(
        instance.policies,
        instance.host_name,
        req.header("authorization"),
        right,
        SystemTime::now(),
    ) {
        tracing::warn!(reason = %e, "certificate API request refused");
        return Err(ArmError::new(
            401,
            401002,
            format!(
                "Unauthorized: a shared access policy token for {} with the {right} right is required",
                instance.host_name
            ),
        ));
    }
    Ok((route, instance))
}

/// Answers one request once its body is read; a change is answered only once it is durable.
pub(super) async fn handle(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Reply {
    let result = match admitted(ctx, req, fixed, segments) {
        Ok((route, instance)) => apply(&route, instance.store, req).await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| e.reply())
}

/// `PUT`'s body: ARM's `{"properties": {…}}`, or the flat `{"certificate": …}` older
/// api-versions of the DPS API sent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadBody {
    properties: Option<UploadProperties>,
    certificate: Option<String>,
    is_verified: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadProperties {
    certificate: Option<String>,
    is_verified: Option<bool>,
}

/// `verify`'s body.
#[derive(Deserialize)]
struct VerifyBody {
    certificate: Option<String>,
}

async fn apply(
    route: &Route<'_>,
    store: &CertificateStore,
    req: &Request<'_>,
) -> Result<Reply, ArmError> {
    match route.operation {
        Operation::List => {
            let value: Vec<Value> = store
                .list()
                .iter()
                .map(|c| resource(route, c, None))
                .collect();
            Ok(reply::json(200, &json!({ "value": value })))
        }
        Operation::Get(name) => {
            let certificate = store
                .get(name)
                .ok_or_else(|| CertificateError::NotFound(name.to_owned()))?;
            Ok(answer(route, &certificate, None))
        }
        Operation::Put(name) => {
            let body: UploadBody = parse_body(req)?;
            let properties = body.properties.as_ref();
            let certificate = properties
                .and_then(|p| p.certificate.clone())
                .or(body.certificate)
                .ok_or_else(|| {
                    ArmError::bad_request("properties.certificate is required (PEM or base64 DER)")
                })?;
            let is_verified = properties
                .and_then(|p| p.is_verified)
                .or(body.is_verified)
                .unwrap_or(false);
            check_if_match(store, name, req)?;
            let stored = store
                .upload(name, &certificate, is_verified)?
                .durable()
                .await?;
            Ok(answer(route, &stored, None))
        }
        Operation::Delete(name) => {
            check_if_match(store, name, req)?;
            let deleted = store.delete(name)?.durable().await?;
            Ok(reply::empty(if deleted { 200 } else { 204 }))
        }
        Operation::GenerateVerificationCode(name) => {
            check_if_match(store, name, req)?;
            let code = store.generate_verification_code(name)?.durable().await?;
            let certificate = store
                .get(name)
                .ok_or_else(|| CertificateError::NotFound(name.to_owned()))?;
            Ok(answer(route, &certificate, Some(&code)))
        }
        Operation::Verify(name) => {
            let body: VerifyBody = parse_body(req)?;
            let proof = body.certificate.ok_or_else(|| {
                ArmError::bad_request(
                    "certificate is required: the verification certificate, PEM or base64 DER",
                )
            })?;
            check_if_match(store, name, req)?;
            let verified = store.verify(name, &proof)?.durable().await?;
            Ok(answer(route, &verified, None))
        }
    }
}

/// A stale `If-Match` is refused before anything changes; none, `*`, or a missing
/// certificate (the store answers that one) go through.
fn check_if_match(store: &CertificateStore, name: &str, req: &Request<'_>) -> Result<(), ArmError> {
    let (Some(if_match), Some(current)) = (req.if_match(), store.get(name)) else {
        return Ok(());
    };
    if etag::matches(if_match, Some(&current.etag)) {
        Ok(())
    } else {
        Err(ArmError::new(
            412,
            412002,
            format!(
                "The etag '{if_match}' does not match the certificate '{name}' (its etag is '{}')",
                current.etag
            ),
        ))
    }
}

/// Exactly one JSON object of the route's shape, or the 400 that says why not.
fn parse_body<T: serde::de::DeserializeOwned>(req: &Request<'_>) -> Result<T, ArmError> {
    serde_json::from_slice(&req.body)
        .map_err(|e| ArmError::bad_request(format!("The request body is not valid: {e}")))
}

/// One certificate as the reply, with its etag also in the `ETag` header.
fn answer(route: &Route<'_>, certificate: &CaCertificate, code: Option<&str>) -> Reply {
    reply::with_header(
        reply::json(200, &resource(route, certificate, code)),
        "etag",
        &certificate.etag,
    )
}

/// ARM's `CertificateResponse` (`VerificationCodeResponse` when `code` is given).
fn resource(route: &Route<'_>, certificate: &CaCertificate, code: Option<&str>) -> Value {
    let (segment, resource_type) = route.kind.provider_names();
    let mut properties = json!({
        "subject": certificate.info.subject,
        "expiry": http_date(certificate.info.not_after),
        "thumbprint": certificate.info.sha1_thumbprint,
        "isVerified": certificate.is_verified,
        "certificate": crate::certs::pem_certificate(&certificate.der),
        "created": http_date(certificate.created),
        "updated": http_date(certificate.updated),
    });
    if let (Some(code), Some(map)) = (code, properties.as_object_mut()) {
        map.insert("verificationCode".into(), json!(code));
    }
    json!({
        "id": format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Devices/{segment}/{}/certificates/{}",
            route.subscription, route.resource_group, route.instance, certificate.name
        ),
        "name": certificate.name,
        "type": resource_type,
        "etag": certificate.etag,
        "properties": properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(path: &str) -> (Vec<String>, Vec<String>) {
        let segments: Vec<String> = path.split('/').map(str::to_owned).collect();
        let fixed = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
        (segments, fixed)
    }

    fn parsed(method: Method, path: &str) -> Option<(Kind, String)> {
        let (segments, fixed) = split(path);
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let fixed: Vec<&str> = fixed.iter().map(String::as_str).collect();
        assert!(is_certificate_path(&fixed), "{path}");
        parse(&method, &fixed, &segments).map(|r| (r.kind, format!("{:?}", r.operation)))
    }

    const DPS: &str = "subscriptions/s/resourceGroups/g/providers/Microsoft.Devices/provisioningServices/localhost/certificates";
    const HUB: &str =
        "subscriptions/s/resourceGroups/g/providers/Microsoft.Devices/IotHubs/my-hub/certificates";

    #[test]
    fn each_route_is_its_operation() {
        for (method, path, kind, operation) in [
            (Method::GET, DPS.to_owned(), Kind::Dps, "List"),
            (
                Method::GET,
                format!("{DPS}/Root"),
                Kind::Dps,
                "Get(\"Root\")",
            ),
            (
                Method::PUT,
                format!("{HUB}/root"),
                Kind::Hub,
                "Put(\"root\")",
            ),
            (
                Method::DELETE,
                format!("{HUB}/root"),
                Kind::Hub,
                "Delete(\"root\")",
            ),
            (
                Method::POST,
                format!("{DPS}/root/generateVerificationCode"),
                Kind::Dps,
                "GenerateVerificationCode(\"root\")",
            ),
            (
                Method::POST,
                format!("{HUB}/root/verify"),
                Kind::Hub,
                "Verify(\"root\")",
            ),
        ] {
            assert_eq!(
                parsed(method, &path),
                Some((kind, operation.to_owned())),
                "{path}"
            );
        }
    }

    #[test]
    fn other_methods_and_paths_are_no_operation() {
        assert_eq!(parsed(Method::POST, DPS), None);
        assert_eq!(parsed(Method::PATCH, &format!("{DPS}/root")), None);
        assert_eq!(parsed(Method::POST, &format!("{DPS}/root/other")), None);
        assert_eq!(parsed(Method::GET, &format!("{DPS}/root/verify")), None);
        assert_eq!(parsed(Method::POST, &format!("{DPS}/a/b/verify")), None);
    }

    #[test]
    fn the_resource_name_is_the_first_host_label() {
        assert_eq!(resource_name("my-hub.azure-devices.net"), "my-hub");
        assert_eq!(resource_name("localhost"), "localhost");
    }
}
