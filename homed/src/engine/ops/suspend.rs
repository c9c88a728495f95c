//! Suspend: lock and unlock homes whose storage can take its key out of memory.

use homed_shared::record::Secret;

use crate::engine::{
    AuthError, Caller, Delayed, Engine, EngineError, EngineResult, Home, Operation, lock,
    reported_holding,
};
use crate::worker::proto::WorkRequest;

impl Engine {
    /// LockAllHomes: locks every home whose references all asked for suspend. A directory home
    /// has nothing to lock, which counts as success, as in homed.
    pub async fn lock_all(&self, caller: Caller) -> EngineResult<()> {
        Self::require_root(caller)?;
        for home in self.homes() {
            let shall_suspend = {
                let d = lock(&home.data);
                d.please.is_some() && d.dont.is_none()
            };
            if !shall_suspend || !self.is_active(&home) {
                continue;
            }
            if !self.capabilities(&home).lockable {
                eprintln!("{}: nothing to lock on this storage", home.name);
                continue;
            }
            let _guard = self.begin(&home).await?;
            if lock(&home.data).locked {
                continue;
            }
            if let Err(e) = self.lock_locked(&home).await {
                eprintln!("{}: locking failed: {e}", home.name);
            }
        }
        Ok(())
    }

    /// Syncs and suspends a LUKS home; the caller holds the operation lock.
    pub(crate) async fn lock_locked(&self, home: &Home) -> EngineResult<()> {
        let record = self.record(home);
        self.set_transient(home, Some(Operation::Locking));
        let result = self
            .work(&home.name, WorkRequest::Lock(self.spec(&record)), None)
            .await;
        self.set_transient(home, None);
        result?;
        lock(&home.data).locked = true;
        eprintln!("{}: home locked", home.name);
        Ok(())
    }

    /// Resumes a locked LUKS home with the passwords in `secret`; the caller holds the
    /// operation lock and has authenticated.
    pub(crate) async fn unlock_locked(
        &self,
        home: &Home,
        secret: &Secret,
    ) -> Result<(), AuthError> {
        let record = self.record(home);
        self.set_transient(home, Some(Operation::Unlocking));
        let result = self
            .work(
                &home.name,
                WorkRequest::Unlock(self.spec(&record)),
                Some(secret),
            )
            .await;
        self.set_transient(home, None);
        match result {
            Ok(_) => {
                lock(&home.data).locked = false;
                eprintln!("{}: home unlocked", home.name);
                Ok(())
            }
            Err(e @ EngineError::BadPassword(_)) => Err(AuthError::Delayed(Delayed(e))),
            Err(e) => Err(AuthError::Now(e)),
        }
    }

    /// LockHome (root only): suspends an active LUKS home.
    pub async fn lock_home(&self, caller: Caller, name: &str) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        if lock(&home.data).locked {
            return Err(EngineError::HomeLocked(format!(
                "Home {} is currently locked.",
                home.name
            )));
        }
        if !self.is_active(&home) {
            return Err(EngineError::HomeNotActive(format!(
                "Home {} is not active.",
                home.name
            )));
        }
        if !self.capabilities(&home).lockable {
            return Err(EngineError::NotSupported(format!(
                "Home {} does not support locking.",
                home.name
            )));
        }
        self.lock_locked(&home).await
    }

    /// UnlockHome: resumes a locked home with the secret.
    pub async fn unlock_home(
        &self,
        caller: Caller,
        name: &str,
        secret: &Secret,
    ) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let guard = self.begin(&home).await?;
        if !lock(&home.data).locked {
            return Err(EngineError::HomeNotLocked(format!(
                "Home {} is not locked.",
                home.name
            )));
        }
        let result = async {
            self.authenticate_locked(&home, secret).await?;
            self.unlock_locked(&home, secret).await
        }
        .await;
        reported_holding(guard, result).await
    }
}
