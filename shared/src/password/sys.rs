//! The few libxcrypt calls we need. This is the only FFI in the password module.

use std::ffi::{CStr, c_char, c_int, c_ulong, c_void};
use std::ptr;

#[link(name = "crypt")]
unsafe extern "C" {
    fn crypt_ra(
        phrase: *const c_char,
        setting: *const c_char,
        data: *mut *mut c_void,
        size: *mut c_int,
    ) -> *mut c_char;
    fn crypt_gensalt_ra(
        prefix: *const c_char,
        count: c_ulong,
        rbytes: *const c_char,
        nrbytes: c_int,
    ) -> *mut c_char;
    fn crypt_preferred_method() -> *const c_char;
}

/// Hashes `phrase` (NUL-terminated) with `setting` (NUL-terminated). `None` when libxcrypt
/// fails or returns its failure token (a string starting with `*`).
pub(super) fn crypt(phrase: &[u8], setting: &[u8]) -> Option<String> {
    if phrase.last() != Some(&0) || setting.last() != Some(&0) {
        return None;
    }
    let mut data: *mut c_void = ptr::null_mut();
    let mut size: c_int = 0;
    // SAFETY: both inputs are NUL-terminated byte strings that outlive the call; crypt_ra
    // allocates `data` itself when it is NULL and reports its size, and is thread-safe.
    let result = unsafe {
        crypt_ra(
            phrase.as_ptr().cast(),
            setting.as_ptr().cast(),
            &mut data,
            &mut size,
        )
    };
    let hash = if result.is_null() {
        None
    } else {
        // SAFETY: a non-NULL result points to a NUL-terminated string inside `data`.
        let text = unsafe { CStr::from_ptr(result) };
        text.to_str()
            .ok()
            .filter(|s| !s.starts_with('*'))
            .map(str::to_owned)
    };
    if !data.is_null() {
        if let Ok(len) = usize::try_from(size) {
            // SAFETY: `data` is the buffer crypt_ra allocated, `size` bytes long. It holds
            // intermediate state derived from the password, so it is wiped before it is freed.
            unsafe { ptr::write_bytes(data.cast::<u8>(), 0, len) };
        }
        // SAFETY: crypt_ra allocated `data` with malloc; nothing else refers to it now.
        unsafe { libc::free(data) };
    }
    hash
}

/// A fresh setting string for `prefix` (or the preferred method when `None`), NUL-terminated.
pub(super) fn gensalt(prefix: Option<&str>) -> Option<Vec<u8>> {
    let prefix = match prefix {
        Some(p) => Some(std::ffi::CString::new(p).ok()?),
        None => None,
    };
    let prefix_ptr = prefix.as_ref().map_or(ptr::null(), |p| p.as_ptr());
    // SAFETY: `prefix_ptr` is NULL or a NUL-terminated string alive for the call; a NULL
    // `rbytes` makes libxcrypt draw random bytes from the OS. The result is malloc'd or NULL.
    let setting = unsafe { crypt_gensalt_ra(prefix_ptr, 0, ptr::null(), 0) };
    if setting.is_null() {
        return None;
    }
    // SAFETY: non-NULL results are NUL-terminated strings.
    let bytes = unsafe { CStr::from_ptr(setting) }
        .to_bytes_with_nul()
        .to_vec();
    // SAFETY: the string was allocated by crypt_gensalt_ra with malloc and is not used again.
    unsafe { libc::free(setting.cast()) };
    Some(bytes)
}

pub(super) fn preferred_method() -> Option<String> {
    // SAFETY: crypt_preferred_method takes no arguments and returns a static string or NULL.
    let method = unsafe { crypt_preferred_method() };
    if method.is_null() {
        return None;
    }
    // SAFETY: a non-NULL result is a static NUL-terminated string.
    unsafe { CStr::from_ptr(method) }
        .to_str()
        .ok()
        .map(str::to_owned)
}
