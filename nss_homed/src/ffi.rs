//! The entry points glibc looks up in `libnss_homed.so.2`, written by hand.
//!
//! Every export runs its body inside `catch_unwind` (a panic becomes `NSS_STATUS_UNAVAIL`),
//! copies strings and pointer arrays into the caller's buffer (pointer arrays aligned), and
//! reports a too-small buffer as `NSS_STATUS_TRYAGAIN` with `ERANGE`, a missing entry as
//! `NSS_STATUS_NOTFOUND` with `ENOENT`, and a failed source as `NSS_STATUS_UNAVAIL`.

use std::ffi::{CStr, CString, c_char, c_int, c_long};
use std::mem::{align_of, size_of};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use homed_shared::nss::{GroupEntry, PasswdEntry, ShadowEntry};
use libc::{gid_t, group, passwd, size_t, spwd, uid_t};

use crate::enumerate::{Enumeration, Step};
use crate::guard;
use crate::lookup::{self, Answer};

// enum nss_status (glibc's nss.h).
const NSS_STATUS_TRYAGAIN: c_int = -2;
const NSS_STATUS_UNAVAIL: c_int = -1;
const NSS_STATUS_NOTFOUND: c_int = 0;
const NSS_STATUS_SUCCESS: c_int = 1;

static PASSWD: Enumeration<PasswdEntry> = Enumeration::new();
static GROUP: Enumeration<GroupEntry> = Enumeration::new();
static SHADOW: Enumeration<ShadowEntry> = Enumeration::new();
static GSHADOW: Enumeration<GroupEntry> = Enumeration::new();

/// glibc's `struct sgrp` (gshadow.h); the libc crate does not declare it.
#[repr(C)]
pub struct Sgrp {
    sg_namp: *mut c_char,
    sg_passwd: *mut c_char,
    sg_adm: *mut *mut c_char,
    sg_mem: *mut *mut c_char,
}

/// Why an entry could not be written.
enum Fail {
    /// The caller's buffer is too small.
    Range,
    /// The entry cannot be represented (a NUL inside a string).
    Invalid,
}

/// The caller's buffer, filled from the front.
struct Buffer {
    base: *mut c_char,
    len: usize,
    used: usize,
}

impl Buffer {
    fn new(base: *mut c_char, len: size_t) -> Buffer {
        Buffer { base, len, used: 0 }
    }

    /// Reserves `size` bytes aligned to `align` (a power of two).
    fn reserve(&mut self, size: usize, align: usize) -> Result<*mut u8, Fail> {
        let start = self.base as usize + self.used;
        let pad = start.wrapping_neg() & (align - 1);
        let end = self
            .used
            .checked_add(pad)
            .and_then(|n| n.checked_add(size))
            .ok_or(Fail::Range)?;
        if end > self.len {
            return Err(Fail::Range);
        }
        // SAFETY: `used + pad <= end <= len`, so the result stays inside the caller's buffer of
        // `len` bytes (glibc's contract for `buffer`/`buflen`).
        let p = unsafe { self.base.cast::<u8>().add(self.used + pad) };
        self.used = end;
        Ok(p)
    }

    /// Copies `s` and a NUL into the buffer.
    fn string(&mut self, s: &str) -> Result<*mut c_char, Fail> {
        if s.as_bytes().contains(&0) {
            return Err(Fail::Invalid);
        }
        let p = self.reserve(s.len() + 1, 1)?;
        // SAFETY: `reserve` handed out `s.len() + 1` writable bytes at `p`, which do not overlap
        // `s` (a Rust string, not the caller's buffer).
        unsafe {
            ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
            *p.add(s.len()) = 0;
        }
        Ok(p.cast())
    }

    /// A NULL-terminated array of strings, the array aligned for pointers.
    fn strings(&mut self, items: &[String]) -> Result<*mut *mut c_char, Fail> {
        let count = items.len() + 1;
        let array = self
            .reserve(
                count
                    .checked_mul(size_of::<*mut c_char>())
                    .ok_or(Fail::Range)?,
                align_of::<*mut c_char>(),
            )?
            .cast::<*mut c_char>();
        for (i, item) in items.iter().enumerate() {
            let s = self.string(item)?;
            // SAFETY: `array` has `count` aligned slots inside the buffer and `i < count - 1`.
            unsafe { array.add(i).write(s) };
        }
        // SAFETY: the last of the `count` slots.
        unsafe { array.add(items.len()).write(ptr::null_mut()) };
        Ok(array)
    }
}

fn set_errno(errnop: *mut c_int, value: c_int) {
    if !errnop.is_null() {
        // SAFETY: glibc passes a valid pointer to the thread's errno; NULL was checked.
        unsafe { *errnop = value };
    }
}

#[cfg(not(test))]
fn quiet_panics() {
    // This library carries its own copy of std, so the hook covers only panics inside the
    // module: they must not print into the host's stderr.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

#[cfg(test)]
fn quiet_panics() {}

/// Runs an export's body; a panic becomes `NSS_STATUS_UNAVAIL` with `EAGAIN`.
fn guarded(errnop: *mut c_int, body: impl FnOnce() -> c_int) -> c_int {
    quiet_panics();
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        set_errno(errnop, libc::EAGAIN);
        NSS_STATUS_UNAVAIL
    })
}

/// Turns an answer into a status, writing a found entry with `write`.
fn finish<T>(
    answer: Answer<T>,
    errnop: *mut c_int,
    write: impl FnOnce(&T) -> Result<(), Fail>,
) -> c_int {
    match answer {
        Answer::Found(entry) => written(write(&entry), errnop),
        Answer::NotFound => {
            set_errno(errnop, libc::ENOENT);
            NSS_STATUS_NOTFOUND
        }
        Answer::Unavailable(e) => {
            set_errno(errnop, e);
            NSS_STATUS_UNAVAIL
        }
    }
}

fn written(result: Result<(), Fail>, errnop: *mut c_int) -> c_int {
    match result {
        Ok(()) => NSS_STATUS_SUCCESS,
        Err(Fail::Range) => {
            set_errno(errnop, libc::ERANGE);
            NSS_STATUS_TRYAGAIN
        }
        Err(Fail::Invalid) => {
            set_errno(errnop, libc::ENOENT);
            NSS_STATUS_NOTFOUND
        }
    }
}

fn name_arg<'a>(name: *const c_char) -> Option<&'a str> {
    if name.is_null() {
        return None;
    }
    // SAFETY: glibc passes a NUL-terminated string that lives for the whole call.
    unsafe { CStr::from_ptr(name) }.to_str().ok()
}

fn write_passwd(e: &PasswdEntry, out: *mut passwd, buf: &mut Buffer) -> Result<(), Fail> {
    let name = buf.string(&e.name)?;
    let pw = buf.string(&e.passwd)?;
    let gecos = buf.string(&e.gecos)?;
    let dir = buf.string(&e.dir)?;
    let shell = buf.string(&e.shell)?;
    // SAFETY: `out` is the caller's `struct passwd`, checked non-NULL by the export.
    unsafe {
        (*out).pw_name = name;
        (*out).pw_passwd = pw;
        (*out).pw_uid = e.uid;
        (*out).pw_gid = e.gid;
        (*out).pw_gecos = gecos;
        (*out).pw_dir = dir;
        (*out).pw_shell = shell;
    }
    Ok(())
}

fn write_group(e: &GroupEntry, out: *mut group, buf: &mut Buffer) -> Result<(), Fail> {
    let members = buf.strings(&e.members)?;
    let name = buf.string(&e.name)?;
    let pw = buf.string(&e.passwd)?;
    // SAFETY: `out` is the caller's `struct group`, checked non-NULL by the export.
    unsafe {
        (*out).gr_name = name;
        (*out).gr_passwd = pw;
        (*out).gr_gid = e.gid;
        (*out).gr_mem = members;
    }
    Ok(())
}

/// A per-user group's gshadow entry as nss-systemd shows it: no password, no administrators
/// and no members (`NAME:!*::`).
fn write_gshadow(e: &GroupEntry, out: *mut Sgrp, buf: &mut Buffer) -> Result<(), Fail> {
    let adm = buf.strings(&[])?;
    let mem = buf.strings(&[])?;
    let name = buf.string(&e.name)?;
    let pw = buf.string("!*")?;
    // SAFETY: `out` is the caller's `struct sgrp`, checked non-NULL by the export.
    unsafe {
        (*out).sg_namp = name;
        (*out).sg_passwd = pw;
        (*out).sg_adm = adm;
        (*out).sg_mem = mem;
    }
    Ok(())
}

fn days(v: Option<i64>) -> c_long {
    v.map_or(-1, |d| c_long::try_from(d).unwrap_or(c_long::MAX))
}

fn write_shadow(e: &ShadowEntry, out: *mut spwd, buf: &mut Buffer) -> Result<(), Fail> {
    let name = buf.string(&e.name)?;
    let hash = buf.string(&e.hash)?;
    // SAFETY: `out` is the caller's `struct spwd`, checked non-NULL by the export.
    unsafe {
        (*out).sp_namp = name;
        (*out).sp_pwdp = hash;
        (*out).sp_lstchg = days(e.last_change_days);
        (*out).sp_min = days(e.min_days);
        (*out).sp_max = days(e.max_days);
        (*out).sp_warn = days(e.warn_days);
        (*out).sp_inact = days(e.inactive_days);
        (*out).sp_expire = days(e.expire_days);
        (*out).sp_flag = libc::c_ulong::MAX;
    }
    Ok(())
}

/// Checks the pointers every lookup gets; `None` means "report UNAVAIL".
fn args_ok<T>(out: *mut T, buffer: *mut c_char, errnop: *mut c_int) -> bool {
    if out.is_null() || buffer.is_null() || errnop.is_null() {
        set_errno(errnop, libc::EINVAL);
        return false;
    }
    true
}

/// One `getXXent_r` step.
fn enumerate_step<T>(
    state: &Enumeration<T>,
    load: impl FnOnce() -> Answer<Vec<T>>,
    errnop: *mut c_int,
    write: impl FnOnce(&T) -> Result<(), Fail>,
) -> c_int {
    state.step(load, |step| match step {
        Step::Item(item) => {
            let status = written(write(item), errnop);
            // A too-small buffer keeps the entry for the retry; an unwritable one is skipped.
            (status, status != NSS_STATUS_TRYAGAIN)
        }
        Step::End => {
            set_errno(errnop, libc::ENOENT);
            (NSS_STATUS_NOTFOUND, false)
        }
        Step::Failed(_) => {
            set_errno(errnop, libc::EHOSTDOWN);
            (NSS_STATUS_UNAVAIL, false)
        }
    })
}

fn start_status(answer: Answer<()>) -> c_int {
    match answer {
        Answer::Unavailable(_) => NSS_STATUS_UNAVAIL,
        _ => NSS_STATUS_SUCCESS,
    }
}

/// # Safety
/// glibc's contract: `name` is a C string, `pwd`, `buffer` (of `buflen` bytes) and `errnop`
/// are valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_homed_getpwnam_r(
    name: *const c_char,
    pwd: *mut passwd,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, || {
        if !args_ok(pwd, buffer, errnop) {
            return NSS_STATUS_UNAVAIL;
        }
        let answer = name_arg(name).map_or(Answer::NotFound, lookup::user_by_name);
        finish(answer, errnop, |e| {
            write_passwd(e, pwd, &mut Buffer::new(buffer, buflen))
        })
    })
}

/// # Safety
/// As [`_nss_homed_getpwnam_r`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_homed_getpwuid_r(
    uid: uid_t,
    pwd: *mut passwd,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, || {
        if !args_ok(pwd, buffer, errnop) {
            return NSS_STATUS_UNAVAIL;
        }
        finish(lookup::user_by_uid(uid), errnop, |e| {
            write_passwd(e, pwd, &mut Buffer::new(buffer, buflen))
        })
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_homed_setpwent(_stayopen: c_int) -> c_int {
    guarded(ptr::null_mut(), || {
        start_status(PASSWD.start(lookup::all_users))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_homed_endpwent() -> c_int {
    guarded(ptr::null_mut(), || {
        PASSWD.end();
        NSS_STATUS_SUCCESS
    })
}

/// # Safety
/// `pwd`, `buffer` (of `buflen` bytes) and `errnop` are valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_homed_getpwent_r(
    pwd: *mut passwd,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, || {
        if !args_ok(pwd, buffer, errnop) {
            return NSS_STATUS_UNAVAIL;
        }
        enumerate_step(&PASSWD, lookup::all_users, errnop, |e| {
            write_passwd(e, pwd, &mut Buffer::new(buffer, buflen))
        })
    })
}

/// # Safety
/// `name` is a C string; `grp`, `buffer` (of `buflen` bytes) and `errnop` are valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_homed_getgrnam_r(
    name: *const c_char,
    grp: *mut group,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, || {
        if !args_ok(grp, buffer, errnop) {
            return NSS_STATUS_UNAVAIL;
        }
        let answer = name_arg(name).map_or(Answer::NotFound, lookup::group_by_name);
        finish(answer, errnop, |e| {
            write_group(e, grp, &mut Buffer::new(buffer, buflen))
        })
    })
}

/// # Safety
/// As [`_nss_homed_getgrnam_r`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_homed_getgrgid_r(
    gid: gid_t,
    grp: *mut group,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, || {
        if !args_ok(grp, buffer, errnop) {
            return NSS_STATUS_UNAVAIL;
        }
        finish(lookup::group_by_gid(gid), errnop, |e| {
            write_group(e, grp, &mut Buffer::new(buffer, buflen))
        })
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_homed_setgrent(_stayopen: c_int) -> c_int {
    guarded(ptr::null_mut(), || {
        start_status(GROUP.start(lookup::all_groups))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_homed_endgrent() -> c_int {
    guarded(ptr::null_mut(), || {
        GROUP.end();
        NSS_STATUS_SUCCESS
    })
}

/// # Safety
/// `grp`, `buffer` (of `buflen` bytes) and `errnop` are valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_homed_getgrent_r(
    grp: *mut group,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, || {
        if !args_ok(grp, buffer, errnop) {
            return NSS_STATUS_UNAVAIL;
        }
        enumerate_step(&GROUP, lookup::all_groups, errnop, |e| {
            write_group(e, grp, &mut Buffer::new(buffer, buflen))
        })
    })
}

/// # Safety
/// `name` is a C string; `sp`, `buffer` (of `buflen` bytes) and `errnop` are valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_homed_getspnam_r(
    name: *const c_char,
    sp: *mut spwd,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, || {
        if !args_ok(sp, buffer, errnop) {
            return NSS_STATUS_UNAVAIL;
        }
        let answer = name_arg(name).map_or(Answer::NotFound, lookup::shadow_by_name);
        finish(answer, errnop, |e| {
            write_shadow(e, sp, &mut Buffer::new(buffer, buflen))
        })
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_homed_setspent(_stayopen: c_int) -> c_int {
    guarded(ptr::null_mut(), || {
        start_status(SHADOW.start(lookup::all_shadow))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_homed_endspent() -> c_int {
    guarded(ptr::null_mut(), || {
        SHADOW.end();
        NSS_STATUS_SUCCESS
    })
}

/// # Safety
/// `sp`, `buffer` (of `buflen` bytes) and `errnop` are valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_homed_getspent_r(
    sp: *mut spwd,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, || {
        if !args_ok(sp, buffer, errnop) {
            return NSS_STATUS_UNAVAIL;
        }
        enumerate_step(&SHADOW, lookup::all_shadow, errnop, |e| {
            write_shadow(e, sp, &mut Buffer::new(buffer, buflen))
        })
    })
}

/// # Safety
/// `name` is a C string; `sg`, `buffer` (of `buflen` bytes) and `errnop` are valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_homed_getsgnam_r(
    name: *const c_char,
    sg: *mut Sgrp,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, || {
        if !args_ok(sg, buffer, errnop) {
            return NSS_STATUS_UNAVAIL;
        }
        let answer = name_arg(name).map_or(Answer::NotFound, lookup::group_by_name);
        finish(answer, errnop, |e| {
            write_gshadow(e, sg, &mut Buffer::new(buffer, buflen))
        })
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_homed_setsgent(_stayopen: c_int) -> c_int {
    guarded(ptr::null_mut(), || {
        start_status(GSHADOW.start(lookup::all_gshadow))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_homed_endsgent() -> c_int {
    guarded(ptr::null_mut(), || {
        GSHADOW.end();
        NSS_STATUS_SUCCESS
    })
}

/// # Safety
/// `sg`, `buffer` (of `buflen` bytes) and `errnop` are valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_homed_getsgent_r(
    sg: *mut Sgrp,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, || {
        if !args_ok(sg, buffer, errnop) {
            return NSS_STATUS_UNAVAIL;
        }
        enumerate_step(&GSHADOW, lookup::all_gshadow, errnop, |e| {
            write_gshadow(e, sg, &mut Buffer::new(buffer, buflen))
        })
    })
}

/// Resolves a group the module does not serve through the rest of NSS, with this module
/// blocked on this thread so the call cannot come back here.
fn foreign_gid(name: &str) -> Option<u32> {
    let _block = guard::Block::new();
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0u8; 1024];
    loop {
        let mut grp = group {
            gr_name: ptr::null_mut(),
            gr_passwd: ptr::null_mut(),
            gr_gid: 0,
            gr_mem: ptr::null_mut(),
        };
        let mut result: *mut group = ptr::null_mut();
        // SAFETY: every pointer refers to live locals; `buf.len()` is the buffer's true size.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        return (rc == 0 && !result.is_null()).then_some(grp.gr_gid);
    }
}

/// Appends `gid` to glibc's group array, growing it within `limit`. Returns false when the array
/// could not grow (ENOMEM).
///
/// # Safety
/// `start`, `size` and `groupsp` follow glibc's `initgroups_dyn` contract: `*groupsp` is a
/// malloc'ed array of `*size` GIDs of which `*start` are used.
unsafe fn append_gid(
    gid: gid_t,
    start: *mut c_long,
    size: *mut c_long,
    groupsp: *mut *mut gid_t,
    limit: c_long,
) -> Result<bool, ()> {
    // SAFETY: the contract above.
    let (used, cap, array) = unsafe { (*start, *size, *groupsp) };
    let used_n = usize::try_from(used).map_err(|_| ())?;
    if !array.is_null() {
        // SAFETY: the first `used` entries are initialized GIDs.
        let present = unsafe { std::slice::from_raw_parts(array, used_n) };
        if present.contains(&gid) {
            return Ok(false);
        }
    }
    if limit > 0 && used >= limit {
        // The caller asked for at most `limit` groups: a hard cap, not an error.
        return Ok(false);
    }
    let mut array = array;
    if used >= cap || array.is_null() {
        let mut new_cap = cap.max(1).saturating_mul(2).max(used + 1);
        if limit > 0 {
            new_cap = new_cap.min(limit);
        }
        let bytes = usize::try_from(new_cap)
            .ok()
            .and_then(|n| n.checked_mul(size_of::<gid_t>()))
            .ok_or(())?;
        // SAFETY: `array` is NULL or came from malloc (glibc's contract); realloc keeps the
        // used entries and we only store the result if it is not NULL.
        let grown = unsafe { libc::realloc(array.cast(), bytes) }.cast::<gid_t>();
        if grown.is_null() {
            return Err(());
        }
        array = grown;
        // SAFETY: the contract above; glibc reads the array and its size back from here.
        unsafe {
            *groupsp = array;
            *size = new_cap;
        }
    }
    // SAFETY: `used < new capacity`, inside the allocation.
    unsafe {
        array.add(used_n).write(gid);
        *start = used + 1;
    }
    Ok(true)
}

/// # Safety
/// glibc's contract for `initgroups_dyn`: `user` is a C string, `start`, `size`, `groupsp` and
/// `errnop` are valid, `*groupsp` is a malloc'ed array of `*size` GIDs with `*start` in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_homed_initgroups_dyn(
    user: *const c_char,
    skip: gid_t,
    start: *mut c_long,
    size: *mut c_long,
    groupsp: *mut *mut gid_t,
    limit: c_long,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, || {
        if start.is_null() || size.is_null() || groupsp.is_null() || errnop.is_null() {
            set_errno(errnop, libc::EINVAL);
            return NSS_STATUS_UNAVAIL;
        }
        let answer = name_arg(user).map_or(Answer::NotFound, |u| lookup::groups_of(u, foreign_gid));
        let gids = match answer {
            Answer::Found(gids) => gids,
            Answer::NotFound => {
                set_errno(errnop, libc::ENOENT);
                return NSS_STATUS_NOTFOUND;
            }
            Answer::Unavailable(e) => {
                set_errno(errnop, e);
                return NSS_STATUS_UNAVAIL;
            }
        };
        let mut any = false;
        for gid in gids.into_iter().filter(|&g| g != skip) {
            // SAFETY: the pointers were checked and follow glibc's contract (see above).
            match unsafe { append_gid(gid, start, size, groupsp, limit) } {
                Ok(added) => any |= added,
                Err(()) => {
                    set_errno(errnop, libc::ENOMEM);
                    return NSS_STATUS_TRYAGAIN;
                }
            }
        }
        if any {
            NSS_STATUS_SUCCESS
        } else {
            set_errno(errnop, libc::ENOENT);
            NSS_STATUS_NOTFOUND
        }
    })
}
