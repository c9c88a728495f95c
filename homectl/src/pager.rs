//! Paging long output on a terminal through `less`, as systemd's tools do (`--no-pager`,
//! `$SYSTEMD_PAGER`/`$PAGER` set to `cat` or empty, and non-terminals turn it off).

use std::io::Write as _;
use std::process::{Child, Command, Stdio};

/// The running pager; homectl's standard output goes into it until [`Pager::close`].
pub struct Pager {
    child: Child,
}

fn locale_is_utf8() -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .is_some_and(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("utf-8") || l.contains("utf8")
        })
}

/// Starts a pager unless paging is off; returns None when output goes straight out.
pub fn open(disabled: bool) -> Option<Pager> {
    // No terminal, or one that cannot page: $TERM unset or "dumb".
    let term = std::env::var("TERM").ok()?;
    if disabled || !crate::color::on_tty() || term == "dumb" {
        return None;
    }
    let configured = std::env::var("SYSTEMD_PAGER")
        .or_else(|_| std::env::var("PAGER"))
        .ok()
        .map(|p| {
            p.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<String>>()
        });
    if let Some(args) = &configured
        && (args.is_empty() || args == &["cat"])
    {
        return None;
    }
    let less = std::env::var("SYSTEMD_LESS").unwrap_or_else(|_| "FRSXMK".into());
    let secure_setting = std::env::var("SYSTEMD_PAGERSECURE").ok();
    let trust_configured = secure_setting.is_some();
    let secure = match secure_setting.as_deref() {
        Some(v) => crate::options::parse_boolean(v).unwrap_or(true),
        // Under sudo a pager must not become a way to run commands as root.
        None => nix::unistd::geteuid().is_root() && std::env::var_os("SUDO_UID").is_some(),
    };
    let mut candidates: Vec<Vec<String>> = Vec::new();
    if trust_configured && let Some(args) = configured {
        candidates.push(args);
    }
    for p in ["pager", "less", "more"] {
        if secure && p != "less" {
            continue;
        }
        candidates.push(vec![p.to_owned()]);
    }
    let _ = std::io::stdout().flush();
    for args in candidates {
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..])
            .stdin(Stdio::piped())
            .env("LESS", &less);
        if let Ok(charset) = std::env::var("SYSTEMD_LESSCHARSET") {
            cmd.env("LESSCHARSET", charset);
        } else if locale_is_utf8() {
            cmd.env("LESSCHARSET", "utf-8");
        }
        // The pager goes when homectl goes (SIGINT, which `less -K` quits on).
        crate::sys::interrupt_child_when_parent_dies(&mut cmd);
        if secure {
            cmd.env("LESSSECURE", "1");
        } else {
            cmd.env_remove("LESSSECURE");
        }
        let Ok(mut child) = cmd.spawn() else {
            continue;
        };
        let Some(stdin) = child.stdin.take() else {
            let _ = child.kill();
            let _ = child.wait();
            continue;
        };
        if crate::sys::redirect_stdout(stdin).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        return Some(Pager { child });
    }
    None
}

impl Pager {
    /// Ends the output and waits for the user to leave the pager.
    pub fn close(mut self) {
        let _ = std::io::stdout().flush();
        crate::sys::close_stdout();
        let _ = self.child.wait();
    }
}
