//! A record as one machine sees it (homed-spec §1.1 precedence): `binding` over matching
//! `perMachine` entries (later ones win) over the top level; `status` beside.

use serde_json::{Map, Value};

use super::fields::{BINDING_FIELDS, PER_MACHINE_FORBIDDEN_FIELDS};
use super::{MachineContext, UserRecord};

const USEC_PER_SEC: u64 = 1_000_000;

/// Where a home's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Classic,
    Luks,
    Directory,
    Subvolume,
    Fscrypt,
    Cifs,
}

impl Storage {
    pub fn parse(s: &str) -> Option<Storage> {
        Some(match s {
            "classic" => Storage::Classic,
            "luks" => Storage::Luks,
            "directory" => Storage::Directory,
            "subvolume" => Storage::Subvolume,
            "fscrypt" => Storage::Fscrypt,
            "cifs" => Storage::Cifs,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Classic => "classic",
            Storage::Luks => "luks",
            Storage::Directory => "directory",
            Storage::Subvolume => "subvolume",
            Storage::Fscrypt => "fscrypt",
            Storage::Cifs => "cifs",
        }
    }
}

/// The kind of account (`disposition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Intrinsic,
    System,
    Dynamic,
    Regular,
    Container,
    Foreign,
    Reserved,
}

impl Disposition {
    pub fn parse(s: &str) -> Option<Disposition> {
        Some(match s {
            "intrinsic" => Disposition::Intrinsic,
            "system" => Disposition::System,
            "dynamic" => Disposition::Dynamic,
            "regular" => Disposition::Regular,
            "container" => Disposition::Container,
            "foreign" => Disposition::Foreign,
            "reserved" => Disposition::Reserved,
            _ => return None,
        })
    }
}

/// Read-only access to the effective value of each field on one machine.
pub struct RecordView<'a> {
    record: &'a UserRecord,
    machine: &'a MachineContext,
    matching: Vec<&'a Map<String, Value>>,
}

pub(super) fn any_matches(value: Option<&Value>, wanted: Option<&str>) -> Option<bool> {
    let value = value?;
    let Some(wanted) = wanted else {
        return Some(false);
    };
    Some(match value {
        Value::String(s) => s.eq_ignore_ascii_case(wanted),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|s| s.eq_ignore_ascii_case(wanted)),
        _ => false,
    })
}

/// An entry applies if any of its match conditions holds (homed-spec §1.4).
fn entry_matches(entry: &Map<String, Value>, machine: &MachineContext) -> bool {
    let id = Some(machine.machine_id.as_str());
    let host = machine.hostname.as_deref();
    any_matches(entry.get("matchMachineId"), id) == Some(true)
        || any_matches(entry.get("matchNotMachineId"), id) == Some(false)
        || any_matches(entry.get("matchHostname"), host) == Some(true)
        || (host.is_some() && any_matches(entry.get("matchNotHostname"), host) == Some(false))
}

impl<'a> RecordView<'a> {
    pub(super) fn new(record: &'a UserRecord, machine: &'a MachineContext) -> Self {
        let matching = record
            .json
            .get("perMachine")
            .and_then(Value::as_array)
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(Value::as_object)
                    .filter(|e| entry_matches(e, machine))
                    .collect()
            })
            .unwrap_or_default();
        RecordView {
            record,
            machine,
            matching,
        }
    }

    pub fn record(&self) -> &'a UserRecord {
        self.record
    }

    pub fn machine(&self) -> &'a MachineContext {
        self.machine
    }

    fn section_entry(&self, section: &str) -> Option<&'a Map<String, Value>> {
        self.record
            .json
            .get(section)?
            .as_object()?
            .get(&self.machine.machine_id)?
            .as_object()
    }

    /// The effective value of a regular field.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        if BINDING_FIELDS.contains(&field)
            && let Some(v) = self.section_entry("binding").and_then(|b| b.get(field))
        {
            return Some(v);
        }
        if !PER_MACHINE_FORBIDDEN_FIELDS.contains(&field)
            && let Some(v) = self.matching.iter().rev().find_map(|e| e.get(field))
        {
            return Some(v);
        }
        self.record.json.get(field)
    }

    /// A field of this machine's `status` entry.
    pub fn status(&self, field: &str) -> Option<&'a Value> {
        self.section_entry("status")?.get(field)
    }

    /// This machine's `binding` entry.
    pub fn binding(&self) -> Option<&'a Map<String, Value>> {
        self.section_entry("binding")
    }

    /// A field of the privileged section.
    pub fn privileged(&self, field: &str) -> Option<&'a Value> {
        self.record.json.get("privileged")?.as_object()?.get(field)
    }

    fn str_field(&self, field: &str) -> Option<&'a str> {
        self.get(field).and_then(Value::as_str)
    }

    fn u64_field(&self, field: &str) -> Option<u64> {
        self.get(field).and_then(Value::as_u64)
    }

    fn bool_field(&self, field: &str) -> Option<bool> {
        self.get(field).and_then(Value::as_bool)
    }

    pub fn user_name(&self) -> &'a str {
        self.record.user_name()
    }

    pub fn uid(&self) -> Option<u32> {
        self.u64_field("uid").and_then(|v| u32::try_from(v).ok())
    }

    /// The primary group: `gid`, else the UID (the per-user group).
    pub fn gid(&self) -> Option<u32> {
        self.u64_field("gid")
            .and_then(|v| u32::try_from(v).ok())
            .or_else(|| self.uid())
    }

    pub fn disposition(&self) -> Option<Disposition> {
        if let Some(d) = self.str_field("disposition") {
            return Disposition::parse(d);
        }
        let uid = self.uid()?;
        Some(match uid {
            0 | 65534 => Disposition::Intrinsic,
            1..=999 => Disposition::System,
            61184..=65519 => Disposition::Dynamic,
            0x80000..=0x6FFFFFFF => Disposition::Container,
            _ => Disposition::Regular,
        })
    }

    /// The real name as GECOS may hold it: `:` and control characters become spaces.
    pub fn real_name(&self) -> Option<String> {
        self.str_field("realName").map(|s| {
            s.chars()
                .map(|c| if c == ':' || c.is_control() { ' ' } else { c })
                .collect()
        })
    }

    /// The GECOS field: the real name, else the user name.
    pub fn gecos(&self) -> String {
        self.real_name()
            .unwrap_or_else(|| self.user_name().to_owned())
    }

    pub fn email_address(&self) -> Option<&'a str> {
        self.str_field("emailAddress")
    }

    /// `homeDirectory`, else `/home/NAME` for regular users, `/root` for root and `/` otherwise.
    pub fn home_directory(&self) -> String {
        if let Some(dir) = self.str_field("homeDirectory") {
            return dir.to_owned();
        }
        if self.user_name() == "root" {
            return "/root".into();
        }
        match self.disposition() {
            Some(Disposition::Regular) | None => format!("{}/{}", home_root(), self.user_name()),
            _ => "/".into(),
        }
    }

    /// `shell`, else the distribution's default shell for regular users.
    pub fn shell(&self) -> String {
        if let Some(shell) = self.str_field("shell") {
            return shell.to_owned();
        }
        if self.user_name() == "root" {
            return "/bin/sh".into();
        }
        match self.disposition() {
            Some(Disposition::Regular) | None => DEFAULT_USER_SHELL.into(),
            _ => NOLOGIN_SHELL.into(),
        }
    }

    pub fn storage(&self) -> Option<Storage> {
        self.str_field("storage").and_then(Storage::parse)
    }

    pub fn storage_name(&self) -> Option<&'a str> {
        self.str_field("storage")
    }

    /// `imagePath`, else the default for the storage type (homed-spec §3.1).
    pub fn image_path(&self) -> Option<String> {
        if let Some(path) = self.str_field("imagePath") {
            return Some(path.to_owned());
        }
        let base = match self.record.realm() {
            Some(realm) => format!("{}@{}", self.user_name(), realm),
            None => self.user_name().to_owned(),
        };
        match self.storage()? {
            Storage::Luks => Some(format!("{}/{base}.home", home_root())),
            Storage::Directory | Storage::Subvolume | Storage::Fscrypt => {
                Some(format!("{}/{base}.homedir", home_root()))
            }
            Storage::Classic | Storage::Cifs => None,
        }
    }

    pub fn member_of(&self) -> Vec<&'a str> {
        strings(self.get("memberOf"))
    }

    pub fn hashed_passwords(&self) -> Vec<&'a str> {
        strings(self.privileged("hashedPassword"))
    }

    /// `privileged.recoveryKey`: each key's type and hash (entries without both are skipped).
    pub fn recovery_keys(&self) -> Vec<(&'a str, &'a str)> {
        let Some(entries) = self.privileged("recoveryKey").and_then(Value::as_array) else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|entry| {
                let kind = entry.get("type")?.as_str()?;
                let hash = entry.get("hashedPassword")?.as_str()?;
                Some((kind, hash))
            })
            .collect()
    }

    /// The hashes of the passwords security tokens yield (`pkcs11EncryptedKey` and
    /// `fido2HmacSalt` entries), which accept a token's password as `hashedPassword` accepts a
    /// typed one.
    pub fn device_password_hashes(&self) -> Vec<&'a str> {
        ["pkcs11EncryptedKey", "fido2HmacSalt"]
            .iter()
            .filter_map(|field| self.privileged(field).and_then(Value::as_array))
            .flatten()
            .filter_map(|entry| entry.get("hashedPassword")?.as_str())
            .collect()
    }

    /// Whether the record has credentials that need a device to check (security tokens:
    /// `privileged.pkcs11EncryptedKey`).
    pub fn has_device_credentials(&self) -> bool {
        self.privileged("pkcs11EncryptedKey")
            .and_then(Value::as_array)
            .is_some_and(|entries| !entries.is_empty())
    }

    pub fn locked(&self) -> bool {
        self.bool_field("locked").unwrap_or(false)
    }

    pub fn not_before_usec(&self) -> Option<u64> {
        self.u64_field("notBeforeUSec")
    }

    pub fn not_after_usec(&self) -> Option<u64> {
        self.u64_field("notAfterUSec")
    }

    pub fn last_change_usec(&self) -> Option<u64> {
        self.u64_field("lastChangeUSec")
    }

    pub fn last_password_change_usec(&self) -> Option<u64> {
        self.u64_field("lastPasswordChangeUSec")
    }

    pub fn password_change_now(&self) -> bool {
        self.bool_field("passwordChangeNow").unwrap_or(false)
    }

    pub fn password_change_min_usec(&self) -> Option<u64> {
        self.u64_field("passwordChangeMinUSec")
    }

    pub fn password_change_max_usec(&self) -> Option<u64> {
        self.u64_field("passwordChangeMaxUSec")
    }

    pub fn password_change_warn_usec(&self) -> Option<u64> {
        self.u64_field("passwordChangeWarnUSec")
    }

    pub fn password_change_inactive_usec(&self) -> Option<u64> {
        self.u64_field("passwordChangeInactiveUSec")
    }

    pub fn enforce_password_policy(&self) -> bool {
        self.bool_field("enforcePasswordPolicy").unwrap_or(true)
    }

    /// `rateLimitIntervalUSec`, default one minute.
    pub fn rate_limit_interval_usec(&self) -> u64 {
        self.u64_field("rateLimitIntervalUSec")
            .unwrap_or(60 * USEC_PER_SEC)
    }

    /// `rateLimitBurst`, default 30.
    pub fn rate_limit_burst(&self) -> u64 {
        self.u64_field("rateLimitBurst").unwrap_or(30)
    }

    /// `accessMode`, default 0700.
    pub fn access_mode(&self) -> u32 {
        self.u64_field("accessMode")
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0o700)
    }

    pub fn mount_no_devices(&self) -> bool {
        self.bool_field("mountNoDevices").unwrap_or(true)
    }

    pub fn mount_no_suid(&self) -> bool {
        self.bool_field("mountNoSuid").unwrap_or(true)
    }

    pub fn mount_no_execute(&self) -> bool {
        self.bool_field("mountNoExecute").unwrap_or(false)
    }

    pub fn service(&self) -> Option<&'a str> {
        self.str_field("service")
    }

    pub fn skeleton_directory(&self) -> String {
        self.str_field("skeletonDirectory")
            .unwrap_or("/etc/skel")
            .to_owned()
    }

    pub fn disk_size(&self) -> Option<u64> {
        self.u64_field("diskSize")
    }

    pub fn file_system_type(&self) -> Option<&'a str> {
        self.str_field("fileSystemType")
    }
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Debian builds systemd with these defaults.
pub const DEFAULT_USER_SHELL: &str = "/bin/bash";
pub const NOLOGIN_SHELL: &str = "/usr/sbin/nologin";

/// `$SYSTEMD_HOME_ROOT`, or `/home`. Read with `secure_getenv`: this code runs inside setuid
/// programs (through the NSS and PAM modules), whose caller must not pick the home directory.
pub fn home_root() -> String {
    crate::env::secure_var("SYSTEMD_HOME_ROOT")
        .filter(|r| r.starts_with('/'))
        .map(|r| r.trim_end_matches('/').to_owned())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "/home".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordOrigin;

    const MID: &str = "3d1219c7c4c5404aaa1f6d2a48adfda4";

    fn machine() -> MachineContext {
        MachineContext::new(MID, Some("host1".into()))
    }

    #[test]
    fn precedence_binding_then_per_machine_then_top() {
        let text = format!(
            r#"{{"userName":"u","shell":"/bin/a","storage":"luks","uid":60100,
               "perMachine":[{{"matchMachineId":"{MID}","shell":"/bin/b","storage":"directory"}},
                             {{"matchHostname":["other","HOST1"],"shell":"/bin/c"}},
                             {{"matchMachineId":"00000000000000000000000000000000","shell":"/bin/x"}}],
               "binding":{{"{MID}":{{"storage":"subvolume","uid":60200,"shell":"/bin/ignored"}}}}}}"#
        );
        let r = UserRecord::parse(text.as_bytes(), RecordOrigin::Host).unwrap();
        let m = machine();
        let v = r.view(&m);
        assert_eq!(v.shell(), "/bin/c");
        assert_eq!(v.storage(), Some(Storage::Subvolume));
        assert_eq!(v.uid(), Some(60200));
        assert_eq!(v.gid(), Some(60200));
        let other = MachineContext::new("11111111111111111111111111111111", None);
        let v = r.view(&other);
        assert_eq!(v.shell(), "/bin/a");
        assert_eq!(v.uid(), Some(60100));
    }

    #[test]
    fn defaults() {
        let r = UserRecord::parse(
            br#"{"userName":"u","disposition":"regular","storage":"luks","realName":"A:B\nC"}"#,
            RecordOrigin::Host,
        )
        .unwrap();
        let m = machine();
        let v = r.view(&m);
        assert_eq!(v.home_directory(), "/home/u");
        assert_eq!(v.shell(), "/bin/bash");
        assert_eq!(v.image_path().as_deref(), Some("/home/u.home"));
        assert_eq!(v.gecos(), "A B C");
        assert_eq!(v.rate_limit_burst(), 30);
        assert_eq!(v.access_mode(), 0o700);
        assert!(v.mount_no_suid() && v.mount_no_devices() && !v.mount_no_execute());
    }
}
