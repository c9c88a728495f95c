//! Host records as the engine keeps them: saved whole, and the persisted status fields.

use homed_shared::UserRecord;
use serde_json::{Map, Value};

use crate::engine::{Engine, EngineError, EngineResult, Home, HomeChange, PERSISTED_STATUS, lock};

impl Engine {
    /// This machine's entry of the record's status section.
    pub(crate) fn status_of(&self, record: &UserRecord) -> Map<String, Value> {
        record
            .json()
            .get("status")
            .and_then(|s| s.get(&self.machine.machine_id))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn save_record(&self, home: &Home, record: UserRecord) -> EngineResult<()> {
        // An unfixated home has no host record yet: its synthesized one stays in memory.
        if self.is_unfixated(home) {
            lock(&home.data).record = record;
            return Ok(());
        }
        self.store.save(&record).map_err(|e| {
            EngineError::Failed(format!("Failed to write the record of {}: {e}", home.name))
        })?;
        lock(&home.data).record = record;
        self.announce(HomeChange::Record(home.name.clone()));
        Ok(())
    }

    /// Changes persisted status fields of a home and writes its host record.
    /// The change takes effect in memory first, whatever happens to the file: a full or
    /// read-only file system must not undo a count the rate limit relies on. Says whether the
    /// change also reached the host record.
    pub(crate) fn update_status(
        &self,
        home: &Home,
        change: impl FnOnce(&mut Map<String, Value>),
    ) -> bool {
        let mut record = self.record(home);
        let mut status = self.status_of(&record);
        status.retain(|k, _| PERSISTED_STATUS.contains(&k.as_str()));
        change(&mut status);
        record.set_status(&self.machine.machine_id, status);
        if self.is_unfixated(home) {
            lock(&home.data).record = record;
            return true;
        }
        let saved = self.store.save(&record);
        lock(&home.data).record = record;
        self.announce(HomeChange::Record(home.name.clone()));
        match saved {
            Ok(()) => true,
            Err(e) => {
                eprintln!("{}: the status could not be saved: {e}", home.name);
                false
            }
        }
    }
}
