//! Prints the home root the record code uses (`$SYSTEMD_HOME_ROOT`, or `/home`). The tests run
//! a setuid copy of it to show that a caller's environment cannot choose it there.

fn main() {
    println!("{}", homed_shared::record::home_root());
}
