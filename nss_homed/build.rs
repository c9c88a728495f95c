//! Link settings for the cdylib, which is loaded into every process that looks up a user:
//! - the unwinder (needed to catch panics at the exports) is linked in statically from
//!   `libgcc_eh.a` instead of loading `libgcc_s.so.1`, one shared object fewer to find, map and
//!   relocate in each process that loads the module;
//! - a version script exports only the `_nss_homed_*` entry points.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let target = env::var("TARGET").unwrap_or_default();
    if !target.contains("linux-gnu") {
        return;
    }
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    // std asks for `-lgcc_s`; a linker script of that name found first on the search path
    // turns the request into the static unwinder.
    let shim = out.join("static-unwind");
    if fs::create_dir_all(&shim).is_ok()
        && fs::write(shim.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n").is_ok()
    {
        println!("cargo::rustc-link-search=native={}", shim.display());
    }
    let script = out.join("exports.map");
    if fs::write(&script, "{\n  global: _nss_homed_*;\n  local: *;\n};\n").is_ok() {
        println!(
            "cargo::rustc-cdylib-link-arg=-Wl,--version-script={}",
            script.display()
        );
    }
}
