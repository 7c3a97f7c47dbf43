//! Paging of the portal's lists (individual enrollments, enrollment groups, registration
//! records, a hub's devices), so a DPS or hub with thousands of entries answers in pages the
//! browser can render. The convention is the DPS and IoT Hub REST APIs' own: the request's
//! `x-ms-max-item-count` asks for a page size (ignored unless a number; 0 means the default),
//! `x-ms-continuation` carries the token of the next page both ways, and no token on the answer
//! means the last page. On top of that, `?filter=` keeps only entries whose ids contain it
//! (case-insensitively) before paging, so a search spans every page, and
//! `x-iotemu-total-count` says how many entries match, for the portal's "101–200 of 250".
//!
//! Lists arrive sorted by their id. The token names the last id of the page and the next page
//! starts after it, so pages stay consistent when entries are added or removed between calls
//! (no offset that shifts).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::StatusCode;
use hyper::header::HeaderValue;
use serde_json::Value;

use super::api::{ApiRequest, error_reply};
use super::reply::{Reply, json_reply};

/// The page size when the request names none: the DPS service API's default.
pub(super) const DEFAULT_PAGE_SIZE: usize = 100;
/// Larger requests get this many; the continuation token brings the rest.
pub(super) const MAX_PAGE_SIZE: usize = 1000;

/// Marks the portal's tokens, so that anything else is refused rather than read as an id.
const TOKEN_PREFIX: &str = "iotemu-portal-after:";

/// The page a list request asks for.
pub(super) struct Paging {
    size: usize,
    after: Option<String>,
    filter: String,
}

/// A continuation token the portal did not make.
pub(super) struct BadToken(String);

impl BadToken {
    /// The APIs' answer to it: 400 with code 400004.
    pub(super) fn reply(&self) -> Reply {
        error_reply(
            StatusCode::BAD_REQUEST,
            400004,
            &format!("Invalid continuation token '{}'", self.0),
        )
    }
}

/// One page: its entries, the token of the next page, and how many entries matched.
pub(super) struct Page<T> {
    pub(super) items: Vec<T>,
    pub(super) continuation: Option<String>,
    pub(super) total: usize,
}

impl Paging {
    /// The paging headers and `?filter=` of `req`; an unreadable token is the APIs' 400004.
    pub(super) fn of(req: &ApiRequest) -> Result<Paging, BadToken> {
        let size = match req
            .max_item_count
            .as_deref()
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            None | Some(0) => DEFAULT_PAGE_SIZE,
            Some(n) => n.min(MAX_PAGE_SIZE),
        };
        let after = match req.continuation.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(token) => Some(decode(token).ok_or_else(|| BadToken(token.to_owned()))?),
        };
        let filter = crate::query::value(&req.query, "filter")
            .unwrap_or_default()
            .trim()
            .to_lowercase();
        Ok(Paging {
            size,
            after,
            filter,
        })
    }

    /// The page of `sorted` (sorted by `id`) this request asks for; `searched` gives the ids
    /// `?filter=` looks in.
    pub(super) fn page<T>(
        &self,
        sorted: Vec<T>,
        id: impl Fn(&T) -> &str,
        searched: impl Fn(&T) -> Vec<&str>,
    ) -> Page<T> {
        let matching: Vec<T> = sorted
            .into_iter()
            .filter(|item| {
                self.filter.is_empty()
                    || searched(item)
                        .iter()
                        .any(|s| s.to_lowercase().contains(&self.filter))
            })
            .collect();
        let total = matching.len();
        let mut items: Vec<T> = matching
            .into_iter()
            .filter(|item| self.after.as_deref().is_none_or(|after| id(item) > after))
            .take(self.size.saturating_add(1))
            .collect();
        let more = items.len() > self.size;
        items.truncate(self.size);
        let continuation = if more {
            items.last().map(|last| encode(id(last)))
        } else {
            None
        };
        Page {
            items,
            continuation,
            total,
        }
    }
}

impl Page<Value> {
    /// The JSON array, with `x-ms-continuation` when a page follows and `x-iotemu-total-count`.
    pub(super) fn reply(self) -> Reply {
        let mut reply = json_reply(StatusCode::OK, Value::Array(self.items));
        let headers = reply.headers_mut();
        headers.insert("x-iotemu-total-count", HeaderValue::from(self.total));
        if let Some(token) = self
            .continuation
            .and_then(|t| HeaderValue::from_str(&t).ok())
        {
            headers.insert("x-ms-continuation", token);
        }
        reply
    }
}

impl<T> Page<T> {
    pub(super) fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            continuation: self.continuation,
            total: self.total,
        }
    }
}

fn encode(last_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{last_id}"))
}

fn decode(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix(TOKEN_PREFIX)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(size: Option<&str>, token: Option<&str>, query: &str) -> Paging {
        let req = ApiRequest {
            method: hyper::Method::GET,
            segments: Vec::new(),
            query: query.to_owned(),
            if_match: None,
            max_item_count: size.map(str::to_owned),
            continuation: token.map(str::to_owned),
            body: bytes::Bytes::new(),
        };
        match Paging::of(&req) {
            Ok(p) => p,
            Err(_) => panic!("refused"),
        }
    }

    fn ids(n: usize) -> Vec<String> {
        let mut all: Vec<String> = (0..n).map(|i| format!("dev-{i:03}")).collect();
        all.sort();
        all
    }

    fn page_of(p: &Paging, all: Vec<String>) -> Page<String> {
        p.page(all, |s| s.as_str(), |s| vec![s.as_str()])
    }

    #[test]
    fn pages_follow_the_token_to_the_end_without_gaps_or_repeats() {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = page_of(&paging(Some("100"), token.as_deref(), ""), ids(250));
            assert_eq!(page.total, 250);
            seen.extend(page.items);
            match page.continuation {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, ids(250));
    }

    #[test]
    fn the_default_is_100_and_large_sizes_are_capped() {
        assert_eq!(page_of(&paging(None, None, ""), ids(250)).items.len(), 100);
        assert_eq!(
            page_of(&paging(Some("x"), None, ""), ids(250)).items.len(),
            100
        );
        assert_eq!(
            page_of(&paging(Some("5000"), None, ""), ids(1200))
                .items
                .len(),
            MAX_PAGE_SIZE
        );
        let last = page_of(&paging(Some("250"), None, ""), ids(250));
        assert_eq!((last.items.len(), last.continuation), (250, None));
    }

    #[test]
    fn a_deleted_entry_does_not_shift_the_next_page() {
        let first = page_of(&paging(Some("10"), None, ""), ids(30));
        let token = first.continuation.unwrap();
        let mut fewer = ids(30);
        fewer.remove(3);
        let second = page_of(&paging(Some("10"), Some(&token), ""), fewer);
        assert_eq!(second.items.first().map(String::as_str), Some("dev-010"));
    }

    #[test]
    fn the_filter_applies_before_paging() {
        let page = page_of(&paging(Some("5"), None, "filter=DEV-1"), ids(250));
        assert_eq!(page.total, 100);
        assert_eq!(page.items.first().map(String::as_str), Some("dev-100"));
        assert!(page.continuation.is_some());
    }

    #[test]
    fn a_foreign_token_is_refused() {
        let req = ApiRequest {
            method: hyper::Method::GET,
            segments: Vec::new(),
            query: String::new(),
            if_match: None,
            max_item_count: None,
            continuation: Some(URL_SAFE_NO_PAD.encode("iotemu-after:dev-1")),
            body: bytes::Bytes::new(),
        };
        let refused = Paging::of(&req).err().map(|r| r.reply().status());
        assert_eq!(refused, Some(StatusCode::BAD_REQUEST));
    }
}
