//! A polkit text agent for the duration of a verb, as systemd's homectl starts one: when an
//! unprivileged user runs a verb that polkit may ask about on a terminal, `pkttyagent` asks
//! for the administrator password there.

use std::os::fd::AsRawFd as _;
use std::process::{Child, Command};

const AGENT: &str = "/usr/bin/pkttyagent";

/// The running agent; stopped when dropped.
pub struct Agent {
    child: Child,
}

/// Starts `pkttyagent` if homectl may ask questions, runs unprivileged and has a terminal on
/// standard input, and waits until the agent is ready.
pub fn open_if_enabled(ask_password: bool) -> Option<Agent> {
    if !ask_password || nix::unistd::geteuid().is_root() || !crate::password::can_prompt() {
        return None;
    }
    if !std::path::Path::new(AGENT).exists() {
        return None;
    }
    let (read, write) = nix::unistd::pipe().ok()?;
    let child = Command::new(AGENT)
        .arg("--notify-fd")
        .arg(write.as_raw_fd().to_string())
        .arg("--fallback")
        .spawn();
    drop(write);
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            crate::log::error(format!("Failed to fork TTY ask password agent: {e}"));
            return None;
        }
    };
    // The agent closes its end of the pipe once it has registered with polkit: reading then
    // ends (it never writes).
    let mut ready = std::fs::File::from(read);
    let mut byte = [0u8; 1];
    let _ = std::io::Read::read(&mut ready, &mut byte);
    Some(Agent { child })
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.child.wait();
    }
}
