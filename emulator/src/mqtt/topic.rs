//! Topic filter matching. rumqttc's matcher refuses every `$` topic; MQTT only forbids
//! *wildcard-leading* filters from matching them [MQTT-4.7.2-1], and every Azure topic starts
//! with `$iothub` or `$dps`, so we match ourselves.

/// True when `topic` matches `filter` (`+` one level, `#` the rest).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match level {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            literal => {
                if topic_levels.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

/// True when `filter` is well-formed: `#` only last and alone in its level, `+` alone.
pub fn valid_filter(filter: &str) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    !filter.is_empty()
        && levels.iter().enumerate().all(|(i, level)| match *level {
            "#" => i == levels.len() - 1,
            "+" => true,
            l => !l.contains('#') && !l.contains('+'),
        })
}

/// `path?query` split at the first `?`.
pub fn split_query(topic: &str) -> (&str, &str) {
    topic.split_once('?').unwrap_or((topic, ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn azure_filters_match_their_topics() {
        assert!(filter_matches(
            "$dps/registrations/res/#",
            "$dps/registrations/res/202/?$rid=1&retry-after=3"
        ));
        assert!(filter_matches(
            "$iothub/twin/res/#",
            "$iothub/twin/res/200/?$rid=1"
        ));
        assert!(filter_matches(
            "devices/+/messages/devicebound/#",
            "devices/d1/messages/devicebound/a=b"
        ));
        assert!(!filter_matches("#", "$iothub/twin/res/200"));
        assert!(!filter_matches("+/twin/res/#", "$iothub/twin/res/200"));
        assert!(!filter_matches(
            "devices/d1/messages",
            "devices/d1/messages/events"
        ));
        assert!(filter_matches("a/#", "a"));
    }

    #[test]
    fn filter_syntax() {
        assert!(valid_filter("$iothub/methods/POST/#"));
        assert!(valid_filter("devices/+/messages/devicebound/#"));
        assert!(!valid_filter("a/#/b"));
        assert!(!valid_filter("a/b#"));
        assert!(!valid_filter(""));
    }

    proptest! {
        #[test]
        fn literal_filter_matches_exactly_itself(
            levels in proptest::collection::vec("[a-z$]{0,5}", 1..5),
            other in proptest::collection::vec("[a-z$]{0,5}", 1..5),
        ) {
            let topic = levels.join("/");
            let other = other.join("/");
            prop_assert!(filter_matches(&topic, &topic));
            prop_assert_eq!(filter_matches(&topic, &other), topic == other);
            let (wide, child) = (format!("{topic}/#"), format!("{topic}/x"));
            prop_assert!(filter_matches(&wide, &child));
        }
    }
}
