//! One partition of a hub's Event Hubs-compatible endpoint: an append-only, bounded log of
//! events, each with the position Event Hubs gives it, and readers that follow it.
//!
//! Positions, as the Event Hubs clients expect them (spec/amqp.md §4.3–§4.5):
//! * sequence numbers start at 0 per partition and grow by one; `-1` means "nothing yet";
//! * the offset is a decimal string of a byte position: where the event starts in a notional
//!   partition file holding each event's bytes (body and properties) plus a fixed header, so
//!   it grows strictly even for empty events (docs/differences.md);
//! * the enqueued time never goes backwards within a partition, so every position can be
//!   found by binary search.
//!
//! The oldest events fall off once `capacity` (`--telemetry-retention`) is reached; a reader
//! that was behind continues at the oldest retained event, as Event Hubs does after retention.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::position::EventPosition;
use crate::hub::telemetry::TelemetryMessage;

/// Bytes counted for each event besides its body and properties (the AMQP framing Event Hubs
/// would store), so consecutive offsets always differ.
pub(crate) const EVENT_HEADER_BYTES: u64 = 64;

/// An event as stored in a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionEvent {
    pub sequence_number: i64,
    pub offset: u64,
    pub enqueued_time: SystemTime,
    pub message: Arc<TelemetryMessage>,
}

impl PartitionEvent {
    /// `x-opt-offset` as sent: a decimal string.
    pub(crate) fn offset_text(&self) -> String {
        self.offset.to_string()
    }

    /// `x-opt-enqueued-time` in milliseconds since the Unix epoch.
    pub(crate) fn enqueued_millis(&self) -> i64 {
        unix_millis(self.enqueued_time)
    }
}

/// What `$management` reports about a partition (`com.microsoft:partition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionProperties {
    pub id: String,
    /// The oldest retained sequence number; 0 while the partition is empty.
    pub begin_sequence_number: i64,
    /// `-1` while nothing was ever enqueued.
    pub last_enqueued_sequence_number: i64,
    /// `"-1"` while nothing was ever enqueued.
    pub last_enqueued_offset: String,
    /// The Unix epoch while nothing was ever enqueued.
    pub last_enqueued_time: SystemTime,
    pub is_empty: bool,
}

/// The retained events themselves, not pointers to them: evicting the oldest reads the
/// deque's next slot instead of chasing a pointer into memory written 10,000 appends ago.
struct PartitionLog {
    events: VecDeque<PartitionEvent>,
    next_sequence_number: i64,
    next_offset: u64,
}

/// One partition.
pub struct Partition {
    id: u32,
    capacity: usize,
    log: Mutex<PartitionLog>,
    /// Changes when an event is appended while a reader waits (its value is only a hint:
    /// appends with no reader subscribed do not send).
    appended: watch::Sender<i64>,
}

impl Partition {
    pub fn new(id: u32, capacity: usize) -> Partition {
        Partition {
            id,
            capacity: capacity.max(1),
            log: Mutex::new(PartitionLog {
                events: VecDeque::new(),
                next_sequence_number: 0,
                next_offset: 0,
            }),
            appended: watch::channel(-1).0,
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    fn log(&self) -> MutexGuard<'_, PartitionLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `message` as the partition's next event and wakes its readers.
    pub fn append(&self, message: Arc<TelemetryMessage>) -> PartitionEvent {
        let event = {
            let mut log = self.log();
            let now = SystemTime::now();
            let enqueued_time = match log.events.back() {
                Some(last) if last.enqueued_time > now => last.enqueued_time,
                _ => now,
            };
            let size = u64::try_from(message.size()).unwrap_or(u64::MAX);
            let event = PartitionEvent {
                sequence_number: log.next_sequence_number,
                offset: log.next_offset,
                enqueued_time,
                message,
            };
            log.next_sequence_number = log.next_sequence_number.saturating_add(1);
            log.next_offset = log
                .next_offset
                .saturating_add(size)
                .saturating_add(EVENT_HEADER_BYTES);
            if log.events.len() >= self.capacity {
                log.events.pop_front();
            }
            log.events.push_back(event.clone());
            event
        };
        // Readers subscribe before they look at the log, so one that looked before this
        // append is counted here; with none, nobody is woken (no wake-ups nobody waits for).
        if self.appended.receiver_count() > 0 {
            self.appended.send_replace(event.sequence_number);
        }
        event
    }

    pub fn properties(&self) -> PartitionProperties {
        let log = self.log();
        // The capacity is at least one, so the newest event is always retained.
        let last = log.events.back();
        PartitionProperties {
            id: self.id.to_string(),
            begin_sequence_number: log.events.front().map_or(0, |e| e.sequence_number),
            last_enqueued_sequence_number: last.map_or(-1, |e| e.sequence_number),
            last_enqueued_offset: last.map_or_else(|| "-1".to_owned(), |e| e.offset_text()),
            last_enqueued_time: last.map_or(UNIX_EPOCH, |e| e.enqueued_time),
            is_empty: log.events.is_empty(),
        }
    }

    /// The retained events, oldest first.
    pub fn events(&self) -> Vec<PartitionEvent> {
        self.log().events.iter().cloned().collect()
    }

    /// The sequence number of the first event a reader starting at `position` gets.
    fn first_sequence_number(&self, position: EventPosition) -> i64 {
        let log = self.log();
        let next = log.next_sequence_number;
        let begin = log.events.front().map_or(next, |e| e.sequence_number);
        // The first retained event that satisfies `after`, or the next one to be appended.
        let first_where = |after: &dyn Fn(&PartitionEvent) -> bool| {
            let index = log.events.partition_point(|e| !after(e));
            log.events.get(index).map_or(next, |e| e.sequence_number)
        };
        match position {
            EventPosition::Start => begin,
            EventPosition::Latest => next,
            EventPosition::SequenceNumber {
                sequence_number,
                inclusive,
            } => {
                let wanted = if inclusive {
                    sequence_number
                } else {
                    sequence_number.saturating_add(1)
                };
                wanted.clamp(begin, next)
            }
            EventPosition::Offset { offset, inclusive } => first_where(&|e| {
                if inclusive {
                    e.offset >= offset
                } else {
                    e.offset > offset
                }
            }),
            EventPosition::EnqueuedTime { millis, inclusive } => first_where(&|e| {
                let at = e.enqueued_millis();
                if inclusive { at >= millis } else { at > millis }
            }),
        }
    }

    /// A reader positioned at `position`.
    pub fn reader(self: &Arc<Self>, position: EventPosition) -> PartitionReader {
        // Subscribe first: an event appended between here and the position lookup wakes us.
        let changes = self.appended.subscribe();
        PartitionReader {
            next: self.first_sequence_number(position),
            partition: self.clone(),
            changes,
        }
    }

    /// Up to `max` retained events from sequence number `from` on (skipping to the oldest
    /// retained one when `from` fell off).
    fn read_from(&self, from: i64, max: usize) -> Vec<PartitionEvent> {
        let log = self.log();
        let Some(begin) = log.events.front().map(|e| e.sequence_number) else {
            return Vec::new();
        };
        let skip = usize::try_from(from.saturating_sub(begin)).unwrap_or(0);
        log.events.iter().skip(skip).take(max).cloned().collect()
    }
}

/// Follows one partition from a position: retained events first, then new ones as they are
/// appended. The caller passes how many it may take (the link credit).
pub struct PartitionReader {
    partition: Arc<Partition>,
    next: i64,
    changes: watch::Receiver<i64>,
}

impl PartitionReader {
    /// The sequence number of the next event this reader returns.
    pub(crate) fn next_sequence_number(&self) -> i64 {
        self.next
    }

    pub fn partition(&self) -> &Arc<Partition> {
        &self.partition
    }

    /// Up to `max` events available now, without waiting.
    pub(crate) fn try_read(&mut self, max: usize) -> Vec<PartitionEvent> {
        let batch = self.partition.read_from(self.next, max);
        if let Some(last) = batch.last() {
            self.next = last.sequence_number.saturating_add(1);
        }
        batch
    }

    /// Up to `max` events, waiting until at least one is available (`max` = 0 returns at
    /// once). Cancel-safe: dropping the future loses nothing.
    pub async fn read(&mut self, max: usize) -> Vec<PartitionEvent> {
        if max == 0 {
            return Vec::new();
        }
        loop {
            // Mark the current state seen before looking, so an append after the look wakes us.
            self.changes.borrow_and_update();
            let batch = self.try_read(max);
            if !batch.is_empty() {
                return batch;
            }
            if self.changes.changed().await.is_err() {
                // The partition is gone (the hub was dropped): nothing will ever arrive.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Milliseconds since the Unix epoch (negative before it).
pub(crate) fn unix_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis())
            .map(|m| -m)
            .unwrap_or(i64::MIN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn message(body: &'static str) -> Arc<TelemetryMessage> {
        Arc::new(TelemetryMessage::for_tests("dev", body))
    }

    fn filled(count: usize, capacity: usize) -> Arc<Partition> {
        let partition = Arc::new(Partition::new(0, capacity));
        for _ in 0..count {
            partition.append(message("abcd"));
        }
        partition
    }

    fn sequence_numbers(events: &[PartitionEvent]) -> Vec<i64> {
        events.iter().map(|e| e.sequence_number).collect()
    }

    #[test]
    fn positions_start_at_zero_and_offsets_grow_by_size() {
        let partition = Partition::new(3, 10);
        let empty = partition.properties();
        assert_eq!(
            (
                empty.begin_sequence_number,
                empty.last_enqueued_sequence_number,
                empty.last_enqueued_offset.as_str(),
                empty.is_empty,
                empty.id.as_str()
            ),
            (0, -1, "-1", true, "3")
        );
        let first = partition.append(message("abcd"));
        let second = partition.append(Arc::new(TelemetryMessage::for_tests("dev", "")));
        let third = partition.append(message("x"));
        assert_eq!(
            (
                first.sequence_number,
                second.sequence_number,
                third.sequence_number
            ),
            (0, 1, 2)
        );
        assert_eq!(first.offset, 0);
        assert_eq!(second.offset, 4 + EVENT_HEADER_BYTES);
        assert_eq!(third.offset, second.offset + EVENT_HEADER_BYTES);
        assert!(second.enqueued_time >= first.enqueued_time);
        let props = partition.properties();
        assert_eq!(props.last_enqueued_sequence_number, 2);
        assert_eq!(props.last_enqueued_offset, third.offset.to_string());
        assert!(!props.is_empty);
    }

    #[test]
    fn retention_drops_the_oldest_and_readers_skip_ahead() {
        let partition = filled(5, 3);
        assert_eq!(sequence_numbers(&partition.events()), vec![2, 3, 4]);
        assert_eq!(partition.properties().begin_sequence_number, 2);
        let mut reader = partition.reader(EventPosition::SequenceNumber {
            sequence_number: 0,
            inclusive: true,
        });
        assert_eq!(sequence_numbers(&reader.try_read(10)), vec![2, 3, 4]);
    }

    #[test]
    fn every_position_kind_finds_its_first_event() {
        let partition = filled(6, 100);
        let events = partition.events();
        let at = |position| {
            let mut reader = partition.reader(position);
            reader.try_read(100).first().map(|e| e.sequence_number)
        };
        assert_eq!(at(EventPosition::Start), Some(0));
        assert_eq!(at(EventPosition::Latest), None);
        let seq = |sequence_number, inclusive| EventPosition::SequenceNumber {
            sequence_number,
            inclusive,
        };
        assert_eq!(at(seq(2, false)), Some(3));
        assert_eq!(at(seq(2, true)), Some(2));
        assert_eq!(at(seq(-1, false)), Some(0));
        assert_eq!(at(seq(5, false)), None);
        assert_eq!(at(seq(99, true)), None);
        let offset = |offset, inclusive| EventPosition::Offset { offset, inclusive };
        assert_eq!(at(offset(events[3].offset, false)), Some(4));
        assert_eq!(at(offset(events[3].offset, true)), Some(3));
        assert_eq!(at(offset(events[3].offset + 1, true)), Some(4));
        assert_eq!(at(offset(u64::MAX, false)), None);
        let time = |millis, inclusive| EventPosition::EnqueuedTime { millis, inclusive };
        assert_eq!(at(time(0, false)), Some(0));
        assert_eq!(at(time(i64::MAX, false)), None);
        let t0 = events[0].enqueued_millis();
        let first_after = events.iter().find(|e| e.enqueued_millis() > t0);
        assert_eq!(at(time(t0, false)), first_after.map(|e| e.sequence_number));
        assert_eq!(at(time(t0, true)), Some(0));
    }

    #[tokio::test]
    async fn readers_respect_credit_and_wait_for_new_events() {
        let partition = filled(3, 100);
        let mut reader = partition.reader(EventPosition::Start);
        assert_eq!(sequence_numbers(&reader.read(2).await), vec![0, 1]);
        assert!(reader.read(0).await.is_empty());
        assert_eq!(sequence_numbers(&reader.read(5).await), vec![2]);
        assert_eq!(reader.next_sequence_number(), 3);

        let mut latest = partition.reader(EventPosition::Latest);
        let waiting = tokio::spawn(async move { latest.read(10).await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        partition.append(Arc::new(TelemetryMessage {
            body: Bytes::from_static(b"new"),
            ..TelemetryMessage::for_tests("dev", "")
        }));
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the append")
            .expect("reader task");
        assert_eq!(sequence_numbers(&got), vec![3]);
        assert_eq!(got[0].message.body_text(), Some("new"));
        assert_eq!(sequence_numbers(&reader.read(5).await), vec![3]);
    }
}
