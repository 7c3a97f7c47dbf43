//! Serde helpers that store binary fields (keys, certificates, message bodies) as standard
//! base64 strings, so durable records stay compact and readable JSON.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(
    bytes: impl AsRef<[u8]>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&BASE64.encode(bytes))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: From<Vec<u8>>>(
    deserializer: D,
) -> Result<T, D::Error> {
    let text = String::deserialize(deserializer)?;
    BASE64
        .decode(text)
        .map(T::from)
        .map_err(serde::de::Error::custom)
}

/// A list of binary values (e.g. DER certificates).
pub(crate) mod list {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        items: &[Vec<u8>],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(items.iter().map(|i| BASE64.encode(i)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .into_iter()
            .map(|t| BASE64.decode(t).map_err(serde::de::Error::custom))
            .collect()
    }
}
