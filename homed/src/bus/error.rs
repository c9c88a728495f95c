//! The errors that cross the bus, with homed's exact names (homed-spec §4.7).

use crate::engine::EngineError;

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop")]
pub enum BusError {
    #[zbus(error)]
    ZBus(zbus::Error),
    #[zbus(name = "home1.NoSuchHome")]
    NoSuchHome(String),
    #[zbus(name = "home1.UIDInUse")]
    UidInUse(String),
    #[zbus(name = "home1.UserNameExists")]
    UserNameExists(String),
    #[zbus(name = "home1.HomeExists")]
    HomeExists(String),
    #[zbus(name = "home1.HomeAlreadyActive")]
    HomeAlreadyActive(String),
    #[zbus(name = "home1.HomeAlreadyFixated")]
    HomeAlreadyFixated(String),
    #[zbus(name = "home1.HomeUnfixated")]
    HomeUnfixated(String),
    #[zbus(name = "home1.HomeNotActive")]
    HomeNotActive(String),
    #[zbus(name = "home1.HomeAbsent")]
    HomeAbsent(String),
    #[zbus(name = "home1.HomeBusy")]
    HomeBusy(String),
    #[zbus(name = "home1.BadPassword")]
    BadPassword(String),
    #[zbus(name = "home1.HomeCantAuthenticate")]
    HomeCantAuthenticate(String),
    #[zbus(name = "home1.BadSignature")]
    BadSignature(String),
    #[zbus(name = "home1.RecordMismatch")]
    RecordMismatch(String),
    #[zbus(name = "home1.RecordDowngrade")]
    RecordDowngrade(String),
    #[zbus(name = "home1.RecordSigned")]
    RecordSigned(String),
    #[zbus(name = "home1.NoPrivateKey")]
    NoPrivateKey(String),
    #[zbus(name = "home1.HomeNotLocked")]
    HomeNotLocked(String),
    #[zbus(name = "home1.HomeLocked")]
    HomeLocked(String),
    #[zbus(name = "home1.TooManyOperations")]
    TooManyOperations(String),
    #[zbus(name = "home1.AuthenticationLimitHit")]
    AuthenticationLimitHit(String),
    #[zbus(name = "home1.RebalanceNotNeeded")]
    RebalanceNotNeeded(String),
    #[zbus(name = "home1.NoDiskSpace")]
    NoDiskSpace(String),
    #[zbus(name = "DBus.Error.AccessDenied")]
    AccessDenied(String),
    #[zbus(name = "DBus.Error.InvalidArgs")]
    InvalidArgs(String),
    #[zbus(name = "DBus.Error.NotSupported")]
    NotSupported(String),
    #[zbus(name = "DBus.Error.Failed")]
    Failed(String),
}

impl From<EngineError> for BusError {
    fn from(e: EngineError) -> Self {
        use EngineError as E;
        match e {
            E::NoSuchHome(m) => BusError::NoSuchHome(m),
            E::UidInUse(m) => BusError::UidInUse(m),
            E::UserNameExists(m) => BusError::UserNameExists(m),
            E::HomeExists(m) => BusError::HomeExists(m),
            E::HomeAlreadyActive(m) => BusError::HomeAlreadyActive(m),
            E::HomeAlreadyFixated(m) => BusError::HomeAlreadyFixated(m),
            E::HomeUnfixated(m) => BusError::HomeUnfixated(m),
            E::HomeNotActive(m) => BusError::HomeNotActive(m),
            E::HomeAbsent(m) => BusError::HomeAbsent(m),
            E::HomeBusy(m) => BusError::HomeBusy(m),
            E::BadPassword(m) => BusError::BadPassword(m),
            E::HomeCantAuthenticate(m) => BusError::HomeCantAuthenticate(m),
            E::BadSignature(m) => BusError::BadSignature(m),
            E::RecordMismatch(m) => BusError::RecordMismatch(m),
            E::RecordDowngrade(m) => BusError::RecordDowngrade(m),
            E::RecordSigned(m) => BusError::RecordSigned(m),
            E::NoPrivateKey(m) => BusError::NoPrivateKey(m),
            E::HomeNotLocked(m) => BusError::HomeNotLocked(m),
            E::HomeLocked(m) => BusError::HomeLocked(m),
            E::TooManyOperations(m) => BusError::TooManyOperations(m),
            E::AuthenticationLimitHit(m) => BusError::AuthenticationLimitHit(m),
            E::RebalanceNotNeeded(m) => BusError::RebalanceNotNeeded(m),
            E::NoDiskSpace(m) => BusError::NoDiskSpace(m),
            E::AccessDenied(m) => BusError::AccessDenied(m),
            E::InvalidArgs(m) => BusError::InvalidArgs(m),
            E::NotSupported(m) => BusError::NotSupported(m),
            E::Failed(m) => BusError::Failed(m),
        }
    }
}
