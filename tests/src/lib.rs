//! Helpers for the host integration tests.

pub mod homectl;
pub mod homed;
pub mod luks;
pub mod memory;
pub mod nss;
pub mod pam;
pub mod softhsm;
pub mod world;
