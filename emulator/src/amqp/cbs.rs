//! `$cbs` — claims-based security (spec/amqp.md §2): the client puts a SAS token, the
//! connection gains what that token proves.
//!
//! Request: application properties `operation=put-token`, `type=servicebus.windows.net:sastoken`,
//! `name` = the audience (clients differ: raw `{host}`, `https://{host}`,
//! `sb://{host}/{entity}/…`, `{host}%2Fdevices%2F{id}`), AmqpValue body = the token.
//! The token is verified by [`crate::auth`] (HMAC over the raw `sr` as sent); its `sr` — not
//! the audience, which several clients write differently from the `sr` they sign — decides
//! the hub and the scope.
//!
//! Answers: 200 when verified; 401 with the reason when the token is malformed, expired,
//! signed with the wrong key or names an unknown policy; 404 when no hub of this emulator
//! has that host; 400 for another operation or token type. Rights are not checked here but
//! when a link attaches (a `RegistryRead`-only token puts fine and then cannot open the C2D
//! link: `amqp:unauthorized-access`), see docs/differences.md.

use std::sync::Arc;
use std::time::SystemTime;

use super::connection_auth::{Grant, GrantSource};
use super::message::body_text;
use super::request_response::{BoxFuture, Request, RequestHandler, Response};
use super::session::SessionContext;
use crate::auth::sas::SasToken;
use crate::auth::{Credential, authenticate_service_token, split_resource};

pub(crate) const NODE: &str = "/$cbs";
const PUT_TOKEN: &str = "put-token";
const SAS_TOKEN_TYPE: &str = "servicebus.windows.net:sastoken";

/// The `$cbs` node.
pub(crate) struct Cbs;

impl RequestHandler for Cbs {
    fn handle<'a>(
        &'a self,
        request: Request,
        session: &'a Arc<SessionContext>,
    ) -> BoxFuture<'a, Response> {
        Box::pin(async move { put_token(&request, session, SystemTime::now()) })
    }
}

fn put_token(request: &Request, session: &SessionContext, now: SystemTime) -> Response {
    let remote = session.connection.auth.peer().remote;
    let operation = request.operation().unwrap_or_default();
    if !operation.eq_ignore_ascii_case(PUT_TOKEN) {
        return Response::status(400, format!("unsupported $cbs operation '{operation}'"));
    }
    if let Some(kind) = request.property("type")
        && !kind.eq_ignore_ascii_case(SAS_TOKEN_TYPE)
    {
        return Response::status(
            400,
            format!("unsupported token type '{kind}'; use {SAS_TOKEN_TYPE}"),
        );
    }
    let audience = request.property("name").unwrap_or_default();
    let Some(token_text) = body_text(&request.message.body) else {
        return Response::status(
            400,
            "the put-token body must be the token as an AmqpValue string",
        );
    };
    let token = match SasToken::parse(&token_text) {
        Ok(token) => token,
        Err(e) => return unauthorized(remote, &audience, &e.to_string()),
    };
    let resource = match token.resource() {
        Ok(r) => r,
        Err(e) => return unauthorized(remote, &audience, &e.to_string()),
    };
    let (host, path) = split_resource(&resource);
    let hubs = &session.connection.amqp.hubs;
    let Some(hub) = hubs.get(&host) else {
        tracing::info!(%remote, %audience, %host, "AMQP put-token for a hub this emulator does not serve");
        return Response::status(404, format!("no hub named '{host}' in this emulator"));
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let grant = match segments.as_slice() {
        ["devices", device_id, rest @ ..] => {
            let module_id = match rest {
                [] => None,
                ["modules", module_id] => Some(*module_id),
                _ => {
                    return unauthorized(
                        remote,
                        &audience,
                        "a device token names a device or a module",
                    );
                }
            };
            // The decoded id keeps its case; the path above was lower-cased for matching.
            let (device_id, module_id) = original_case_ids(&resource, device_id, module_id);
            hub.authenticate_device(
                &device_id,
                module_id.as_deref(),
                Credential::Sas(&token_text),
                now,
            )
            .map(Grant::Device)
            .map_err(|e| e.to_string())
        }
        _ => authenticate_service_token(hub.policies(), hub.host_name(), &token_text, now)
            .map(|grant| Grant::Service {
                hub: hub.host_name().to_owned(),
                grant,
                source: GrantSource::Cbs,
            })
            .map_err(|e| e.to_string()),
    };
    match grant {
        Ok(grant) => {
            tracing::debug!(%remote, %audience, "AMQP put-token accepted");
            session.connection.auth.add(grant);
            Response::status(200, "OK")
        }
        Err(reason) => unauthorized(remote, &audience, &reason),
    }
}

/// The device (and module) id as written in the resource, whose path was lower-cased.
fn original_case_ids(
    resource: &str,
    device_lower: &str,
    module_lower: Option<&str>,
) -> (String, Option<String>) {
    let segments: Vec<&str> = resource.split('/').collect();
    let find_after = |marker: &str, lower: &str| -> String {
        segments
            .windows(2)
            .find(|w| {
                w.first().is_some_and(|m| m.eq_ignore_ascii_case(marker))
                    && w.get(1).is_some_and(|id| id.eq_ignore_ascii_case(lower))
            })
            .and_then(|w| w.get(1))
            .map_or_else(|| lower.to_owned(), |id| (*id).to_owned())
    };
    (
        find_after("devices", device_lower),
        module_lower.map(|m| find_after("modules", m)),
    )
}

fn unauthorized(remote: std::net::SocketAddr, audience: &str, reason: &str) -> Response {
    tracing::info!(%remote, %audience, %reason, "AMQP put-token refused");
    Response::status(401, format!("Unauthorized: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_the_case_they_were_written_in() {
        assert_eq!(
            original_case_ids("hub.example/devices/MyDevice", "mydevice", None),
            ("MyDevice".to_owned(), None)
        );
        assert_eq!(
            original_case_ids("hub.example/devices/D1/modules/ModA", "d1", Some("moda")),
            ("D1".to_owned(), Some("ModA".to_owned()))
        );
    }
}
