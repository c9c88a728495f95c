//! Module arguments (`suspend=`, `debug`, `retries=N`) and `$SYSTEMD_HOME_SUSPEND`.

use std::ffi::CStr;

/// How many times the module asks homed before it gives up, as pam_systemd_home does.
pub const DEFAULT_RETRIES: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub please_suspend: bool,
    pub debug: bool,
    pub retries: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            please_suspend: false,
            debug: false,
            retries: DEFAULT_RETRIES,
        }
    }
}

/// systemd's boolean words.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

impl Options {
    /// Reads the environment default first (PAM environment, then the process's, the latter
    /// through `secure_getenv`), then the arguments, which win. Arguments the module does not
    /// know are returned so that the caller can log them.
    pub fn parse<'a>(
        env_suspend: Option<&str>,
        args: impl IntoIterator<Item = &'a CStr>,
    ) -> (Options, Vec<String>) {
        let mut options = Options::default();
        let mut unknown = Vec::new();
        if let Some(v) = env_suspend.and_then(parse_bool) {
            options.please_suspend = v;
        }
        for arg in args {
            let arg = arg.to_string_lossy();
            if let Some(v) = arg.strip_prefix("suspend=") {
                match parse_bool(v) {
                    Some(b) => options.please_suspend = b,
                    None => unknown.push(arg.into_owned()),
                }
            } else if arg == "debug" {
                options.debug = true;
            } else if let Some(v) = arg.strip_prefix("debug=") {
                match parse_bool(v) {
                    Some(b) => options.debug = b,
                    None => unknown.push(arg.into_owned()),
                }
            } else if let Some(v) = arg.strip_prefix("retries=") {
                match v.parse::<u32>() {
                    Ok(n) if n >= 1 => options.retries = n,
                    _ => unknown.push(arg.into_owned()),
                }
            } else {
                unknown.push(arg.into_owned());
            }
        }
        (options, unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_override_the_environment() {
        let (o, unknown) = Options::parse(Some("yes"), [c"debug", c"suspend=no", c"retries=3"]);
        assert_eq!(
            o,
            Options {
                please_suspend: false,
                debug: true,
                retries: 3
            }
        );
        assert!(unknown.is_empty());
        let (o, _) = Options::parse(Some("1"), []);
        assert!(o.please_suspend);
        assert_eq!(o.retries, DEFAULT_RETRIES);
    }

    #[test]
    fn bad_arguments_are_reported_and_ignored() {
        let (o, unknown) = Options::parse(None, [c"retries=0", c"suspend=maybe", c"frobnicate"]);
        assert_eq!(o, Options::default());
        assert_eq!(unknown, ["retries=0", "suspend=maybe", "frobnicate"]);
    }
}
