//! Environment switches, read the way code loaded into setuid programs must read them.

use std::ffi::{CStr, CString, c_char};

unsafe extern "C" {
    // glibc exports it; the libc crate does not declare it.
    fn secure_getenv(name: *const c_char) -> *mut c_char;
}

/// `secure_getenv(3)`: `None` in a setuid or otherwise privileged-transition process, so a user
/// cannot steer root's code through the environment.
pub fn secure_var(name: &str) -> Option<String> {
    let name = CString::new(name).ok()?;
    // SAFETY: `name` is NUL-terminated and outlives the call; secure_getenv only reads it.
    let value = unsafe { secure_getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: a non-NULL result points into the environment block, a NUL-terminated string
    // that we copy at once, before anything could change the environment.
    let value = unsafe { CStr::from_ptr(value) };
    value.to_str().ok().map(str::to_owned)
}
