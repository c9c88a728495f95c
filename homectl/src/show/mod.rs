//! The human-readable form of `homectl inspect`, field for field as systemd 252 prints it, one
//! file per group of sections.

mod account;
mod auth;
mod identity;
mod storage;

use homed_shared::record::RecordView;
use serde_json::Value;

use crate::color;
use crate::units::{USEC_PER_SEC, format_bytes, format_timespan, format_timestamp, now_usec};
use crate::userdb;

const NOLOGIN_SHELLS: [&str; 8] = [
    "/bin/nologin",
    "/sbin/nologin",
    "/usr/bin/nologin",
    "/usr/sbin/nologin",
    "/bin/false",
    "/usr/bin/false",
    "/sbin/false",
    "/usr/sbin/false",
];

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

struct Fields<'a> {
    v: &'a RecordView<'a>,
}

impl<'a> Fields<'a> {
    fn u64(&self, field: &str) -> Option<u64> {
        self.v.get(field).and_then(Value::as_u64)
    }
    fn str(&self, field: &str) -> Option<&'a str> {
        self.v.get(field).and_then(Value::as_str)
    }
    fn bool(&self, field: &str) -> Option<bool> {
        self.v.get(field).and_then(Value::as_bool)
    }
    /// A field the status section may override (it is read last).
    fn status_u64(&self, field: &str) -> Option<u64> {
        self.v
            .status(field)
            .and_then(Value::as_u64)
            .or_else(|| self.u64(field))
    }
    fn status_str(&self, field: &str) -> Option<&'a str> {
        self.v
            .status(field)
            .and_then(Value::as_str)
            .or_else(|| self.str(field))
    }
    fn strings(&self, value: Option<&'a Value>) -> Vec<&'a str> {
        value
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
}

/// When the next login is possible: None if unknown, Some(0) for right away.
fn next_try(f: &Fields<'_>) -> Option<u64> {
    homed_shared::record::policy::ratelimit_next_try(f.v, now_usec())
}

fn password_state(f: &Fields<'_>) -> homed_shared::record::policy::PasswordState {
    homed_shared::record::policy::password_state(f.v, now_usec())
}

/// What every section reads: the record, the moment, and the values several sections share.
struct Ctx<'a> {
    v: &'a RecordView<'a>,
    f: Fields<'a>,
    now: u64,
    user: &'a str,
    /// The storage kind, "classic" when the record names none.
    storage: &'a str,
    shell: String,
    hashes: Vec<&'a str>,
    /// The record came without its privileged section.
    incomplete: bool,
    colors: Palette,
}

/// The highlight sequences, empty when colors are off.
#[derive(Clone, Copy)]
struct Palette {
    red: &'static str,
    green: &'static str,
    yellow: &'static str,
    bold: &'static str,
    normal: &'static str,
}

impl Palette {
    fn current() -> Palette {
        Palette {
            red: color::highlight_red(),
            green: color::highlight_green(),
            yellow: color::highlight_yellow(),
            bold: color::highlight(),
            normal: color::normal(),
        }
    }
}

/// The text `homectl inspect` prints for a record (without JSON), section by section in
/// systemd 252's order.
pub fn render(v: &RecordView<'_>, incomplete: bool) -> String {
    let f = Fields { v };
    let r = Ctx {
        v,
        now: now_usec(),
        user: v.user_name(),
        storage: f.str("storage").unwrap_or("classic"),
        shell: v.shell(),
        hashes: v.hashed_passwords(),
        incomplete,
        colors: Palette::current(),
        f,
    };
    let mut o = String::new();
    identity::who(&mut o, &r);
    account::settings(&mut o, &r);
    account::resources(&mut o, &r);
    storage::storage(&mut o, &r);
    auth::authentication(&mut o, &r);
    storage::space_policy(&mut o, &r);
    auth::credentials(&mut o, &r);
    account::session(&mut o, &r);
    o
}
