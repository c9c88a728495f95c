//! libnss_homed called the way glibc calls it, through dlopen (issue 3, acceptance 4, 5 and 6):
//! buffers, alignment, errno, enumeration, threads, panics, the bypass switches and timeouts.

use std::ffi::{CStr, CString, c_char, c_int, c_long, c_void};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::ptr;
use std::time::{Duration, Instant};

use homed_shared::publish::{self, PUBLISH_DIR};
use homed_shared::record::{MachineContext, RecordOrigin, UserRecord};
use homed_shared::signing::SigningKey;
use homed_shared::varlink::HOME_SOCKET;
use homed_tests::nss::*;

const NSS_STATUS_TRYAGAIN: c_int = -2;
const NSS_STATUS_UNAVAIL: c_int = -1;
const NSS_STATUS_NOTFOUND: c_int = 0;
const NSS_STATUS_SUCCESS: c_int = 1;

/// Looking this name up panics inside the module in debug and test builds.
const PANIC_NAME: &str = "nss-homed-test-panic";

type ByName<T> =
    unsafe extern "C" fn(*const c_char, *mut T, *mut c_char, usize, *mut c_int) -> c_int;
type ById<T> = unsafe extern "C" fn(u32, *mut T, *mut c_char, usize, *mut c_int) -> c_int;
type SetEnt = unsafe extern "C" fn(c_int) -> c_int;
type GetEnt<T> = unsafe extern "C" fn(*mut T, *mut c_char, usize, *mut c_int) -> c_int;
type InitGroups = unsafe extern "C" fn(
    *const c_char,
    u32,
    *mut c_long,
    *mut c_long,
    *mut *mut u32,
    c_long,
    *mut c_int,
) -> c_int;

/// The module, opened like glibc opens it.
struct Module(*mut c_void);

// SAFETY: the handle is only used to look up symbols; dlsym is thread-safe.
unsafe impl Send for Module {}
// SAFETY: as above.
unsafe impl Sync for Module {}

impl Module {
    fn open() -> Module {
        let path = CString::new(module_path().to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; the library's constructors are Rust's, which are benign.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!handle.is_null(), "dlopen failed");
        Module(handle)
    }

    /// The symbol `name` as a function of type `F`.
    fn get<F: Copy>(&self, name: &str) -> F {
        let cname = CString::new(name).unwrap();
        // SAFETY: a live handle and a valid C string.
        let sym = unsafe { libc::dlsym(self.0, cname.as_ptr()) };
        assert!(!sym.is_null(), "{name} is not exported");
        assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
        // SAFETY: F is the function pointer type glibc uses for this symbol.
        unsafe { std::mem::transmute_copy(&sym) }
    }
}

fn passwd() -> libc::passwd {
    libc::passwd {
        pw_name: ptr::null_mut(),
        pw_passwd: ptr::null_mut(),
        pw_uid: 0,
        pw_gid: 0,
        pw_gecos: ptr::null_mut(),
        pw_dir: ptr::null_mut(),
        pw_shell: ptr::null_mut(),
    }
}

fn group() -> libc::group {
    libc::group {
        gr_name: ptr::null_mut(),
        gr_passwd: ptr::null_mut(),
        gr_gid: 0,
        gr_mem: ptr::null_mut(),
    }
}

fn spwd() -> libc::spwd {
    libc::spwd {
        sp_namp: ptr::null_mut(),
        sp_pwdp: ptr::null_mut(),
        sp_lstchg: 0,
        sp_min: 0,
        sp_max: 0,
        sp_warn: 0,
        sp_inact: 0,
        sp_expire: 0,
        sp_flag: 0,
    }
}

fn s(p: *const c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: the module wrote a NUL-terminated string into our buffer.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn passwd_line(p: &libc::passwd) -> String {
    format!(
        "{}:{}:{}:{}:{}:{}:{}",
        s(p.pw_name),
        s(p.pw_passwd),
        p.pw_uid,
        p.pw_gid,
        s(p.pw_gecos),
        s(p.pw_dir),
        s(p.pw_shell)
    )
}

/// Reads `gr_mem` the way a Rust program does: as a slice. A debug build checks the alignment
/// of the array and of every element read and aborts if it is wrong.
fn group_line(g: &libc::group) -> String {
    let mut count = 0;
    // SAFETY: gr_mem is a NULL-terminated array inside our buffer.
    while unsafe { !(*g.gr_mem.add(count)).is_null() } {
        count += 1;
    }
    // SAFETY: `count` initialized pointers precede the terminator.
    let members = unsafe { std::slice::from_raw_parts(g.gr_mem, count) };
    let members: Vec<String> = members.iter().map(|&m| s(m)).collect();
    format!(
        "{}:{}:{}:{}",
        s(g.gr_name),
        s(g.gr_passwd),
        g.gr_gid,
        members.join(",")
    )
}

fn record(text: &str) -> UserRecord {
    UserRecord::parse(text.as_bytes(), RecordOrigin::Host).unwrap()
}

/// alice's group has two members from the other records; carol is locked.
fn publish_users(key: &SigningKey) {
    let machine = MachineContext::local().unwrap();
    for text in [
        r#"{"userName":"alice","uid":60100,"realName":"Alice Ärger","disposition":"regular","storage":"directory","privileged":{"hashedPassword":["$y$j9T$alicesalt$alicehash"]}}"#,
        r#"{"userName":"bob","uid":60101,"memberOf":["alice","users"],"shell":"/bin/sh","disposition":"regular","storage":"directory","privileged":{"hashedPassword":["$y$j9T$bobsalt$bobhash"]}}"#,
        r#"{"userName":"carol","uid":60102,"memberOf":["alice"],"locked":true,"disposition":"regular","storage":"directory"}"#,
    ] {
        let r = record(text);
        publish::publish(Path::new(PUBLISH_DIR), &r.view(&machine), key).unwrap();
    }
}

fn tasks() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

const ALICE: &str = "alice:x:60100:60100:Alice Ärger:/home/alice:/bin/bash";
const BOB: &str = "bob:x:60101:60101:bob:/home/bob:/bin/sh";

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn module_keeps_glibc_abi() {
    if !in_world() {
        rerun_in_world("module_keeps_glibc_abi", &[], 300);
        return;
    }
    let key = SigningKey::generate().unwrap();
    publish_users(&key);
    let tasks_before = tasks();
    let m = Module::open();
    let getpwnam: ByName<libc::passwd> = m.get("_nss_homed_getpwnam_r");
    let getpwuid: ById<libc::passwd> = m.get("_nss_homed_getpwuid_r");
    let getgrnam: ByName<libc::group> = m.get("_nss_homed_getgrnam_r");
    let getgrgid: ById<libc::group> = m.get("_nss_homed_getgrgid_r");
    let getspnam: ByName<libc::spwd> = m.get("_nss_homed_getspnam_r");
    let setpwent: SetEnt = m.get("_nss_homed_setpwent");
    let getpwent: GetEnt<libc::passwd> = m.get("_nss_homed_getpwent_r");
    let setgrent: SetEnt = m.get("_nss_homed_setgrent");
    let getgrent: GetEnt<libc::group> = m.get("_nss_homed_getgrent_r");
    let setspent: SetEnt = m.get("_nss_homed_setspent");
    let getspent: GetEnt<libc::spwd> = m.get("_nss_homed_getspent_r");
    let initgroups: InitGroups = m.get("_nss_homed_initgroups_dyn");
    let _: SetEnt = m.get("_nss_homed_setsgent");
    for end in ["endpwent", "endgrent", "endspent", "endsgent"] {
        let _: unsafe extern "C" fn() -> c_int = m.get(&format!("_nss_homed_{end}"));
    }

    let alice = CString::new("alice").unwrap();
    let mut buf = vec![0u64; 1024];
    let base = buf.as_mut_ptr().cast::<c_char>();
    let mut errno: c_int = 0;

    // A too-small buffer: TRYAGAIN with ERANGE, then success with a bigger one.
    let mut pw = passwd();
    // SAFETY: valid pointers; 8 is within the buffer.
    let st = unsafe { getpwnam(alice.as_ptr(), &mut pw, base, 8, &mut errno) };
    assert_eq!((st, errno), (NSS_STATUS_TRYAGAIN, libc::ERANGE));
    // The strings need 43 bytes: one less is too small, exactly that is enough.
    for len in [20, 40, 42] {
        errno = 0;
        // SAFETY: as above.
        let st = unsafe { getpwnam(alice.as_ptr(), &mut pw, base, len, &mut errno) };
        assert_eq!(
            (st, errno),
            (NSS_STATUS_TRYAGAIN, libc::ERANGE),
            "buflen {len}"
        );
    }
    // SAFETY: as above.
    let st = unsafe { getpwnam(alice.as_ptr(), &mut pw, base, 43, &mut errno) };
    assert_eq!(st, NSS_STATUS_SUCCESS);
    assert_eq!(passwd_line(&pw), ALICE);
    // SAFETY: as above.
    let st = unsafe { getpwuid(60101, &mut pw, base, 8192, &mut errno) };
    assert_eq!(st, NSS_STATUS_SUCCESS);
    assert_eq!(passwd_line(&pw), BOB);

    // NOTFOUND sets ENOENT, by name and by number.
    let nosuch = CString::new("nosuch").unwrap();
    errno = 0;
    // SAFETY: as above.
    let st = unsafe { getpwnam(nosuch.as_ptr(), &mut pw, base, 8192, &mut errno) };
    assert_eq!((st, errno), (NSS_STATUS_NOTFOUND, libc::ENOENT));
    errno = 0;
    // SAFETY: as above.
    let st = unsafe { getpwuid(60199, &mut pw, base, 8192, &mut errno) };
    assert_eq!((st, errno), (NSS_STATUS_NOTFOUND, libc::ENOENT));

    // Group member arrays are aligned wherever the caller's buffer starts.
    let mut gr = group();
    for offset in 0..8 {
        // SAFETY: offset < 8 stays inside the 8 KiB buffer.
        let at = unsafe { base.add(offset) };
        // SAFETY: as above, with room to spare.
        let st = unsafe { getgrnam(alice.as_ptr(), &mut gr, at, 4096, &mut errno) };
        assert_eq!(st, NSS_STATUS_SUCCESS);
        assert_eq!(gr.gr_mem as usize % std::mem::align_of::<*mut c_char>(), 0);
        assert_eq!(group_line(&gr), "alice:x:60100:bob,carol");
        // SAFETY: as above.
        let st = unsafe { getgrnam(alice.as_ptr(), &mut gr, at, 30, &mut errno) };
        assert_eq!((st, errno), (NSS_STATUS_TRYAGAIN, libc::ERANGE));
    }
    // SAFETY: as above.
    let st = unsafe { getgrgid(60101, &mut gr, base, 4096, &mut errno) };
    assert_eq!(st, NSS_STATUS_SUCCESS);
    assert_eq!(group_line(&gr), "bob:x:60101:");

    // gshadow: the per-user group as nss-systemd shows it (`alice:!*::`), arrays aligned.
    #[repr(C)]
    struct Sgrp {
        sg_namp: *mut c_char,
        sg_passwd: *mut c_char,
        sg_adm: *mut *mut c_char,
        sg_mem: *mut *mut c_char,
    }
    let getsgnam: ByName<Sgrp> = m.get("_nss_homed_getsgnam_r");
    let mut sg = Sgrp {
        sg_namp: ptr::null_mut(),
        sg_passwd: ptr::null_mut(),
        sg_adm: ptr::null_mut(),
        sg_mem: ptr::null_mut(),
    };
    // SAFETY: as above, at an odd address inside the buffer.
    let st = unsafe {
        getsgnam(
            alice.as_ptr(),
            &mut sg,
            base.wrapping_add(5),
            4096,
            &mut errno,
        )
    };
    assert_eq!(st, NSS_STATUS_SUCCESS);
    // SAFETY: both arrays are NULL-terminated arrays inside the buffer; reading them as slices
    // checks their alignment in a debug build.
    let (adm, mem) = unsafe {
        (
            std::slice::from_raw_parts(sg.sg_adm, 1),
            std::slice::from_raw_parts(sg.sg_mem, 1),
        )
    };
    assert!(adm[0].is_null() && mem[0].is_null());
    assert_eq!(
        (s(sg.sg_namp), s(sg.sg_passwd)),
        ("alice".into(), "!*".into())
    );

    // Shadow as root, from the root-only file.
    let mut sp = spwd();
    // SAFETY: as above.
    let st = unsafe { getspnam(alice.as_ptr(), &mut sp, base, 4096, &mut errno) };
    assert_eq!(st, NSS_STATUS_SUCCESS);
    assert_eq!(s(sp.sp_pwdp), "$y$j9T$alicesalt$alicehash");
    assert_eq!(
        (sp.sp_lstchg, sp.sp_expire, sp.sp_flag),
        (-1, -1, libc::c_ulong::MAX)
    );

    // Enumeration: each user once, in order; a too-small buffer repeats the same entry; a new
    // setpwent starts over.
    for _round in 0..2 {
        // SAFETY: plain call.
        assert_eq!(unsafe { setpwent(0) }, NSS_STATUS_SUCCESS);
        let mut names = Vec::new();
        // SAFETY: as above.
        let st = unsafe { getpwent(&mut pw, base, 4, &mut errno) };
        assert_eq!((st, errno), (NSS_STATUS_TRYAGAIN, libc::ERANGE));
        loop {
            errno = 0;
            // SAFETY: as above.
            let st = unsafe { getpwent(&mut pw, base, 4096, &mut errno) };
            if st != NSS_STATUS_SUCCESS {
                assert_eq!((st, errno), (NSS_STATUS_NOTFOUND, libc::ENOENT));
                break;
            }
            names.push(s(pw.pw_name));
        }
        assert_eq!(names, ["alice", "bob", "carol"]);
    }
    // SAFETY: plain call.
    assert_eq!(unsafe { setgrent(0) }, NSS_STATUS_SUCCESS);
    let mut groups = Vec::new();
    // SAFETY: as above.
    while unsafe { getgrent(&mut gr, base.wrapping_add(3), 4096, &mut errno) } == NSS_STATUS_SUCCESS
    {
        groups.push(group_line(&gr));
    }
    assert_eq!(
        groups,
        ["alice:x:60100:bob,carol", "bob:x:60101:", "carol:x:60102:"]
    );
    // SAFETY: plain call.
    assert_eq!(unsafe { setspent(0) }, NSS_STATUS_SUCCESS);
    let mut shadow = Vec::new();
    // SAFETY: as above.
    while unsafe { getspent(&mut sp, base, 4096, &mut errno) } == NSS_STATUS_SUCCESS {
        shadow.push((s(sp.sp_namp), s(sp.sp_pwdp), sp.sp_expire));
    }
    assert_eq!(shadow.len(), 3);
    assert_eq!(shadow[2], ("carol".into(), "!*".into(), 1));

    // initgroups: alice's group from the module, users (100) through the rest of NSS, the
    // primary group skipped; a limit caps the list.
    let bob = CString::new("bob").unwrap();
    for (limit, expected) in [(-1, vec![60101, 60100, 100]), (2, vec![60101, 60100])] {
        // SAFETY: glibc's contract: a malloc'ed array of `size` GIDs with `start` in use.
        let (mut start, mut size, mut gids) = (1 as c_long, 1 as c_long, unsafe {
            libc::malloc(std::mem::size_of::<u32>()).cast::<u32>()
        });
        // SAFETY: the array has room for one GID.
        unsafe { *gids = 60101 };
        // SAFETY: as above.
        let st = unsafe {
            initgroups(
                bob.as_ptr(),
                60101,
                &mut start,
                &mut size,
                &mut gids,
                limit,
                &mut errno,
            )
        };
        assert_eq!(st, NSS_STATUS_SUCCESS);
        // SAFETY: the module keeps `start` GIDs in the (possibly moved) array.
        let got = unsafe { std::slice::from_raw_parts(gids, start as usize) }.to_vec();
        assert_eq!(got, expected, "limit {limit}");
        assert!(size >= start);
        // SAFETY: the array came from malloc/realloc.
        unsafe { libc::free(gids.cast()) };
    }

    // A panic inside a lookup is caught and reported as UNAVAIL; lookups go on working.
    let panic_name = CString::new(PANIC_NAME).unwrap();
    // SAFETY: as above.
    let st = unsafe { getpwnam(panic_name.as_ptr(), &mut pw, base, 4096, &mut errno) };
    assert_eq!((st, errno), (NSS_STATUS_UNAVAIL, libc::EAGAIN));
    // SAFETY: as above.
    let st = unsafe { getgrnam(panic_name.as_ptr(), &mut gr, base, 4096, &mut errno) };
    assert_eq!(st, NSS_STATUS_UNAVAIL);
    // SAFETY: as above.
    let st = unsafe { getpwnam(alice.as_ptr(), &mut pw, base, 4096, &mut errno) };
    assert_eq!(st, NSS_STATUS_SUCCESS);

    // No thread was started by any of that.
    assert_eq!(tasks(), tasks_before, "the module started a thread");

    // 8 threads × 10,000 lookups give the same answers.
    std::thread::scope(|scope| {
        for t in 0..8u32 {
            scope.spawn(move || {
                let mut buf = vec![0u64; 512];
                let base = buf.as_mut_ptr().cast::<c_char>();
                let mut pw = passwd();
                let mut gr = group();
                let mut errno = 0;
                let names = [CString::new("alice").unwrap(), CString::new("bob").unwrap()];
                for i in 0..10_000u32 {
                    let which = ((i + t) % 2) as usize;
                    let st = match i % 3 {
                        // SAFETY: valid pointers into this thread's buffer.
                        0 => unsafe {
                            getpwnam(names[which].as_ptr(), &mut pw, base, 4096, &mut errno)
                        },
                        // SAFETY: as above.
                        1 => unsafe {
                            getpwuid(60100 + which as u32, &mut pw, base, 4096, &mut errno)
                        },
                        _ => {
                            // SAFETY: as above.
                            let st = unsafe {
                                getgrnam(names[0].as_ptr(), &mut gr, base, 4096, &mut errno)
                            };
                            assert_eq!(st, NSS_STATUS_SUCCESS);
                            assert_eq!(group_line(&gr), "alice:x:60100:bob,carol");
                            continue;
                        }
                    };
                    assert_eq!(st, NSS_STATUS_SUCCESS, "thread {t} lookup {i}");
                    assert_eq!(passwd_line(&pw), [ALICE, BOB][which]);
                }
            });
        }
    });
}

/// Runs `getent`/`id` calls with `env` and returns how long they took together.
fn lookups_with(env: &[(&str, &str)]) -> Duration {
    let started = Instant::now();
    for argv in [
        &["getent", "passwd", "someone"][..],
        &["getent", "passwd", "60123"],
        &["getent", "group", "someone"],
        &["getent", "shadow", "someone"],
        &["getent", "passwd"],
        &["id", "someone"],
    ] {
        let ran = run(argv, env);
        assert!(!ran.stdout.contains("someone"), "{argv:?}: {ran:?}");
    }
    started.elapsed()
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn socket_is_bypassed_on_request_and_never_hangs_a_lookup() {
    if !in_world() {
        rerun_in_world(
            "socket_is_bypassed_on_request_and_never_hangs_a_lookup",
            &[],
            300,
        );
        return;
    }
    use_nsswitch(&example(WITHOUT_SYSTEMD));
    // A service that accepts connections and never answers.
    std::fs::create_dir_all("/run/systemd/userdb").unwrap();
    let listener = UnixListener::bind(HOME_SOCKET).unwrap();
    listener.set_nonblocking(true).unwrap();
    let accepted = || {
        let mut n = 0;
        while listener.accept().is_ok() {
            n += 1;
        }
        n
    };

    // (6) With a bypass switch the socket is never touched.
    for env in [
        ("HOMED_BYPASS_NSS", "1"),
        ("SYSTEMD_BYPASS_USERDB", "io.systemd.Home"),
        (
            "SYSTEMD_BYPASS_USERDB",
            "io.systemd.Machine:io.systemd.Home",
        ),
        ("SYSTEMD_BYPASS_USERDB", "1"),
    ] {
        let took = lookups_with(&[env]);
        assert_eq!(accepted(), 0, "{env:?} reached the socket");
        assert!(took < Duration::from_secs(3), "{env:?}: {took:?}");
    }

    // (4) Without one, a lookup that reaches the silent service gives up after the stated
    // timeout (one second) and reports failure: it never hangs.
    let started = Instant::now();
    let ran = run(&["getent", "passwd", "someone"], &[]);
    let took = started.elapsed();
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(accepted() >= 1, "the lookup did not reach the socket");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "a silent service cost {took:?}"
    );
    eprintln!("lookup against a silent service took {took:?}");

    // (4) With published records an unknown name is NOTFOUND without any connect().
    let key = SigningKey::generate().unwrap();
    publish_users(&key);
    let trace = std::env::var("HOMED_WORLD_STATE").unwrap() + "/connect.trace";
    let status = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=connect", "-o", &trace])
        .args(["getent", "passwd", "nosuch"])
        .env("LD_LIBRARY_PATH", module_dir())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    let connects: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| l.contains("connect(") && !l.contains("/nscd/socket"))
        .map(str::to_owned)
        .collect();
    assert!(connects.is_empty(), "connect() calls: {connects:?}");
    assert_eq!(accepted(), 0);
    // The published user resolves, the silent socket notwithstanding, and fast.
    let started = Instant::now();
    let ran = run(&["getent", "passwd", "alice"], &[]);
    assert_eq!(ran.stdout.trim_end(), ALICE);
    assert!(started.elapsed() < Duration::from_millis(800));
    assert_eq!(accepted(), 0);

    // A panic inside the module neither kills the host nor prints into its stderr.
    let ran = run(&["getent", "passwd", PANIC_NAME], &[]);
    assert_eq!(
        (ran.code, ran.stdout.as_str(), ran.stderr.as_str()),
        (Some(2), "", "")
    );
}
