//! Finds X.509 enrollment groups from a device's certificate chain without scanning every
//! group: groups are indexed by their signing certificates' SHA-256 thumbprints and subjects
//! (a root the device did not send is found through its subject), and by the names of the
//! store certificates their `caReferences` name.

use dashmap::DashMap;

use super::enrollment::Group;

#[derive(Default)]
pub(crate) struct X509GroupIndex {
    thumbprints: DashMap<String, Vec<String>>,
    subjects: DashMap<String, Vec<String>>,
    ca_names: DashMap<String, Vec<String>>,
}

impl X509GroupIndex {
    pub(crate) fn insert(&self, group: &Group) {
        let id = group.enrollment_group_id.to_ascii_lowercase();
        for (map, key) in self.keys(group) {
            let mut ids = map.entry(key).or_default();
            if !ids.contains(&id) {
                ids.push(id.clone());
            }
        }
    }

    pub(crate) fn remove(&self, group: &Group) {
        let id = group.enrollment_group_id.to_ascii_lowercase();
        for (map, key) in self.keys(group) {
            map.remove_if_mut(&key, |_, ids| {
                ids.retain(|g| g != &id);
                ids.is_empty()
            });
        }
    }

    pub(crate) fn by_thumbprint(&self, sha256: &str) -> Vec<String> {
        self.thumbprints
            .get(sha256)
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    pub(crate) fn by_subject(&self, subject: &str) -> Vec<String> {
        self.subjects
            .get(subject)
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    pub(crate) fn by_ca_name(&self, name: &str) -> Vec<String> {
        self.ca_names
            .get(&name.to_ascii_lowercase())
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    fn keys(&self, group: &Group) -> Vec<(&DashMap<String, Vec<String>>, String)> {
        let mut keys = Vec::new();
        let Some(x509) = group.core.attestation.x509() else {
            return keys;
        };
        for info in x509
            .signing_certificates()
            .iter()
            .filter_map(|c| c.info.as_ref())
        {
            keys.push((&self.thumbprints, info.sha256_thumbprint.clone()));
            keys.push((&self.subjects, info.subject.clone()));
        }
        for name in x509.ca_references() {
            keys.push((&self.ca_names, name.to_ascii_lowercase()));
        }
        keys
    }
}
