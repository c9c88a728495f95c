//! The verbs. Each prints its own messages and returns the exit status: 0, or 1 on failure
//! (for `with`, the command's own status).

use std::io::Write as _;

use homed_shared::password::{hash_password, recovery_key};
use homed_shared::record::{MachineContext, RecordOrigin, Secret, UserRecord, names};
use secrecy::{ExposeSecret as _, SecretString};

use crate::bus::{BusError, Manager};
use crate::identity;
use crate::ojson::OJson;
use crate::options::{ExportFormat, JsonMode, Options};
use crate::password::{self, EnvSecrets};
use crate::show;

type VerbResult = Result<i32, String>;

struct Ctx {
    opts: Options,
    env: EnvSecrets,
}

/// Runs the verb named by the first argument (`list` without one).
pub fn dispatch(opts: Options, env: EnvSecrets) -> i32 {
    let mut ctx = Ctx { opts, env };
    let args = ctx.opts.args.clone();
    let verb = args.first().map(String::as_str).unwrap_or("list");
    let rest: Vec<String> = args.iter().skip(1).cloned().collect();
    // (name, minimum and maximum number of words including the verb)
    let table: [(&str, usize, usize); 17] = [
        ("help", 0, usize::MAX),
        ("list", 0, 1),
        ("activate", 2, usize::MAX),
        ("deactivate", 2, usize::MAX),
        ("inspect", 0, usize::MAX),
        ("authenticate", 0, usize::MAX),
        ("create", 0, 2),
        ("remove", 2, usize::MAX),
        ("update", 0, 2),
        ("passwd", 0, 2),
        ("resize", 2, 3),
        ("lock", 2, usize::MAX),
        ("unlock", 2, usize::MAX),
        ("with", 2, usize::MAX),
        ("lock-all", 0, 1),
        ("deactivate-all", 0, 1),
        ("rebalance", 0, 1),
    ];
    let Some((_, min, max)) = table.iter().find(|(n, _, _)| *n == verb) else {
        crate::log::error(format!("Unknown command verb {verb}."));
        return 1;
    };
    let words = args.len().max(1);
    if words < *min {
        crate::log::error("Too few arguments.");
        return 1;
    }
    if words > *max {
        crate::log::error("Too many arguments.");
        return 1;
    }
    if verb == "help" {
        print!("{}", crate::help::text());
        return 0;
    }
    // systemd's homectl lets polkit ask on the terminal for these verbs.
    let _agent = if matches!(
        verb,
        "authenticate" | "create" | "remove" | "update" | "passwd" | "resize"
    ) {
        crate::polkit::open_if_enabled(ctx.opts.ask_password)
    } else {
        None
    };
    let result = match Manager::connect(ctx.opts.ask_password) {
        Err(e) => Err(e),
        Ok(bus) => match verb {
            "list" => paged(&ctx, || list(&ctx, &bus)),
            "activate" => activate(&mut ctx, &bus, &rest),
            "deactivate" => each(
                &bus,
                &rest,
                "Failed to deactivate user home",
                Manager::deactivate,
            ),
            "inspect" => paged(&ctx, || inspect(&ctx, &bus, &rest)),
            "authenticate" => authenticate(&mut ctx, &bus, &rest),
            "create" => create(&mut ctx, &bus, rest.first()),
            "remove" => each(&bus, &rest, "Failed to remove home", Manager::remove),
            "update" => update(&mut ctx, &bus, rest.first()),
            "passwd" => passwd(&mut ctx, &bus, rest.first()),
            "resize" => resize(&mut ctx, &bus, &rest),
            "lock" => each(&bus, &rest, "Failed to lock home", Manager::lock),
            "unlock" => unlock(&mut ctx, &bus, &rest),
            "with" => with(&mut ctx, &bus, &rest),
            "lock-all" => bus
                .lock_all()
                .map(|_| 0)
                .map_err(|e| format!("Failed to lock all homes: {e}")),
            "deactivate-all" => bus
                .deactivate_all()
                .map(|_| 0)
                .map_err(|e| format!("Failed to deactivate all homes: {e}")),
            "rebalance" => match bus.rebalance() {
                Ok(()) => {
                    crate::log::info("Completed rebalancing.");
                    Ok(0)
                }
                Err(e) if e.is("RebalanceNotNeeded") => {
                    crate::log::info("No homes needed rebalancing.");
                    Ok(0)
                }
                Err(e) => Err(format!("Failed to rebalance: {e}")),
            },
            _ => Err(format!("Unknown command verb {verb}.")),
        },
    };
    match result {
        Ok(status) => status,
        Err(message) => {
            if !message.is_empty() {
                crate::log::error(&message);
            }
            1
        }
    }
}

/// Runs a verb with its output going through a pager on a terminal (color and terminal
/// checks are made first, as the pager takes stdout over).
fn paged(ctx: &Ctx, verb: impl FnOnce() -> VerbResult) -> VerbResult {
    let _ = crate::color::enabled();
    let pager = crate::pager::open(ctx.opts.no_pager);
    let result = verb();
    if let Some(p) = pager {
        p.close();
    }
    result
}

/// The calling user's name, for verbs whose user argument is optional.
fn myself() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| nix::unistd::getuid().to_string())
}

fn users_or_myself(rest: &[String]) -> Vec<String> {
    if rest.is_empty() {
        vec![myself()]
    } else {
        rest.to_vec()
    }
}

/// A verb that makes one call per user and reports each failure.
fn each(
    bus: &Manager,
    users: &[String],
    what: &str,
    call: fn(&Manager, &str) -> Result<(), BusError>,
) -> VerbResult {
    let mut status = 0;
    for user in users {
        if let Err(e) = call(bus, user) {
            crate::log::error(format!("{what}: {e}"));
            status = 1;
        }
    }
    Ok(status)
}

fn list(ctx: &Ctx, bus: &Manager) -> VerbResult {
    let mut homes = bus
        .list_homes()
        .map_err(|e| format!("Failed to list homes: {e}"))?;
    homes.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let na = |s: &str| {
        if s.is_empty() {
            "n/a".to_owned()
        } else {
            s.to_owned()
        }
    };
    let json = effective_json(ctx.opts.json);
    if json != JsonMode::Off {
        let rows = homes
            .iter()
            .map(|h| {
                OJson::Object(vec![
                    ("name".into(), OJson::string(&h.name)),
                    ("uid".into(), OJson::unsigned(u64::from(h.uid))),
                    ("gid".into(), OJson::unsigned(u64::from(h.gid))),
                    ("state".into(), OJson::string(&h.state)),
                    ("realname".into(), OJson::string(na(&h.real_name))),
                    ("home".into(), OJson::string(&h.home)),
                    ("shell".into(), OJson::string(na(&h.shell))),
                ])
            })
            .collect();
        let table = OJson::Array(rows);
        println!(
            "{}",
            table.render(json == JsonMode::Pretty, json_colors(ctx.opts.json))
        );
        return Ok(0);
    }
    if !homes.is_empty() {
        let mut rows: Vec<[String; 7]> = Vec::new();
        if ctx.opts.legend {
            rows.push(
                ["NAME", "UID", "GID", "STATE", "REALNAME", "HOME", "SHELL"].map(String::from),
            );
        }
        for h in &homes {
            rows.push([
                h.name.clone(),
                h.uid.to_string(),
                h.gid.to_string(),
                h.state.clone(),
                na(&h.real_name),
                h.home.clone(),
                na(&h.shell),
            ]);
        }
        let mut widths = [0usize; 7];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let colors = crate::color::enabled();
        for (i, row) in rows.iter().enumerate() {
            let header = ctx.opts.legend && i == 0;
            let mut line = String::new();
            for (j, cell) in row.iter().enumerate() {
                // The state column is colored by state, the header is underlined throughout.
                let cell_color = if header || j != 3 {
                    None
                } else {
                    crate::color::for_state(cell)
                };
                if colors && header {
                    line.push_str(crate::color::underline());
                }
                if j > 0 {
                    line.push(' ');
                }
                if colors && let Some(c) = cell_color {
                    if header {
                        line.push_str(crate::color::NORMAL_CODE);
                    }
                    line.push_str(c);
                }
                let mut text = cell.clone();
                text.push_str(&" ".repeat(widths[j] - cell.chars().count()));
                // Trailing blanks of the last column go, unless colors mark its extent.
                if j + 1 == row.len() && (!colors || (cell_color.is_none() && !header)) {
                    text.truncate(text.trim_end().len());
                }
                line.push_str(&text);
                if colors && (cell_color.is_some() || header) {
                    line.push_str(crate::color::NORMAL_CODE);
                }
            }
            println!("{line}");
        }
    }
    if ctx.opts.legend {
        if homes.is_empty() {
            println!("No home areas.");
        } else {
            println!("\n{} home areas listed.", homes.len());
        }
    }
    Ok(0)
}

fn effective_json(mode: JsonMode) -> JsonMode {
    match mode {
        JsonMode::Auto if crate::color::on_tty() => JsonMode::Pretty,
        JsonMode::Auto => JsonMode::Short,
        other => other,
    }
}

/// JSON is colored on a terminal, except with `--json=short`.
fn json_colors(mode: JsonMode) -> bool {
    mode != JsonMode::Short && crate::color::enabled()
}

fn machine() -> Result<MachineContext, String> {
    MachineContext::local().map_err(|e| format!("Failed to acquire machine ID: {e}"))
}

fn inspect(ctx: &Ctx, bus: &Manager, rest: &[String]) -> VerbResult {
    let machine = machine()?;
    let mut status = 0;
    for user in users_or_myself(rest) {
        if user.parse::<u32>().is_err() && !names::is_valid_relaxed(&user) {
            crate::log::error(format!("Invalid user name '{user}'."));
            status = 1;
            continue;
        }
        let (text, incomplete) = match bus.user_record(&user) {
            Ok(r) => r,
            Err(e) => {
                crate::log::error(format!("Failed to inspect home: {e}"));
                status = 1;
                continue;
            }
        };
        let record = match UserRecord::parse(text.as_bytes(), RecordOrigin::Host) {
            Ok(r) => r,
            Err(e) => {
                crate::log::error(format!("Failed to parse user record: {e}"));
                status = 1;
                continue;
            }
        };
        if incomplete {
            crate::log::warning(format!(
                "Warning: lacking rights to acquire privileged fields of user record of '{}', output incomplete.",
                record.user_name()
            ));
        }
        match effective_json(ctx.opts.json) {
            JsonMode::Off | JsonMode::Auto => {
                print!("{}", show::render(&record.view(&machine), incomplete));
            }
            mode => {
                let mut v = OJson::parse(&text)
                    .map_err(|e| format!("Failed to parse JSON identity: {e}"))?;
                if ctx.opts.export_format != ExportFormat::Full {
                    v.filter(&["binding".into(), "status".into(), "secret".into()]);
                }
                if ctx.opts.export_format == ExportFormat::Minimal {
                    v.filter(&["signature".into()]);
                }
                println!(
                    "{}",
                    v.render(mode == JsonMode::Pretty, json_colors(ctx.opts.json))
                );
            }
        }
    }
    Ok(status)
}

/// What to do after a failed call that needs a secret: ask again (Ok) or give up (Err).
fn handle_error(
    user: &str,
    secret: &mut Secret,
    e: &BusError,
    emphasize_current: bool,
) -> Result<(), String> {
    let ask = |question: String| password::prompt(&question);
    if e.is("HomeAbsent") {
        return Err(format!(
            "Home of user {user} is currently absent, please plug in the necessary storage device or backing file system."
        ));
    }
    if e.is("AuthenticationLimitHit") {
        return Err(format!(
            "Too frequent login attempts for user {user}, try again later."
        ));
    }
    let question = if emphasize_current {
        format!("Please enter current password for user {user}:")
    } else {
        format!("Please enter password for user {user}:")
    };
    if e.is("BadPassword") || e.is("BadPasswordAndNoToken") {
        if e.is("BadPasswordAndNoToken") {
            if secret.passwords().is_empty() {
                crate::log::notice("Security token not inserted, please enter password.");
            } else {
                crate::log::notice(
                    "Password incorrect or not sufficient, and configured security token not inserted, please try again.",
                );
            }
        } else if !secret.passwords().is_empty() {
            crate::log::notice("Password incorrect or not sufficient, please try again.");
        }
        secret.prepend_password(ask(question)?);
        return Ok(());
    }
    let pin_question = format!("Please enter security token PIN for user {user}:");
    if e.is("TokenPinNeeded") {
        secret.set_token_pin(ask(pin_question)?);
        return Ok(());
    }
    if e.is("TokenProtectedAuthenticationPathNeeded") {
        crate::log::notice("Please authenticate physically on security token.");
        secret.permit("pkcs11ProtectedAuthenticationPathPermitted");
        return Ok(());
    }
    if e.is("TokenPinLocked") {
        return Err(
            "Security token PIN is locked, please unlock it first. (Hint: Removal and re-insertion might suffice.)"
                .into(),
        );
    }
    let bad_pin = if e.is("BadPin") {
        Some("")
    } else if e.is("BadPinFewTriesLeft") {
        Some(" (only a few tries left!)")
    } else if e.is("BadPinOneTryLeft") {
        Some(" (only one try left!)")
    } else {
        None
    };
    if let Some(hint) = bad_pin {
        crate::log::notice(format!(
            "Security token PIN incorrect, please try again{hint}."
        ));
        secret.set_token_pin(ask(pin_question)?);
        return Ok(());
    }
    if e.is("BadRecoveryKey") {
        if !secret.passwords().is_empty() {
            crate::log::notice("Recovery key incorrect or not sufficient, please try again.");
        }
        secret.prepend_password(ask(format!("Please enter recovery key for user {user}:"))?);
        return Ok(());
    }
    Err(format!("Operation on home {user} failed: {e}"))
}

/// Calls `op` with the secret until it succeeds, asking for passwords as the errors require.
fn with_secret_retry(
    user: &str,
    secret: &mut Secret,
    emphasize_current: bool,
    mut op: impl FnMut(&Secret) -> Result<(), BusError>,
) -> Result<(), String> {
    loop {
        match op(secret) {
            Ok(()) => return Ok(()),
            Err(e) => handle_error(user, secret, &e, emphasize_current)?,
        }
    }
}

fn secret_verb(
    ctx: &mut Ctx,
    users: &[String],
    call: impl Fn(&str, &str) -> Result<(), BusError>,
) -> VerbResult {
    let mut status = 0;
    for user in users {
        let mut secret = ctx.env.passed_secret();
        if let Err(e) = with_secret_retry(user, &mut secret, false, |s| call(user, &s.to_json())) {
            crate::log::error(&e);
            status = 1;
        }
    }
    Ok(status)
}

fn activate(ctx: &mut Ctx, bus: &Manager, rest: &[String]) -> VerbResult {
    secret_verb(ctx, rest, |u, s| bus.activate(u, s))
}

fn authenticate(ctx: &mut Ctx, bus: &Manager, rest: &[String]) -> VerbResult {
    let users = users_or_myself(rest);
    secret_verb(ctx, &users, |u, s| bus.authenticate(u, s))
}

fn unlock(ctx: &mut Ctx, bus: &Manager, rest: &[String]) -> VerbResult {
    secret_verb(ctx, rest, |u, s| bus.unlock(u, s))
}

/// Reads a record from a file (or stdin for `-`). It may hold a `secret` section, so the text
/// lives in memory that is wiped afterwards.
fn read_identity(path: &str) -> Result<OJson, String> {
    let mut text = zeroize::Zeroizing::new(String::new());
    if path == "-" {
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("Failed to read identity from standard input: {e}"))?;
    } else {
        let mut file = std::fs::File::open(path)
            .map_err(|e| format!("Failed to read identity {path}: {e}"))?;
        std::io::Read::read_to_string(&mut file, &mut text)
            .map_err(|e| format!("Failed to read identity {path}: {e}"))?;
    }
    let v = OJson::parse(&text).map_err(|e| format!("Failed to parse identity: {e}"))?;
    if !matches!(v, OJson::Object(_)) {
        return Err("Failed to parse identity: not a JSON object".into());
    }
    Ok(v)
}

/// Takes a `secret` section out of a record read from a file.
fn split_secret(v: &mut OJson) -> Result<Secret, String> {
    match v.remove("secret") {
        None => Ok(Secret::default()),
        Some(mut s) => {
            let text = zeroize::Zeroizing::new(s.to_compact());
            s.wipe();
            Secret::parse(text.as_bytes()).map_err(|e| e.to_string())
        }
    }
}

fn check_record(v: &OJson) -> Result<UserRecord, String> {
    UserRecord::from_value(v.to_value(), RecordOrigin::Request).map_err(|e| e.to_string())
}

fn new_password(ctx: &mut Ctx, user: &str) -> Result<SecretString, String> {
    match ctx.env.take_new_password() {
        Some(p) => Ok(p),
        None => password::prompt_new_password(user),
    }
}

fn set_hashed_password(v: &mut OJson, pw: &SecretString) -> Result<(), String> {
    let hash = hash_password(pw).map_err(|e| format!("Failed to hash password: {e}"))?;
    let mut privileged = v.get("privileged").cloned().unwrap_or_else(OJson::object);
    privileged.set("hashedPassword", OJson::strings(&[hash]));
    v.set("privileged", privileged);
    Ok(())
}

/// Generates a recovery key and adds its hash and type to the record, as systemd's homectl
/// does; the key goes to stdout alone, the words around it to stderr. Returns the key.
fn add_recovery_key(v: &mut OJson) -> Result<SecretString, String> {
    let key =
        recovery_key::generate().map_err(|e| format!("Failed to generate recovery key: {e}"))?;
    let hash = hash_password(&key).map_err(|e| format!("Failed to UNIX hash secret key: {e}"))?;
    let mut entry = OJson::object();
    entry.set("type", OJson::string(recovery_key::MODHEX64));
    entry.set("hashedPassword", OJson::string(hash));
    let mut privileged = v.get("privileged").cloned().unwrap_or_else(OJson::object);
    let mut keys = match privileged.remove("recoveryKey") {
        Some(OJson::Array(keys)) => keys,
        _ => Vec::new(),
    };
    keys.push(entry);
    privileged.set("recoveryKey", OJson::Array(keys));
    v.set("privileged", privileged);
    let mut types = match v.remove("recoveryKeyType") {
        Some(OJson::Array(types)) => types,
        _ => Vec::new(),
    };
    types.push(OJson::string(recovery_key::MODHEX64));
    v.set("recoveryKeyType", OJson::Array(types));

    let mut stderr = std::io::stderr().lock();
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.flush();
    let _ = write!(
        stderr,
        "A secret recovery key has been generated for this account:\n\n    "
    );
    let _ = stderr.flush();
    let _ = writeln!(stdout, "{}", key.expose_secret());
    let _ = stdout.flush();
    let _ = write!(
        stderr,
        "\nPlease save this secret recovery key at a secure location. It may be used to\n\
         regain access to the account if the other configured access credentials have\n\
         been lost or forgotten. The recovery key may be entered in place of a password\n\
         whenever authentication is requested.\n"
    );
    let _ = stderr.flush();
    Ok(key)
}

/// Enrols the tokens of `--pkcs11-token-uri=` into the record; returns the PIN used.
fn enrol_tokens(ctx: &mut Ctx, v: &mut OJson, user: &str) -> Result<Option<SecretString>, String> {
    let env_pin = ctx.env.take_pin();
    let mut used = None;
    let mut enrolments = Vec::new();
    for uri in &ctx.opts.pkcs11_token_uris {
        let mut pin = || match &env_pin {
            Some(p) => Ok(p.clone()),
            None => password::prompt(&format!("Please enter security token PIN for user {user}:")),
        };
        let (enrolment, pin) = crate::pkcs11::enrol(uri, &mut pin)?;
        enrolments.push(enrolment);
        used = pin.or(used);
    }
    crate::pkcs11::apply(v, &enrolments);
    Ok(used)
}

fn create(ctx: &mut Ctx, bus: &Manager, name: Option<&String>) -> VerbResult {
    let machine = machine()?;
    let mut extra = std::mem::take(&mut ctx.opts.changes.extra);
    match name {
        Some(name) if names::is_valid_strict(name) => extra.set("userName", OJson::string(name)),
        Some(name) => match name.split_once('@') {
            Some((user, realm)) if names::is_valid_strict(user) && !realm.is_empty() => {
                extra.set("realm", OJson::string(realm));
                extra.set("userName", OJson::string(user));
            }
            _ => return Err(format!("User name '{name}' is not valid.")),
        },
        None if ctx.opts.identity.is_none() => return Err("User name required.".into()),
        None => {}
    }
    ctx.opts.changes.extra = extra;
    let mut v = match &ctx.opts.identity {
        Some(path) => read_identity(path)?,
        None => OJson::object(),
    };
    let mut secret = split_secret(&mut v)?;
    identity::apply_changes(&mut v, &ctx.opts.changes, &machine.machine_id)?;
    if v.get("disposition").is_none() {
        v.set("disposition", OJson::string("regular"));
    }
    identity::update_last_change(&mut v, true, false)?;
    let record = check_record(&v)?;
    let user = record.user_name().to_owned();
    let recovery_key = if ctx.opts.recovery_key {
        Some(add_recovery_key(&mut v)?)
    } else {
        None
    };
    if secret.passwords().is_empty() {
        if record.view(&machine).hashed_passwords().is_empty() {
            let pw = new_password(ctx, &user)?;
            set_hashed_password(&mut v, &pw)?;
            secret.prepend_password(pw);
        } else {
            match ctx.env.take_password() {
                Some(pw) => secret.prepend_password(pw),
                None => secret.prepend_password(password::prompt(&format!(
                    "Please enter password for user {user}:"
                ))?),
            }
        }
    }
    let token_pin = if ctx.opts.pkcs11_given {
        enrol_tokens(ctx, &mut v, &user)?
    } else {
        None
    };
    // The recovery key travels with the passwords, after them (homed gives it its own keyslot);
    // the token's PIN lets the daemon unlock the token at once.
    let with_key = |secret: &Secret| {
        let mut passwords = secret.passwords().to_vec();
        passwords.extend(recovery_key.clone());
        let mut with = Secret::with_passwords(passwords);
        if let Some(pin) = &token_pin {
            with.set_token_pin(pin.clone());
        }
        with
    };
    loop {
        let text = identity::with_secret(&v, &with_key(&secret));
        match bus.create(&text) {
            Ok(()) => return Ok(0),
            Err(e) if e.is("LowPasswordQuality") => {
                crate::log::error(e.to_string());
                crate::log::info(
                    "(Use --enforce-password-policy=no to turn off password quality checks for this account.)",
                );
                let pw = password::prompt_new_password(&user)?;
                set_hashed_password(&mut v, &pw)?;
                secret = Secret::default();
                secret.prepend_password(pw);
            }
            Err(e) => handle_error(&user, &mut secret, &e, false)?,
        }
    }
}

fn update(ctx: &mut Ctx, bus: &Manager, name: Option<&String>) -> VerbResult {
    if ctx.opts.recovery_key {
        // systemd 252 adds a recovery key only when it creates a home; its update would drop
        // the existing keys from the record instead, which we refuse to do.
        return Err("--recovery-key= is only supported when creating a home.".into());
    }
    let machine = machine()?;
    let user_arg = match (name, &ctx.opts.identity) {
        (Some(n), _) => Some(n.clone()),
        (None, None) => Some(myself()),
        (None, Some(_)) => None,
    };
    let mut v = if let Some(path) = ctx.opts.identity.clone() {
        let v = read_identity(&path)?;
        match v.get("userName") {
            Some(OJson::String(n)) if user_arg.as_ref().is_none_or(|u| u == n) => {}
            Some(_) => {
                return Err(
                    "User name specified on command line and in JSON record do not match.".into(),
                );
            }
            None => match &user_arg {
                Some(u) => ctx.opts.changes.extra.set("userName", OJson::string(u)),
                None => return Err("No username specified.".into()),
            },
        }
        v
    } else {
        if !ctx.opts.changes.specified() && !ctx.opts.pkcs11_given {
            return Err("No field to change specified.".into());
        }
        let user = user_arg.clone().unwrap_or_default();
        let (text, incomplete) = bus
            .user_record(&user)
            .map_err(|e| format!("Failed to acquire user home record: {e}"))?;
        if incomplete {
            return Err(
                "Lacking rights to acquire user record including privileged metadata, can't update record."
                    .into(),
            );
        }
        let mut v =
            OJson::parse(&text).map_err(|e| format!("Failed to parse JSON identity: {e}"))?;
        v.filter(&["binding".into(), "status".into(), "signature".into()]);
        v
    };
    let mut secret = split_secret(&mut v)?;
    identity::apply_changes(&mut v, &ctx.opts.changes, &machine.machine_id)?;
    identity::update_last_change(&mut v, false, ctx.opts.identity.is_none())?;
    let record = check_record(&v)?;
    let user = record.user_name().to_owned();
    // As 252: the tokens given replace the record's, enrolled from their certificates here
    // (with $PIN, so before the passed secret takes it).
    let enrolled_pin = if ctx.opts.pkcs11_given {
        enrol_tokens(ctx, &mut v, &user)?
    } else {
        None
    };
    let passed = ctx.env.passed_secret();
    for pw in passed.passwords().iter().rev() {
        secret.prepend_password(SecretString::from(
            secrecy::ExposeSecret::expose_secret(pw).to_owned(),
        ));
    }
    if let Some(pin) = enrolled_pin.or_else(|| passed.token_pins().first().cloned()) {
        secret.set_token_pin(pin);
    }
    if ctx.opts.and_resize || ctx.opts.and_change_password {
        crate::log::info("Updating home directory.");
    }
    with_secret_retry(&user, &mut secret, false, |s| {
        bus.update(&identity::with_secret(&v, s))
    })?;
    if ctx.opts.and_resize {
        crate::log::info("Resizing home.");
        with_secret_retry(&user, &mut secret, false, |s| {
            bus.resize(&user, u64::MAX, &s.to_json())
        })?;
    }
    if ctx.opts.and_change_password {
        crate::log::info("Synchronizing passwords and encryption keys.");
        with_secret_retry(&user, &mut secret, false, |s| {
            bus.change_password(&user, "{}", &s.to_json())
        })?;
    }
    Ok(0)
}

fn passwd(ctx: &mut Ctx, bus: &Manager, name: Option<&String>) -> VerbResult {
    if ctx.opts.changes.specified() || ctx.opts.identity.is_some() {
        return Err(
            "The 'passwd' verb does not permit changing other record properties at the same time."
                .into(),
        );
    }
    let user = name.cloned().unwrap_or_else(myself);
    let mut old = ctx.env.passed_secret();
    let mut new = Secret::default();
    new.prepend_password(new_password(ctx, &user)?);
    loop {
        let new_json = new.to_json();
        match bus.change_password(&user, &new_json, &old.to_json()) {
            Ok(()) => return Ok(0),
            Err(e) if e.is("LowPasswordQuality") => {
                crate::log::error(e.to_string());
                new = Secret::default();
                new.prepend_password(password::prompt_new_password(&user)?);
            }
            Err(e) if e.is("BadPasswordAndNoToken") => {
                return Err(format!("Security token not inserted, refusing: {e}"));
            }
            Err(e) => handle_error(&user, &mut old, &e, true)?,
        }
    }
}

fn resize(ctx: &mut Ctx, bus: &Manager, rest: &[String]) -> VerbResult {
    let user = rest[0].clone();
    let mut size = u64::MAX;
    if let Some(arg) = rest.get(1) {
        if crate::options::parse_permyriad(arg).is_some_and(|r| r.is_ok()) {
            return Err(
                "Relative disk size specification currently not supported when resizing.".into(),
            );
        }
        size = match arg.as_str() {
            "min" => 0,
            "max" => u64::MAX - 1,
            _ => crate::units::parse_size(arg)
                .map_err(|_| format!("Failed to parse disk size parameter: {arg}"))?,
        };
    }
    if ctx.opts.disk_size_relative {
        return Err(
            "Relative disk size specification currently not supported when resizing.".into(),
        );
    }
    if let Some(ds) = ctx.opts.disk_size {
        if size != u64::MAX && size != ds {
            return Err("Disk size specified twice and doesn't match, refusing.".into());
        }
        size = ds;
    }
    let mut secret = ctx.env.passed_secret();
    with_secret_retry(&user, &mut secret, false, |s| {
        bus.resize(&user, size, &s.to_json())
    })?;
    Ok(0)
}

fn with(ctx: &mut Ctx, bus: &Manager, rest: &[String]) -> VerbResult {
    let user = rest[0].clone();
    let command: Vec<String> = if rest.len() > 1 {
        rest[1..].to_vec()
    } else {
        let shell = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.shell.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into());
        vec![shell]
    };
    let please_suspend = std::env::var("SYSTEMD_PLEASE_SUSPEND_HOME")
        .ok()
        .and_then(|v| crate::options::parse_boolean(&v))
        .unwrap_or(false);
    let mut secret = ctx.env.passed_secret();
    let mut fd = None;
    with_secret_retry(&user, &mut secret, false, |s| {
        fd = Some(bus.acquire(&user, &s.to_json(), please_suspend)?);
        Ok(())
    })?;
    // The reference must not leak into the command (or anything it leaves running): only
    // this process holds it, and closes it when the command is done.
    if let Some(fd) = &fd {
        use nix::fcntl::{FcntlArg, FdFlag, fcntl};
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .map_err(|e| format!("Failed to duplicate acquired fd: {e}"))?;
    }
    let home = bus
        .home_directory(&user)
        .map_err(|e| format!("Failed to inspect home: {e}"))?;
    let mut child = std::process::Command::new(&command[0]);
    child.args(&command[1..]).current_dir(&home);
    crate::sys::close_other_fds_in_child(&mut child);
    let status = child.status();
    // Closing the reference lets the daemon deactivate the home once nobody else holds it.
    drop(fd);
    let code = match status {
        Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
            (Some(code), _) => code,
            (None, Some(sig)) => {
                let name = nix::sys::signal::Signal::try_from(sig)
                    .map(|s| s.as_str().trim_start_matches("SIG").to_owned())
                    .unwrap_or_else(|_| sig.to_string());
                crate::log::error(format!("{} terminated by signal {name}.", command[0]));
                1
            }
            (None, None) => 1,
        },
        Err(e) => {
            let why = e
                .raw_os_error()
                .map(|n| nix::errno::Errno::from_raw(n).desc().to_owned())
                .unwrap_or_else(|| e.to_string());
            crate::log::error(format!("Failed to execute {}: {why}", command[0]));
            255
        }
    };
    match bus.release(&user) {
        Ok(()) => {}
        Err(e) if e.is("HomeBusy") => {
            crate::log::notice(format!(
                "Not deactivating home directory of {user}, as it is still used."
            ));
        }
        Err(e) => return Err(format!("Failed to release user home: {e}")),
    }
    Ok(code)
}
