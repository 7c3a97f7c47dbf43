//! The open-file budget: the soft limit raised to the hard one, and a warning when the
//! connection limits add up to more descriptors than the process may have.

use crate::args::Args;

/// Raises the soft limit on open files to the hard limit (as Go's runtime does), then warns
/// when the connection limits add up to more than the descriptors available: a flood of one
/// listener would otherwise take the descriptors the others need.
pub(crate) fn check_descriptor_budget(args: &Args) {
    let Some(available) = raise_descriptor_limit() else {
        return;
    };
    // Listening sockets, the data directory, logs: a few dozen are in use besides clients.
    const RESERVED: u64 = 64;
    let wanted = [
        args.mqtt_max_connections,
        args.amqp_max_connections,
        args.https_max_connections,
        args.control_max_connections,
    ]
    .iter()
    .fold(RESERVED, |sum, n| sum.saturating_add(*n as u64));
    if wanted > available {
        tracing::warn!(
            available,
            wanted,
            "the connection limits (--mqtt-max-connections, --amqp-max-connections, --https-max-connections, --control-max-connections) add up to more open files than this process may have; raise `ulimit -n` or lower them, or a flood on one port can stop the others from accepting"
        );
    }
}

/// The soft `RLIMIT_NOFILE` after raising it to the hard limit; `None` where unknown.
#[cfg(unix)]
fn raise_descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer,
    // which lives on this stack frame for the duration of each call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    // rlim_t is u64 on Linux but not on every unix.
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn raise_descriptor_limit() -> Option<u64> {
    None
}
