//! How the HTTPS API carries out an injected fault (`crate::faults`, docs/faults.md) on a
//! request the device or service API admitted: before the operation (refuse with the status,
//! the service's error body — IoT Hub's or DPS's — and `Retry-After`; drop: the connection
//! closed unanswered; stall: no answer) or after it was done (delay the answer; drop: answer
//! with `Connection: close`). The route handlers decide which operation a request is; this
//! file only answers.

use super::HttpContext;
use super::reply::{self, Reply};
use crate::dps::error::DpsError;
use crate::faults::{FaultAction, FaultHit, RefusalHit};
use crate::hub::error::HubError;

/// Whose API a request went to: a refusal answers in that service's error shape.
#[derive(Debug, Clone, Copy)]
pub(super) enum Service {
    /// IoT Hub: `{"Message":"ErrorCode:…"}` and `iothub-errorcode`.
    Hub,
    /// DPS: `{"errorCode":429001,…}` and `x-ms-error-code`.
    Dps,
}

/// Runs `operation` under an injected fault: [`before`] it (which may answer instead), then
/// [`after`] its answer.
pub(super) async fn around(
    ctx: &HttpContext,
    service: Service,
    fault: Option<FaultHit>,
    operation: impl Future<Output = Reply>,
) -> Reply {
    match before(ctx, service, fault).await {
        Ok(then) => after(ctx, then, operation.await).await,
        Err(answer) => answer,
    }
}

/// Before the operation: `Err` with the answer when the fault ends the request here (nothing
/// is done), else the action to apply once the operation answered.
async fn before(
    ctx: &HttpContext,
    service: Service,
    fault: Option<FaultHit>,
) -> Result<Option<FaultAction>, Reply> {
    let Some(hit) = fault else {
        return Ok(None);
    };
    match hit.action {
        FaultAction::Refuse(refusal) => Err(match service {
            Service::Hub => {
                let mut refused = reply::hub_error(&HubError::from_fault(refusal, &hit.id));
                if let Some(seconds) = refusal.retry_after() {
                    refused
                        .headers_mut()
                        .insert(hyper::header::RETRY_AFTER, seconds.into());
                }
                refused
            }
            // DPS's error carries its own `retry-after`.
            Service::Dps => reply::dps_error(&DpsError::from_fault(&RefusalHit {
                id: hit.id,
                refusal,
            })),
        }),
        FaultAction::Drop { after_ack: false } => Err(reply::abort()),
        FaultAction::Stall => Err(stall(ctx).await),
        action @ (FaultAction::Delay(_) | FaultAction::Drop { after_ack: true }) => {
            Ok(Some(action))
        }
    }
}

/// After the operation answered `reply`: held back for a delay, or marked to close the
/// connection for a drop after the answer.
async fn after(ctx: &HttpContext, action: Option<FaultAction>, reply: Reply) -> Reply {
    match action {
        Some(FaultAction::Delay(delay)) => {
            crate::faults::hold(delay, &ctx.shutdown).await;
            reply
        }
        Some(FaultAction::Drop { after_ack: true }) => reply::closing(reply),
        _ => reply,
    }
}

/// A stalled request: no answer until the stall's bound (the longest delay a rule may ask
/// for) or the emulator's shutdown, then the connection is dropped without one; nothing was
/// done. A client gives up long before.
async fn stall(ctx: &HttpContext) -> Reply {
    crate::faults::hold(crate::faults::MAX_STALL, &ctx.shutdown).await;
    reply::abort()
}
