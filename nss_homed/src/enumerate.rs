//! `setXXent`/`getXXent_r`/`endXXent` state: a snapshot taken when enumeration starts, walked
//! under a mutex. The snapshot holds no descriptor, so a forked child cannot share a
//! connection with its parent.

use std::sync::{Mutex, MutexGuard};

use crate::lookup::Answer;

struct Walk<T> {
    items: Vec<T>,
    next: usize,
}

/// One database's enumeration.
pub struct Enumeration<T> {
    state: Mutex<Option<Result<Walk<T>, i32>>>,
}

/// What `getXXent_r` gets for the current position.
pub enum Step<'a, T> {
    Item(&'a T),
    End,
    /// Starting the enumeration failed with this errno.
    Failed(i32),
}

impl<T> Enumeration<T> {
    pub const fn new() -> Self {
        Enumeration {
            state: Mutex::new(None),
        }
    }

    /// The state, even after a panic elsewhere: it is only replaced whole or advanced by one.
    fn lock(&self) -> MutexGuard<'_, Option<Result<Walk<T>, i32>>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a new snapshot (`setXXent`), which also restarts the walk. The snapshot is taken
    /// before the lock: no lock is held across file or socket I/O (a fork in another thread
    /// then cannot leave it locked in the child).
    pub fn start(&self, load: impl FnOnce() -> Answer<Vec<T>>) -> Answer<()> {
        let (state, answer) = match load() {
            Answer::Found(items) => (Ok(Walk { items, next: 0 }), Answer::Found(())),
            Answer::NotFound => (
                Ok(Walk {
                    items: Vec::new(),
                    next: 0,
                }),
                Answer::Found(()),
            ),
            Answer::Unavailable(e) => (Err(e), Answer::Unavailable(e)),
        };
        *self.lock() = Some(state);
        answer
    }

    /// Drops the snapshot (`endXXent`).
    pub fn end(&self) {
        *self.lock() = None;
    }

    /// Hands the current entry to `write`, which returns its result and whether the entry was
    /// delivered; only then does the walk advance (a too-small buffer retries the same entry).
    /// Without a snapshot one is taken first, as when `getXXent_r` comes without `setXXent`.
    pub fn step<R>(
        &self,
        load: impl FnOnce() -> Answer<Vec<T>>,
        write: impl FnOnce(Step<'_, T>) -> (R, bool),
    ) -> R {
        if self.lock().is_none() {
            // Loaded without the lock held, as in `start`; if another thread started a walk
            // meanwhile, this snapshot is dropped and that walk continues.
            let fresh = match load() {
                Answer::Found(items) => Ok(Walk { items, next: 0 }),
                Answer::NotFound => Ok(Walk {
                    items: Vec::new(),
                    next: 0,
                }),
                Answer::Unavailable(e) => Err(e),
            };
            let mut guard = self.lock();
            if guard.is_none() {
                *guard = Some(fresh);
            }
        }
        let mut guard = self.lock();
        match guard.as_mut() {
            Some(Ok(walk)) => {
                let (result, delivered) = match walk.items.get(walk.next) {
                    Some(item) => write(Step::Item(item)),
                    None => write(Step::End),
                };
                if delivered {
                    walk.next += 1;
                }
                result
            }
            Some(Err(e)) => write(Step::Failed(*e)).0,
            None => write(Step::End).0,
        }
    }
}

impl<T> Default for Enumeration<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(e: &Enumeration<u32>) -> Vec<u32> {
        let mut out = Vec::new();
        loop {
            let got = e.step(
                || Answer::Found(vec![7, 8]),
                |s| match s {
                    Step::Item(i) => (Some(*i), true),
                    _ => (None, false),
                },
            );
            match got {
                Some(i) => out.push(i),
                None => return out,
            }
        }
    }

    #[test]
    fn walks_once_and_restarts() {
        let e = Enumeration::new();
        assert_eq!(e.start(|| Answer::Found(vec![1, 2, 3])), Answer::Found(()));
        assert_eq!(collect(&e), [1, 2, 3]);
        assert_eq!(collect(&e), Vec::<u32>::new());
        e.start(|| Answer::Found(vec![1, 2, 3]));
        assert_eq!(collect(&e), [1, 2, 3]);
        e.end();
        assert_eq!(collect(&e), [7, 8]);
    }
}
