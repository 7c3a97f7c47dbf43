//! The query language's last stage: a parsed [`Query`] applied to twin documents. Conditions
//! are evaluated with three-valued logic (a missing property or a comparison between different
//! types is *undefined*, neither true nor false); results are ordered by device id (then module
//! id) and paged with continuation tokens that name the last document returned, so pages stay
//! consistent when twins come and go between calls.

use std::cmp::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::parser::{Comparison, Expr};
use super::{
    Collection, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Projection, Query, QueryError, QueryPage,
};

/// Marks our continuation tokens, so a token from elsewhere is refused, not misread.
const CONTINUATION_PREFIX: &str = "iotemu-query:";

impl Query {
    /// Whether `document` satisfies the `WHERE` clause (always, without one).
    pub fn matches(&self, document: &Value) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| f.evaluate(document) == Some(Value::Bool(true)))
    }

    /// Runs the query over `documents` (twin JSON of the query's collection, in any order) and
    /// returns one page. Documents are returned in `deviceId` (then `moduleId`) order and the
    /// continuation token names the last one returned, so pages stay consistent when twins are
    /// added or removed between calls.
    pub fn run(
        &self,
        documents: Vec<Value>,
        max_item_count: Option<usize>,
        continuation: Option<&str>,
    ) -> Result<QueryPage, QueryError> {
        if let Projection::Count { alias } = &self.projection {
            let count = documents.iter().filter(|d| self.matches(d)).count();
            let mut row = Map::new();
            row.insert(alias.clone(), json!(count));
            return Ok(QueryPage {
                items: vec![Value::Object(row)],
                continuation: None,
                item_type: "raw",
            });
        }
        let size = match max_item_count {
            None | Some(0) => DEFAULT_PAGE_SIZE,
            Some(n) => n.min(MAX_PAGE_SIZE),
        };
        let resume = match continuation.map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) => Some(Resume::decode(token)?),
            None => None,
        };
        let already = resume.as_ref().map_or(0, |r| r.returned);
        let remaining = self.top.map_or(usize::MAX, |t| t.saturating_sub(already));
        let mut selected: Vec<(String, Value)> = documents
            .into_iter()
            .map(|d| (sort_key(&d), d))
            .filter(|(key, _)| resume.as_ref().is_none_or(|r| *key > r.after))
            .filter(|(_, d)| self.matches(d))
            .collect();
        selected.sort_by(|a, b| a.0.cmp(&b.0));
        let available = selected.len().min(remaining);
        let more = available > size;
        selected.truncate(available.min(size));
        let continuation = if more {
            selected.last().map(|(key, _)| {
                Resume {
                    after: key.clone(),
                    returned: already + selected.len(),
                }
                .encode()
            })
        } else {
            None
        };
        let items = selected.into_iter().map(|(_, d)| d);
        Ok(match &self.projection {
            Projection::Fields(fields) => QueryPage {
                items: items.map(|d| project(&d, fields)).collect(),
                continuation,
                item_type: "raw",
            },
            _ => QueryPage {
                items: items.collect(),
                continuation,
                item_type: match self.collection {
                    Collection::Jobs => "deviceJob",
                    Collection::Devices | Collection::Modules => "twin",
                },
            },
        })
    }
}

/// The listed properties of `document` that it has, each under its last name.
fn project(document: &Value, fields: &[Vec<String>]) -> Value {
    let mut row = Map::new();
    for path in fields {
        if let (Some(name), Some(value)) = (path.last(), lookup(document, path)) {
            row.insert(name.clone(), value.clone());
        }
    }
    Value::Object(row)
}

/// Where the next page starts: after the document with this key, `returned` having been
/// sent already (for `TOP`).
struct Resume {
    after: String,
    returned: usize,
}

impl Resume {
    fn encode(&self) -> String {
        let payload = json!({ "after": self.after, "returned": self.returned });
        URL_SAFE_NO_PAD.encode(format!("{CONTINUATION_PREFIX}{payload}"))
    }

    fn decode(token: &str) -> Result<Resume, QueryError> {
        let invalid = || QueryError::new(format!("Invalid continuation token '{token}'"));
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let payload = text.strip_prefix(CONTINUATION_PREFIX).ok_or_else(invalid)?;
        let payload: Value = serde_json::from_str(payload).map_err(|_| invalid())?;
        let after = payload["after"].as_str().ok_or_else(invalid)?.to_owned();
        let returned = payload["returned"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(invalid)?;
        Ok(Resume { after, returned })
    }
}

/// Device ids cannot contain `/`, so `device/module` orders module twins by device first.
fn sort_key(document: &Value) -> String {
    let device = document["deviceId"].as_str().unwrap_or_default();
    // A module twin, or a device's part in a job: ids hold no '/', so keys stay distinct.
    match document["moduleId"].as_str().or(document["jobId"].as_str()) {
        Some(second) => format!("{device}/{second}"),
        None => device.to_owned(),
    }
}

impl Expr {
    /// The expression's value for `document`; `None` is *undefined* (a missing property, or a
    /// comparison that has no answer).
    fn evaluate(&self, document: &Value) -> Option<Value> {
        match self {
            Expr::Constant(value) => Some(value.clone()),
            Expr::Property(path) => lookup(document, path).cloned(),
            Expr::IsDefined(path) => Some(Value::Bool(lookup(document, path).is_some())),
            Expr::Compare(left, op, right) => {
                let left = left.evaluate(document)?;
                let right = right.evaluate(document)?;
                compare(&left, *op, &right).map(Value::Bool)
            }
            Expr::Membership {
                value,
                list,
                negated,
            } => {
                let value = value.evaluate(document)?;
                if !is_primitive(&value) {
                    return None;
                }
                let found = list
                    .iter()
                    .any(|item| compare(&value, Comparison::Equal, item) == Some(true));
                Some(Value::Bool(found != *negated))
            }
            Expr::Not(inner) => truth(inner.evaluate(document)).map(|b| Value::Bool(!b)),
            // Three-valued logic: one false decides AND, one true decides OR; otherwise an
            // undefined operand leaves the result undefined.
            Expr::And(terms) => {
                let mut result = Some(true);
                for term in terms {
                    match truth(term.evaluate(document)) {
                        Some(false) => return Some(Value::Bool(false)),
                        Some(true) => {}
                        None => result = None,
                    }
                }
                result.map(Value::Bool)
            }
            Expr::Or(terms) => {
                let mut result = Some(false);
                for term in terms {
                    match truth(term.evaluate(document)) {
                        Some(true) => return Some(Value::Bool(true)),
                        Some(false) => {}
                        None => result = None,
                    }
                }
                result.map(Value::Bool)
            }
        }
    }
}

/// A Boolean operand's truth value; anything that is not a Boolean is undefined.
fn truth(value: Option<Value>) -> Option<bool> {
    match value {
        Some(Value::Bool(b)) => Some(b),
        _ => None,
    }
}

fn lookup<'d>(document: &'d Value, path: &[String]) -> Option<&'d Value> {
    path.iter()
        .try_fold(document, |value, key| value.as_object()?.get(key))
}

fn is_primitive(value: &Value) -> bool {
    !matches!(value, Value::Object(_) | Value::Array(_))
}

/// Primitives of the same type compare (numbers by value, strings by code point, `false` <
/// `true`, `null` = `null`); anything else has no answer.
fn compare(left: &Value, op: Comparison, right: &Value) -> Option<bool> {
    let order = match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?)?,
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => return None,
    };
    Some(match op {
        Comparison::Equal => order == Ordering::Equal,
        Comparison::NotEqual => order != Ordering::Equal,
        Comparison::Less => order == Ordering::Less,
        Comparison::Greater => order == Ordering::Greater,
        Comparison::LessOrEqual => order != Ordering::Greater,
        Comparison::GreaterOrEqual => order != Ordering::Less,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Collection, parse};
    use super::*;

    fn twin(device_id: &str, tags: Value, reported: Value) -> Value {
        json!({
            "deviceId": device_id,
            "etag": "AAAAAAAAAAE=",
            "status": "enabled",
            "connectionState": "Disconnected",
            "tags": tags,
            "properties": {
                "desired": { "$version": 1 },
                "reported": reported,
            },
        })
    }

    fn fleet() -> Vec<Value> {
        vec![
            twin(
                "dev-b",
                json!({"location": {"region": "US", "plant": "Redmond43"}}),
                json!({"fw": "1.2", "temp": 21.5, "online": true}),
            ),
            twin(
                "dev-a",
                json!({"location": {"region": "EU"}}),
                json!({"fw": "1.0", "temp": 30, "battery": null}),
            ),
            twin("dev-c", json!({}), json!({"temp": "hot"})),
        ]
    }

    /// Device ids the query selects from [`fleet`], in result order.
    fn ids(text: &str) -> Vec<String> {
        let query = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        query
            .run(fleet(), None, None)
            .unwrap()
            .items
            .iter()
            .map(|d| d["deviceId"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn select_star_returns_every_twin_in_device_id_order() {
        assert_eq!(ids("SELECT * FROM devices"), ["dev-a", "dev-b", "dev-c"]);
        let page = parse("select * from DEVICES")
            .unwrap()
            .run(fleet(), None, None)
            .unwrap();
        assert_eq!(page.item_type, "twin");
        assert_eq!(page.continuation, None);
        assert_eq!(
            page.items[0],
            fleet()[1],
            "documents are returned unchanged"
        );
    }

    #[test]
    fn where_compares_tags_properties_and_top_level_fields() {
        assert_eq!(
            ids("SELECT * FROM devices WHERE tags.location.region = 'US'"),
            ["dev-b"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE deviceId = \"dev-c\""),
            ["dev-c"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.temp >= 25"),
            ["dev-a"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.temp < 30.0"),
            ["dev-b"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.temp <= 30"),
            ["dev-a", "dev-b"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.fw > '1.0'"),
            ["dev-b"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE status = 'enabled'").len(),
            3
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.online = true"),
            ["dev-b"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.battery = null"),
            ["dev-a"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.desired.$version = 1").len(),
            3
        );
    }

    #[test]
    fn not_equal_needs_the_property_and_a_comparable_type() {
        // dev-c has no region: undefined, so it is not returned by `!=` either.
        assert_eq!(
            ids("SELECT * FROM devices WHERE tags.location.region != 'US'"),
            ["dev-a"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE tags.location.region <> 'US'"),
            ["dev-a"]
        );
        // A string never equals or differs from a number.
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.temp != 21.5"),
            ["dev-a"]
        );
        // Objects do not compare.
        assert!(ids("SELECT * FROM devices WHERE tags.location = tags.location").is_empty());
    }

    #[test]
    fn boolean_logic_is_three_valued() {
        assert_eq!(
            ids(
                "SELECT * FROM devices WHERE tags.location.region = 'US' OR properties.reported.temp = 'hot'"
            ),
            ["dev-b", "dev-c"]
        );
        assert_eq!(
            ids(
                "SELECT * FROM devices WHERE tags.location.region = 'EU' AND properties.reported.fw = '1.0'"
            ),
            ["dev-a"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE NOT (tags.location.region = 'US')"),
            ["dev-a"],
            "NOT of undefined stays undefined"
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE tags.nothing = 1 OR deviceId = 'dev-c'"),
            ["dev-c"],
            "true OR undefined is true"
        );
        assert!(
            ids("SELECT * FROM devices WHERE tags.nothing = 1 AND deviceId = 'dev-c'").is_empty()
        );
        assert_eq!(
            ids(
                "SELECT * FROM devices WHERE (deviceId = 'dev-a' OR deviceId = 'dev-b') AND NOT properties.reported.fw = '1.2'"
            ),
            ["dev-a"]
        );
        assert!(
            ids("SELECT * FROM devices WHERE deviceId").is_empty(),
            "a non-Boolean condition selects nothing"
        );
        assert_eq!(ids("SELECT * FROM devices WHERE true").len(), 3);
    }

    #[test]
    fn is_defined_counts_null_as_defined() {
        assert_eq!(
            ids("SELECT * FROM devices WHERE IS_DEFINED(properties.reported.battery)"),
            ["dev-a"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE NOT is_defined(tags.location)"),
            ["dev-c"]
        );
    }

    #[test]
    fn in_and_nin_match_against_constant_arrays() {
        assert_eq!(
            ids("SELECT * FROM devices WHERE deviceId IN ['dev-a', 'dev-c', 'x']"),
            ["dev-a", "dev-c"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.fw NIN ['1.0']"),
            ["dev-b"]
        );
        assert!(ids("SELECT * FROM devices WHERE deviceId IN []").is_empty());
    }

    #[test]
    fn count_returns_one_aliased_row() {
        let query = parse("SELECT COUNT() AS total FROM devices WHERE tags.location.region = 'US'")
            .unwrap();
        let page = query.run(fleet(), Some(1), None).unwrap();
        assert_eq!(page.items, [json!({"total": 1})]);
        assert_eq!(page.item_type, "raw");
        assert_eq!(page.continuation, None);
        let unnamed = parse("select count() from devices").unwrap();
        assert_eq!(
            unnamed.run(fleet(), None, None).unwrap().items,
            [json!({"$1": 3})]
        );
    }

    #[test]
    fn modules_are_a_separate_collection_ordered_by_device_then_module() {
        let query =
            parse("SELECT * FROM devices.modules WHERE devices.modules.moduleId != 'm2'").unwrap();
        assert_eq!(query.collection, Collection::Modules);
        let modules = vec![
            json!({"deviceId": "d1", "moduleId": "m2"}),
            json!({"deviceId": "d1", "moduleId": "m1"}),
            json!({"deviceId": "d0", "moduleId": "m3"}),
        ];
        let page = query.run(modules, None, None).unwrap();
        assert_eq!(
            page.items,
            [
                json!({"deviceId": "d0", "moduleId": "m3"}),
                json!({"deviceId": "d1", "moduleId": "m1"})
            ]
        );
    }

    #[test]
    fn pages_follow_the_continuation_token_to_the_end() {
        let query = parse("SELECT * FROM devices").unwrap();
        let first = query.run(fleet(), Some(2), None).unwrap();
        assert_eq!(first.items.len(), 2);
        let token = first.continuation.expect("more pages");
        let second = query.run(fleet(), Some(2), Some(&token)).unwrap();
        assert_eq!(second.items.len(), 1);
        assert_eq!(second.items[0]["deviceId"], "dev-c");
        assert_eq!(second.continuation, None);
        // A twin added before the resume point does not shift the next page.
        let mut more = fleet();
        more.push(twin("dev-0", json!({}), json!({})));
        let again = query.run(more, Some(2), Some(&token)).unwrap();
        assert_eq!(again.items[0]["deviceId"], "dev-c");
    }

    #[test]
    fn top_limits_the_total_over_pages() {
        let query = parse("SELECT TOP 2 * FROM devices").unwrap();
        let first = query.run(fleet(), Some(1), None).unwrap();
        assert_eq!(first.items.len(), 1);
        let second = query
            .run(fleet(), Some(1), first.continuation.as_deref())
            .unwrap();
        assert_eq!(second.items[0]["deviceId"], "dev-b");
        assert_eq!(second.continuation, None, "TOP 2 is reached");
        assert_eq!(ids("SELECT TOP 0 * FROM devices").len(), 0);
    }

    #[test]
    fn foreign_continuation_tokens_are_refused() {
        let query = parse("SELECT * FROM devices").unwrap();
        for token in [
            "not base64!",
            "aW90ZW11LWFmdGVyOng",
            &URL_SAFE_NO_PAD.encode("iotemu-query:{}"),
        ] {
            let error = query.run(fleet(), None, Some(token)).unwrap_err();
            assert!(error.message.contains("continuation"), "{error}");
        }
    }

    #[test]
    fn literals_cover_escapes_negatives_hex_and_exponents() {
        let document = json!({
            "deviceId": "d",
            "tags": {"quote": "it's", "nl": "a\nb", "neg": -5, "hex": 31, "big": 1500, "u": "é"},
        });
        for condition in [
            r"tags.quote = 'it\'s'",
            r#"tags.quote = "it's""#,
            r"tags.nl = 'a\nb'",
            "tags.neg = -5",
            "tags.neg < -4.5",
            "tags.hex = 0x1F",
            "tags.big = 1.5e3",
            "tags.big = 15E+2",
            r"tags.u = '\u00e9'",
        ] {
            let query = parse(&format!("SELECT * FROM devices WHERE {condition}")).unwrap();
            assert!(query.matches(&document), "{condition}");
        }
    }

    #[test]
    fn comparisons_need_two_primitives_of_one_type() {
        use Comparison::*;
        assert_eq!(compare(&json!(1), Less, &json!(1.5)), Some(true));
        assert_eq!(compare(&json!("b"), Greater, &json!("a")), Some(true));
        assert_eq!(compare(&json!(false), Less, &json!(true)), Some(true));
        assert_eq!(compare(&Value::Null, Equal, &Value::Null), Some(true));
        assert_eq!(compare(&Value::Null, NotEqual, &Value::Null), Some(false));
        assert_eq!(compare(&json!(1), Equal, &json!("1")), None);
        assert_eq!(compare(&json!([1]), Equal, &json!([1])), None);
        assert_eq!(compare(&json!({}), Equal, &json!({})), None);
    }

    #[test]
    fn undefined_operands_propagate_through_the_tree() {
        let document = json!({"a": 1});
        let missing = || Expr::Property(vec!["b".into()]);
        let yes = || Expr::Constant(json!(true));
        let no = || Expr::Constant(json!(false));
        assert_eq!(missing().evaluate(&document), None);
        assert_eq!(Expr::Not(Box::new(missing())).evaluate(&document), None);
        assert_eq!(
            Expr::And(vec![missing(), no()]).evaluate(&document),
            Some(json!(false))
        );
        assert_eq!(Expr::And(vec![missing(), yes()]).evaluate(&document), None);
        assert_eq!(
            Expr::Or(vec![missing(), yes()]).evaluate(&document),
            Some(json!(true))
        );
        assert_eq!(Expr::Or(vec![missing(), no()]).evaluate(&document), None);
        let membership = Expr::Membership {
            value: Box::new(Expr::Property(vec!["a".into()])),
            list: vec![json!(1)],
            negated: true,
        };
        assert_eq!(membership.evaluate(&document), Some(json!(false)));
    }

    #[test]
    fn continuation_tokens_round_trip() {
        let token = Resume {
            after: "dev/mod".into(),
            returned: 7,
        }
        .encode();
        let resumed = Resume::decode(&token).unwrap();
        assert_eq!((resumed.after.as_str(), resumed.returned), ("dev/mod", 7));
        assert_eq!(sort_key(&json!({"deviceId": "d", "moduleId": "m"})), "d/m");
        assert_eq!(sort_key(&json!({"deviceId": "d"})), "d");
    }

    proptest::proptest! {
        #[test]
        fn running_any_query_shaped_text_never_panics(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "SELECT", "*", "FROM", "devices", ".", "modules", "WHERE", "AND", "OR",
                    "NOT", "(", ")", "=", "!=", "<", ">=", "IN", "NIN", "[", "]", ",", "'a'",
                    "\"b", "12", "-", "0x", "1e", "IS_DEFINED", "tags", "COUNT()", "AS", "TOP",
                    "true", "null", "\\", "'\\u12", "x",
                ]),
                0..40,
            )
        ) {
            let text = parts.join(" ");
            if let Ok(query) = parse(&text) {
                let _ = query.run(fleet(), Some(1), None);
            }
        }
    }
}
