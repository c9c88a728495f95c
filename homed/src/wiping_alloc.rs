//! The daemon's global allocator: the system allocator, except that no block goes back to it
//! with its old contents. Passwords and records with secrets pass through zbus messages,
//! serde_json values and strings that grow; glibc keeps freed and moved-from blocks as they were,
//! so a core dump would show every copy ever made. Wiping on free and on reallocation makes the
//! copies vanish when their owners drop them, whichever library made them.

use std::alloc::{GlobalAlloc, Layout, System};

pub struct WipingAllocator;

/// Overwrites `len` bytes at `ptr` with zeros in a way the compiler may not drop as a dead store
/// before the block is freed.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes.
unsafe fn wipe(ptr: *mut u8, len: usize) {
    if len > 0 {
        // SAFETY: the caller guarantees `ptr..ptr+len` is writable; explicit_bzero only writes
        // zeros into that range.
        unsafe { libc::explicit_bzero(ptr.cast(), len) };
    }
}

// SAFETY: every method hands out or takes back blocks of the system allocator with the layouts
// it was asked for; the only addition is that freed or moved-from bytes are zeroed first, while
// the caller still owns them.
unsafe impl GlobalAlloc for WipingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes that the caller gives up now.
        unsafe {
            wipe(ptr, layout.size());
            System.dealloc(ptr, layout);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // glibc's realloc may move the block and free the old one as it is, or give back the
        // tail of a shrunk one: always move by hand, so the old block is wiped before it is freed.
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `new_layout` has a non-zero size (GlobalAlloc::realloc's contract) and a valid
        // alignment.
        let new = unsafe { System.alloc(new_layout) };
        if new.is_null() {
            // The old block stays valid and untouched, as realloc's contract requires.
            return new;
        }
        // SAFETY: `ptr` holds `layout.size()` readable bytes, `new` has room for `new_size`, and
        // the two blocks are distinct allocations; the old block is then wiped and freed as in
        // `dealloc`.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            wipe(ptr, layout.size());
            System.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realloc_keeps_the_contents_when_growing_and_shrinking() {
        let a = WipingAllocator;
        let layout = Layout::from_size_align(16, 8).unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: a 16-byte block is written within bounds, grown, read within its new bounds and
        // freed with the layout it now has.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            for i in 0..16 {
                *p.add(i) = i as u8 + 1;
            }
            let q = a.realloc(p, layout, 64);
            assert!(!q.is_null());
            for i in 0..16 {
                assert_eq!(*q.add(i), i as u8 + 1);
            }
            let big = Layout::from_size_align(64, 8).unwrap_or_else(|e| panic!("{e}"));
            let r = a.realloc(q, big, 4);
            assert!(!r.is_null());
            for i in 0..4 {
                assert_eq!(*r.add(i), i as u8 + 1);
            }
            a.dealloc(
                r,
                Layout::from_size_align(4, 8).unwrap_or_else(|e| panic!("{e}")),
            );
        }
    }
}
