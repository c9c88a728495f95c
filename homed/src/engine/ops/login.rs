//! Logging in and out: authenticate, activate, acquire a reference, release, deactivate, and
//! the deactivation when the last reference closes (retried while the home is busy).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use homed_shared::record::Secret;
use homed_shared::signing::TrustVerdict;
use homed_shared::{RecordOrigin, UserRecord};

use crate::engine::refs::{LastReferenceClosed, RefKind};
use crate::engine::{
    AuthError, Caller, Delayed, Engine, EngineError, EngineResult, Home, HomeState, Operation,
    RETRY_DEACTIVATE, RefSlot, Via, access, lock, refs, reported_holding,
};
use crate::worker::proto::WorkRequest;

impl Engine {
    /// AuthenticateHome.
    pub async fn authenticate(
        &self,
        caller: Caller,
        name: &str,
        secret: &Secret,
    ) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        self.require_root_or_owner(&home, caller)?;
        if self.is_unfixated(&home) {
            return Err(EngineError::HomeUnfixated(format!(
                "Home {} has not been fixated yet.",
                home.name
            )));
        }
        // As homed: an authentication does not queue behind another operation on the home
        // (which may be a failed guess serving its delay); it is refused as busy at once.
        let guard = home.op.try_lock().map_err(|_| {
            EngineError::HomeBusy(format!(
                "Home {0} is currently being used, or an operation on home {0} is currently being executed.",
                home.name
            ))
        })?;
        let result = self.authenticate_locked(&home, secret).await;
        reported_holding(guard, result).await
    }

    /// Mounts the home and reconciles its `.identity`; the caller holds the operation lock and
    /// has authenticated.
    pub(crate) async fn activate_locked(
        &self,
        home: &Home,
        secret: &Secret,
    ) -> Result<(), AuthError> {
        let record = self.record(home);
        self.check_resolved(&record)?;
        self.storage_type(&record)?;
        self.ids(&record)?;
        self.set_transient(home, Some(Operation::Activating));
        let reply = self
            .work(
                &home.name,
                WorkRequest::Activate(self.spec(&record)),
                Some(secret),
            )
            .await
            .map(|output| {
                let mut d = lock(&home.data);
                d.image_lock = output.image_lock;
                d.locked = false;
                output.reply
            });
        self.set_transient(home, None);
        let reply = match reply {
            Ok(reply) => reply,
            Err(e @ EngineError::BadPassword(_)) => return Err(AuthError::Delayed(Delayed(e))),
            Err(e) => return Err(e.into()),
        };
        let Some(text) = reply.identity else {
            lock(&home.data).lingering = false;
            return Ok(());
        };
        // The worker adopted a newer embedded copy (trusted, and the secret opens it; every
        // copy in the home is it now): it becomes the host record once its signature checks
        // out here too.
        let adopted = async {
            let embedded = UserRecord::parse(text.as_bytes(), RecordOrigin::Embedded)
                .map_err(|e| AuthError::Now(EngineError::BadSignature(e.to_string())))?;
            let verdict = lock(&self.keys).verdict(&embedded);
            if !matches!(verdict, Ok(v) if v.is_trusted()) {
                return Err(AuthError::Now(EngineError::BadSignature(format!(
                    "The record embedded in home {} is not signed by a trusted key.",
                    home.name
                ))));
            }
            let mut merged = embedded.clone();
            for section in ["binding", "status"] {
                if let Some(v) = record.json().get(section) {
                    merged.json_mut().insert(section.into(), v.clone());
                }
            }
            let signed_locally = matches!(verdict, Ok(TrustVerdict::SignedExclusive));
            self.check_resolved(&merged)?;
            self.save_record(home, merged)?;
            lock(&home.data).signed_locally = signed_locally;
            self.publish(home);
            Ok(())
        }
        .await;
        if adopted.is_err() {
            let _ = self.deactivate_locked(home).await;
        }
        adopted
    }

    /// ActivateHome (root only in v252).
    pub async fn activate(&self, caller: Caller, name: &str, secret: &Secret) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let guard = self.begin(&home).await?;
        let result = async {
            match self.state(&home) {
                HomeState::Active | HomeState::Lingering | HomeState::Locked => {
                    return Err(AuthError::Now(EngineError::HomeAlreadyActive(format!(
                        "Home {} is already active.",
                        home.name
                    ))));
                }
                HomeState::Absent => {
                    return Err(AuthError::Now(EngineError::HomeAbsent(format!(
                        "Home {} is currently missing or not plugged in.",
                        home.name
                    ))));
                }
                HomeState::Unfixated => self.fixate_locked(&home, secret).await?,
                _ => self.authenticate_locked(&home, secret).await?,
            }
            self.activate_locked(&home, secret).await
        }
        .await;
        reported_holding(guard, result).await
    }

    pub(crate) async fn deactivate_locked(&self, home: &Home) -> EngineResult<()> {
        let record = self.record(home);
        if lock(&home.data).locked {
            return Err(EngineError::HomeLocked(format!(
                "Home {} is currently locked.",
                home.name
            )));
        }
        self.set_transient(home, Some(Operation::Deactivating));
        let result = self
            .work(
                &home.name,
                WorkRequest::Deactivate(self.spec(&record)),
                None,
            )
            .await
            .map(|_| ());
        self.set_transient(home, None);
        if result.is_ok() {
            let mut d = lock(&home.data);
            d.lingering = false;
            d.image_lock = None;
        }
        result
    }

    /// DeactivateHome (root only).
    pub async fn deactivate(&self, caller: Caller, name: &str) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        if !self.is_active(&home) {
            return Err(EngineError::HomeNotActive(format!(
                "Home {} not active.",
                home.name
            )));
        }
        self.deactivate_locked(&home).await
    }

    /// DeactivateAllHomes (root only).
    pub async fn deactivate_all(&self, caller: Caller) -> EngineResult<()> {
        Self::require_root(caller)?;
        let mut first_error = None;
        for home in self.homes() {
            let _guard = self.begin(&home).await?;
            if self.is_active(&home)
                && let Err(e) = self.deactivate_locked(&home).await
            {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// AcquireHome: authenticates (activating the home if needed) and returns a reference.
    pub async fn acquire(
        self: &Arc<Self>,
        caller: Caller,
        name: &str,
        secret: &Secret,
        please_suspend: bool,
        via: Via,
    ) -> EngineResult<OwnedFd> {
        access::authorize_acquire(caller, via)?;
        let home = self.find(name, caller)?;
        let guard = self.begin(&home).await?;
        let result = async {
            match self.state(&home) {
                HomeState::Absent => {
                    return Err(AuthError::Now(EngineError::HomeAbsent(format!(
                        "Home {} is currently missing or not plugged in.",
                        home.name
                    ))));
                }
                HomeState::Active | HomeState::Lingering => {
                    self.authenticate_locked(&home, secret).await?;
                }
                HomeState::Locked => {
                    self.authenticate_locked(&home, secret).await?;
                    self.unlock_locked(&home, secret).await?;
                }
                HomeState::Unfixated => {
                    self.fixate_locked(&home, secret).await?;
                    self.activate_locked(&home, secret).await?;
                }
                _ => {
                    self.authenticate_locked(&home, secret).await?;
                    self.activate_locked(&home, secret).await?;
                }
            }
            lock(&home.data).lingering = false;
            self.new_ref(&home, please_suspend).map_err(AuthError::Now)
        }
        .await;
        reported_holding(guard, result).await
    }

    /// RefHome: a reference to an active home (root only).
    pub async fn ref_home(
        self: &Arc<Self>,
        caller: Caller,
        name: &str,
        please_suspend: bool,
    ) -> EngineResult<OwnedFd> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        match self.state(&home) {
            HomeState::Absent => Err(EngineError::HomeAbsent(format!(
                "Home {} is currently missing or not plugged in.",
                home.name
            ))),
            HomeState::Active | HomeState::Lingering => {
                lock(&home.data).lingering = false;
                self.new_ref(&home, please_suspend)
            }
            _ => Err(EngineError::HomeNotActive(format!(
                "Home {} is currently not active.",
                home.name
            ))),
        }
    }

    /// ReleaseHome: deactivates the home unless it is still referenced.
    pub async fn release(&self, caller: Caller, name: &str) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        {
            let d = lock(&home.data);
            if d.please.is_some() || d.dont.is_some() {
                return Err(EngineError::HomeBusy(format!(
                    "Home {} is currently referenced.",
                    home.name
                )));
            }
        }
        if self.is_active(&home) {
            self.deactivate_locked(&home).await?;
        }
        Ok(())
    }

    /// Where the watchers of reference FIFOs report hangups; the first call starts the one task
    /// that receives them (it holds the engine weakly, so the engine can go away).
    fn ref_events(self: &Arc<Self>) -> tokio::sync::mpsc::UnboundedSender<LastReferenceClosed> {
        self.ref_events
            .get_or_init(|| {
                let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
                let engine = Arc::downgrade(self);
                tokio::spawn(async move {
                    while let Some(event) = received.recv().await {
                        let Some(engine) = engine.upgrade() else {
                            return;
                        };
                        // Each hangup in its own task: a lingering home retries for a while.
                        tokio::spawn(async move {
                            let LastReferenceClosed {
                                home,
                                kind,
                                generation,
                                keep_watching,
                            } = event;
                            let done = engine.on_hangup(&home, kind, generation).await;
                            let _ = keep_watching.send(!done);
                        });
                    }
                });
                events
            })
            .clone()
    }

    /// Opens the read end of a reference FIFO and watches it.
    pub(crate) fn watch_fifo(
        self: &Arc<Self>,
        home: &Arc<Home>,
        kind: RefKind,
    ) -> std::io::Result<()> {
        let path = kind.fifo_path(&self.paths.run_dir, &home.name);
        let reader = Arc::new(refs::open_reader(&path)?);
        let generation = self.next_generation();
        let watcher = refs::watch(
            reader.clone(),
            home.name.clone(),
            kind,
            generation,
            self.ref_events(),
        );
        let slot = RefSlot {
            reader,
            generation,
            watcher,
        };
        let mut d = lock(&home.data);
        match kind {
            RefKind::PleaseSuspend => d.please = Some(slot),
            RefKind::DontSuspend => d.dont = Some(slot),
        }
        Ok(())
    }

    /// A new write end of the home's reference FIFO of this kind, watching it first if needed.
    pub(crate) fn new_ref(
        self: &Arc<Self>,
        home: &Home,
        please_suspend: bool,
    ) -> EngineResult<OwnedFd> {
        let kind = if please_suspend {
            RefKind::PleaseSuspend
        } else {
            RefKind::DontSuspend
        };
        let home = self.lookup(&home.name).ok_or_else(|| {
            EngineError::NoSuchHome(format!("No home for user {} known", home.name))
        })?;
        let have = {
            let d = lock(&home.data);
            match kind {
                RefKind::PleaseSuspend => d.please.is_some(),
                RefKind::DontSuspend => d.dont.is_some(),
            }
        };
        let failed = |e: std::io::Error| {
            EngineError::Failed(format!("Failed to create the reference FIFO: {e}"))
        };
        if !have {
            self.watch_fifo(&home, kind).map_err(failed)?;
        }
        refs::open_writer(&kind.fifo_path(&self.paths.run_dir, &home.name)).map_err(failed)
    }

    /// The last writer of a reference FIFO closed: drop that reference, and when none is left
    /// deactivate the home, retrying every 15 s while it is busy (state `lingering`).
    pub(crate) async fn on_hangup(
        self: Arc<Self>,
        name: &str,
        kind: RefKind,
        generation: u64,
    ) -> bool {
        let Some(home) = self.lookup(name) else {
            return true;
        };
        let mut first = true;
        loop {
            {
                // Under the operation lock, so that an AcquireHome handing out a new write end
                // of this FIFO is either before (and the hangup is gone) or after (and finds no
                // reference, making a new FIFO).
                let Ok(_guard) = self.begin(&home).await else {
                    return true;
                };
                if first {
                    first = false;
                    let mut d = lock(&home.data);
                    let slot = match kind {
                        RefKind::PleaseSuspend => &mut d.please,
                        RefKind::DontSuspend => &mut d.dont,
                    };
                    match slot {
                        Some(s) if s.generation == generation => {
                            if !s.reader.is_hung_up() {
                                // A new reference arrived meanwhile: keep watching.
                                return false;
                            }
                        }
                        _ => return true,
                    }
                    // Dropped, not cancelled: its watcher is waiting for this answer.
                    drop(slot.take());
                    drop(d);
                    let _ = std::fs::remove_file(kind.fifo_path(&self.paths.run_dir, name));
                }
                {
                    let d = lock(&home.data);
                    if d.please.is_some() || d.dont.is_some() {
                        return true;
                    }
                }
                if !self.is_active(&home) {
                    lock(&home.data).lingering = false;
                    return true;
                }
                match self.deactivate_locked(&home).await {
                    Ok(()) => {
                        eprintln!("{name}: last reference closed, home deactivated");
                        return true;
                    }
                    Err(EngineError::HomeBusy(_)) => {
                        eprintln!("{name}: home busy, retrying deactivation in 15 s");
                        lock(&home.data).lingering = true;
                    }
                    Err(e) => {
                        eprintln!("{name}: deactivation failed: {e}");
                        return true;
                    }
                }
            }
            tokio::time::sleep(RETRY_DEACTIVATE).await;
            if !lock(&home.data).lingering {
                return true;
            }
        }
    }
}
