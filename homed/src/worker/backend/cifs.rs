//! `storage: cifs` (homed-spec §3.5): the home is a share on a CIFS server (`cifsService`),
//! mounted on `/home/NAME` with the login password as the share's credential. There is no
//! image on this machine: the home is present while its server answers, and an active home
//! whose server went away shows as absent until it answers again (the kernel reconnects the
//! mount by itself). Removing the home forgets the record and leaves the share's files.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use homed_shared::UserRecord;
use homed_shared::record::{RecordView, Storage};
use homed_storage::space::DiskFigures;
use homed_storage::{StorageError, cifs};
use secrecy::SecretString;
use serde_json::{Map, Value};

use super::{Backend, Capabilities, Mounted, StorageType, embedded_identity};
use crate::worker::proto::{CreateArgs, HomeSpec, WorkReply};

pub struct Cifs;

/// How long one answer of a server's probe stands: the state is asked for often, and a probe
/// of a server that went away takes up to [`cifs::PROBE_TIMEOUT`].
const PROBE_FRESH: Duration = Duration::from_secs(3);

static PROBES: Mutex<Option<HashMap<String, (Instant, bool)>>> = Mutex::new(None);

/// Whether the server of `service` answers, probed at most once per [`PROBE_FRESH`].
fn server_answers(service: &str, extra: Option<&str>) -> bool {
    let key = format!("{service}\u{0}{}", extra.unwrap_or(""));
    {
        let probes = PROBES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, up)) = probes.as_ref().and_then(|m| m.get(&key))
            && at.elapsed() < PROBE_FRESH
        {
            return *up;
        }
    }
    let up = cifs::reachable(service, extra, cifs::PROBE_TIMEOUT);
    PROBES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, (Instant::now(), up));
    up
}

fn text<'a>(view: &RecordView<'a>, field: &str) -> Option<&'a str> {
    view.get(field).and_then(Value::as_str)
}

/// The share of the home a request describes, with the password-independent mount options.
fn share_of<'a>(
    record: &'a UserRecord,
    view: &RecordView<'a>,
    spec: &HomeSpec,
) -> Result<cifs::Share<'a>, StorageError> {
    let (uid, gid) = spec.ids()?;
    let service = text(view, "cifsService").ok_or_else(|| {
        StorageError::new(libc::EINVAL, "User record lacks CIFS service, refusing.")
    })?;
    Ok(cifs::Share {
        service,
        // As systemd-homed: the share's user is the home's user unless the record says.
        user_name: text(view, "cifsUserName").unwrap_or(record.user_name()),
        domain: text(view, "cifsDomain"),
        extra_options: text(view, "cifsExtraMountOptions"),
        uid,
        gid,
        access_mode: view.access_mode(),
    })
}

/// Runs `act` with the share of `spec`'s host record.
fn with_share<T>(
    spec: &HomeSpec,
    act: impl FnOnce(&cifs::Share<'_>) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    let (record, machine) = spec.host_record()?;
    let view = record.view(&machine);
    let share = share_of(&record, &view, spec)?;
    act(&share)
}

impl StorageType for Cifs {
    fn storage(&self) -> Storage {
        Storage::Cifs
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            lockable: false,
            // `.identity` is on the share, which only the password reaches.
            copies_need_key: true,
            keyed: false,
            owner_suggests_uid: false,
            holds_image_lock: false,
            mounts_with_keys: true,
        }
    }

    /// Never found by discovery: nothing of a CIFS home lies in the home root.
    fn image_suffix(&self) -> &'static str {
        ""
    }

    fn image_is_folder(&self) -> bool {
        true
    }

    fn recognises(&self, _path: &std::path::Path, _meta: &std::fs::Metadata) -> bool {
        false
    }

    fn has_image(&self) -> bool {
        false
    }

    fn new_binding(
        &self,
        view: &RecordView<'_>,
        _binding: &mut Map<String, Value>,
    ) -> Result<(), StorageError> {
        let service = text(view, "cifsService").ok_or_else(|| {
            StorageError::new(libc::EINVAL, "User record lacks CIFS service, refusing.")
        })?;
        cifs::server_of(service, text(view, "cifsExtraMountOptions")).map(|_| ())
    }

    fn present(&self, view: &RecordView<'_>, _image_path: &str, _mounted: bool) -> bool {
        text(view, "cifsService")
            .is_some_and(|s| server_answers(s, text(view, "cifsExtraMountOptions")))
    }

    /// Nothing read from the share: a statfs of a mount whose server went away would wait on
    /// it.
    fn disk_figures(&self, _home_root: &str, _image_path: &str, _uid: Option<u32>) -> DiskFigures {
        DiskFigures::default()
    }
}

impl Backend for Cifs {
    fn create(&self, args: &CreateArgs, keys: &[SecretString]) -> Result<(), StorageError> {
        let spec = &args.spec;
        let identity = embedded_identity(spec)?;
        with_share(spec, |share| {
            cifs::create(
                share,
                keys,
                &cifs::NewShareHome {
                    mount_point: &spec.home_directory,
                    skeleton: args.skeleton.as_deref(),
                    identity: &identity,
                },
            )
        })
    }

    fn activate(&self, spec: &HomeSpec, keys: &[SecretString]) -> Result<Mounted, StorageError> {
        let identity = with_share(spec, |share| {
            cifs::activate(share, keys, &spec.home_directory, spec.mount_flags())
        })?;
        Ok(Mounted::folder(identity))
    }

    fn deactivate(&self, spec: &HomeSpec) -> Result<(), StorageError> {
        with_share(spec, |share| cifs::deactivate(share, &spec.home_directory))
    }

    /// The share and its files stay: they are the server's, as systemd-homed leaves them.
    fn remove(&self, _spec: &HomeSpec) -> Result<(), StorageError> {
        Ok(())
    }

    fn inspect(&self, spec: &HomeSpec, _keys: &[SecretString]) -> Result<WorkReply, StorageError> {
        Err(super::not_supported(
            "Reading the record of an unmounted share",
            spec,
        ))
    }

    fn write_identity(&self, _spec: &HomeSpec) -> Result<(), StorageError> {
        // `.identity` is on the share: the next activation brings it forward.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_discovered_and_has_no_image() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = std::fs::symlink_metadata(tmp.path()).unwrap();
        assert!(!Cifs.recognises(tmp.path(), &meta));
        assert!(!Cifs.has_image());
        assert!(super::super::describe(Storage::Cifs).is_some());
    }
}
