//! Issue 6, acceptance 5 (host, no VM): the image systemd-homed 252 made gives, with nothing but
//! the password, its volume key and then the record in its `systemd-homed` token, and that record
//! verifies against the key that signed it.

use std::fs;

use homed_shared::signing::{PublicKey, SignatureCheck, TrustedKeys, check_signature};
use homed_shared::{RecordOrigin, UserRecord};
use homed_storage::luks::{HOME_PARTITION_TYPE, LuksError, LuksImage, read_home_partition};
use homed_tests::luks::{DAVE_PASSWORD, dave_image, enter_world, luks_fixture, scratch, secret};

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn fixture_token_opens_with_the_password_alone_and_verifies() {
    if !enter_world("fixture_token_opens_with_the_password_alone_and_verifies") {
        return;
    }
    let dir = scratch("fixture-token");
    let image_path = dave_image(&dir);
    let before = fs::read(&image_path).unwrap();

    // The partition table is homed's: one home partition named after the user.
    let file = fs::File::open(&image_path).unwrap();
    let partition = read_home_partition(&file, "dave.home").unwrap().unwrap();
    assert_eq!(partition.name, "dave");
    assert_eq!(partition.offset, 1024 * 1024);
    assert_eq!(HOME_PARTITION_TYPE[0], 0x77);

    let mut image = LuksImage::open(&image_path, Some("dave"), true).unwrap();
    let key = image.unlock(&[secret(DAVE_PASSWORD)]).unwrap();
    assert_eq!(key.as_bytes().len(), 32, "homed's default AES-128-XTS key");

    let record = image.container().token_record(&key).unwrap();
    assert_eq!(record.user_name(), "dave");
    assert_eq!(
        record.json().get("realName").and_then(|v| v.as_str()),
        Some("Dave Luks")
    );
    assert!(record.json().get("binding").is_none());
    assert!(record.json().get("status").is_none());

    let public =
        PublicKey::from_pem(&fs::read_to_string(luks_fixture().join("local.public")).unwrap())
            .unwrap();
    assert_eq!(
        check_signature(&record, &public).unwrap(),
        SignatureCheck::SignedExclusive
    );
    // The same verdict through the machine's trust store, as activation uses it.
    let keys = TrustedKeys::new(None, vec![("local.public".into(), public)]);
    let trusted = image.trusted_record(&key, &keys).unwrap();
    assert_eq!(trusted.json(), record.json());

    // It is the embedded part of the host record homed kept beside the image.
    let host = UserRecord::parse(
        &fs::read(luks_fixture().join("dave.identity")).unwrap(),
        RecordOrigin::Host,
    )
    .unwrap();
    assert_eq!(host.embedded_copy().signed_text(), record.signed_text());
    assert_eq!(host.signatures(), record.signatures());

    drop(image);
    assert!(
        fs::read(&image_path).unwrap() == before,
        "reading changed the image"
    );
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn fixture_refuses_a_wrong_password() {
    if !enter_world("fixture_refuses_a_wrong_password") {
        return;
    }
    let dir = scratch("fixture-wrong");
    let image_path = dave_image(&dir);
    let mut image = LuksImage::open(&image_path, Some("dave"), true).unwrap();
    let err = image
        .unlock(&[secret("dave-pw-789"), secret("")])
        .err()
        .unwrap();
    assert!(matches!(err, LuksError::BadPassword), "{err}");
    // PAM accumulates passwords: a wrong one before the right one still opens it.
    assert!(
        image
            .unlock(&[secret("wrong"), secret(DAVE_PASSWORD)])
            .is_ok()
    );
    // An image for another user is refused by partition name.
    drop(image);
    let err = LuksImage::open(&image_path, Some("eve"), true)
        .err()
        .unwrap();
    assert!(err.to_string().contains("named \"dave\""), "{err}");
}
