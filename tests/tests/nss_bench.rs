//! A helper for `benches/nss.sh`, not a test: inside the benchmark's world it publishes the users
//! of the running daemon the way our daemon does, so the benchmark can time lookups from
//! published records. Ignored by `cargo test`.

use homed_shared::signing::SigningKey;
use homed_tests::nss::{in_world, publish_from_daemon};

#[test]
#[ignore = "run by benches/nss.sh inside its world"]
fn nss_bench_publish_daemon_users() {
    assert!(in_world(), "run by benches/nss.sh inside its world");
    let key = SigningKey::generate().unwrap();
    let names = publish_from_daemon(&key);
    println!("published: {}", names.join(" "));
}
