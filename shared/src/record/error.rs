//! Why a record was refused.

use crate::json::JsonError;

/// A record the caller gave us cannot be used as it is. Every variant says which rule it broke,
/// so the message can be shown to an administrator unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The text is not acceptable JSON.
    #[error("user record is not valid JSON: {0}")]
    Json(#[from] JsonError),
    /// The document is JSON but not a record (for example not an object).
    #[error("user record is malformed: {0}")]
    Malformed(String),
    /// A section is present that this kind of record must not carry.
    #[error("user record carries a \"{section}\" section, which is not allowed in {context}")]
    SectionNotAllowed {
        section: &'static str,
        context: &'static str,
    },
    /// A field has the wrong type or a value outside its rule.
    #[error("field \"{field}\" {rule}")]
    InvalidField { field: String, rule: String },
}

impl RecordError {
    pub(crate) fn field(field: impl Into<String>, rule: impl Into<String>) -> Self {
        RecordError::InvalidField {
            field: field.into(),
            rule: rule.into(),
        }
    }
}
