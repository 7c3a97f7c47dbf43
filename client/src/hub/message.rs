//! A device-to-cloud telemetry message: body, the system properties the hub understands
//! (`$.mid`, `$.cid`, `$.uid`, `$.ct`, `$.ce`, `$.on`) and application properties.

/// Largest telemetry message IoT Hub accepts: body plus property names and values
/// (spec/protocol.md §5.1; the Python and Node SDKs check the same limit client-side).
pub(crate) const MAX_MESSAGE_SIZE: usize = 256 * 1024;

/// A telemetry message; build it with [`Message::new`] and the chained setters.
///
/// ```
/// use iotemu_device::Message;
/// let msg = Message::new(r#"{"temperature":21.5}"#)
///     .content_type("application/json")
///     .content_encoding("utf-8")
///     .property("alert", "false");
/// # let _ = msg;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub(crate) body: Vec<u8>,
    pub(crate) message_id: Option<String>,
    pub(crate) correlation_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) content_encoding: Option<String>,
    pub(crate) output_name: Option<String>,
    pub(crate) properties: Vec<(String, String)>,
}

impl Message {
    /// A message with this body and no properties.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }

    /// `$.mid`
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// `$.cid`
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// `$.uid`
    pub fn user_id(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }

    /// `$.ct`; routing on the body needs `application/json`.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// `$.ce`; routing on the body needs `utf-8`.
    pub fn content_encoding(mut self, encoding: impl Into<String>) -> Self {
        self.content_encoding = Some(encoding.into());
        self
    }

    /// `$.on`, the output name of a module message.
    pub fn output_name(mut self, name: impl Into<String>) -> Self {
        self.output_name = Some(name.into());
        self
    }

    /// An application property. Setting a key again replaces its value.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        let value = value.into();
        match self.properties.iter_mut().find(|(k, _)| *k == key) {
            Some(existing) => existing.1 = value,
            None => self.properties.push((key, value)),
        }
        self
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Application properties, in the order they were first set.
    pub fn properties(&self) -> &[(String, String)] {
        &self.properties
    }

    /// All properties as they go on the wire, unencoded: system properties first, in the
    /// order `$.mid, $.cid, $.uid, $.ct, $.ce, $.on`, then application properties.
    pub(crate) fn wire_properties(&self) -> impl Iterator<Item = (&str, &str)> {
        let system = [
            ("$.mid", &self.message_id),
            ("$.cid", &self.correlation_id),
            ("$.uid", &self.user_id),
            ("$.ct", &self.content_type),
            ("$.ce", &self.content_encoding),
            ("$.on", &self.output_name),
        ];
        system
            .into_iter()
            .filter_map(|(key, value)| value.as_deref().map(|value| (key, value)))
            .chain(
                self.properties
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
    }

    /// Size counted against the 256 KiB limit: body plus every property name and value.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .wire_properties()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_replaces_same_key() {
        let m = Message::new("x")
            .property("a", "1")
            .property("b", "2")
            .property("a", "3");
        assert_eq!(
            m.properties(),
            [
                ("a".to_owned(), "3".to_owned()),
                ("b".to_owned(), "2".to_owned())
            ]
        );
    }

    #[test]
    fn size_counts_body_and_properties() {
        let m = Message::new(vec![0u8; 10])
            .message_id("id")
            .property("k", "vv");
        assert_eq!(m.size(), 10 + "$.mid".len() + 2 + 1 + 2);
    }
}
