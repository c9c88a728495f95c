//! The varlink wire format: each message is one JSON object followed by a NUL byte.
//!
//! The decoder is transport-neutral (bytes in, messages out) so that a blocking client and an
//! event-driven server can share it.

use serde_json::{Map, Value};

/// The largest message accepted, NUL excluded. A user record is far smaller; anything bigger is a
/// broken or hostile peer.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Why a byte stream is not a valid sequence of varlink messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a varlink message is longer than {MAX_FRAME_BYTES} bytes")]
    TooLong,
    #[error("a varlink message is not a JSON object: {0}")]
    NotAnObject(String),
}

/// Serializes `message` as one frame: compact JSON and the terminating NUL.
pub fn encode_frame(message: &Map<String, Value>) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(message).unwrap_or_default();
    bytes.push(0);
    bytes
}

/// Splits a byte stream into messages.
#[derive(Default)]
pub struct FrameDecoder {
    pending: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the peer.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        self.pending.extend_from_slice(bytes);
        // A complete frame may sit in front of the limit; only an unterminated tail is too long.
        let tail = match self.pending.iter().rposition(|&b| b == 0) {
            Some(nul) => self.pending.len() - nul - 1,
            None => self.pending.len(),
        };
        if tail > MAX_FRAME_BYTES {
            return Err(FrameError::TooLong);
        }
        Ok(())
    }

    /// The next complete message, if one has arrived.
    pub fn next_message(&mut self) -> Result<Option<Map<String, Value>>, FrameError> {
        let Some(nul) = self.pending.iter().position(|&b| b == 0) else {
            return Ok(None);
        };
        let frame: Vec<u8> = self.pending.drain(..=nul).collect();
        let body = &frame[..frame.len() - 1];
        if body.len() > MAX_FRAME_BYTES {
            return Err(FrameError::TooLong);
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            Ok(_) => Err(FrameError::NotAnObject("not an object".into())),
            Err(e) => Err(FrameError::NotAnObject(e.to_string())),
        }
    }

    /// True when bytes of an unfinished message are buffered.
    pub fn has_partial(&self) -> bool {
        !self.pending.is_empty()
    }

    /// How many bytes of unfinished messages are buffered.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_across_reads() {
        let mut d = FrameDecoder::new();
        d.push(b"{\"a\":1}\0{\"b\"").unwrap();
        assert_eq!(d.next_message().unwrap().unwrap()["a"], 1);
        assert!(d.next_message().unwrap().is_none());
        assert!(d.has_partial());
        d.push(b":2}\0").unwrap();
        assert_eq!(d.next_message().unwrap().unwrap()["b"], 2);
        assert!(!d.has_partial());
    }

    #[test]
    fn refuses_non_objects_and_runaway_frames() {
        let mut d = FrameDecoder::new();
        d.push(b"[1]\0").unwrap();
        assert!(d.next_message().is_err());
        let mut d = FrameDecoder::new();
        assert_eq!(
            d.push(&vec![b' '; MAX_FRAME_BYTES + 1]),
            Err(FrameError::TooLong)
        );
    }

    #[test]
    fn encodes_with_terminator() {
        let mut m = Map::new();
        m.insert("method".into(), Value::String("x.Y".into()));
        assert_eq!(encode_frame(&m), b"{\"method\":\"x.Y\"}\0");
    }
}
