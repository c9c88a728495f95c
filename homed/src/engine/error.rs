//! What can go wrong in an operation, named by homed's bus errors (homed-spec §4.7).

use std::fmt;

use crate::worker::proto::{WorkError, WorkErrorKind};

/// One variant per error a client can tell apart; the text is the message shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    NoSuchHome(String),
    UidInUse(String),
    UserNameExists(String),
    HomeExists(String),
    HomeAlreadyActive(String),
    HomeAlreadyFixated(String),
    HomeUnfixated(String),
    HomeNotActive(String),
    HomeAbsent(String),
    HomeBusy(String),
    BadPassword(String),
    BadPasswordAndNoToken(String),
    TokenPinNeeded(String),
    TokenProtectedAuthenticationPathNeeded(String),
    TokenPinLocked(String),
    BadPin(String),
    BadPinFewTriesLeft(String),
    BadPinOneTryLeft(String),
    HomeCantAuthenticate(String),
    BadSignature(String),
    RecordMismatch(String),
    RecordDowngrade(String),
    RecordSigned(String),
    NoPrivateKey(String),
    HomeNotLocked(String),
    HomeLocked(String),
    TooManyOperations(String),
    AuthenticationLimitHit(String),
    RebalanceNotNeeded(String),
    NoDiskSpace(String),
    /// The size asked for lies outside what a home may have.
    BadHomeSize(String),
    AccessDenied(String),
    InvalidArgs(String),
    NotSupported(String),
    Failed(String),
}

impl EngineError {
    pub fn message(&self) -> &str {
        use EngineError::*;
        match self {
            NoSuchHome(m)
            | UidInUse(m)
            | UserNameExists(m)
            | HomeExists(m)
            | HomeAlreadyActive(m)
            | HomeAlreadyFixated(m)
            | HomeUnfixated(m)
            | HomeNotActive(m)
            | HomeAbsent(m)
            | HomeBusy(m)
            | BadPassword(m)
            | BadPasswordAndNoToken(m)
            | TokenPinNeeded(m)
            | TokenProtectedAuthenticationPathNeeded(m)
            | TokenPinLocked(m)
            | BadPin(m)
            | BadPinFewTriesLeft(m)
            | BadPinOneTryLeft(m)
            | HomeCantAuthenticate(m)
            | BadSignature(m)
            | RecordMismatch(m)
            | RecordDowngrade(m)
            | RecordSigned(m)
            | NoPrivateKey(m)
            | HomeNotLocked(m)
            | HomeLocked(m)
            | TooManyOperations(m)
            | AuthenticationLimitHit(m)
            | RebalanceNotNeeded(m)
            | NoDiskSpace(m)
            | BadHomeSize(m)
            | AccessDenied(m)
            | InvalidArgs(m)
            | NotSupported(m)
            | Failed(m) => m,
        }
    }

    /// A wrong password, which counts toward the rate limit and costs the delay.
    pub fn is_bad_password(&self) -> bool {
        matches!(
            self,
            EngineError::BadPassword(_) | EngineError::BadPasswordAndNoToken(_)
        )
    }

    /// A security token's answer that asks for more (a PIN, a retry); not a bad password.
    pub fn is_token_refusal(&self) -> bool {
        use EngineError::*;
        matches!(
            self,
            TokenPinNeeded(_)
                | TokenProtectedAuthenticationPathNeeded(_)
                | TokenPinLocked(_)
                | BadPin(_)
                | BadPinFewTriesLeft(_)
                | BadPinOneTryLeft(_)
        )
    }

    /// The bus error name, as homed sends it.
    pub fn name(&self) -> &'static str {
        use EngineError::*;
        use homed_shared::proto::errors as n;
        match self {
            NoSuchHome(_) => n::NO_SUCH_HOME,
            UidInUse(_) => n::UID_IN_USE,
            UserNameExists(_) => n::USER_NAME_EXISTS,
            HomeExists(_) => n::HOME_EXISTS,
            HomeAlreadyActive(_) => n::HOME_ALREADY_ACTIVE,
            HomeAlreadyFixated(_) => n::HOME_ALREADY_FIXATED,
            HomeUnfixated(_) => n::HOME_UNFIXATED,
            HomeNotActive(_) => n::HOME_NOT_ACTIVE,
            HomeAbsent(_) => n::HOME_ABSENT,
            HomeBusy(_) => n::HOME_BUSY,
            BadPassword(_) => n::BAD_PASSWORD,
            BadPasswordAndNoToken(_) => n::BAD_PASSWORD_AND_NO_TOKEN,
            TokenPinNeeded(_) => n::TOKEN_PIN_NEEDED,
            TokenProtectedAuthenticationPathNeeded(_) => {
                n::TOKEN_PROTECTED_AUTHENTICATION_PATH_NEEDED
            }
            TokenPinLocked(_) => n::TOKEN_PIN_LOCKED,
            BadPin(_) => n::BAD_PIN,
            BadPinFewTriesLeft(_) => n::BAD_PIN_FEW_TRIES_LEFT,
            BadPinOneTryLeft(_) => n::BAD_PIN_ONE_TRY_LEFT,
            HomeCantAuthenticate(_) => n::HOME_CANT_AUTHENTICATE,
            BadSignature(_) => n::BAD_SIGNATURE,
            RecordMismatch(_) => n::RECORD_MISMATCH,
            RecordDowngrade(_) => n::RECORD_DOWNGRADE,
            RecordSigned(_) => n::RECORD_SIGNED,
            NoPrivateKey(_) => n::NO_PRIVATE_KEY,
            HomeNotLocked(_) => n::HOME_NOT_LOCKED,
            HomeLocked(_) => n::HOME_LOCKED,
            TooManyOperations(_) => n::TOO_MANY_OPERATIONS,
            AuthenticationLimitHit(_) => n::AUTHENTICATION_LIMIT_HIT,
            RebalanceNotNeeded(_) => n::REBALANCE_NOT_NEEDED,
            NoDiskSpace(_) => n::NO_DISK_SPACE,
            BadHomeSize(_) => n::BAD_HOME_SIZE,
            AccessDenied(_) => n::ACCESS_DENIED,
            InvalidArgs(_) => n::INVALID_ARGS,
            NotSupported(_) => n::NOT_SUPPORTED,
            Failed(_) => n::FAILED,
        }
    }

    /// The error homed reports for a failed storage operation on the home of `user`.
    pub fn from_work(e: WorkError, user: &str) -> EngineError {
        let message = e.message;
        match e.kind {
            WorkErrorKind::NotActive => {
                EngineError::HomeNotActive(format!("Home {user} is currently not active"))
            }
            WorkErrorKind::Absent => EngineError::HomeAbsent(format!(
                "Home {user} is currently missing or not plugged in"
            )),
            WorkErrorKind::Busy => EngineError::HomeBusy(format!(
                "Home {user} is currently being used, or an operation on home {user} is currently being executed: {message}"
            )),
            WorkErrorKind::Exists => {
                EngineError::HomeExists(format!("Home {user} exists already: {message}"))
            }
            WorkErrorKind::AlreadyActive => {
                EngineError::HomeAlreadyActive(format!("Home {user} is already active"))
            }
            WorkErrorKind::NoSpace => {
                EngineError::NoDiskSpace(format!("Not enough disk space for home {user}"))
            }
            WorkErrorKind::Untrusted => EngineError::BadSignature(format!(
                "The record inside home {user} is not signed by a trusted key: {message}"
            )),
            WorkErrorKind::ImageInUse => EngineError::HomeBusy(format!(
                "The image of home {user} is in use elsewhere: {message}"
            )),
            WorkErrorKind::BadPassword => EngineError::BadPassword(format!(
                "Password for home {user} is incorrect or not sufficient for authentication."
            )),
            WorkErrorKind::BadPasswordAndNoToken => EngineError::BadPasswordAndNoToken(format!(
                "Password for home {user} is incorrect or not sufficient, and configured security token not found either."
            )),
            WorkErrorKind::TokenPinNeeded => {
                EngineError::TokenPinNeeded("PIN for security token required.".into())
            }
            WorkErrorKind::TokenProtectedPathNeeded => {
                EngineError::TokenProtectedAuthenticationPathNeeded(
                    "Security token requires protected authentication path.".into(),
                )
            }
            WorkErrorKind::TokenPinLocked => {
                EngineError::TokenPinLocked("PIN of security token locked.".into())
            }
            WorkErrorKind::BadPin => EngineError::BadPin("Bad PIN of security token.".into()),
            WorkErrorKind::BadPinFewTriesLeft => EngineError::BadPinFewTriesLeft(
                "Bad PIN of security token, and only a few tries left.".into(),
            ),
            WorkErrorKind::BadPinOneTryLeft => EngineError::BadPinOneTryLeft(
                "Bad PIN of security token, and only one try left.".into(),
            ),
            WorkErrorKind::NotSupported => EngineError::NotSupported(format!(
                "Operation not supported on the storage of home {user}: {message}"
            )),
            WorkErrorKind::BadRequest | WorkErrorKind::Crashed | WorkErrorKind::Failed => {
                EngineError::Failed(message)
            }
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.message())
    }
}

impl std::error::Error for EngineError {}

pub type EngineResult<T> = Result<T, EngineError>;
