//! Publication of the resolved records for nss_homed (DESIGN contract 5).

use homed_shared::UserRecord;

use crate::engine::{Engine, Home, lock};

impl Engine {
    /// Publishes the resolved record of `home` for nss_homed (DESIGN.md contract 5), signed with
    /// the machine's key (created on first need, like the signing key it is).
    pub fn publish(&self, home: &Home) {
        let record = self.record(home);
        if let Err(e) = self.check_resolved(&record) {
            eprintln!("{}: not published: {e}", home.name);
            return;
        }
        if let Err(e) = self.ensure_local_key() {
            eprintln!("{}: not published: {e}", home.name);
            return;
        }
        let keys = lock(&self.keys);
        let Some(key) = keys.local() else { return };
        let view = record.view(&self.machine);
        if let Err(e) = homed_shared::publish::publish(&self.paths.publish_dir, &view, key) {
            eprintln!("{}: not published: {e}", home.name);
        }
    }

    /// At start: publishes every home with a record and withdraws what an earlier run published
    /// for homes that are gone, so that NSS answers for exactly these users.
    pub(crate) fn publish_everything(&self) {
        let records: Vec<UserRecord> = self
            .homes()
            .iter()
            .filter(|h| !self.is_unfixated(h))
            .map(|h| self.record(h))
            .filter(|r| match self.check_resolved(r) {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("{}: not published: {e}", r.user_name());
                    false
                }
            })
            .collect();
        if records.is_empty() {
            self.withdraw_stale_publications();
            return;
        }
        if let Err(e) = self.ensure_local_key() {
            eprintln!("nothing published: {e}");
            return;
        }
        let keys = lock(&self.keys);
        let Some(key) = keys.local() else { return };
        let views: Vec<_> = records.iter().map(|r| r.view(&self.machine)).collect();
        if let Err(e) = homed_shared::publish::publish_all(&self.paths.publish_dir, &views, key) {
            eprintln!("publishing the records failed: {e}");
        }
    }

    /// Removes what an earlier run published, when no home is left to publish.
    pub(crate) fn withdraw_stale_publications(&self) {
        let Ok(entries) = std::fs::read_dir(&self.paths.publish_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(name) = file
                .to_str()
                .and_then(|f| f.strip_suffix(homed_shared::publish::USER_SUFFIX))
            else {
                continue;
            };
            let current = self.lookup(name).is_some_and(|h| {
                !self.is_unfixated(&h) && self.check_resolved(&self.record(&h)).is_ok()
            });
            if !current {
                self.unpublish(name);
            }
        }
    }

    pub(crate) fn unpublish(&self, name: &str) {
        if let Err(e) = homed_shared::publish::unpublish(&self.paths.publish_dir, name) {
            eprintln!("{name}: could not withdraw the published record: {e}");
        }
    }
}
