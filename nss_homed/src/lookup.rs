//! Answers for each NSS call, from the two sources in order: (1) the records the daemon
//! publishes (authoritative when present), (2) homed's varlink socket, which is how the module
//! also works against systemd-homed.

use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use homed_shared::nss::{GroupEntry, PasswdEntry, ShadowEntry};
use homed_shared::publish::{PUBLISH_DIR, Published, PublishedUser, ShadowDenied};
use homed_shared::record::{HOMED_SERVICE, MachineContext, UserRecord, names};
use homed_shared::varlink::{HOME_SOCKET, UserDatabase, UserReply, VarlinkError};

use crate::{guard, nsswitch};

/// The result of one lookup, before it becomes an NSS status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    Found(T),
    NotFound,
    /// The source failed (errno to report with `NSS_STATUS_UNAVAIL`).
    Unavailable(i32),
}

impl<T> Answer<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        match self {
            Answer::Found(t) => Answer::Found(f(t)),
            Answer::NotFound => Answer::NotFound,
            Answer::Unavailable(e) => Answer::Unavailable(e),
        }
    }
}

/// A passwd entry: shared with the cache of published records (no copy per lookup), or one
/// made for this answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Passwd {
    Published(Arc<PublishedUser>),
    Other(PasswdEntry),
}

impl Deref for Passwd {
    type Target = PasswdEntry;

    fn deref(&self) -> &PasswdEntry {
        match self {
            Passwd::Published(user) => &user.passwd,
            Passwd::Other(entry) => entry,
        }
    }
}

fn from_option<T>(v: Option<T>) -> Answer<T> {
    v.map_or(Answer::NotFound, Answer::Found)
}

/// A failed varlink exchange: a service that is not there is "not found" (nobody answers for
/// this name), one that misbehaves or times out is unavailable.
fn varlink_failure<T>(e: &VarlinkError) -> Answer<T> {
    match e {
        VarlinkError::Connect { .. } => Answer::NotFound,
        _ => Answer::Unavailable(libc::EAGAIN),
    }
}

fn machine() -> Option<&'static MachineContext> {
    static MACHINE: OnceLock<Option<MachineContext>> = OnceLock::new();
    MACHINE
        .get_or_init(|| MachineContext::local().ok())
        .as_ref()
}

/// Published records, when the daemon publishes them.
fn published() -> Option<Published> {
    Published::open(Path::new(PUBLISH_DIR))
}

/// A connection to homed's socket, if the module may use it for `database`: not bypassed, not
/// already covered by nss-systemd, and the socket exists (so a missing daemon costs no connect).
fn socket(database: &str) -> Option<Result<UserDatabase, VarlinkError>> {
    if guard::socket_bypassed() || !Path::new(HOME_SOCKET).exists() {
        return None;
    }
    if nsswitch::systemd_covers(database) {
        return None;
    }
    Some(UserDatabase::connect(Path::new(HOME_SOCKET)))
}

/// nss-systemd accepts only records that name their service.
fn from_homed(record: &UserRecord, machine: &MachineContext) -> bool {
    let view = record.view(machine);
    view.service() == Some(HOMED_SERVICE)
        || view
            .status("service")
            .and_then(|s| s.as_str())
            .is_some_and(|s| s == HOMED_SERVICE)
}

fn passwd_of(reply: &UserReply) -> Option<PasswdEntry> {
    let machine = machine()?;
    if !from_homed(&reply.record, machine) {
        return None;
    }
    PasswdEntry::from_view(&reply.record.view(machine))
}

fn test_hook(_name: &str) {
    #[cfg(any(feature = "test-hooks", debug_assertions))]
    #[allow(clippy::panic)]
    if _name == crate::TEST_PANIC_NAME {
        panic!("forced panic inside a lookup (test-hooks build)");
    }
}

fn usable_name(name: &str) -> bool {
    !guard::blocked() && !guard::module_bypassed() && names::is_valid_relaxed(name)
}

pub fn user_by_name(name: &str) -> Answer<Passwd> {
    test_hook(name);
    if !usable_name(name) {
        return Answer::NotFound;
    }
    if let Some(p) = published() {
        return from_option(p.user(name).map(Passwd::Published));
    }
    match socket("passwd") {
        None => Answer::NotFound,
        Some(Err(e)) => varlink_failure(&e),
        Some(Ok(mut db)) => match db.user_by_name(name) {
            Ok(reply) => from_option(reply.as_ref().and_then(passwd_of).map(Passwd::Other)),
            Err(e) => varlink_failure(&e),
        },
    }
}

pub fn user_by_uid(uid: u32) -> Answer<Passwd> {
    if guard::blocked() || guard::module_bypassed() {
        return Answer::NotFound;
    }
    if let Some(p) = published() {
        return from_option(p.user_by_uid(uid).map(Passwd::Published));
    }
    match socket("passwd") {
        None => Answer::NotFound,
        Some(Err(e)) => varlink_failure(&e),
        Some(Ok(mut db)) => match db.user_by_uid(uid) {
            Ok(reply) => from_option(
                reply
                    .as_ref()
                    .and_then(passwd_of)
                    .filter(|p| p.uid == uid)
                    .map(Passwd::Other),
            ),
            Err(e) => varlink_failure(&e),
        },
    }
}

fn shadow_by_varlink(name: &str) -> Answer<ShadowEntry> {
    match socket("shadow") {
        None => Answer::NotFound,
        Some(Err(e)) => varlink_failure(&e),
        Some(Ok(mut db)) => match db.user_by_name(name) {
            // An incomplete record lacks the privileged section: this caller may not see it.
            Ok(Some(reply)) if !reply.incomplete => {
                let Some(machine) = machine() else {
                    return Answer::Unavailable(libc::EAGAIN);
                };
                if !from_homed(&reply.record, machine) {
                    return Answer::NotFound;
                }
                Answer::Found(ShadowEntry::from_view(&reply.record.view(machine)))
            }
            Ok(_) => Answer::NotFound,
            Err(e) => varlink_failure(&e),
        },
    }
}

pub fn shadow_by_name(name: &str) -> Answer<ShadowEntry> {
    if !usable_name(name) {
        return Answer::NotFound;
    }
    if let Some(p) = published() {
        return match p.shadow(name) {
            Ok(entry) => from_option(entry),
            // Only root reads the privileged files; the owner may still get their own line
            // from the daemon, which checks who asks.
            Err(ShadowDenied::NotPermitted) if p.user(name).is_some() => shadow_by_varlink(name),
            Err(ShadowDenied::NotPermitted) => Answer::NotFound,
        };
    }
    shadow_by_varlink(name)
}

fn group_by_varlink(
    lookup: impl FnOnce(
        &mut UserDatabase,
        &MachineContext,
    ) -> Result<Option<homed_shared::varlink::GroupReply>, VarlinkError>,
) -> Answer<GroupEntry> {
    let Some(machine) = machine() else {
        return Answer::NotFound;
    };
    match socket("group") {
        None => Answer::NotFound,
        Some(Err(e)) => varlink_failure(&e),
        Some(Ok(mut db)) => {
            let group = match lookup(&mut db, machine) {
                Ok(Some(g)) => g,
                Ok(None) => return Answer::NotFound,
                Err(e) => return varlink_failure(&e),
            };
            let mut members = group.members.clone();
            match db.memberships(None, Some(&group.name)) {
                Ok(found) => {
                    for m in found {
                        if !members.contains(&m.user_name) {
                            members.push(m.user_name);
                        }
                    }
                }
                Err(e) => return varlink_failure(&e),
            }
            Answer::Found(GroupEntry {
                name: group.name,
                passwd: "x".into(),
                gid: group.gid,
                members,
            })
        }
    }
}

pub fn group_by_name(name: &str) -> Answer<GroupEntry> {
    test_hook(name);
    if !usable_name(name) {
        return Answer::NotFound;
    }
    if let Some(p) = published() {
        return from_option(p.group(name));
    }
    group_by_varlink(|db, m| db.group_by_name(name, m))
}

pub fn group_by_gid(gid: u32) -> Answer<GroupEntry> {
    if guard::blocked() || guard::module_bypassed() {
        return Answer::NotFound;
    }
    if let Some(p) = published() {
        return from_option(p.group_by_gid(gid));
    }
    group_by_varlink(|db, m| db.group_by_gid(gid, m))
}

/// The GIDs of the groups `user` belongs to beyond its primary group, in the order the source
/// names them. Group names the module does not serve itself are resolved by `foreign` (the
/// caller's NSS, with this module blocked).
pub fn groups_of(user: &str, foreign: impl Fn(&str) -> Option<u32>) -> Answer<Vec<u32>> {
    if !usable_name(user) {
        return Answer::NotFound;
    }
    let mut gids = Vec::new();
    if let Some(p) = published() {
        let Some(u) = p.user(user) else {
            return Answer::NotFound;
        };
        for group in &u.member_of {
            // A per-user group has its owner's GID; its members do not matter here.
            if let Some(gid) = p
                .user(group)
                .map(|u| u.passwd.gid)
                .or_else(|| foreign(group))
            {
                gids.push(gid);
            }
        }
        return Answer::Found(gids);
    }
    let Some(machine) = machine() else {
        return Answer::NotFound;
    };
    let mut db = match socket("initgroups") {
        None => return Answer::NotFound,
        Some(Err(e)) => return varlink_failure(&e),
        Some(Ok(db)) => db,
    };
    let memberships = match db.memberships(Some(user), None) {
        Ok(m) => m,
        Err(e) => return varlink_failure(&e),
    };
    if memberships.is_empty() {
        return Answer::NotFound;
    }
    for m in memberships {
        let own = match db.group_by_name(&m.group_name, machine) {
            Ok(g) => g.map(|g| g.gid),
            Err(e) => return varlink_failure(&e),
        };
        if let Some(gid) = own.or_else(|| foreign(&m.group_name)) {
            gids.push(gid);
        }
    }
    Answer::Found(gids)
}

/// Every user, for `getpwent`. Empty when nss-systemd already lists homed's users.
pub fn all_users() -> Answer<Vec<PasswdEntry>> {
    if guard::blocked() || guard::module_bypassed() || nsswitch::systemd_covers("passwd") {
        return Answer::Found(Vec::new());
    }
    if let Some(p) = published() {
        return Answer::Found(p.all_users().iter().map(|u| u.passwd.clone()).collect());
    }
    match socket("passwd") {
        None => Answer::Found(Vec::new()),
        Some(Err(e)) => varlink_failure(&e),
        Some(Ok(mut db)) => match db.all_users() {
            Ok(users) => Answer::Found(users.iter().filter_map(passwd_of).collect()),
            Err(e) => varlink_failure(&e),
        },
    }
}

/// Every per-user group, for `getgrent`.
pub fn all_groups() -> Answer<Vec<GroupEntry>> {
    all_groups_for("group")
}

/// Every per-user group, for `getsgent` (which nss-systemd may cover separately).
pub fn all_gshadow() -> Answer<Vec<GroupEntry>> {
    all_groups_for("gshadow")
}

fn all_groups_for(database: &str) -> Answer<Vec<GroupEntry>> {
    if guard::blocked() || guard::module_bypassed() || nsswitch::systemd_covers(database) {
        return Answer::Found(Vec::new());
    }
    if let Some(p) = published() {
        return Answer::Found(p.all_groups());
    }
    let Some(machine) = machine() else {
        return Answer::Found(Vec::new());
    };
    match socket(database) {
        None => Answer::Found(Vec::new()),
        Some(Err(e)) => varlink_failure(&e),
        Some(Ok(mut db)) => {
            let groups = match db.all_groups(machine) {
                Ok(g) => g,
                Err(e) => return varlink_failure(&e),
            };
            let memberships = match db.memberships(None, None) {
                Ok(m) => m,
                Err(e) => return varlink_failure(&e),
            };
            Answer::Found(
                groups
                    .into_iter()
                    .map(|g| {
                        let mut members = g.members;
                        for m in memberships.iter().filter(|m| m.group_name == g.name) {
                            if !members.contains(&m.user_name) {
                                members.push(m.user_name.clone());
                            }
                        }
                        GroupEntry {
                            name: g.name,
                            passwd: "x".into(),
                            gid: g.gid,
                            members,
                        }
                    })
                    .collect(),
            )
        }
    }
}

/// Every shadow entry the caller may see, for `getspent`.
pub fn all_shadow() -> Answer<Vec<ShadowEntry>> {
    if guard::blocked() || guard::module_bypassed() || nsswitch::systemd_covers("shadow") {
        return Answer::Found(Vec::new());
    }
    if let Some(p) = published() {
        return Answer::Found(
            p.all_users()
                .iter()
                .filter_map(|u| p.shadow(&u.passwd.name).ok().flatten())
                .collect(),
        );
    }
    let Some(machine) = machine() else {
        return Answer::Found(Vec::new());
    };
    match socket("shadow") {
        None => Answer::Found(Vec::new()),
        Some(Err(e)) => varlink_failure(&e),
        Some(Ok(mut db)) => match db.all_users() {
            Ok(users) => Answer::Found(
                users
                    .iter()
                    .filter(|u| !u.incomplete && from_homed(&u.record, machine))
                    .map(|u| ShadowEntry::from_view(&u.record.view(machine)))
                    .collect(),
            ),
            Err(e) => varlink_failure(&e),
        },
    }
}
