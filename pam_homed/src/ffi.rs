//! The libpam calls pam-bindings does not wrap, in one place: `pam_get_authtok*`, `pam_syslog`,
//! `pam_putenv`/`pam_getenv`, `pam_set_item(PAM_AUTHTOK)`, and raw module data in the layout
//! pam_systemd_home uses (a NUL-terminated JSON string, `(void*)UINTPTR_MAX` as the negative
//! cache, the reference fd stored as `(void*)(fd+1)`), so that pam_systemd can read the record.
//! Everything else in the crate is safe Rust.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::os::fd::{IntoRawFd, OwnedFd};

use pam::module::PamHandle;
use pam_homed_core::code::Code;
use zeroize::{Zeroize, Zeroizing};

const PAM_AUTHTOK: c_int = 6;

type Cleanup = extern "C" fn(pamh: *mut PamHandle, data: *mut c_void, error_status: c_int);

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_get_data(
        pamh: *const PamHandle,
        module_data_name: *const c_char,
        data: &mut *const c_void,
    ) -> c_int;
    fn pam_set_data(
        pamh: *mut PamHandle,
        module_data_name: *const c_char,
        data: *mut c_void,
        cleanup: Cleanup,
    ) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: &mut *const c_void) -> c_int;
    fn pam_get_authtok_noverify(
        pamh: *mut PamHandle,
        authtok: *mut *const c_char,
        prompt: *const c_char,
    ) -> c_int;
    fn pam_get_authtok_verify(
        pamh: *mut PamHandle,
        authtok: *mut *const c_char,
        prompt: *const c_char,
    ) -> c_int;
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
    fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
}

/// The negative-cache marker pam_systemd_home stores: `(void*)UINTPTR_MAX`.
const NOT_HOMED: usize = usize::MAX;

fn code(raw: c_int) -> Result<(), Code> {
    match Code::from_raw(raw) {
        Code::PAM_SUCCESS => Ok(()),
        other => Err(other),
    }
}

fn c_string(s: &str) -> Result<CString, Code> {
    CString::new(s).map_err(|_| Code::PAM_BUF_ERR)
}

/// Runs a cleanup body without letting a panic unwind into libpam.
fn guarded(f: impl FnOnce()) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    if let Err(payload) = result {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(payload)))
            .map_err(std::mem::forget);
    }
}

extern "C" fn cleanup_nothing(_: *mut PamHandle, _: *mut c_void, _: c_int) {}

/// Wipes a C string that `CString::into_raw` produced, then frees it.
///
/// # Safety
/// `data` is NULL, the negative-cache marker, or a pointer from `CString::into_raw` that is not
/// used afterwards.
unsafe fn wipe_and_free_cstring(data: *mut c_void) {
    if data.is_null() || data as usize == NOT_HOMED {
        return;
    }
    // SAFETY: by this function's contract the pointer came from CString::into_raw and is
    // handed back exactly once.
    let owned = unsafe { CString::from_raw(data.cast::<c_char>()) };
    let mut bytes = owned.into_bytes_with_nul();
    bytes.zeroize();
}

extern "C" fn cleanup_cstring(_: *mut PamHandle, data: *mut c_void, _: c_int) {
    guarded(|| {
        // SAFETY: libpam calls a cleanup once, with the pointer set_cstring stored together with
        // it, which came from CString::into_raw.
        unsafe { wipe_and_free_cstring(data) }
    });
}

extern "C" fn cleanup_fd(_: *mut PamHandle, data: *mut c_void, _: c_int) {
    guarded(|| {
        let raw = data as usize;
        if raw == 0 {
            return;
        }
        if let Ok(fd) = c_int::try_from(raw - 1) {
            // SAFETY: set_fd stored fd+1 of a descriptor it took ownership of
            // (IntoRawFd); libpam calls the cleanup once, so it is closed exactly once.
            unsafe { libc::close(fd) };
        }
    });
}

/// A module data entry as the record cache and the fd slot use them.
pub enum RawData {
    Missing,
    NotHomed,
    CString(String),
}

/// The handle as the FFI calls take it.
pub struct Raw<'a>(pub &'a mut PamHandle);

impl Raw<'_> {
    fn ptr(&mut self) -> *mut PamHandle {
        std::ptr::from_mut(self.0)
    }

    fn get_raw(&self, key: &str) -> Result<*const c_void, Code> {
        let key = c_string(key)?;
        let mut ptr: *const c_void = std::ptr::null();
        // SAFETY: the handle is the live one libpam passed to this hook; key is NUL-terminated;
        // ptr is a valid out pointer.
        let rc = unsafe { pam_get_data(std::ptr::from_ref(self.0), key.as_ptr(), &mut ptr) };
        match Code::from_raw(rc) {
            Code::PAM_SUCCESS => Ok(ptr),
            Code::PAM_NO_MODULE_DATA => Ok(std::ptr::null()),
            other => Err(other),
        }
    }

    fn set_raw(&mut self, key: &str, data: *mut c_void, cleanup: Cleanup) -> Result<(), Code> {
        let key = c_string(key)?;
        // SAFETY: live handle, NUL-terminated key (libpam copies it); data matches cleanup.
        code(unsafe { pam_set_data(self.ptr(), key.as_ptr(), data, cleanup) })
    }

    /// Reads an entry stored by `set_cstring`/`set_not_homed` (or by pam_systemd_home, which
    /// uses the same layout).
    pub fn get_cstring(&self, key: &str) -> Result<RawData, Code> {
        let ptr = self.get_raw(key)?;
        if ptr.is_null() {
            return Ok(RawData::Missing);
        }
        if ptr as usize == NOT_HOMED {
            return Ok(RawData::NotHomed);
        }
        // SAFETY: entries under these keys are NUL-terminated strings that live until the
        // entry is replaced, which cannot happen while we copy it.
        let text = unsafe { CStr::from_ptr(ptr.cast::<c_char>()) };
        Ok(RawData::CString(text.to_string_lossy().into_owned()))
    }

    pub fn set_cstring(&mut self, key: &str, value: &str) -> Result<(), Code> {
        let data = c_string(value)?.into_raw().cast::<c_void>();
        let result = self.set_raw(key, data, cleanup_cstring);
        if result.is_err() {
            // SAFETY: libpam did not take the pointer, so it is still ours alone.
            unsafe { wipe_and_free_cstring(data) };
        }
        result
    }

    pub fn set_not_homed(&mut self, key: &str) -> Result<(), Code> {
        self.set_raw(key, NOT_HOMED as *mut c_void, cleanup_nothing)
    }

    /// Removes an entry; libpam runs its cleanup.
    pub fn remove(&mut self, key: &str) -> Result<(), Code> {
        self.set_raw(key, std::ptr::null_mut(), cleanup_nothing)
    }

    pub fn has_fd(&self, key: &str) -> Result<bool, Code> {
        Ok(!self.get_raw(key)?.is_null())
    }

    pub fn set_fd(&mut self, key: &str, fd: OwnedFd) -> Result<(), Code> {
        let raw = fd.into_raw_fd();
        let slot = usize::try_from(raw).map_err(|_| Code::PAM_SYSTEM_ERR)? + 1;
        let result = self.set_raw(key, slot as *mut c_void, cleanup_fd);
        if result.is_err() {
            // SAFETY: libpam did not take it; we still own the descriptor.
            unsafe { libc::close(raw) };
        }
        result
    }

    pub fn set_authtok(&mut self, token: &str) -> Result<(), Code> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(token.len() + 1));
        bytes.extend_from_slice(token.as_bytes());
        if bytes.contains(&0) {
            return Err(Code::PAM_BUF_ERR);
        }
        bytes.push(0);
        // SAFETY: live handle; the item is a NUL-terminated string that libpam copies.
        code(unsafe { pam_set_item(self.ptr(), PAM_AUTHTOK, bytes.as_ptr().cast::<c_void>()) })
    }

    /// `pam_get_authtok_noverify` or `pam_get_authtok_verify`; the answer is copied into
    /// zeroizing memory (libpam keeps its own copy as `PAM_AUTHTOK` and wipes it at pam_end).
    pub fn get_new_authtok(
        &mut self,
        prompt: &str,
        verify: bool,
    ) -> Result<Option<Zeroizing<String>>, Code> {
        let prompt = c_string(prompt)?;
        let mut ptr: *const c_char = std::ptr::null();
        if verify {
            // pam_get_authtok_verify compares against *authtok: it must point to the token
            // entered first, which pam_get_authtok_noverify left as PAM_AUTHTOK.
            let mut item: *const c_void = std::ptr::null();
            // SAFETY: live handle, valid out pointer; the item stays libpam's.
            code(unsafe { pam_get_item(std::ptr::from_ref(self.0), PAM_AUTHTOK, &mut item) })?;
            if item.is_null() {
                return Err(Code::PAM_AUTHTOK_ERR);
            }
            ptr = item.cast::<c_char>();
        }
        // SAFETY: live handle, valid out pointer (for verify, pointing to the current
        // PAM_AUTHTOK, as the function requires), NUL-terminated prompt.
        let rc = unsafe {
            if verify {
                pam_get_authtok_verify(self.ptr(), &mut ptr, prompt.as_ptr())
            } else {
                pam_get_authtok_noverify(self.ptr(), &mut ptr, prompt.as_ptr())
            }
        };
        code(rc)?;
        if ptr.is_null() {
            return Ok(None);
        }
        // SAFETY: on success the token points to libpam's NUL-terminated PAM_AUTHTOK item.
        let text = unsafe { CStr::from_ptr(ptr) };
        let mut copy = Zeroizing::new(String::with_capacity(text.to_bytes().len()));
        copy.push_str(&text.to_string_lossy());
        Ok(Some(copy))
    }

    pub fn syslog(&self, priority: c_int, text: &str) {
        // A NUL inside a message would cut it short; replace it rather than lose the line.
        let Ok(text) = CString::new(text.replace('\0', "\\0")) else {
            return;
        };
        // SAFETY: live handle; "%s" takes exactly the one NUL-terminated string passed.
        unsafe {
            pam_syslog(
                std::ptr::from_ref(self.0),
                priority,
                c"%s".as_ptr(),
                text.as_ptr(),
            )
        };
    }

    pub fn putenv(&mut self, name: &str, value: &str) -> Result<(), Code> {
        let pair = c_string(&format!("{name}={value}"))?;
        // SAFETY: live handle; libpam copies the NUL-terminated "NAME=VALUE".
        code(unsafe { pam_putenv(self.ptr(), pair.as_ptr()) })
    }

    pub fn getenv(&mut self, name: &str) -> Option<String> {
        let name = CString::new(name).ok()?;
        // SAFETY: live handle; NUL-terminated name.
        let value = unsafe { pam_getenv(self.ptr(), name.as_ptr()) };
        if value.is_null() {
            return None;
        }
        // SAFETY: a non-NULL result is libpam's NUL-terminated copy, valid until the next
        // environment change; we copy it at once.
        Some(
            unsafe { CStr::from_ptr(value) }
                .to_string_lossy()
                .into_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_cleanup_wipes_before_it_frees() {
        // The same steps as wipe_and_free_cstring, stopping before the free so that the
        // buffer can still be read.
        let data = CString::new("{\"privileged\":{\"hashedPassword\":[\"$y$x\"]}}")
            .unwrap()
            .into_raw();
        // SAFETY: the pointer came from into_raw just above.
        let owned = unsafe { CString::from_raw(data) };
        let mut bytes = owned.into_bytes_with_nul();
        let len = bytes.len();
        bytes.zeroize();
        // Zeroize on a Vec clears the contents and the length, and wipes the spare capacity.
        assert!(bytes.is_empty());
        // SAFETY: the capacity is at least len, and zeroize wrote zeros over all of it.
        let raw = unsafe { std::slice::from_raw_parts(bytes.as_ptr(), len) };
        assert!(raw.iter().all(|b| *b == 0));
    }

    #[test]
    fn the_negative_cache_marker_is_never_freed() {
        // SAFETY: NULL and the marker are the two values the function ignores.
        unsafe {
            wipe_and_free_cstring(std::ptr::null_mut());
            wipe_and_free_cstring(NOT_HOMED as *mut c_void);
        }
    }
}
