//! Packet identifier allocation: 1..=65535, wrapping, never handing out an id that still
//! waits for its acknowledgement (MQTT 3.1.1 §2.3.1 forbids reusing an in-flight id).

/// Round-robin allocator; "in flight" is decided by the caller, who owns the pending map.
#[derive(Debug)]
pub(crate) struct PacketIds {
    next: u16,
}

impl Default for PacketIds {
    fn default() -> Self {
        Self { next: 1 }
    }
}

impl PacketIds {
    /// Returns the next id for which `in_flight` is false, or `None` if all 65535 are taken.
    pub(crate) fn allocate(&mut self, in_flight: impl Fn(u16) -> bool) -> Option<u16> {
        for _ in 0..u16::MAX {
            let id = self.next;
            // 0 is not a valid packet id, so wrap from 65535 straight to 1.
            self.next = if id == u16::MAX { 1 } else { id + 1 };
            if !in_flight(id) {
                return Some(id);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn counts_up_from_one() {
        let mut ids = PacketIds::default();
        assert_eq!(ids.allocate(|_| false), Some(1));
        assert_eq!(ids.allocate(|_| false), Some(2));
    }

    #[test]
    fn skips_in_flight_ids() {
        let mut ids = PacketIds::default();
        let busy: HashSet<u16> = [1, 2, 4].into();
        assert_eq!(ids.allocate(|id| busy.contains(&id)), Some(3));
        assert_eq!(ids.allocate(|id| busy.contains(&id)), Some(5));
    }

    #[test]
    fn wraps_without_zero() {
        let mut ids = PacketIds { next: u16::MAX };
        assert_eq!(ids.allocate(|_| false), Some(u16::MAX));
        assert_eq!(ids.allocate(|_| false), Some(1));
    }

    #[test]
    fn exhausted() {
        let mut ids = PacketIds::default();
        assert_eq!(ids.allocate(|_| true), None);
    }
}
