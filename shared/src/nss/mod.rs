//! The classic passwd, shadow and group entries a record maps to, exactly as nss-systemd
//! derives them (homed-spec §1.8).

use crate::record::RecordView;

const USEC_PER_DAY: u64 = 86_400_000_000;

/// A `struct passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub passwd: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub dir: String,
    pub shell: String,
}

/// A `struct spwd`. `None` prints as an empty field, like glibc's -1.
#[derive(Clone, PartialEq, Eq)]
pub struct ShadowEntry {
    pub name: String,
    pub hash: String,
    pub last_change_days: Option<i64>,
    pub min_days: Option<i64>,
    pub max_days: Option<i64>,
    pub warn_days: Option<i64>,
    pub inactive_days: Option<i64>,
    pub expire_days: Option<i64>,
}

// The hash is not a secret in the plaintext sense, but it is privileged: keep it out of logs.
impl std::fmt::Debug for ShadowEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShadowEntry")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A `struct group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub passwd: String,
    pub gid: u32,
    pub members: Vec<String>,
}

fn days(usec: Option<u64>) -> Option<i64> {
    usec.map(|u| i64::try_from(u / USEC_PER_DAY).unwrap_or(i64::MAX))
}

fn field(value: Option<i64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

impl PasswdEntry {
    /// `None` when the record has no UID on this machine.
    pub fn from_view(view: &RecordView<'_>) -> Option<PasswdEntry> {
        let uid = view.uid()?;
        Some(PasswdEntry {
            name: view.user_name().to_owned(),
            passwd: "x".into(),
            uid,
            gid: view.gid().unwrap_or(uid),
            gecos: view.gecos(),
            dir: view.home_directory(),
            shell: view.shell(),
        })
    }

    /// The line `getent passwd` prints.
    pub fn to_line(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}:{}:{}",
            self.name, self.passwd, self.uid, self.gid, self.gecos, self.dir, self.shell
        )
    }
}

impl ShadowEntry {
    /// Call only with a complete record (privileged section present); nss-systemd answers
    /// NOTFOUND for incomplete ones.
    pub fn from_view(view: &RecordView<'_>) -> ShadowEntry {
        let last_change_days = if view.password_change_now() {
            Some(0)
        } else {
            // 0 would mean "must change now", which the record did not say.
            days(view.last_password_change_usec()).map(|d| d.max(1))
        };
        let expire_days = if view.locked() || view.not_after_usec() == Some(0) {
            Some(1)
        } else {
            days(view.not_after_usec())
        };
        ShadowEntry {
            name: view.user_name().to_owned(),
            hash: view
                .hashed_passwords()
                .first()
                .map_or_else(|| "!*".to_owned(), |h| (*h).to_owned()),
            last_change_days,
            min_days: days(view.password_change_min_usec()),
            max_days: days(view.password_change_max_usec()),
            warn_days: days(view.password_change_warn_usec()),
            inactive_days: days(view.password_change_inactive_usec()),
            expire_days,
        }
    }

    /// The line `getent shadow` prints (the flag field is always unset).
    pub fn to_line(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}:{}:{}:{}:",
            self.name,
            self.hash,
            field(self.last_change_days),
            field(self.min_days),
            field(self.max_days),
            field(self.warn_days),
            field(self.inactive_days),
            field(self.expire_days)
        )
    }
}

impl GroupEntry {
    /// The per-user group homed synthesizes: same name, GID = UID, no members of its own.
    pub fn per_user_group(view: &RecordView<'_>) -> Option<GroupEntry> {
        Some(GroupEntry {
            name: view.user_name().to_owned(),
            passwd: "x".into(),
            gid: view.gid()?,
            members: Vec::new(),
        })
    }

    /// The line `getent group` prints.
    pub fn to_line(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.name,
            self.passwd,
            self.gid,
            self.members.join(",")
        )
    }
}
