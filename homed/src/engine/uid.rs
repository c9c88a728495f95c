//! UID allocation (homed-spec §1.9): the suggested UID, then a hash of the user name, then
//! random candidates, each checked against the other homes and the system's user database.

use homed_shared::record::{HOME_UID_MAX, HOME_UID_MIN};

/// The key homed hashes user names with (`a3b882699a71f7a9e07cf6f12169d21e`).
const UID_HASH_KEY: [u8; 16] = [
    0xa3, 0xb8, 0x82, 0x69, 0x9a, 0x71, 0xf7, 0xa9, 0xe0, 0x7c, 0xf6, 0xf1, 0x21, 0x69, 0xd2, 0x1e,
];

/// SipHash-2-4 of `data` under `key`.
pub fn siphash24(data: &[u8], key: &[u8; 16]) -> u64 {
    let k0 = u64::from_le_bytes(key[..8].try_into().unwrap_or_default());
    let k1 = u64::from_le_bytes(key[8..].try_into().unwrap_or_default());
    let mut v0 = k0 ^ 0x736f_6d65_7073_6575;
    let mut v1 = k1 ^ 0x646f_7261_6e64_6f6d;
    let mut v2 = k0 ^ 0x6c79_6765_6e65_7261;
    let mut v3 = k1 ^ 0x7465_6462_7974_6573;
    let round = |v0: &mut u64, v1: &mut u64, v2: &mut u64, v3: &mut u64| {
        *v0 = v0.wrapping_add(*v1);
        *v1 = v1.rotate_left(13) ^ *v0;
        *v0 = v0.rotate_left(32);
        *v2 = v2.wrapping_add(*v3);
        *v3 = v3.rotate_left(16) ^ *v2;
        *v0 = v0.wrapping_add(*v3);
        *v3 = v3.rotate_left(21) ^ *v0;
        *v2 = v2.wrapping_add(*v1);
        *v1 = v1.rotate_left(17) ^ *v2;
        *v2 = v2.rotate_left(32);
    };
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let m = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        v3 ^= m;
        round(&mut v0, &mut v1, &mut v2, &mut v3);
        round(&mut v0, &mut v1, &mut v2, &mut v3);
        v0 ^= m;
    }
    let mut last = [0u8; 8];
    let rest = chunks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    last[7] = data.len() as u8;
    let m = u64::from_le_bytes(last);
    v3 ^= m;
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    v0 ^= m;
    v2 ^= 0xff;
    for _ in 0..4 {
        round(&mut v0, &mut v1, &mut v2, &mut v3);
    }
    v0 ^ v1 ^ v2 ^ v3
}

/// The UID homed derives from a user name, the same on every machine.
pub fn hashed_uid(user_name: &str) -> u32 {
    // homed truncates the hash to a uid_t before taking the remainder.
    let hash = siphash24(user_name.as_bytes(), &UID_HASH_KEY) as u32;
    HOME_UID_MIN + hash % (HOME_UID_MAX - HOME_UID_MIN + 1)
}

/// Whether the system's user or group database knows `id` (through NSS; the daemon's own
/// environment keeps these lookups from coming back to it).
pub fn known_to_system(id: u32) -> bool {
    use nix::unistd::{Gid, Group, Uid, User};
    matches!(User::from_uid(Uid::from_raw(id)), Ok(Some(_)))
        || matches!(Group::from_gid(Gid::from_raw(id)), Ok(Some(_)))
}

/// Whether the system's user or group database knows `name`.
pub fn name_known_to_system(name: &str) -> bool {
    use nix::unistd::{Group, User};
    matches!(User::from_name(name), Ok(Some(_))) || matches!(Group::from_name(name), Ok(Some(_)))
}

/// Picks a UID for `user_name`: `suggested` first (if in range), the hashed UID next, then
/// random ones; `in_use` says whether another home has a UID. Up to 100 candidates.
pub fn allocate(
    user_name: &str,
    suggested: Option<u32>,
    in_use: impl Fn(u32) -> bool,
) -> Option<u32> {
    let usable = |uid: u32| !in_use(uid) && !known_to_system(uid);
    let mut candidates = Vec::with_capacity(100);
    if let Some(s) = suggested.filter(|s| (HOME_UID_MIN..=HOME_UID_MAX).contains(s)) {
        candidates.push(s);
    }
    candidates.push(hashed_uid(user_name));
    while candidates.len() < 100 {
        let mut b = [0u8; 4];
        if getrandom_fill(&mut b).is_err() {
            break;
        }
        let span = HOME_UID_MAX - HOME_UID_MIN + 1;
        candidates.push(HOME_UID_MIN + u32::from_le_bytes(b) % span);
    }
    candidates.into_iter().find(|&uid| usable(uid))
}

fn getrandom_fill(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_reference_vector() {
        // The first vector of the SipHash paper: key 00..0f, empty message.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert_eq!(siphash24(b"", &key), 0x726f_db47_dd0e_0e31);
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(siphash24(&msg, &key), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn same_uids_as_systemd_homed() {
        // UIDs systemd-homed 252 gave these users (fixtures/homed-252/records).
        assert_eq!(hashed_uid("bob"), 60076);
        assert_eq!(hashed_uid("alice"), 60456);
        assert_eq!(hashed_uid("carol"), 60299);
    }
}
