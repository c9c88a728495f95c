//! The homes the daemon knows, and the per-home operation queue.

use std::sync::{Arc, Mutex};

use homed_shared::UserRecord;

use crate::engine::{Caller, Engine, EngineError, EngineResult, Home, HomeData, MAX_PENDING, lock};

impl Engine {
    pub(crate) fn insert_home(&self, record: UserRecord, signed_locally: bool) -> Arc<Home> {
        let home = self.insert_home_unpublished(record, signed_locally);
        self.publish(&home);
        home
    }

    pub(crate) fn insert_home_unpublished(
        &self,
        record: UserRecord,
        signed_locally: bool,
    ) -> Arc<Home> {
        let name = record.user_name().to_owned();
        let home = Arc::new(Home {
            name: name.clone(),
            op: tokio::sync::Mutex::new(()),
            data: Mutex::new(HomeData {
                record,
                signed_locally,
                transient: None,
                please: None,
                dont: None,
                lingering: false,
                pending: 0,
                unfixated: false,
                image_lock: None,
                locked: false,
            }),
        });
        lock(&self.homes).insert(name, home.clone());
        home
    }

    pub(crate) fn is_unfixated(&self, home: &Home) -> bool {
        lock(&home.data).unfixated
    }

    pub fn homes(&self) -> Vec<Arc<Home>> {
        lock(&self.homes).values().cloned().collect()
    }

    pub fn lookup(&self, name: &str) -> Option<Arc<Home>> {
        lock(&self.homes).get(name).cloned()
    }

    pub fn lookup_uid(&self, uid: u32) -> Option<Arc<Home>> {
        self.homes()
            .into_iter()
            .find(|h| self.uid_of(h) == Some(uid))
    }

    /// Looks a home up by name, or by the caller's UID when the name is empty.
    pub fn find(&self, name: &str, caller: Caller) -> EngineResult<Arc<Home>> {
        if name.is_empty() {
            return self.lookup_uid(caller.uid).ok_or_else(|| {
                EngineError::NoSuchHome(format!("Client's UID {} not managed.", caller.uid))
            });
        }
        self.lookup(name)
            .ok_or_else(|| EngineError::NoSuchHome(format!("No home for user {name} known")))
    }

    pub fn record(&self, home: &Home) -> UserRecord {
        lock(&home.data).record.clone()
    }

    pub fn uid_of(&self, home: &Home) -> Option<u32> {
        let data = lock(&home.data);
        data.record.view(&self.machine).uid()
    }

    pub(crate) fn next_generation(&self) -> u64 {
        let mut g = lock(&self.generation);
        *g += 1;
        *g
    }

    /// Takes the operation lock of a home, refusing when too many operations wait.
    pub(crate) async fn begin<'a>(
        &self,
        home: &'a Home,
    ) -> EngineResult<tokio::sync::MutexGuard<'a, ()>> {
        {
            let mut d = lock(&home.data);
            if d.pending >= MAX_PENDING {
                return Err(EngineError::TooManyOperations(
                    "Too many client operations requested".into(),
                ));
            }
            d.pending += 1;
        }
        let guard = home.op.lock().await;
        lock(&home.data).pending -= 1;
        Ok(guard)
    }

    pub(crate) fn uid_in_use_by_home(&self, uid: u32) -> Option<String> {
        self.homes()
            .into_iter()
            .find(|h| self.uid_of(h) == Some(uid))
            .map(|h| h.name.clone())
    }
}
