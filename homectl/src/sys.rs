//! The C library calls homectl needs: local time conversion (with the zone abbreviation, as
//! systemd prints it) and enumeration of the group database through NSS.

use std::ffi::CStr;

/// A broken-down local time.
pub struct LocalTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub weekday: u32,
    pub zone: String,
}

/// Converts seconds since the epoch to local time (`localtime_r`), or UTC when `utc` is set.
pub fn local_time(seconds: i64, utc: bool) -> Option<LocalTime> {
    let t: libc::time_t = seconds;
    // SAFETY: `tm` is plain data that localtime_r/gmtime_r fully initialise on success; both
    // functions only read `t` and write `tm`, and are thread-safe.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let ok = if utc {
            libc::gmtime_r(&t, &mut tm)
        } else {
            libc::localtime_r(&t, &mut tm)
        };
        if ok.is_null() {
            return None;
        }
        tm
    };
    let zone = if utc || tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: glibc sets tm_zone to a NUL-terminated string with static lifetime (the
        // time-zone abbreviation table), checked for NULL above.
        unsafe { CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    Some(LocalTime {
        year: tm.tm_year + 1900,
        month: u32::try_from(tm.tm_mon + 1).ok()?,
        day: u32::try_from(tm.tm_mday).ok()?,
        hour: u32::try_from(tm.tm_hour).ok()?,
        minute: u32::try_from(tm.tm_min).ok()?,
        second: u32::try_from(tm.tm_sec).ok()?,
        weekday: u32::try_from(tm.tm_wday).ok()?,
        zone,
    })
}

/// Converts a local (or UTC) calendar time to seconds since the epoch (`mktime`/`timegm`).
pub fn make_time(
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    utc: bool,
) -> Option<i64> {
    // SAFETY: `tm` is plain data; every field mktime/timegm read is set below (the rest zero,
    // tm_isdst -1 asks mktime to work daylight saving time out itself).
    let t = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = year - 1900;
        tm.tm_mon = i32::try_from(month).ok()? - 1;
        tm.tm_mday = i32::try_from(day).ok()?;
        tm.tm_hour = i32::try_from(hour).ok()?;
        tm.tm_min = i32::try_from(minute).ok()?;
        tm.tm_sec = i32::try_from(second).ok()?;
        tm.tm_isdst = -1;
        if utc {
            libc::timegm(&mut tm)
        } else {
            libc::mktime(&mut tm)
        }
    };
    (t != -1).then_some(t)
}

/// Names of the groups whose member list (in the NSS group database) contains `user`.
pub fn nss_groups_listing(user: &str) -> Vec<String> {
    let mut found = Vec::new();
    // SAFETY: setgrent/getgrent/endgrent are used from this single thread only; each returned
    // entry is read (NUL-terminated strings and a NULL-terminated pointer array, as glibc
    // guarantees) before the next call, which may overwrite it.
    unsafe {
        libc::setgrent();
        loop {
            let entry = libc::getgrent();
            if entry.is_null() {
                break;
            }
            let mut member = (*entry).gr_mem;
            while !member.is_null() && !(*member).is_null() {
                if CStr::from_ptr(*member).to_bytes() == user.as_bytes() {
                    let name = CStr::from_ptr((*entry).gr_name)
                        .to_string_lossy()
                        .into_owned();
                    if !found.contains(&name) {
                        found.push(name);
                    }
                    break;
                }
                member = member.add(1);
            }
        }
        libc::endgrent();
    }
    found
}

/// Makes `command` start with only standard input, output and error open, as systemd's
/// homectl runs `with`'s command: descriptors homectl inherited do not reach it.
pub fn close_other_fds_in_child(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    // close_range(2) flag: mark the descriptors close-on-exec instead of closing them, so
    // that the pipe the standard library uses to report a failed exec keeps working.
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: the hook runs in the forked child before exec and only makes the close_range
    // system call, which is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
            Ok(())
        });
    }
}

/// Makes `target` this process's standard output (the pager's input).
pub fn redirect_stdout(target: std::process::ChildStdin) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: dup2 only duplicates the open descriptor of `target` onto descriptor 1, which
    // Rust's stdout keeps using; `target` is closed when dropped at the end of this function.
    let r = unsafe { libc::dup2(target.as_raw_fd(), libc::STDOUT_FILENO) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Replaces standard output by /dev/null, so that a pager reading it sees the end.
pub fn close_stdout() {
    use std::os::fd::AsRawFd as _;
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto descriptor 1 of a descriptor we own; nothing holds a pointer into
        // the old descriptor, and the pipe to the pager closes with it.
        unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) };
    }
}

/// Has the kernel send SIGINT to `command`'s process when homectl exits.
pub fn interrupt_child_when_parent_dies(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the hook runs in the forked child before exec and only makes the prctl system
    // call, which is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT as libc::c_ulong);
            Ok(())
        });
    }
}
