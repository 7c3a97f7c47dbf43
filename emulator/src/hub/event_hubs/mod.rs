//! The hub's built-in Event Hubs-compatible endpoint (`events`): how backends read what
//! devices send. Every message routed to it — device telemetry from any transport, and the
//! twin change, lifecycle and connection state notifications the hub's routes ask for — is
//! appended once to one partition, chosen by a stable hash of the device id, so a device's
//! events stay in order. Consumers (the AMQP front, spec/amqp.md §4) read partitions from a
//! position, under Event Hubs' epoch rules, in a consumer group.
//!
//! Names: the hub's name is the first label of its host name (`myhub` for
//! `myhub.azure-devices.net`, `localhost` for `localhost`; an IP address is used whole); the
//! Event Hub name (`EntityPath`) is the hub's name unless the fixture sets
//! `eventHubEndpoint.path`.

pub(crate) mod notifications;
pub(crate) mod partition;
pub(crate) mod position;
pub(crate) mod receivers;
pub(crate) mod route;

#[cfg(test)]
mod hub_events;

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::policy::SharedAccessPolicy;
use crate::hub::IdentityRef;
use crate::hub::telemetry::{MessageSource, TelemetryMessage};
use partition::{Partition, PartitionEvent, PartitionProperties, PartitionReader};
use position::EventPosition;
use receivers::{ReceiverLease, ReceiverRefusal, Receivers};
use route::Routes;

/// Azure's default partition count for the built-in endpoint.
pub(crate) const DEFAULT_PARTITION_COUNT: u32 = 4;
/// The partition counts IoT Hub allows.
pub(crate) const PARTITION_COUNTS: RangeInclusive<u32> = 2..=128;
/// The consumer group every Event Hub has.
pub(crate) const DEFAULT_CONSUMER_GROUP: &str = "$Default";
/// The right a policy needs to read the endpoint.
pub(crate) const READ_RIGHT: &str = "ServiceConnect";

/// The hub's name as IoT Hub uses it (`hubName`, `{policy}@sas.root.{hubName}`): the first
/// label of its host name, or the whole host when that is an IP address.
pub(crate) fn hub_name(host_name: &str) -> String {
    if host_name.parse::<std::net::IpAddr>().is_ok() {
        return host_name.to_owned();
    }
    host_name
        .split('.')
        .next()
        .filter(|label| !label.is_empty())
        .unwrap_or(host_name)
        .to_owned()
}

/// Event Hub names: 1–256 of letters, digits, `.`, `-`, `_`, starting and ending with a
/// letter or digit.
pub(crate) fn valid_entity_name(name: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    (1..=256).contains(&name.len())
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Consumer group names: `$Default`, or 1–50 of letters, digits, `.`, `-`, `_`.
pub(crate) fn valid_consumer_group(name: &str) -> bool {
    name.eq_ignore_ascii_case(DEFAULT_CONSUMER_GROUP)
        || ((1..=50).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
}

/// How a hub's endpoint is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHubsConfig {
    pub path: String,
    pub partition_count: u32,
    /// Besides `$Default`.
    pub consumer_groups: Vec<String>,
    pub routes: Routes,
    /// Events kept per partition.
    pub retention: usize,
}

impl EventHubsConfig {
    /// Defaults for a hub: its name as path, 4 partitions, telemetry only.
    pub(crate) fn for_hub(host_name: &str, retention: usize) -> EventHubsConfig {
        EventHubsConfig {
            path: hub_name(host_name),
            partition_count: DEFAULT_PARTITION_COUNT,
            consumer_groups: Vec::new(),
            routes: Routes::default(),
            retention,
        }
    }
}

/// What `$management` reports about the Event Hub (`com.microsoft:eventhub`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHubProperties {
    pub name: String,
    pub created_at: SystemTime,
    pub partition_ids: Vec<String>,
}

/// Why a consumer cannot read where it asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConsumerError {
    UnknownConsumerGroup(String),
    UnknownPartition(String),
    Refused(ReceiverRefusal),
}

impl ConsumerError {
    /// The AMQP error condition the link is detached with.
    pub(crate) fn condition(&self) -> &'static str {
        match self {
            ConsumerError::UnknownConsumerGroup(_) | ConsumerError::UnknownPartition(_) => {
                "amqp:not-found"
            }
            ConsumerError::Refused(refusal) => refusal.condition(),
        }
    }

    pub(crate) fn description(
        &self,
        entity: &str,
        consumer_group: &str,
        partition: &str,
    ) -> String {
        match self {
            ConsumerError::UnknownConsumerGroup(group) => format!(
                "The messaging entity '{entity}/ConsumerGroups/{group}' could not be found."
            ),
            ConsumerError::UnknownPartition(id) => format!(
                "The partition '{id}' does not exist in '{entity}'; the partition ids are 0 to the partition count minus one."
            ),
            ConsumerError::Refused(refusal) => {
                let partition = partition.parse().unwrap_or_default();
                refusal.description(consumer_group, partition)
            }
        }
    }
}

/// A consumer's place on one partition: the events to send and its registration.
pub(crate) struct Consumer {
    pub reader: PartitionReader,
    pub lease: ReceiverLease,
}

/// One hub's endpoint.
pub struct EventHubs {
    hub_name: String,
    path: String,
    created_at: SystemTime,
    consumer_groups: Vec<String>,
    partitions: Vec<Arc<Partition>>,
    routes: Routes,
    receivers: Receivers,
    /// Orders connection state events (their `sequenceNumber`).
    connection_events: AtomicU64,
}

impl EventHubs {
    pub fn new(hub_name: &str, config: EventHubsConfig) -> EventHubs {
        let count = config.partition_count.clamp(1, *PARTITION_COUNTS.end());
        let mut consumer_groups = vec![DEFAULT_CONSUMER_GROUP.to_owned()];
        for group in config.consumer_groups {
            if !consumer_groups
                .iter()
                .any(|g| g.eq_ignore_ascii_case(&group))
            {
                consumer_groups.push(group);
            }
        }
        EventHubs {
            hub_name: hub_name.to_owned(),
            path: config.path,
            created_at: SystemTime::now(),
            consumer_groups,
            partitions: (0..count)
                .map(|id| Arc::new(Partition::new(id, config.retention)))
                .collect(),
            routes: config.routes,
            receivers: Receivers::default(),
            connection_events: AtomicU64::new(0),
        }
    }

    /// The Event Hub name (`EntityPath`).
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    pub(crate) fn consumer_groups(&self) -> &[String] {
        &self.consumer_groups
    }

    /// The configured spelling of `name`, compared case-insensitively.
    pub fn consumer_group(&self, name: &str) -> Option<&str> {
        self.consumer_groups
            .iter()
            .find(|g| g.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }

    pub fn partitions(&self) -> &[Arc<Partition>] {
        &self.partitions
    }

    /// A partition by its id as the clients write it (`"0"`, `"1"`, …).
    pub fn partition(&self, id: &str) -> Option<&Arc<Partition>> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || id.len() > 3 {
            return None;
        }
        let index: usize = id.parse().ok()?;
        // "00" is not a partition id.
        (index.to_string() == id)
            .then(|| self.partitions.get(index))
            .flatten()
    }

    /// The partition a device's events go to: CRC-32 of its id modulo the partition count.
    pub fn partition_index(&self, device_id: &str) -> usize {
        let count = self.partitions.len().max(1);
        usize::try_from(crc32fast::hash(device_id.as_bytes())).unwrap_or(0) % count
    }

    pub fn properties(&self) -> EventHubProperties {
        EventHubProperties {
            name: self.path.clone(),
            created_at: self.created_at,
            partition_ids: (0..self.partitions.len()).map(|i| i.to_string()).collect(),
        }
    }

    pub(crate) fn partition_properties(&self, id: &str) -> Option<PartitionProperties> {
        self.partition(id).map(|p| p.properties())
    }

    /// Appends `message` to its device's partition when the routes send its source here.
    pub fn route(&self, message: Arc<TelemetryMessage>) -> Option<PartitionEvent> {
        if !self.routes.sends(message.source) {
            return None;
        }
        let partition = self
            .partitions
            .get(self.partition_index(&message.device_id))?;
        Some(partition.append(message))
    }

    /// Whether the routes send `source` here (to skip building events nobody receives).
    pub(crate) fn wants(&self, source: MessageSource) -> bool {
        self.routes.sends(source)
    }

    /// Emits a connection state event for a connection key (`device` or `device/module`).
    pub(crate) fn connection_changed(&self, connection_key: &str, connected: bool) {
        if !self.wants(MessageSource::DeviceConnectionStateEvents) {
            return;
        }
        let who = match connection_key.split_once('/') {
            Some((device_id, module_id)) => IdentityRef::module(device_id, module_id),
            None => IdentityRef::device(connection_key),
        };
        let counter = self.connection_events.fetch_add(1, Ordering::Relaxed);
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() / 100)
            .unwrap_or(0);
        // 256 bits of hex: a timestamp then a counter, so string order is event order.
        let sequence = format!("{since_epoch:032X}{counter:032X}");
        self.route(Arc::new(notifications::connection_state(
            &self.hub_name,
            who,
            connected,
            &sequence,
        )));
    }

    /// Opens a consumer on `partition` of `consumer_group` at `position`, under the epoch
    /// rules.
    pub(crate) fn open_consumer(
        &self,
        consumer_group: &str,
        partition: &str,
        epoch: Option<i64>,
        position: EventPosition,
    ) -> Result<Consumer, ConsumerError> {
        let group = self
            .consumer_group(consumer_group)
            .ok_or_else(|| ConsumerError::UnknownConsumerGroup(consumer_group.to_owned()))?;
        let partition = self
            .partition(partition)
            .ok_or_else(|| ConsumerError::UnknownPartition(partition.to_owned()))?;
        let lease = self
            .receivers
            .register(group, partition.id(), epoch)
            .map_err(ConsumerError::Refused)?;
        Ok(Consumer {
            reader: partition.reader(position),
            lease,
        })
    }

    /// `Endpoint=sb://{host}/;SharedAccessKeyName=…;SharedAccessKey=…;EntityPath=…`, with
    /// `:port` when the AMQP port is not 5671 (Node's client honours it; Python's does not).
    pub fn connection_string(
        &self,
        host: &str,
        port: Option<u16>,
        policy: &SharedAccessPolicy,
    ) -> String {
        let endpoint = match port {
            Some(port) if port != 5671 => format!("{host}:{port}"),
            _ => host.to_owned(),
        };
        format!(
            "Endpoint=sb://{endpoint}/;SharedAccessKeyName={};SharedAccessKey={};EntityPath={}",
            policy.name,
            policy.primary.to_base64(),
            self.path
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::event_hubs::route::RoutingSection;

    fn hub(partitions: u32, routes: Routes) -> EventHubs {
        EventHubs::new(
            "myhub",
            EventHubsConfig {
                path: "myhub".into(),
                partition_count: partitions,
                consumer_groups: vec!["Analytics".into(), "$default".into()],
                routes,
                retention: 100,
            },
        )
    }

    #[test]
    fn names_come_from_the_host() {
        assert_eq!(hub_name("myhub.azure-devices.net"), "myhub");
        assert_eq!(hub_name("localhost"), "localhost");
        assert_eq!(hub_name("127.0.0.2"), "127.0.0.2");
        assert_eq!(hub_name("::1"), "::1");
        assert!(valid_entity_name("myhub"));
        assert!(valid_entity_name("127.0.0.2"));
        assert!(!valid_entity_name("-x"));
        assert!(!valid_entity_name(""));
        assert!(valid_consumer_group("$Default"));
        assert!(!valid_consumer_group("$other"));
    }

    #[test]
    fn a_device_always_lands_in_the_same_partition() {
        let hubs = hub(4, Routes::default());
        let mut seen = std::collections::HashSet::new();
        for i in 0..64 {
            let device = format!("device-{i}");
            let index = hubs.partition_index(&device);
            assert_eq!(index, hubs.partition_index(&device));
            assert!(index < 4);
            seen.insert(index);
        }
        assert_eq!(seen.len(), 4, "64 devices spread over all partitions");
        for _ in 0..3 {
            let message = TelemetryMessage::for_tests("device-7", "x");
            let event = hubs.route(Arc::new(message)).unwrap();
            assert_eq!(
                hubs.partitions()[hubs.partition_index("device-7")]
                    .properties()
                    .last_enqueued_sequence_number,
                event.sequence_number
            );
        }
        assert_eq!(
            hubs.partitions()
                .iter()
                .map(|p| p.events().len())
                .sum::<usize>(),
            3
        );
    }

    #[test]
    fn properties_list_partitions_and_groups() {
        let hubs = hub(2, Routes::default());
        let props = hubs.properties();
        assert_eq!(props.name, "myhub");
        assert_eq!(props.partition_ids, vec!["0", "1"]);
        assert_eq!(hubs.consumer_groups(), ["$Default", "Analytics"]);
        assert_eq!(hubs.consumer_group("analytics"), Some("Analytics"));
        assert!(hubs.partition("1").is_some());
        for bad in ["2", "01", "-1", "", "x", "99999999999999999999"] {
            assert!(hubs.partition(bad).is_none(), "{bad}");
        }
        assert_eq!(hubs.partition_properties("0").unwrap().id, "0");
    }

    #[test]
    fn consumers_are_checked_and_registered() {
        let hubs = hub(2, Routes::default());
        let unknown = hubs
            .open_consumer("nope", "0", None, EventPosition::Start)
            .err()
            .unwrap();
        assert_eq!(unknown.condition(), "amqp:not-found");
        assert!(
            hubs.open_consumer("$Default", "7", None, EventPosition::Start)
                .is_err()
        );
        let _epoch = hubs
            .open_consumer("$default", "0", Some(3), EventPosition::Latest)
            .unwrap();
        let refused = hubs
            .open_consumer("$Default", "0", None, EventPosition::Start)
            .err()
            .unwrap();
        assert_eq!(refused.condition(), "amqp:link:stolen");
        assert!(
            refused
                .description("myhub", "$Default", "0")
                .contains("epoch of '3'")
        );
    }

    #[test]
    fn routes_decide_what_is_appended() {
        let hubs = hub(2, Routes::default());
        hubs.connection_changed("dev", true);
        assert!(hubs.partitions().iter().all(|p| p.events().is_empty()));

        let routing: RoutingSection = serde_json::from_str(
            r#"{"routes":[{"name":"c","source":"DeviceConnectionStateEvents","endpointNames":["events"]}]}"#,
        )
        .unwrap();
        let hubs = hub(2, Routes::from_fixture(&routing).unwrap());
        hubs.connection_changed("dev/mod", true);
        hubs.connection_changed("dev/mod", false);
        let events = hubs.partitions()[hubs.partition_index("dev")].events();
        assert_eq!(events.len(), 2);
        let sequence = |e: &PartitionEvent| {
            let body: serde_json::Value = serde_json::from_slice(&e.message.body).unwrap();
            body["sequenceNumber"].as_str().unwrap().to_owned()
        };
        assert_eq!(sequence(&events[0]).len(), 64);
        assert!(sequence(&events[0]) < sequence(&events[1]));
        assert_eq!(events[0].message.module_id.as_deref(), Some("mod"));
        assert_eq!(events[1].message.properties["opType"], "deviceDisconnected");
    }

    #[test]
    fn the_connection_string_names_the_entity() {
        const KEY: &str = "m3KXjFJcrlf/7AzVtsFylbokniqdr2n96hQepP6P/GU=";
        let hubs = hub(2, Routes::default());
        let policy = SharedAccessPolicy {
            name: "iothubowner".into(),
            primary: crate::auth::keys::SymmetricKey::from_base64(KEY).unwrap(),
            secondary: None,
            rights: vec![READ_RIGHT.into()],
        };
        assert_eq!(
            hubs.connection_string("localhost", Some(5671), &policy),
            "Endpoint=sb://localhost/;SharedAccessKeyName=iothubowner;SharedAccessKey=m3KXjFJcrlf/7AzVtsFylbokniqdr2n96hQepP6P/GU=;EntityPath=myhub"
        );
        assert!(
            hubs.connection_string("localhost", Some(15671), &policy)
                .starts_with("Endpoint=sb://localhost:15671/;")
        );
    }
}
