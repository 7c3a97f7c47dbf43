//! Where a consumer starts reading a partition: the Event Hubs selector filter a receiver link
//! carries (spec/amqp.md §4.4), parsed once into an [`EventPosition`].
//!
//! The clients send one of three comparisons on a message annotation, the value always in
//! single quotes:
//!
//! ```text
//! amqp.annotation.x-opt-offset > '-1'                 -1 = from the first retained event
//! amqp.annotation.x-opt-offset > '@latest'            only events enqueued after the attach
//! amqp.annotation.x-opt-offset >= '1234'              an offset we handed out earlier
//! amqp.annotation.x-opt-sequence-number > '5'
//! amqp.annotation.x-opt-enqueued-time > '1700000000000'   epoch milliseconds
//! ```
//!
//! Anything else is a [`SelectorError`]; the AMQP layer detaches the link with
//! `com.microsoft:argument-error`, which both Event Hubs SDKs treat as not retryable.

use std::fmt;

/// A parsed start position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventPosition {
    /// The first retained event (`x-opt-offset > '-1'`, or no filter at all).
    Start,
    /// The next event enqueued after the receiver attached (`'@latest'`).
    Latest,
    /// Events whose offset is greater than (or, `inclusive`, equal to) this one.
    Offset { offset: u64, inclusive: bool },
    /// Events whose sequence number is greater than (or equal to) this one.
    SequenceNumber {
        sequence_number: i64,
        inclusive: bool,
    },
    /// Events enqueued after (or at) this many milliseconds since the Unix epoch.
    EnqueuedTime { millis: i64, inclusive: bool },
}

/// A selector the emulator cannot read, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    pub selector: String,
    pub reason: &'static str,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the selector filter '{}' is invalid: {}",
            self.selector, self.reason
        )
    }
}

impl std::error::Error for SelectorError {}

/// The longest selector read; the clients send well under 100 characters.
const MAX_SELECTOR_CHARS: usize = 1024;

impl EventPosition {
    /// Parses a selector filter string (see the module documentation).
    pub fn parse(selector: &str) -> Result<EventPosition, SelectorError> {
        let fail = |reason| SelectorError {
            selector: selector.chars().take(200).collect(),
            reason,
        };
        if selector.len() > MAX_SELECTOR_CHARS {
            return Err(fail("it is longer than 1024 characters"));
        }
        let text = selector.trim();
        let rest = strip_prefix_ignore_case(text, "amqp.annotation.")
            .ok_or_else(|| fail("it must compare an amqp.annotation"))?;
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '=' || c == '<')
            .ok_or_else(|| fail("it has no comparison"))?;
        let (annotation, rest) = match (rest.get(..name_end), rest.get(name_end..)) {
            (Some(name), Some(rest)) => (name, rest.trim_start()),
            _ => return Err(fail("it has no comparison")),
        };
        let (inclusive, rest) = if let Some(r) = rest.strip_prefix(">=") {
            (true, r)
        } else if let Some(r) = rest.strip_prefix('>') {
            (false, r)
        } else {
            return Err(fail("the only comparisons are > and >="));
        };
        let value = rest
            .trim()
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .ok_or_else(|| fail("the value must be in single quotes"))?;
        match annotation.to_ascii_lowercase().as_str() {
            "x-opt-offset" => match value {
                "-1" => Ok(EventPosition::Start),
                "@latest" => Ok(EventPosition::Latest),
                digits => digits
                    .parse::<u64>()
                    .map(|offset| EventPosition::Offset { offset, inclusive })
                    .map_err(|_| fail("an offset is -1, @latest or a number this hub handed out")),
            },
            "x-opt-sequence-number" => value
                .parse::<i64>()
                .map(|sequence_number| EventPosition::SequenceNumber {
                    sequence_number,
                    inclusive,
                })
                .map_err(|_| fail("a sequence number is a whole number")),
            "x-opt-enqueued-time" | "x-opt-enqueuedtime" => parse_millis(value)
                .map(|millis| EventPosition::EnqueuedTime { millis, inclusive })
                .ok_or_else(|| fail("an enqueued time is milliseconds since 1970")),
            _ => Err(fail(
                "only x-opt-offset, x-opt-sequence-number and x-opt-enqueued-time can be compared",
            )),
        }
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// Whole milliseconds; a fractional part (some clients format a float) is dropped.
fn parse_millis(value: &str) -> Option<i64> {
    let whole = match value.split_once('.') {
        Some((whole, fraction)) if fraction.chars().all(|c| c.is_ascii_digit()) => whole,
        Some(_) => return None,
        None => value,
    };
    whole.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_selectors_the_sdks_send() {
        let cases = [
            ("amqp.annotation.x-opt-offset > '-1'", EventPosition::Start),
            ("amqp.annotation.x-opt-offset >= '-1'", EventPosition::Start),
            (
                "amqp.annotation.x-opt-offset > '@latest'",
                EventPosition::Latest,
            ),
            (
                "amqp.annotation.x-opt-offset >= '1234'",
                EventPosition::Offset {
                    offset: 1234,
                    inclusive: true,
                },
            ),
            (
                "amqp.annotation.x-opt-offset > '1234'",
                EventPosition::Offset {
                    offset: 1234,
                    inclusive: false,
                },
            ),
            (
                "amqp.annotation.x-opt-sequence-number > '5'",
                EventPosition::SequenceNumber {
                    sequence_number: 5,
                    inclusive: false,
                },
            ),
            (
                "amqp.annotation.x-opt-sequence-number >= '-1'",
                EventPosition::SequenceNumber {
                    sequence_number: -1,
                    inclusive: true,
                },
            ),
            (
                "amqp.annotation.x-opt-enqueued-time > '1700000000000'",
                EventPosition::EnqueuedTime {
                    millis: 1_700_000_000_000,
                    inclusive: false,
                },
            ),
            (
                "  AMQP.Annotation.X-Opt-Enqueued-Time>='1700000000000.25' ",
                EventPosition::EnqueuedTime {
                    millis: 1_700_000_000_000,
                    inclusive: true,
                },
            ),
        ];
        for (selector, expected) in cases {
            assert_eq!(EventPosition::parse(selector), Ok(expected), "{selector}");
        }
    }

    #[test]
    fn everything_else_is_a_typed_error() {
        for selector in [
            "",
            "amqp.annotation.x-opt-offset",
            "amqp.annotation.x-opt-offset < '5'",
            "amqp.annotation.x-opt-offset = '5'",
            "amqp.annotation.x-opt-offset > 5",
            "amqp.annotation.x-opt-offset > 'abc'",
            "amqp.annotation.x-opt-offset > '-2'",
            "amqp.annotation.x-opt-sequence-number > '1.5'",
            "amqp.annotation.x-opt-enqueued-time > 'yesterday'",
            "amqp.annotation.x-opt-partition-key > 'a'",
            "x-opt-offset > '-1'",
            "amqp.annotation.x-opt-offset > '1",
        ] {
            let error = EventPosition::parse(selector).expect_err(selector);
            assert!(!error.to_string().is_empty());
        }
    }

    proptest! {
        #[test]
        fn never_panics(selector in ".{0,80}") {
            let _ = EventPosition::parse(&selector);
        }

        #[test]
        fn never_panics_near_valid_selectors(
            name in "(x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time|x-opt-é)",
            op in "(>|>=|=|<| > )",
            value in "'?[-@0-9a-zé.]{0,25}'?",
        ) {
            let _ = EventPosition::parse(&format!("amqp.annotation.{name} {op} {value}"));
        }

        #[test]
        fn offsets_round_trip(offset in 0u64..u64::MAX, inclusive: bool) {
            let op = if inclusive { ">=" } else { ">" };
            let selector = format!("amqp.annotation.x-opt-offset {op} '{offset}'");
            prop_assert_eq!(
                EventPosition::parse(&selector),
                Ok(EventPosition::Offset { offset, inclusive })
            );
        }
    }
}
