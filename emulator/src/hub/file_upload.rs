//! File upload (iot-hub-devguide-file-upload.md): a device asks its hub where to put a file
//! (`POST /devices/{id}/files`) and gets a blob in the hub's linked storage with a SAS token
//! for it, uploads with the Azure Storage SDK, then tells the hub how it went
//! (`POST /devices/{id}/files/notifications`). When the upload succeeded and the hub has
//! notifications on, the service can read a file-upload notification from
//! `/messages/serviceBound/filenotifications`, locked, completed or abandoned like a C2D
//! message.
//!
//! The linked storage is the built-in store (`crate::storage`, reached at the host the device
//! used for the hub) unless the hub names an account by connection string — Azurite or Azure
//! Storage — in which case the token is signed with that account's key.
//!
//! An upload in progress is kept (durably with `--data-dir`) from the first request to the
//! second, at most [`MAX_ACTIVE_UPLOADS`] per device, and for no longer than its token lives.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::HubError;
use super::{DeviceIdentity, Hub};
use crate::auth::blob_sas::{self, BlobGrant};
use crate::pending::Pending;
use crate::storage::BUILT_IN_ACCOUNT;
use crate::timefmt::utc_timestamp;

/// Azure's limit on uploads a device may have in progress (403006).
pub(crate) const MAX_ACTIVE_UPLOADS: usize = 10;

/// Azure's limit on a blob name (storage's limit on the whole name).
const MAX_BLOB_NAME: usize = 1024;

/// The most notifications kept unread; the oldest go first, as expired ones would.
const MAX_PENDING_NOTIFICATIONS: usize = 10_000;

/// Where a hub's uploads go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadStorage {
    /// The emulator's built-in blob store, at the host the device reached the hub at.
    BuiltIn,
    /// A storage account named by connection string (Azurite, Azure Storage).
    Account {
        name: String,
        /// The account key, decoded.
        key: Vec<u8>,
        /// What the device is told as `hostName`: the blob endpoint without its scheme,
        /// e.g. `127.0.0.1:10000/devstoreaccount1` for Azurite (path-style) or
        /// `acct.blob.core.windows.net`.
        host: String,
    },
}

/// A hub's file-upload settings, in Azure's terms (`storageEndpoints.$default`,
/// `enableFileUploadNotifications`, `messagingEndpoints.fileNotifications`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUploadSettings {
    pub storage: UploadStorage,
    pub container: String,
    /// How long the SAS token a device gets stays valid (`sasTtlAsIso8601`, Azure's default
    /// one hour).
    pub sas_ttl: Duration,
    /// Whether completed uploads produce notifications for the service.
    pub notifications: bool,
    /// How long a notification the service received stays locked (Azure's default 1 minute).
    pub notification_lock: Duration,
    /// How long an unread notification is kept (Azure's default 1 hour).
    pub notification_ttl: Duration,
    /// How often a notification is handed out before it is dropped (Azure's default 100).
    pub max_delivery_count: u32,
}

/// The container uploads go to when a hub's fixture names none.
pub(crate) const DEFAULT_CONTAINER: &str = "fileuploads";

impl Default for FileUploadSettings {
    fn default() -> Self {
        FileUploadSettings {
            storage: UploadStorage::BuiltIn,
            container: DEFAULT_CONTAINER.to_owned(),
            sas_ttl: Duration::from_secs(3600),
            notifications: true,
            notification_lock: Duration::from_secs(60),
            notification_ttl: Duration::from_secs(3600),
            max_delivery_count: 100,
        }
    }
}

/// An upload between the device's two requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActiveUpload {
    pub device_id: String,
    /// The module that started it, for the module variant of the routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    pub host: String,
    pub container: String,
    pub blob_name: String,
    pub expires: SystemTime,
}

/// What `POST /devices/{id}/files` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UploadTarget {
    pub correlation_id: String,
    pub host_name: String,
    pub container_name: String,
    pub blob_name: String,
    /// With its leading `?`, as Azure gives it.
    pub sas_token: String,
}

impl UploadTarget {
    /// The response body (Azure's field names).
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "correlationId": self.correlation_id,
            "hostName": self.host_name,
            "containerName": self.container_name,
            "blobName": self.blob_name,
            "sasToken": self.sas_token,
        })
    }
}

/// What the device reports in `POST /devices/{id}/files/notifications`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UploadOutcome {
    pub correlation_id: String,
    pub is_success: bool,
    /// As the device sent it: a number, or a storage error code string from some samples.
    pub status_code: Option<Value>,
    pub status_description: Option<String>,
}

/// A file-upload notification, as the service reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNotification {
    pub device_id: String,
    pub blob_uri: String,
    pub blob_name: String,
    pub last_updated: SystemTime,
    pub blob_size: u64,
    pub enqueued: SystemTime,
    /// Unique per notification (the AMQP `message-id`).
    pub message_id: String,
    /// Unique per delivery: what completes or abandons it.
    pub lock_token: String,
    pub delivery_count: u32,
}

impl FileNotification {
    /// The body Azure documents (iot-hub-devguide-file-upload.md "File upload notifications").
    pub fn body(&self) -> Value {
        json!({
            "deviceId": self.device_id,
            "blobUri": self.blob_uri,
            "blobName": self.blob_name,
            "lastUpdatedTime": utc_timestamp(self.last_updated),
            "blobSizeInBytes": self.blob_size,
            "enqueuedTimeUtc": utc_timestamp(self.enqueued),
        })
    }
}

#[derive(Default)]
pub(crate) struct NotificationQueue {
    state: Mutex<NotificationState>,
    /// Woken when a notification becomes readable, so service links need not poll.
    readable: tokio::sync::Notify,
}

#[derive(Default)]
struct NotificationState {
    pending: VecDeque<FileNotification>,
    /// Out for reading: the notification and when its lock ends.
    locked: Vec<(FileNotification, SystemTime)>,
}

impl NotificationQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, NotificationState> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl NotificationState {
    /// Locks that ran out return their notification to the front; expired ones are dropped.
    fn tidy(&mut self, now: SystemTime, settings: &FileUploadSettings) {
        let mut index = 0;
        while index < self.locked.len() {
            if self.locked[index].1 <= now {
                let (notification, _) = self.locked.swap_remove(index);
                self.pending.push_front(notification);
            } else {
                index += 1;
            }
        }
        self.pending.retain(|n| {
            n.enqueued + settings.notification_ttl > now
                && n.delivery_count < settings.max_delivery_count
        });
    }

    fn take_locked(&mut self, lock_token: &str) -> Result<FileNotification, HubError> {
        let index = self
            .locked
            .iter()
            .position(|(n, _)| n.lock_token == lock_token)
            .ok_or_else(|| HubError::feedback_lock_lost(lock_token))?;
        Ok(self.locked.swap_remove(index).0)
    }
}

impl Hub {
    /// The hub's file-upload settings.
    pub fn file_upload_settings(&self) -> &FileUploadSettings {
        &self.file_upload
    }

    /// Replaces the file-upload settings; before any traffic.
    pub(crate) fn with_file_upload(mut self, settings: FileUploadSettings) -> Hub {
        self.file_upload = settings;
        self
    }

    /// `POST /devices/{id}/files`: a blob for `blob_name` under the device's folder, with a
    /// token to write it. `authority` is the host (and port) the device reached the hub at,
    /// where the built-in store answers too.
    pub(crate) fn start_file_upload(
        &self,
        identity: &DeviceIdentity,
        blob_name: &str,
        authority: &str,
        now: SystemTime,
    ) -> Result<Pending<'_, UploadTarget>, HubError> {
        check_blob_name(blob_name)?;
        let device_id = identity.device_id();
        let settings = &self.file_upload;
        // A module's blobs go under its own folder in the device's (chosen: Azure does not
        // document the module variant's names).
        let blob_name = match identity.module_id() {
            None => format!("{device_id}/{blob_name}"),
            Some(module_id) => format!("{device_id}/{module_id}/{blob_name}"),
        };
        if blob_name.len() > MAX_BLOB_NAME {
            return Err(HubError::argument_invalid(format!(
                "The blob name may be at most {MAX_BLOB_NAME} characters with the device id"
            )));
        }
        // Uploads whose token ran out no longer count.
        self.file_uploads
            .retain(|_, upload: &mut ActiveUpload| upload.expires > now);
        let active = self
            .file_uploads
            .iter()
            .filter(|u| u.device_id == device_id)
            .count();
        if active >= MAX_ACTIVE_UPLOADS {
            return Err(HubError::too_many_file_uploads());
        }
        let (account, key, host) = match &settings.storage {
            UploadStorage::BuiltIn => (
                BUILT_IN_ACCOUNT,
                self.storage.account_key().to_vec(),
                authority.to_owned(),
            ),
            UploadStorage::Account { name, key, host } => {
                (name.as_str(), key.clone(), host.clone())
            }
        };
        let expires = now + settings.sas_ttl;
        let token = blob_sas::sign(
            &BlobGrant {
                account,
                container: &settings.container,
                blob: &blob_name,
                // What Azure's tokens grant (iot-hub-devguide-file-upload.md).
                permissions: "rw",
                expiry: expires,
            },
            &key,
        );
        let correlation_id = uuid::Uuid::new_v4().simple().to_string();
        let upload = ActiveUpload {
            device_id: device_id.to_owned(),
            module_id: identity.module_id().map(str::to_owned),
            host: host.clone(),
            container: settings.container.clone(),
            blob_name: blob_name.clone(),
            expires,
        };
        let pending = self.save_file_upload(&correlation_id, Some(upload))?;
        Ok(pending.map(|()| UploadTarget {
            correlation_id,
            host_name: host,
            container_name: settings.container.clone(),
            blob_name,
            sas_token: format!("?{token}"),
        }))
    }

    /// `POST /devices/{id}/files/notifications`: ends the upload; a successful one becomes a
    /// notification when the hub has them on. 400 for a correlation id this device does not
    /// have in progress.
    pub(crate) fn complete_file_upload(
        &self,
        identity: &DeviceIdentity,
        outcome: &UploadOutcome,
        now: SystemTime,
    ) -> Result<Pending<'_, ()>, HubError> {
        let upload = self
            .file_uploads
            .get(&outcome.correlation_id)
            .map(|u| u.clone())
            .filter(|u| {
                u.device_id == identity.device_id()
                    && u.module_id.as_deref() == identity.module_id()
            })
            .ok_or_else(|| HubError::unknown_file_upload(&outcome.correlation_id))?;
        let pending = self.save_file_upload(&outcome.correlation_id, None)?;
        tracing::debug!(
            device = identity.device_id(),
            blob = %upload.blob_name,
            success = outcome.is_success,
            status = ?outcome.status_code,
            "file upload completed"
        );
        if outcome.is_success && self.file_upload.notifications {
            let blob = match self.file_upload.storage {
                UploadStorage::BuiltIn => self.storage.get(&upload.container, &upload.blob_name),
                UploadStorage::Account { .. } => None,
            };
            let notification = FileNotification {
                device_id: upload.device_id.clone(),
                blob_uri: format!(
                    "https://{}/{}/{}",
                    upload.host, upload.container, upload.blob_name
                ),
                blob_name: upload.blob_name,
                last_updated: blob.as_ref().map_or(now, |b| b.last_modified),
                blob_size: blob.as_ref().map_or(0, |b| b.content.len() as u64),
                enqueued: now,
                message_id: uuid::Uuid::new_v4().to_string(),
                lock_token: String::new(),
                delivery_count: 0,
            };
            let mut state = self.file_notifications.lock();
            if state.pending.len() >= MAX_PENDING_NOTIFICATIONS {
                state.pending.pop_front();
            }
            state.pending.push_back(notification);
            drop(state);
            self.file_notifications.readable.notify_waiters();
        }
        Ok(pending)
    }

    /// The next file-upload notification, locked for the settings' lock duration; `None`
    /// when there is nothing to read.
    pub fn receive_file_notification(&self, now: SystemTime) -> Option<FileNotification> {
        let mut state = self.file_notifications.lock();
        state.tidy(now, &self.file_upload);
        let mut notification = state.pending.pop_front()?;
        notification.lock_token = uuid::Uuid::new_v4().to_string();
        notification.delivery_count += 1;
        state.locked.push((
            notification.clone(),
            now + self.file_upload.notification_lock,
        ));
        Some(notification)
    }

    /// Deletes a received notification (412 when its lock is unknown or ran out).
    pub(crate) fn complete_file_notification(
        &self,
        lock_token: &str,
        now: SystemTime,
    ) -> Result<(), HubError> {
        let mut state = self.file_notifications.lock();
        state.tidy(now, &self.file_upload);
        state.take_locked(lock_token).map(drop)
    }

    /// Returns a received notification for reading again.
    pub(crate) fn abandon_file_notification(
        &self,
        lock_token: &str,
        now: SystemTime,
    ) -> Result<(), HubError> {
        let mut state = self.file_notifications.lock();
        state.tidy(now, &self.file_upload);
        let notification = state.take_locked(lock_token)?;
        state.pending.push_front(notification);
        drop(state);
        self.file_notifications.readable.notify_waiters();
        Ok(())
    }

    /// Woken whenever a notification is added or returned; create and `enable` the
    /// `notified()` future before [`Hub::receive_file_notification`].
    pub(crate) fn file_notifications_readable(&self) -> &tokio::sync::Notify {
        &self.file_notifications.readable
    }
}

/// The name a device asks for: not empty, no longer than storage allows, and without the
/// characters that would leave the device's folder or break the URL.
fn check_blob_name(name: &str) -> Result<(), HubError> {
    let refuse = |why: &str| {
        Err(HubError::argument_invalid(format!(
            "Invalid blob name: {why}"
        )))
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > MAX_BLOB_NAME {
        return refuse("it is longer than 1024 characters");
    }
    if name.chars().any(|c| c.is_control() || c == '\\') {
        return refuse("it holds a control character or a backslash");
    }
    if name
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return refuse("a path segment is '.' or '..'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notify(hub: &Hub, blob: &str, now: SystemTime) {
        hub.file_notifications
            .lock()
            .pending
            .push_back(FileNotification {
                device_id: "d".into(),
                blob_uri: format!("https://h/c/{blob}"),
                blob_name: blob.into(),
                last_updated: now,
                blob_size: 1,
                enqueued: now,
                message_id: blob.into(),
                lock_token: String::new(),
                delivery_count: 0,
            });
    }

    #[test]
    fn notifications_lock_complete_abandon_and_run_out() {
        let hub = Hub::new("h", Vec::new(), 1).with_file_upload(FileUploadSettings {
            max_delivery_count: 2,
            ..FileUploadSettings::default()
        });
        let settings = hub.file_upload_settings().clone();
        let now = SystemTime::now();
        notify(&hub, "a", now);
        notify(&hub, "b", now);
        let first = hub.receive_file_notification(now).unwrap();
        assert_eq!((first.blob_name.as_str(), first.delivery_count), ("a", 1));
        hub.complete_file_notification(&first.lock_token, now)
            .unwrap();
        assert_eq!(
            hub.complete_file_notification(&first.lock_token, now)
                .unwrap_err()
                .code,
            412002,
            "a lock completes once"
        );

        let second = hub.receive_file_notification(now).unwrap();
        assert!(hub.receive_file_notification(now).is_none(), "b is locked");
        hub.abandon_file_notification(&second.lock_token, now)
            .unwrap();
        let again = hub.receive_file_notification(now).unwrap();
        assert_eq!((again.blob_name.as_str(), again.delivery_count), ("b", 2));
        // Its lock runs out; at its delivery limit it is dropped rather than handed out again.
        let later = now + settings.notification_lock + Duration::from_secs(1);
        assert!(hub.receive_file_notification(later).is_none());
        assert!(
            hub.complete_file_notification(&again.lock_token, later)
                .is_err()
        );

        // An unread notification lives for the settings' time to live.
        notify(&hub, "c", now);
        let expired = now + settings.notification_ttl + Duration::from_secs(1);
        assert!(hub.receive_file_notification(expired).is_none());
    }

    #[test]
    fn blob_names_stay_in_the_device_folder() {
        for good in ["a.txt", "logs/2026/crash.dmp", "ünïcode name.bin"] {
            assert!(check_blob_name(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "a/./b", "a\\b", "a\nb", &"x".repeat(1025)] {
            assert_eq!(check_blob_name(bad).unwrap_err().code, 400004, "{bad}");
        }
    }
}
