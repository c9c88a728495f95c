//! Recovery keys as systemd-homed makes them: 256 random bits written in modhex (the YubiKey
//! alphabet, which reads the same on any keyboard layout), in 8 dash-separated groups of 8.
//! They are stored and checked like passwords (`privileged.recoveryKey[].hashedPassword`), and
//! users may type them in either case, with or without the dashes.

use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

/// The one recovery key type there is (`recoveryKeyType`, `recoveryKey[].type`).
pub const MODHEX64: &str = "modhex64";

/// modhex: the character for each nibble value 0–15.
const ALPHABET: &[u8; 16] = b"cbdefghijklnrtuv";
const KEY_BYTES: usize = 32;
const GROUP: usize = 8;
/// 64 modhex characters and 7 dashes.
const FORMATTED_LENGTH: usize = KEY_BYTES * 2 + KEY_BYTES * 2 / GROUP - 1;

/// A new recovery key in its canonical form (lower case, dashed).
pub fn generate() -> Result<SecretString, getrandom::Error> {
    let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
    getrandom::fill(bytes.as_mut())?;
    let mut text = Zeroizing::new(String::with_capacity(FORMATTED_LENGTH));
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 && i % (GROUP / 2) == 0 {
            text.push('-');
        }
        text.push(char::from(ALPHABET[usize::from(byte >> 4)]));
        text.push(char::from(ALPHABET[usize::from(byte & 0x0f)]));
    }
    Ok(SecretString::from(text.as_str().to_owned()))
}

/// The canonical form of `input` when it is a modhex64 recovery key: exactly 64 modhex
/// characters, or 71 with a dash after every 8, in either case. Anything else is not a
/// recovery key (most likely an ordinary password) and gives `None`.
pub fn normalize(input: &SecretString) -> Option<SecretString> {
    let bytes = input.expose_secret().as_bytes();
    let dashed = match bytes.len() {
        FORMATTED_LENGTH => true,
        n if n == KEY_BYTES * 2 => false,
        _ => return None,
    };
    let mut text = Zeroizing::new(String::with_capacity(FORMATTED_LENGTH));
    let mut digits = 0;
    for (i, &c) in bytes.iter().enumerate() {
        if dashed && i % (GROUP + 1) == GROUP {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let lower = c.to_ascii_lowercase();
        if !ALPHABET.contains(&lower) {
            return None;
        }
        if digits > 0 && digits % GROUP == 0 {
            text.push('-');
        }
        text.push(char::from(lower));
        digits += 1;
    }
    Some(SecretString::from(text.as_str().to_owned()))
}

/// Whether `input` is the recovery key of `kind` that `hash` was made from.
pub fn verify(input: &SecretString, kind: &str, hash: &str) -> bool {
    if kind != MODHEX64 {
        // Unknown types are compared as given, as systemd-homed does.
        return super::verify_password(input, hash);
    }
    normalize(input).is_some_and(|key| super::verify_password(&key, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    /// A key systemd-homed 252 generated (tokens.md, 4.1).
    const KEY_252: &str = "veehvicu-ningglid-ejbjcldv-tgjtlhdb-vrrjkuec-nrujncni-errgehdf-ugnflgfn";

    #[test]
    fn generated_keys_have_the_modhex64_shape_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        let text = a.expose_secret();
        assert_eq!(text.len(), 71);
        let groups: Vec<&str> = text.split('-').collect();
        assert_eq!(groups.len(), 8);
        for group in groups {
            assert_eq!(group.len(), 8);
            assert!(group.bytes().all(|c| ALPHABET.contains(&c)), "{group}");
        }
        assert_ne!(text, b.expose_secret());
        assert_eq!(normalize(&a).unwrap().expose_secret(), text);
    }

    #[test]
    fn keys_are_accepted_in_either_case_with_or_without_dashes() {
        let forms = [
            KEY_252.to_owned(),
            KEY_252.to_uppercase(),
            KEY_252.replace('-', ""),
            KEY_252.to_uppercase().replace('-', ""),
        ];
        for form in forms {
            let normal = normalize(&secret(&form)).unwrap();
            assert_eq!(normal.expose_secret(), KEY_252, "{form}");
        }
    }

    #[test]
    fn other_strings_are_not_recovery_keys() {
        let spaced = KEY_252.replace('-', " ");
        let misplaced = format!("{}-{}", &KEY_252[..7], &KEY_252[8..]);
        let foreign = KEY_252.replace('v', "a");
        for input in ["", "hunter2", &KEY_252[1..], &spaced, &misplaced, &foreign] {
            assert!(normalize(&secret(input)).is_none(), "{input:?}");
        }
    }

    #[test]
    fn a_key_verifies_against_the_hash_of_its_canonical_form_only() {
        let hash = super::super::hash_password(&secret(KEY_252)).unwrap();
        assert!(verify(&secret(&KEY_252.to_uppercase()), MODHEX64, &hash));
        assert!(verify(&secret(&KEY_252.replace('-', "")), MODHEX64, &hash));
        let other = generate().unwrap();
        assert!(!verify(&other, MODHEX64, &hash));
        // A type that is not modhex64 is compared as typed.
        assert!(verify(&secret(KEY_252), "other", &hash));
        assert!(!verify(&secret(&KEY_252.to_uppercase()), "other", &hash));
    }
}
