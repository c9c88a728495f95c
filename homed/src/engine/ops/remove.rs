//! Removing a home, or only forgetting its record.

use crate::engine::refs::RefKind;
use crate::engine::{Caller, Engine, EngineError, EngineResult, Home, HomeChange, Operation, lock};
use crate::worker::proto::WorkRequest;

impl Engine {
    /// RemoveHome.
    pub async fn remove(&self, caller: Caller, name: &str) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        if self.is_active(&home) {
            return Err(EngineError::HomeBusy(format!(
                "Home {} is currently being used, or an operation on home {} is currently being executed.",
                home.name, home.name
            )));
        }
        let record = self.record(&home);
        self.announce(HomeChange::Removing(home.name.clone()));
        if self.storage_present(&record, false) {
            self.set_transient(&home, Some(Operation::Removing));
            let r = self
                .work(&home.name, WorkRequest::Remove(self.spec(&record)), None)
                .await;
            self.set_transient(&home, None);
            r?;
        }
        self.forget(&home)
    }

    pub(crate) fn forget(&self, home: &Home) -> EngineResult<()> {
        self.store.delete(&home.name).map_err(|e| {
            EngineError::Failed(format!("Failed to remove the record of {}: {e}", home.name))
        })?;
        {
            let mut d = lock(&home.data);
            if let Some(s) = d.please.take() {
                s.cancel();
            }
            if let Some(s) = d.dont.take() {
                s.cancel();
            }
        }
        for kind in [RefKind::PleaseSuspend, RefKind::DontSuspend] {
            let _ = std::fs::remove_file(kind.fifo_path(&self.paths.run_dir, &home.name));
        }
        let _ = std::fs::remove_file(self.paths.run_dir.join(format!("{}.ref", home.name)));
        lock(&self.homes).remove(&home.name);
        self.unpublish(&home.name);
        Ok(())
    }

    /// UnregisterHome: forgets the record, leaves the storage.
    pub async fn unregister(&self, caller: Caller, name: &str) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        if self.is_active(&home) {
            return Err(EngineError::HomeBusy(format!(
                "Home {} is currently being used.",
                home.name
            )));
        }
        self.forget(&home)
    }
}
