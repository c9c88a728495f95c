//! Helpers for the host integration tests.
