//! JSON as systemd's sd-json reads and writes it.
//!
//! Records are signed over a canonical text, so parsing must refuse what sd-json refuses (or
//! what it cannot sign portably) and the writers must reproduce its bytes exactly.

mod parse;
mod write;

pub use parse::{JsonError, MAX_DOCUMENT_BYTES, parse_strict};
pub use write::{to_canonical_string, to_pretty_string, write_string};
