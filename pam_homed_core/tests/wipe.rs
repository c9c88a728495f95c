//! The copies of a password the module's code makes are wiped before their memory is freed.
//!
//! This test binary's allocator looks into every block as it is freed (and every block a
//! reallocation leaves behind) for a marker password. The hooks then run against the scripted
//! fakes with that password: prompted for, retried after a refusal, sent to the daemon as the
//! secret's JSON, handed on as PAM_AUTHTOK, and used in a password change. Any block freed with
//! the marker still in it is a copy nobody wiped.
//!
//! What this cannot see, and the README lists: libpam's own copies (the conversation's answer
//! before pam-bindings wipes it, PAM_AUTHTOK, which libpam wipes at pam_end) and the D-Bus
//! message buffer zbus serializes the secret into.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{Call, Conv, FakeHome, FakePam, err, record};
use pam_homed_core::code::Code;
use pam_homed_core::flow::{PAM_PRELIM_CHECK, PAM_UPDATE_AUTHTOK};
use pam_homed_core::home::names;
use pam_homed_core::options::Options;
use pam_homed_core::{Entry, run_entry};

const MARKER: &[u8] = b"Wipe-marker-Q7Z3";

static WATCHING: AtomicBool = AtomicBool::new(false);
static UNWIPED: AtomicUsize = AtomicUsize::new(0);

struct Watching;

fn holds_marker(block: &[u8]) -> bool {
    block.windows(MARKER.len()).any(|w| w == MARKER)
}

// SAFETY: every call is forwarded to the system allocator with the caller's own arguments;
// dealloc only reads the block it is about to free, which is still valid.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCHING.load(Ordering::Relaxed) {
            // SAFETY: ptr is a live block of layout.size() bytes until System.dealloc below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if holds_marker(block) {
                UNWIPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Always move, so that the block left behind goes through dealloc's check.
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: a fresh block of the new size.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller of the two sizes and distinct.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: the old block, with its own layout.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

fn marker() -> &'static str {
    std::str::from_utf8(MARKER).unwrap()
}

fn run(pam: &mut FakePam, home: &FakeHome, entry: Entry) -> Code {
    zbus::block_on(run_entry(pam, home, Options::default(), entry))
}

#[test]
fn password_copies_are_wiped() {
    let pw = marker();
    // The fakes compare the secret's JSON text with these; leaked for the test's whole life.
    let first: &'static str = Box::leak(format!(r#"{{"password":["{pw}"]}}"#).into_boxed_str());
    let retry: &'static str =
        Box::leak(format!(r#"{{"password":["{pw}","{pw}"]}}"#).into_boxed_str());
    let new_secret: &'static str =
        Box::leak(format!(r#"{{"password":["{pw}-new"]}}"#).into_boxed_str());
    let new_pw: &'static str = Box::leak(format!("{pw}-new").into_boxed_str());

    WATCHING.store(true, Ordering::SeqCst);
    {
        let home = FakeHome::new([
            Call::UserRecord("tuser", Ok(record("tuser", ""))),
            Call::Acquire("tuser", first, Err(err(names::BAD_PASSWORD))),
            Call::Acquire("tuser", retry, Ok(())),
            Call::UserRecord("tuser", Ok(record("tuser", ""))),
            Call::ChangePassword("tuser", new_secret, "{}", Err(err(names::BAD_PASSWORD))),
            Call::ChangePassword("tuser", new_secret, first, Ok(())),
        ]);
        let mut pam = FakePam::new(
            "tuser",
            [
                Conv::Prompt("Password: ", Some(pw)),
                Conv::Error(
                    "Password incorrect or not sufficient for authentication of user tuser.".into(),
                ),
                Conv::Prompt("Sorry, try again: ", Some(pw)),
            ],
        );
        assert_eq!(run(&mut pam, &home, Entry::Authenticate), Code::PAM_SUCCESS);

        pam.authtok = None;
        pam.expect([
            Conv::NewToken("New password: ", Some(new_pw)),
            Conv::NewToken("new password: ", Some(new_pw)),
        ]);
        assert_eq!(
            run(&mut pam, &home, Entry::ChangePassword(PAM_PRELIM_CHECK)),
            Code::PAM_SUCCESS
        );
        pam.expect([Conv::Prompt("Password: ", Some(pw))]);
        assert_eq!(
            run(&mut pam, &home, Entry::ChangePassword(PAM_UPDATE_AUTHTOK)),
            Code::PAM_SUCCESS
        );
    }
    WATCHING.store(false, Ordering::SeqCst);
    assert_eq!(
        UNWIPED.load(Ordering::SeqCst),
        0,
        "blocks holding the password were freed without being wiped"
    );

    // The check itself works: a plain String copy is caught.
    WATCHING.store(true, Ordering::SeqCst);
    drop(std::hint::black_box(pw.to_owned()));
    WATCHING.store(false, Ordering::SeqCst);
    assert_eq!(UNWIPED.load(Ordering::SeqCst), 1);
}
