//! homed: the `org.freedesktop.home1` daemon.

mod bus;
mod engine;
mod sleep;
mod userdb;
mod wiping_alloc;
mod worker;

use std::process::ExitCode;
use std::sync::Arc;

use engine::{Engine, Paths, SleepMode};

/// Freed and moved-from memory is wiped: secrets leave no copies behind in freed blocks.
#[global_allocator]
static ALLOCATOR: wiping_alloc::WipingAllocator = wiping_alloc::WipingAllocator;

/// Set to 1, a debug build of the daemon stays dumpable (the kernel may write a core dump of it).
const KEEP_DUMPABLE_VAR: &str = "HOMED_TEST_KEEP_DUMPABLE";

const USAGE: &str = "usage: homed [--sleep=systemd|elogind|inhibitor]

Serves org.freedesktop.home1 on the system bus and io.systemd.UserDatabase at
/run/systemd/userdb/io.systemd.Home.

  --sleep=systemd    systemd-sleep calls LockAllHomes before suspend (default)
  --sleep=elogind    elogind's system-sleep hook calls LockAllHomes
  --sleep=inhibitor  take a delay inhibitor on org.freedesktop.login1 and lock on
                     PrepareForSleep(true)";

fn parse_args(args: &[String]) -> Result<SleepMode, String> {
    let mut mode = SleepMode::Systemd;
    for arg in args {
        match arg.as_str() {
            "--sleep=systemd" => mode = SleepMode::Systemd,
            "--sleep=elogind" => mode = SleepMode::Elogind,
            "--sleep=inhibitor" => mode = SleepMode::Inhibitor,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(mode)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(worker::WORKER_ARG) {
        return ExitCode::from(worker::main() as u8);
    }
    let sleep_mode = match parse_args(&args) {
        Ok(m) => m,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("homed: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if why.is_empty() { 0 } else { 2 });
        }
    };
    // SAFETY: still single-threaded: no runtime or other thread exists yet, so nothing reads
    // the environment concurrently. These keep our own user lookups (and those of the workers)
    // from coming back to us through nss-systemd or nss_homed.
    unsafe {
        std::env::set_var("SYSTEMD_BYPASS_USERDB", "io.systemd.Home");
        std::env::set_var("HOMED_BYPASS_NSS", "1");
    }
    // Passwords pass through this process: no core dumps, no ptrace by non-root. The VM test
    // that shows a core dump holds no secret after a lock needs a dump, so it alone asks for one
    // (debug builds only, as the other test hooks).
    if cfg!(debug_assertions) && std::env::var_os(KEEP_DUMPABLE_VAR).is_some_and(|v| v == "1") {
        eprintln!("homed: {KEEP_DUMPABLE_VAR}=1: core dumps stay enabled (for tests only)");
    } else if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("homed: cannot make the process non-dumpable: {e}");
    }
    raise_descriptor_limit();
    let machine = match homed_shared::MachineContext::local() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("homed: cannot read the machine id: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("homed: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(machine, sleep_mode))
}

async fn run(machine: homed_shared::MachineContext, sleep_mode: SleepMode) -> ExitCode {
    let _ = bus::RUNTIME.set(tokio::runtime::Handle::current());
    let exe = std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| "/proc/self/exe".into());
    let worker = Arc::new(worker::client::ProcessWorker { exe });
    let engine = Engine::load(machine, Paths::default(), worker, sleep_mode);
    engine.adopt_active_homes();
    let (conn, _objects) = match bus::serve(engine.clone()).await {
        Ok(c) => c,
        Err(bus::StartError::NameTaken) => {
            eprintln!(
                "homed: {} is owned by another process (systemd-homed or another homed); refusing to start",
                bus::BUS_NAME
            );
            return ExitCode::FAILURE;
        }
        Err(bus::StartError::Bus(e)) => {
            eprintln!("homed: cannot serve on the system bus: {e}");
            return ExitCode::FAILURE;
        }
    };
    if engine.sleep_mode == SleepMode::Inhibitor {
        let (conn, engine) = (conn.clone(), engine.clone());
        if let Err(e) = std::thread::Builder::new()
            .name("sleep".into())
            .spawn(move || zbus::block_on(sleep::run_inhibitor(conn, engine)))
        {
            eprintln!("homed: cannot watch for sleep: {e}");
        }
    }
    match userdb::serve(Arc::clone(&engine)) {
        Ok(()) => {}
        Err(e) => eprintln!("homed: cannot serve io.systemd.UserDatabase: {e}"),
    }
    eprintln!(
        "homed: serving {} with {} home(s), sleep handled by {:?}",
        bus::BUS_NAME,
        engine.homes().len(),
        engine.sleep_mode
    );
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("homed: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(conn);
    eprintln!("homed: stopping; active homes stay mounted");
    ExitCode::SUCCESS
}

/// Raises the soft descriptor limit to the hard one: the userdb socket is open to every local
/// user, and its connection cap is a share of this limit (the usual soft 1024 of a daemon
/// started without systemd would leave little for logins and workers).
fn raise_descriptor_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        eprintln!("homed: cannot raise the descriptor limit to {hard}: {e}");
    }
}
