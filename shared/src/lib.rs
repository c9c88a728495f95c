//! homed core
