//! nss_homed
