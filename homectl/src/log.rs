//! Messages on standard error as systemd's tools print them: on a terminal errors are red,
//! warnings yellow and notices bold, and lines end in CR LF (robust against a terminal left in
//! raw mode).

use std::io::{IsTerminal as _, Write as _};

#[derive(Clone, Copy)]
enum Level {
    Error,
    Warning,
    Notice,
    Info,
}

fn write(level: Level, message: &str) {
    let (on, off) = match level {
        Level::Error => (crate::color::highlight_red(), crate::color::normal()),
        Level::Warning => (crate::color::highlight_yellow(), crate::color::normal()),
        Level::Notice => (crate::color::highlight(), crate::color::normal()),
        Level::Info => ("", ""),
    };
    let end = if std::io::stderr().is_terminal() {
        "\r\n"
    } else {
        "\n"
    };
    // Flushed before stderr is written, so the two streams stay in order on one terminal.
    let _ = std::io::stdout().flush();
    let _ = write!(std::io::stderr().lock(), "{on}{message}{off}{end}");
}

pub fn error(message: impl AsRef<str>) {
    write(Level::Error, message.as_ref());
}

pub fn warning(message: impl AsRef<str>) {
    write(Level::Warning, message.as_ref());
}

pub fn notice(message: impl AsRef<str>) {
    write(Level::Notice, message.as_ref());
}

pub fn info(message: impl AsRef<str>) {
    write(Level::Info, message.as_ref());
}
