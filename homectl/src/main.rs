//! `homectl`: create, inspect and manage home directories through `org.freedesktop.home1`,
//! with the verbs, options, output and exit status of systemd's homectl 252.

mod bus;
mod color;
mod help;
mod identity;
mod log;
mod ojson;
mod options;
mod pager;
mod password;
mod pkcs11;
mod polkit;
mod show;
mod sys;
mod units;
mod userdb;
mod verbs;

use std::process::ExitCode;

fn main() -> ExitCode {
    let secrets = password::EnvSecrets::take_from_environment();
    let program = std::env::args().next().unwrap_or_else(|| "homectl".into());
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let opts = match options::parse(&argv) {
        Ok(options::Parsed::Run(o)) => *o,
        Ok(options::Parsed::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // getopt's messages name the program as it was invoked.
            match e.strip_prefix("homectl: ") {
                Some(rest) => eprintln!("{program}: {rest}"),
                None => log::error(&e),
            }
            return ExitCode::FAILURE;
        }
    };
    let status = verbs::dispatch(opts, secrets);
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}
