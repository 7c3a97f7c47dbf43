//! **Not API.** The one door through which code outside the library — the `iotemu` binary,
//! the integration tests (`tests/`, `emulator/tests/`), the benchmarks and the fuzz targets
//! (`fuzz/`) — reaches internals that a library user has no business naming: the MQTT codec
//! and topic rules, SAS token building, the software TPM, transport contexts, the binary's CLI pieces, and the
//! entry points the fuzz targets drive.
//!
//! Why it exists: every other module of the crate is `pub(crate)` (docs/architecture.md,
//! "Visibility"), so the library surface is exactly the `pub use` list in `lib.rs`. Those
//! callers still need a few internals; re-exporting exactly those items here, in one hidden
//! module, keeps that need visible and small instead of leaving whole modules `pub`.
//! Hidden from the docs; anything here may change or go away in any release.

/// What the binary and the tests reach of the AMQP transport.
pub mod amqp {
    pub use crate::amqp::AmqpContext;
    pub use crate::amqp::conditions::symbol_of;
    pub use crate::net::WsByteStream;
}

/// Credentials: SAS tokens and X.509 helpers the tests and fuzz targets call directly.
pub mod auth {
    pub use crate::auth::Credential;
    pub use crate::auth::sas::{SasToken, build_token, hmac_base64, resource_covers};
    pub use crate::auth::x509;
}

/// The `iotemu certs …` subcommand.
pub mod certs_cli {
    pub use crate::certs::cli::{CertsCommand, IssuerArgs, run};
}

/// Fixture files: `iotemu fixtures validate` loads them, the tests read the quickstart's.
pub mod fixtures {
    pub use crate::fixtures::{FixtureError, FixtureSet, FixtureSource, QUICKSTART_JSON, parse};
}

/// `iotemu fixtures export`.
pub mod fixtures_export {
    pub use crate::fixtures_export::{ServiceConnection, export, trust};
}

/// Entry points only the fuzz targets use (docs/fuzzing.md): the store's recovery from bytes,
/// plain HTTP through the router, the `key=value&…` query parser.
pub mod fuzzing {
    pub use crate::http::fuzzing::serve_plain as serve_plain_http;
    pub use crate::store::fuzzing::{append_frame, file_header, recover_from_bytes};

    /// `key=value&key` pairs as topics, usernames and URLs carry them (`crate::query`).
    pub fn query_pairs(query: &str) -> Result<Vec<(String, Option<String>)>, std::str::Utf8Error> {
        crate::query::pairs(query)
    }

    /// One value of a query string, percent-decoded (`crate::query`).
    pub fn query_value(query: &str, key: &str) -> Option<String> {
        crate::query::value(query, key)
    }
}

/// DPS internals the TPM tests check against.
pub mod dps {
    pub use crate::dps::tpm_challenge::TpmDevice;
}

/// What the fuzz targets reach of the HTTPS transport.
pub mod http {
    pub use crate::http::HttpContext;
}

/// Hub internals the tests check against: C2D delivery constants, settlement, the query
/// language.
pub mod hub {
    pub use crate::hub::c2d::MAX_DELIVERY_COUNT;
    pub use crate::hub::c2d_http::Settlement;
    pub use crate::hub::query;
}

/// The MQTT wire: the packet codec the tests speak raw MQTT with, and the topic, username
/// and property rules the fuzz targets drive.
pub mod mqtt {
    pub use crate::mqtt::MqttContext;
    pub use crate::mqtt::codec;
    pub use crate::mqtt::properties::parse_property_bag;
    pub use crate::mqtt::routes::{Principal, classify_publish, may_subscribe};
    pub use crate::mqtt::session::{PeerInfo, run_session};
    pub use crate::mqtt::topic::{filter_matches, split_query, valid_filter};
    pub use crate::mqtt::username;
}

/// TPM building blocks the TPM tests drive: the software TPM that plays the device, and the
/// registration id DPS derives from an endorsement key.
pub mod tpm {
    pub use crate::auth::tpm::registration_id_from_ek;
    pub use crate::auth::tpm::software::SoftwareTpm;
}

/// The shutdown signal a transport context is built with.
pub mod shutdown {
    pub use crate::shutdown::Shutdown;
}

/// The time formats the service APIs use, for tests that write them (a job's `startTime`).
pub mod timefmt {
    pub use crate::timefmt::utc_timestamp;
}
