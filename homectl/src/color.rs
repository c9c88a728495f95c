//! Terminal colors, decided as systemd's tools decide them: `$SYSTEMD_COLORS`, `$NO_COLOR`,
//! then whether stdout and stderr are terminals and `$TERM` is not `dumb`.

use std::io::IsTerminal as _;
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Sixteen,
    Full,
}

fn mode() -> Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    *MODE.get_or_init(|| {
        match std::env::var("SYSTEMD_COLORS").ok().as_deref() {
            Some("16") => return Mode::Sixteen,
            Some("256") => return Mode::Full,
            Some(v) => {
                if let Some(b) = crate::options::parse_boolean(v) {
                    return if b { Mode::Full } else { Mode::Off };
                }
            }
            None => {}
        }
        if std::env::var_os("NO_COLOR").is_some() {
            return Mode::Off;
        }
        let on_tty = on_tty();
        let dumb = std::env::var("TERM").map_or(true, |t| t == "dumb");
        if !on_tty || dumb {
            Mode::Off
        } else {
            Mode::Full
        }
    })
}

/// Whether stdout and stderr are both terminals (decided once, before any pager starts).
pub fn on_tty() -> bool {
    static ON_TTY: OnceLock<bool> = OnceLock::new();
    *ON_TTY.get_or_init(|| std::io::stdout().is_terminal() && std::io::stderr().is_terminal())
}

pub fn enabled() -> bool {
    mode() != Mode::Off
}

fn pick(full: &'static str, sixteen: &'static str) -> &'static str {
    match mode() {
        Mode::Off => "",
        Mode::Sixteen => sixteen,
        Mode::Full => full,
    }
}

pub const NORMAL_CODE: &str = "\x1B[0m";

pub fn normal() -> &'static str {
    pick(NORMAL_CODE, NORMAL_CODE)
}

pub fn highlight() -> &'static str {
    pick("\x1B[0;1;39m", "\x1B[0;1;39m")
}

pub fn highlight_red() -> &'static str {
    pick("\x1B[0;1;31m", "\x1B[0;1;31m")
}

pub fn highlight_green() -> &'static str {
    pick("\x1B[0;1;32m", "\x1B[0;1;32m")
}

pub fn highlight_yellow() -> &'static str {
    pick("\x1B[0;1;38;5;185m", "\x1B[0;1;33m")
}

pub fn grey() -> &'static str {
    pick("\x1B[0;38;5;245m", "\x1B[0;90m")
}

/// Underlining (not on the Linux console, which cannot show it).
pub fn underline() -> &'static str {
    if !enabled() {
        return "";
    }
    if std::env::var("TERM").is_ok_and(|t| t == "linux") {
        NORMAL_CODE
    } else {
        "\x1B[0m\x1B[0;4m"
    }
}

/// The color of a home state in `list` and `inspect`.
pub fn for_state(state: &str) -> Option<&'static str> {
    match state {
        "unfixated" | "absent" => Some(grey()),
        "active" => Some(highlight_green()),
        "locked" | "dirty" => Some(highlight_yellow()),
        _ => None,
    }
}
