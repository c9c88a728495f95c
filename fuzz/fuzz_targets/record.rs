//! Untrusted record text through everything that reads it: parse under each origin, homed's
//! rules, every accessor, the signature check and the trust decision. Beyond "no panic", it
//! checks one invariant: the canonical text of an accepted record parses back to itself.

#![no_main]

use homed_shared::record::{Secret, check_suitable_for_homed};
use homed_shared::signing::{PublicKey, TrustedKeys, check_signature};
use homed_shared::{MachineContext, RecordOrigin, UserRecord};
use libfuzzer_sys::fuzz_target;

const FIXTURE_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAIF7lUWyux3qOB8+1bUCEbnFTFxmbnWwHElMffC9kbGY=\n-----END PUBLIC KEY-----\n";

fuzz_target!(|data: &[u8]| {
    let _ = Secret::parse(data);
    let machine = MachineContext::new("3d1219c7c4c5404aaa1f6d2a48adfda4", Some("host".into()));
    let key = PublicKey::from_pem(FIXTURE_PUBLIC_KEY).expect("fixture key");
    let keys = TrustedKeys::new(None, vec![("fixture.public".into(), key.clone())]);
    for origin in [RecordOrigin::Embedded, RecordOrigin::Host, RecordOrigin::Request] {
        let Ok(record) = UserRecord::parse(data, origin) else {
            continue;
        };
        let view = record.view(&machine);
        let _ = check_suitable_for_homed(&view, false);
        let _ = (view.uid(), view.gid(), view.gecos(), view.home_directory(), view.shell());
        let _ = (view.image_path(), view.member_of(), view.hashed_passwords(), view.disposition());
        let _ = check_signature(&record, &key);
        let _ = keys.verdict(&record);
        let canonical = record.to_compact_string();
        let again = UserRecord::parse(canonical.as_bytes(), origin).expect("canonical text parses");
        assert_eq!(again.to_compact_string(), canonical);
        let pretty = record.to_pretty_string();
        let again = UserRecord::parse(pretty.as_bytes(), origin).expect("pretty text parses");
        assert_eq!(again, record);
    }
});
