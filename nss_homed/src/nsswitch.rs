//! Whether nss-systemd already serves homed's users for a database.
//!
//! nss-systemd asks every socket in `/run/systemd/userdb/`, homed's included. When it is
//! configured for a database and may ask homed, this module leaves the socket to it: lookups
//! are not asked twice and enumeration does not list a user twice. Published records are still
//! served first, because they are much cheaper.

use std::path::Path;

use homed_shared::varlink::HOME_SOCKET;

use crate::guard;

pub const NSSWITCH_CONF: &str = "/etc/nsswitch.conf";

/// The services configured for `database` in the text of an nsswitch.conf, action items left
/// out. `initgroups` falls back to `group`, as glibc does.
pub fn services<'a>(conf: &'a str, database: &str) -> Vec<&'a str> {
    let find = |db: &str| {
        conf.lines().find_map(|line| {
            let line = line.split('#').next().unwrap_or_default().trim();
            let (name, rest) = line.split_once(':')?;
            (name.trim() == db).then_some(rest)
        })
    };
    let line = find(database).or_else(|| {
        if database == "initgroups" {
            find("group")
        } else {
            None
        }
    });
    let Some(line) = line else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut in_action = false;
    for word in line.split_whitespace() {
        if word.starts_with('[') {
            in_action = true;
        }
        if !in_action {
            out.push(word);
        }
        if word.ends_with(']') {
            in_action = false;
        }
    }
    out
}

/// True when nss-systemd is configured for `database`, may ask homed (no bypass) and homed's
/// socket exists: then nss-systemd lists and resolves homed's users through that socket.
pub fn systemd_covers(database: &str) -> bool {
    if guard::socket_bypassed() || !Path::new(HOME_SOCKET).exists() {
        return false;
    }
    std::fs::read_to_string(NSSWITCH_CONF)
        .is_ok_and(|conf| services(&conf, database).contains(&"systemd"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_service_lists() {
        let conf = "# passwd: systemd\npasswd:  files homed [NOTFOUND=return] systemd\n\
                    group: files [SUCCESS=merge] homed\nshadow: files\n";
        assert_eq!(services(conf, "passwd"), ["files", "homed", "systemd"]);
        assert_eq!(services(conf, "group"), ["files", "homed"]);
        assert_eq!(services(conf, "initgroups"), ["files", "homed"]);
        assert_eq!(services(conf, "shadow"), ["files"]);
        assert!(services(conf, "hosts").is_empty());
    }
}
