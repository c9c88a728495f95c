//! The errors that cross the bus: an engine error goes out under the name the engine gives it
//! (from `homed_shared::proto::errors`, homed-spec §4.7), with its message as the description.

use std::fmt;

use zbus::message::{Header, Message};
use zbus::names::ErrorName;

use crate::engine::EngineError;

#[derive(Debug)]
pub enum BusError {
    Engine(EngineError),
    /// The bus itself failed (the caller could not be asked for, a reply could not be sent).
    ZBus(zbus::Error),
}

impl BusError {
    fn name_str(&self) -> &str {
        match self {
            BusError::Engine(e) => e.name(),
            BusError::ZBus(zbus::Error::MethodError(name, _, _)) => name.as_str(),
            BusError::ZBus(_) => homed_shared::proto::errors::FAILED,
        }
    }

    fn text(&self) -> String {
        match self {
            BusError::Engine(e) => e.message().to_owned(),
            BusError::ZBus(zbus::Error::MethodError(_, Some(desc), _)) => desc.clone(),
            BusError::ZBus(e) => e.to_string(),
        }
    }
}

impl zbus::DBusError for BusError {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        Message::error(call, self.name_str()).build(&(self.text(),))
    }

    fn name(&self) -> ErrorName<'_> {
        ErrorName::from_str_unchecked(self.name_str())
    }

    fn description(&self) -> Option<&str> {
        match self {
            BusError::Engine(e) => Some(e.message()),
            BusError::ZBus(zbus::Error::MethodError(_, desc, _)) => desc.as_deref(),
            BusError::ZBus(_) => None,
        }
    }
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name_str(), self.text())
    }
}

impl std::error::Error for BusError {}

impl From<EngineError> for BusError {
    fn from(e: EngineError) -> Self {
        BusError::Engine(e)
    }
}

impl From<zbus::Error> for BusError {
    fn from(e: zbus::Error) -> Self {
        BusError::ZBus(e)
    }
}

impl From<zbus::fdo::Error> for BusError {
    fn from(e: zbus::fdo::Error) -> Self {
        BusError::ZBus(e.into())
    }
}
