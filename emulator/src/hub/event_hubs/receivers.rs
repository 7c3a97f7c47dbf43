//! Who may read a partition of a consumer group at the same time: Event Hubs' owner levels
//! (`com.microsoft:epoch`) and its limit of five readers per partition and consumer group.
//!
//! The rules (Event Hubs' documented behaviour; spec/amqp.md §4.4):
//! * a receiver with epoch `e` displaces every receiver without an epoch and every receiver
//!   whose epoch is `<= e`; those get `amqp:link:stolen`;
//! * a receiver with an epoch lower than an existing one is refused (`amqp:link:stolen`);
//! * a receiver without an epoch is refused while an epoch receiver exists (`amqp:link:stolen`);
//! * a sixth concurrent receiver is refused (`amqp:resource-limit-exceeded`).
//!
//! [`admit`] is the decision alone; [`Receivers`] applies it and hands out leases that
//! unregister on drop and tell their holder when they were displaced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Concurrent readers Event Hubs allows per partition and consumer group.
pub(crate) const MAX_READERS_PER_PARTITION: usize = 5;

/// Why a receiver may not attach, or was displaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReceiverRefusal {
    /// A receiver with a higher epoch exists.
    EpochTooLow { requested: i64, existing: i64 },
    /// This receiver lost its place to a new one with an epoch at least its own.
    Displaced { epoch: i64 },
    /// The receiver has no epoch and one with an epoch exists.
    EpochReceiverExists { existing: i64 },
    /// Five receivers already read this partition of this consumer group.
    TooManyReceivers,
}

impl ReceiverRefusal {
    /// The AMQP error condition the link is detached with.
    pub(crate) fn condition(&self) -> &'static str {
        match self {
            ReceiverRefusal::TooManyReceivers => "amqp:resource-limit-exceeded",
            _ => "amqp:link:stolen",
        }
    }

    /// The error description, worded like the service's.
    pub(crate) fn description(&self, consumer_group: &str, partition: u32) -> String {
        match self {
            ReceiverRefusal::EpochTooLow {
                requested,
                existing,
            } => format!(
                "Receiver with epoch '{requested}' cannot be created because a receiver with a higher epoch of '{existing}' exists for partition '{partition}' in consumer group '{consumer_group}'."
            ),
            ReceiverRefusal::Displaced { epoch } => format!(
                "New receiver with higher epoch of '{epoch}' is created hence current receiver is getting disconnected. If you are recreating the receiver, make sure a higher epoch is used (partition '{partition}', consumer group '{consumer_group}')."
            ),
            ReceiverRefusal::EpochReceiverExists { existing } => format!(
                "At least one receiver for the endpoint is created with epoch of '{existing}', and so non-epoch receiver is not allowed (partition '{partition}', consumer group '{consumer_group}')."
            ),
            ReceiverRefusal::TooManyReceivers => format!(
                "Exceeded the maximum number of allowed receivers per partition in a consumer group which is {MAX_READERS_PER_PARTITION} (partition '{partition}', consumer group '{consumer_group}')."
            ),
        }
    }
}

/// The outcome of [`admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Attach; the receivers with these ids lose their place.
    Admit {
        displace: Vec<u64>,
    },
    Refuse(ReceiverRefusal),
}

/// Decides whether a receiver with `epoch` may join `existing` (id, epoch) receivers.
pub(crate) fn admit(existing: &[(u64, Option<i64>)], epoch: Option<i64>) -> Admission {
    let highest = existing.iter().filter_map(|(_, e)| *e).max();
    match (epoch, highest) {
        (Some(requested), Some(existing)) if existing > requested => {
            Admission::Refuse(ReceiverRefusal::EpochTooLow {
                requested,
                existing,
            })
        }
        (Some(_), _) => Admission::Admit {
            // Every other receiver is non-epoch or at most this epoch (checked above).
            displace: existing.iter().map(|(id, _)| *id).collect(),
        },
        (None, Some(existing)) => {
            Admission::Refuse(ReceiverRefusal::EpochReceiverExists { existing })
        }
        (None, None) if existing.len() >= MAX_READERS_PER_PARTITION => {
            Admission::Refuse(ReceiverRefusal::TooManyReceivers)
        }
        (None, None) => Admission::Admit {
            displace: Vec::new(),
        },
    }
}

struct Active {
    id: u64,
    epoch: Option<i64>,
    displaced: oneshot::Sender<ReceiverRefusal>,
}

type Key = (String, u32);

#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    active: Mutex<HashMap<Key, Vec<Active>>>,
}

/// The receivers currently reading each (consumer group, partition) of one entity.
#[derive(Default, Clone)]
pub(crate) struct Receivers {
    registry: Arc<Registry>,
}

impl Receivers {
    /// Registers a receiver on `partition` of `consumer_group` (compared case-insensitively),
    /// displacing the ones [`admit`] says lose their place.
    pub(crate) fn register(
        &self,
        consumer_group: &str,
        partition: u32,
        epoch: Option<i64>,
    ) -> Result<ReceiverLease, ReceiverRefusal> {
        let key = (consumer_group.to_ascii_lowercase(), partition);
        let mut active = self
            .registry
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let readers = active.entry(key.clone()).or_default();
        let existing: Vec<(u64, Option<i64>)> = readers.iter().map(|a| (a.id, a.epoch)).collect();
        let displace = match admit(&existing, epoch) {
            Admission::Refuse(refusal) => return Err(refusal),
            Admission::Admit { displace } => displace,
        };
        let (kept, lost): (Vec<Active>, Vec<Active>) = std::mem::take(readers)
            .into_iter()
            .partition(|a| !displace.contains(&a.id));
        *readers = kept;
        for receiver in lost {
            // A receiver that already went away does not need telling.
            let _ = receiver.displaced.send(ReceiverRefusal::Displaced {
                epoch: epoch.unwrap_or_default(),
            });
        }
        let id = self.registry.next_id.fetch_add(1, Ordering::Relaxed);
        let (displaced, displaced_rx) = oneshot::channel();
        readers.push(Active {
            id,
            epoch,
            displaced,
        });
        Ok(ReceiverLease {
            id,
            key,
            registry: self.registry.clone(),
            displaced: displaced_rx,
        })
    }

    /// How many receivers read `partition` of `consumer_group` now.
    #[cfg(test)]
    pub(crate) fn count(&self, consumer_group: &str, partition: u32) -> usize {
        let active = self
            .registry
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        active
            .get(&(consumer_group.to_ascii_lowercase(), partition))
            .map_or(0, Vec::len)
    }
}

/// A registered receiver; dropping it unregisters it.
pub(crate) struct ReceiverLease {
    id: u64,
    key: Key,
    registry: Arc<Registry>,
    displaced: oneshot::Receiver<ReceiverRefusal>,
}

impl ReceiverLease {
    /// Completes when a receiver with a higher (or equal) epoch takes this one's place; the
    /// link should then detach with [`ReceiverRefusal::condition`]. Cancel-safe.
    pub(crate) async fn displaced(&mut self) -> ReceiverRefusal {
        match (&mut self.displaced).await {
            Ok(refusal) => refusal,
            // The registry is gone with its hub: never displaced.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for ReceiverLease {
    fn drop(&mut self) {
        let mut active = self
            .registry
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(readers) = active.get_mut(&self.key) {
            readers.retain(|a| a.id != self.id);
            if readers.is_empty() {
                active.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_decision_table() {
        let admit_ok = |displace: &[u64]| Admission::Admit {
            displace: displace.to_vec(),
        };
        // (existing, new epoch) → outcome
        type Existing = Vec<(u64, Option<i64>)>;
        let cases: Vec<(Existing, Option<i64>, Admission)> = vec![
            (vec![], None, admit_ok(&[])),
            (vec![], Some(0), admit_ok(&[])),
            (vec![(1, None), (2, None)], None, admit_ok(&[])),
            (vec![(1, None), (2, None)], Some(1), admit_ok(&[1, 2])),
            (vec![(1, Some(1))], Some(1), admit_ok(&[1])),
            (vec![(1, Some(1))], Some(2), admit_ok(&[1])),
            (
                vec![(1, Some(3))],
                Some(2),
                Admission::Refuse(ReceiverRefusal::EpochTooLow {
                    requested: 2,
                    existing: 3,
                }),
            ),
            (
                vec![(1, Some(3))],
                None,
                Admission::Refuse(ReceiverRefusal::EpochReceiverExists { existing: 3 }),
            ),
            (
                (1..=5).map(|id| (id, None)).collect(),
                None,
                Admission::Refuse(ReceiverRefusal::TooManyReceivers),
            ),
            (
                (1..=5).map(|id| (id, None)).collect(),
                Some(0),
                admit_ok(&[1, 2, 3, 4, 5]),
            ),
            ((1..=4).map(|id| (id, None)).collect(), None, admit_ok(&[])),
        ];
        for (existing, epoch, expected) in cases {
            assert_eq!(
                admit(&existing, epoch),
                expected,
                "{existing:?} + {epoch:?}"
            );
        }
    }

    #[test]
    fn refusals_map_to_the_service_conditions() {
        assert_eq!(
            ReceiverRefusal::TooManyReceivers.condition(),
            "amqp:resource-limit-exceeded"
        );
        let stolen = ReceiverRefusal::EpochReceiverExists { existing: 1 };
        assert_eq!(stolen.condition(), "amqp:link:stolen");
        assert!(
            stolen
                .description("$Default", 0)
                .contains("non-epoch receiver is not allowed")
        );
    }

    #[tokio::test]
    async fn a_higher_epoch_displaces_and_leases_unregister_on_drop() {
        let receivers = Receivers::default();
        let mut plain = receivers.register("$Default", 0, None).unwrap();
        let other_partition = receivers.register("$Default", 1, None).unwrap();
        let other_group = receivers.register("analytics", 0, None).unwrap();
        let mut first = receivers.register("$DEFAULT", 0, Some(1)).unwrap();
        let why = tokio::time::timeout(Duration::from_secs(1), plain.displaced())
            .await
            .expect("the non-epoch receiver is displaced");
        assert_eq!(why.condition(), "amqp:link:stolen");
        assert_eq!(receivers.count("$default", 0), 1);
        assert!(matches!(
            receivers.register("$Default", 0, None),
            Err(ReceiverRefusal::EpochReceiverExists { existing: 1 })
        ));
        assert!(receivers.register("$Default", 0, Some(0)).is_err());
        let second = receivers.register("$Default", 0, Some(2)).unwrap();
        tokio::time::timeout(Duration::from_secs(1), first.displaced())
            .await
            .expect("the lower epoch is displaced");
        drop(second);
        assert_eq!(receivers.count("$Default", 0), 0);
        // With the epoch receiver gone, plain receivers may attach again, up to five.
        let five: Vec<_> = (0..5)
            .map(|_| receivers.register("$Default", 0, None).unwrap())
            .collect();
        assert_eq!(
            receivers.register("$Default", 0, None).err(),
            Some(ReceiverRefusal::TooManyReceivers)
        );
        drop(five);
        drop((other_partition, other_group));
        assert_eq!(receivers.count("$Default", 1), 0);
    }
}
