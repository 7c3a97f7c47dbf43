//! IoT Hub service API, twin queries (protocol.md §9.1):
//!
//! * `POST /devices/query` with `{"query": "<hub query language>"}` → `200 [twin, …]` (or
//!   `[{"alias": n}]` for `COUNT()`), paged by the `x-ms-max-item-count` request header and
//!   the `x-ms-continuation` header in both directions, `x-ms-item-type` naming the rows;
//!   a query iotemu cannot run is `400` ArgumentInvalid with the parser's message.
//!
//! ServiceConnect in Azure's permission table; a RegistryRead policy is let through too, as
//! registry reads show the same devices. The language itself is `hub::query`.

use hyper::Method;
use serde::Deserialize;
use serde_json::Value;

use super::hub_service::{Rights, ServiceGroup};
use super::reply::{self, Reply};
use super::request::Request;
use crate::hub::Hub;
use crate::hub::error::HubError;
use crate::hub::query::{self as twin_query, Collection};
use crate::hub::twin::order::TwinJson;

/// ServiceConnect, else RegistryRead.
const QUERY_RIGHTS: Rights = &["ServiceConnect", "RegistryRead"];

/// The one route.
pub(super) struct Query;

impl ServiceGroup for Query {
    type Operation<'p> = ();

    fn parse(method: &Method, fixed: &[&str], _segments: &[&str]) -> Option<(Rights, ())> {
        match (method, fixed) {
            (&Method::POST, ["devices", "query"]) => Some((QUERY_RIGHTS, ())),
            _ => None,
        }
    }

    async fn apply<'a>(
        hub: &'a Hub,
        req: &'a Request<'a>,
        (): Self::Operation<'a>,
    ) -> Result<Reply, HubError> {
        query_twins(hub, req)
    }
}

/// The request body.
#[derive(Deserialize)]
struct QuerySpecification {
    query: String,
}

/// One page of the query's results, with its paging headers.
fn query_twins(hub: &Hub, req: &Request<'_>) -> Result<Reply, HubError> {
    let spec: QuerySpecification = serde_json::from_slice(&req.body).map_err(|e| {
        HubError::argument_invalid(format!("the body must be {{\"query\": \"…\"}}: {e}"))
    })?;
    let query =
        twin_query::parse(&spec.query).map_err(|e| HubError::argument_invalid(e.message))?;
    let documents = match query.collection {
        Collection::Devices => hub.query_twin_documents(),
        Collection::Modules => hub.module_twin_documents(),
        Collection::Jobs => hub.device_job_documents(),
    };
    let max_item_count = req
        .header("x-ms-max-item-count")
        .and_then(|v| v.trim().parse().ok());
    let page = query
        .run(documents, max_item_count, req.header("x-ms-continuation"))
        .map_err(|e| HubError::argument_invalid(e.message))?;
    let mut reply = reply::with_header(
        reply::json(200, &TwinJson(&Value::Array(page.items))),
        "x-ms-item-type",
        page.item_type,
    );
    if let Some(token) = &page.continuation {
        reply = reply::with_header(reply, "x-ms-continuation", token);
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{add_device, body_json, hub, request};
    use super::*;

    fn header<'r>(reply: &'r Reply, name: &str) -> Option<&'r str> {
        reply.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn only_post_devices_query_is_a_query() {
        assert_eq!(
            Query::parse(&Method::POST, &["devices", "query"], &[]),
            Some((QUERY_RIGHTS, ()))
        );
        assert_eq!(Query::parse(&Method::GET, &["devices", "query"], &[]), None);
    }

    #[tokio::test]
    async fn pages_carry_item_type_and_continuation() {
        let hub = hub();
        for id in ["a", "b", "c"] {
            add_device(&hub, id).await;
        }
        let body = r#"{"query": "SELECT * FROM devices"}"#;
        let first = query_twins(
            &hub,
            &request(
                Method::POST,
                "/devices/query",
                &[("x-ms-max-item-count", "2")],
                body,
            ),
        )
        .unwrap();
        assert_eq!(header(&first, "x-ms-item-type"), Some("twin"));
        let token = header(&first, "x-ms-continuation")
            .expect("a second page")
            .to_owned();
        assert_eq!(body_json(first).await.as_array().map(Vec::len), Some(2));
        let second = query_twins(
            &hub,
            &request(
                Method::POST,
                "/devices/query",
                &[("x-ms-continuation", &token)],
                body,
            ),
        )
        .unwrap();
        assert_eq!(header(&second, "x-ms-continuation"), None);
        assert_eq!(body_json(second).await[0]["deviceId"], "c");
        let count = r#"{"query": "SELECT COUNT() AS n FROM devices"}"#;
        let counted =
            query_twins(&hub, &request(Method::POST, "/devices/query", &[], count)).unwrap();
        assert_eq!(header(&counted, "x-ms-item-type"), Some("raw"));
        assert_eq!(body_json(counted).await, serde_json::json!([{"n": 3}]));
    }

    #[test]
    fn bad_bodies_and_queries_are_argument_invalid() {
        let hub = hub();
        for (body, expected) in [
            ("{}", "the body must be"),
            (r#"{"query": "SELECT 1 FROM devices"}"#, "only SELECT *"),
        ] {
            let error =
                query_twins(&hub, &request(Method::POST, "/devices/query", &[], body)).unwrap_err();
            assert_eq!(error.code, 400004);
            assert!(error.message.contains(expected), "{}", error.message);
        }
    }
}
