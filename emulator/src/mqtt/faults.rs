//! How the MQTT transport carries out an injected hub fault (`crate::faults`, docs/faults.md):
//! the CONNACK a refused CONNECT gets and the silence of a stalled connection (a delayed
//! answer waits in `crate::faults::hold`). The rules and their matching are the fault
//! registry's; the dispatcher and the session decide where in a request each action applies.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::codec::ConnectReturnCode;
use crate::faults::Refusal;
use crate::shutdown::ShutdownSignal;

/// The CONNACK a refused CONNECT gets: 5 (not authorized) for a 401, 3 (server unavailable)
/// for throttling and server errors — MQTT 3.1.1 has no other way to say "try later", and the
/// device SDKs retry on 3 and give up on 5.
pub(super) fn connack_for(refusal: Refusal) -> ConnectReturnCode {
    match refusal {
        Refusal::Unauthorized => ConnectReturnCode::NotAuthorized,
        Refusal::Throttled { .. } | Refusal::InternalError | Refusal::ServiceUnavailable { .. } => {
            ConnectReturnCode::ServiceUnavailable
        }
    }
}

/// Holds a connection whose CONNECT is stalled: reads and discards what the client sends,
/// answers nothing, and returns when the client closes, the stall's bound passes or the
/// emulator shuts down.
pub(super) async fn stall<S: AsyncRead + Unpin>(stream: &mut S, shutdown: &ShutdownSignal) {
    let mut sink = [0u8; 512];
    let drain = async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        () = drain => {}
        () = crate::faults::hold(crate::faults::MAX_STALL, shutdown) => {}
    }
}
