//! Helpers for the host integration tests.

pub mod world;
pub mod luks;
