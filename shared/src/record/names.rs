//! User and group name rules (systemd's `valid_user_group_name`).

/// The strict rule homed applies to names it creates: a letter or `_`, then letters, digits,
/// `_` and `-`, at most 31 bytes (utmp's limit).
pub fn is_valid_strict(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some((&first, rest)) = bytes.split_first() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == b'_')
        && rest
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && bytes.len() <= 31
}

/// The relaxed rule used when reading records and answering lookups: anything that cannot be
/// confused with a number, a path or a passwd line.
pub fn is_valid_relaxed(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.chars().any(|c| c.is_control() || c == ':' || c == '/')
        && !name.bytes().all(|b| b.is_ascii_digit())
        && !name.starts_with('-')
        && name != "."
        && name != ".."
        && !name.starts_with(char::is_whitespace)
        && !name.ends_with(char::is_whitespace)
}

/// Why `name` is refused under the relaxed rule, or `None` if it is fine.
pub fn relaxed_violation(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > 255 {
        Some("must be at most 255 bytes long")
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if name.contains(':') || name.contains('/') {
        Some("must not contain ':' or '/'")
    } else if name.bytes().all(|b| b.is_ascii_digit()) {
        Some("must not be all digits")
    } else if name == "." || name == ".." {
        Some("must not be '.' or '..'")
    } else if name.starts_with('-') {
        Some("must not start with '-'")
    } else if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        Some("must not start or end with white space")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_names() {
        for ok in ["alice", "_x", "a-b_c9", &"a".repeat(31)] {
            assert!(is_valid_strict(ok), "{ok}");
        }
        for bad in ["", "9a", "a.b", "a/b", "a b", "é", &"a".repeat(32), "-a"] {
            assert!(!is_valid_strict(bad), "{bad}");
        }
    }

    #[test]
    fn relaxed_names() {
        for ok in ["alice", "john.doe", "Ünïcode", "a b"] {
            assert!(is_valid_relaxed(ok), "{ok}");
            assert_eq!(relaxed_violation(ok), None);
        }
        for bad in [
            "", "123", "a/b", "a:b", "..", ".", "a\nb", "\u{7f}x", " a", "-x",
        ] {
            assert!(!is_valid_relaxed(bad), "{bad:?}");
            assert!(relaxed_violation(bad).is_some(), "{bad:?}");
        }
    }
}
