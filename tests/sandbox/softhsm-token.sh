#!/bin/sh
# Makes a SoftHSM2 token for the tests and benchmarks, in a world (tests/sandbox/world.sh):
# "homed-test" in /run/homed-world/softhsm, initialised with PIN $TOKEN_PIN (default 123456),
# an RSA-2048 key pair made by openssl and imported, and a self-signed certificate for it under
# the same id. Sourced (it sets H and exports SOFTHSM2_CONF) or run; exits 11..16 at the step
# that failed. The daemons and homectl find the token with SOFTHSM2_CONF=$H/softhsm2.conf.
H=/run/homed-world/softhsm
export SOFTHSM2_CONF=$H/softhsm2.conf
mkdir -p $H/tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' $H >$SOFTHSM2_CONF
softhsm2-util --init-token --free --label homed-test --so-pin 12345678 --pin ${TOKEN_PIN:-123456} >/dev/null || exit 11
openssl req -x509 -newkey rsa:2048 -nodes -keyout $H/key.pem -out $H/cert.pem -days 3650 -subj /CN=homed-test 2>/dev/null || exit 12
openssl x509 -in $H/cert.pem -outform der -out $H/cert.der || exit 13
openssl pkcs8 -topk8 -nocrypt -in $H/key.pem -out $H/key8.pem || exit 14
softhsm2-util --import $H/key8.pem --token homed-test --label homekey --id 01 --pin ${TOKEN_PIN:-123456} >/dev/null || exit 15
pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label homed-test --login --pin ${TOKEN_PIN:-123456} \
    --write-object $H/cert.der --type cert --id 01 --label homekey >/dev/null 2>&1 || exit 16
