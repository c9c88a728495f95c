//! A PKCS#11 token for the tests: SoftHSM2 (a real PKCS#11 module, registered with p11-kit)
//! with its token folder in the world's /run, so that each world has its own token and a test
//! can take it away by moving the folder.

/// Where the token lives, inside a world.
pub const SOFTHSM_DIR: &str = "/run/homed-world/softhsm";
/// SoftHSM's configuration, for `SOFTHSM2_CONF` of the daemons and of homectl.
pub const SOFTHSM_CONF: &str = "/run/homed-world/softhsm/softhsm2.conf";
/// The token's user PIN.
pub const PIN: &str = "123456";

/// Makes the token (sh): `tests/sandbox/softhsm-token.sh`, which says what it makes. Sets `H`
/// to the token's folder and exports `SOFTHSM2_CONF`.
pub const SETUP: &str = include_str!("../sandbox/softhsm-token.sh");

/// A second token, `homed-ec` (sh, after [`SETUP`]): the same PIN, an EC key on P-256 and its
/// self-signed certificate. Exits 21..26 at the step that failed.
pub const SETUP_EC: &str = r#"
softhsm2-util --init-token --free --label homed-ec --so-pin 12345678 --pin ${TOKEN_PIN:-123456} >/dev/null || exit 21
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $H/ec-key.pem -out $H/ec-cert.pem -days 3650 -subj /CN=homed-ec 2>/dev/null || exit 22
openssl x509 -in $H/ec-cert.pem -outform der -out $H/ec-cert.der || exit 23
openssl pkey -in $H/ec-key.pem -outform der -out $H/ec-key.der || exit 24
# Imported with CKA_DERIVE, as a card's key-management key has it (softhsm2-util sets none).
pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label homed-ec --login --pin ${TOKEN_PIN:-123456} \
    --write-object $H/ec-key.der --type privkey --id 02 --label eckey --usage-derive >/dev/null 2>&1 || exit 25
pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label homed-ec --login --pin ${TOKEN_PIN:-123456} \
    --write-object $H/ec-cert.der --type cert --id 02 --label eckey >/dev/null 2>&1 || exit 26
"#;
