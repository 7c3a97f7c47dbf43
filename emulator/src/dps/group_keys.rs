//! Symmetric-key enrollment groups prepared for the registration hot path.
//!
//! Nothing in a device's SAS token names its group, so a first registration through a group
//! has to try the groups until one's derived key verifies the signature. This index keeps,
//! for every symmetric-key group, its id and both keys as keyed HMAC states
//! ([`GroupKeyDeriver`]), sorted by id, in one shared snapshot: a registration reads it without
//! copying or sorting anything, and derives a candidate key with two SHA-256 blocks and checks the token
//! with five more ([`crate::auth::group_hmac`]).
//!
//! The snapshot is rebuilt lazily: every change to the groups bumps a generation
//! ([`GroupKeyIndex::invalidate`], called wherever the group map changes), and the next
//! registration that sees a newer generation rebuilds it from the map. It also remembers which
//! group each registration id last verified against (the cache a returning device is matched
//! with in one HMAC); an entry is only ever a hint of where to look first, it belongs to one
//! generation and is dropped with it, and the key it points at is the current one — a rotated,
//! deleted or re-created group never authenticates with what it used to be.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;

use super::enrollment::Group;
use crate::auth::keys::GroupKeyDeriver;
use crate::auth::sas::SignatureCheck;

/// One symmetric-key group as the lookup needs it.
struct GroupKeys {
    /// As given (registration records name the group with it).
    id: String,
    lowercase_id: String,
    primary: GroupKeyDeriver,
    secondary: GroupKeyDeriver,
}

/// Every symmetric-key group at one generation, sorted by lower-cased id.
struct Snapshot {
    generation: u64,
    groups: Vec<GroupKeys>,
}

#[derive(Default)]
pub(crate) struct GroupKeyIndex {
    /// Bumped by every change to the groups.
    generation: AtomicU64,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    /// Registration id (lower-cased) → (generation, position in that generation's snapshot)
    /// of the group it last verified against.
    verified: DashMap<String, (u64, usize)>,
}

impl GroupKeyIndex {
    /// The groups changed: the next lookup rebuilds the snapshot, and what the cache says
    /// about the old one is no longer used.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The group `signature` was made with a key derived from, trying (in this order) the
    /// group the cache names for this registration id, `previous` (the group of its
    /// registration record), every group's primary key by id, then every group's secondary
    /// key by id. `None` when there is no symmetric-key group; `Some(None)` when no key verifies.
    ///
    /// Primaries are tried across all groups before any secondary because devices sign with
    /// the primary: a first registration through the last of N groups costs N derivations,
    /// not 2N. (Only a token that verifies under one group's secondary and another's primary
    /// could tell the difference; the primary wins.)
    pub(crate) fn find(
        &self,
        groups: &DashMap<String, Group>,
        registration_id: &str,
        previous: Option<&str>,
        signature: Option<&SignatureCheck<'_>>,
    ) -> Option<Option<String>> {
        let snapshot = self.current(groups);
        if snapshot.groups.is_empty() {
            return None;
        }
        // A signature that is not base64 matches no key.
        let Some(signature) = signature else {
            return Some(None);
        };
        let key = registration_id.to_ascii_lowercase();
        // The registration id, message and signature are padded and decoded once; each
        // candidate key is then seven SHA-256 block compressions and nothing else.
        let check = signature.for_group_members(registration_id);
        let signed = |deriver: &GroupKeyDeriver| check.signed_by_member_of(deriver.keyed());
        let cached = self
            .verified
            .get(&key)
            .filter(|entry| entry.0 == snapshot.generation)
            .map(|entry| entry.1);
        let previous = previous.and_then(|p| position(&snapshot, p));
        let hinted = [cached, previous.filter(|&p| cached != Some(p))];
        let tried = |at: usize| hinted.contains(&Some(at));
        let by_hint = hinted.into_iter().flatten().find(|&at| {
            snapshot
                .groups
                .get(at)
                .is_some_and(|g| signed(&g.primary) || signed(&g.secondary))
        });
        let by_primary = || {
            (0..snapshot.groups.len()).find(|&at| {
                !tried(at) && snapshot.groups.get(at).is_some_and(|g| signed(&g.primary))
            })
        };
        let by_secondary = || {
            (0..snapshot.groups.len()).find(|&at| {
                !tried(at)
                    && snapshot
                        .groups
                        .get(at)
                        .is_some_and(|g| signed(&g.secondary))
            })
        };
        let found = by_hint.or_else(by_primary).or_else(by_secondary);
        let Some(at) = found else {
            return Some(None);
        };
        if cached != Some(at) {
            self.verified.insert(key, (snapshot.generation, at));
        }
        Some(snapshot.groups.get(at).map(|g| g.id.clone()))
    }

    /// The snapshot of the current generation, rebuilt from `groups` if a change made it old.
    fn current(&self, groups: &DashMap<String, Group>) -> Arc<Snapshot> {
        // Read before the map: a change that lands while the map is read leaves this snapshot
        // a generation behind, so the next lookup rebuilds it again.
        let generation = self.generation.load(Ordering::SeqCst);
        let read = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
        if let Some(snapshot) = read.as_ref().filter(|s| s.generation == generation) {
            return snapshot.clone();
        }
        drop(read);
        let mut write = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        if let Some(snapshot) = write.as_ref().filter(|s| s.generation == generation) {
            return snapshot.clone();
        }
        let mut keyed: Vec<GroupKeys> = groups
            .iter()
            .filter_map(|g| {
                let keys = g.core.attestation.symmetric_keys()?;
                let [primary, secondary] = keys.keys();
                Some(GroupKeys {
                    id: g.enrollment_group_id.clone(),
                    lowercase_id: g.enrollment_group_id.to_ascii_lowercase(),
                    primary: GroupKeyDeriver::new(primary),
                    secondary: GroupKeyDeriver::new(secondary),
                })
            })
            .collect();
        keyed.sort_unstable_by(|a, b| a.lowercase_id.cmp(&b.lowercase_id));
        let snapshot = Arc::new(Snapshot {
            generation,
            groups: keyed,
        });
        // Positions of older generations mean nothing now.
        self.verified.retain(|_, entry| entry.0 == generation);
        *write = Some(snapshot.clone());
        snapshot
    }
}

/// Where the group `id` (any case) is in `snapshot`.
fn position(snapshot: &Snapshot, id: &str) -> Option<usize> {
    let id = id.to_ascii_lowercase();
    snapshot
        .groups
        .binary_search_by(|g| g.lowercase_id.as_str().cmp(&id))
        .ok()
}

#[cfg(test)]
mod tests;
