//! The names of `org.freedesktop.home1` (homed-spec §4): the bus name, object paths and
//! interfaces, and the error names, spelled once for the daemon and every client.

pub const BUS_NAME: &str = "org.freedesktop.home1";
pub const MANAGER_PATH: &str = "/org/freedesktop/home1";
pub const MANAGER_INTERFACE: &str = "org.freedesktop.home1.Manager";
pub const HOME_INTERFACE: &str = "org.freedesktop.home1.Home";
/// Home objects live below this path, one per user name and one per UID.
pub const HOME_PATH_PREFIX: &str = "/org/freedesktop/home1/home";

/// The errors homed sends (homed-spec §4.7), and the standard ones it uses.
pub mod errors {
    pub const NO_SUCH_HOME: &str = "org.freedesktop.home1.NoSuchHome";
    pub const UID_IN_USE: &str = "org.freedesktop.home1.UIDInUse";
    pub const USER_NAME_EXISTS: &str = "org.freedesktop.home1.UserNameExists";
    pub const HOME_EXISTS: &str = "org.freedesktop.home1.HomeExists";
    pub const HOME_ALREADY_ACTIVE: &str = "org.freedesktop.home1.HomeAlreadyActive";
    pub const HOME_ALREADY_FIXATED: &str = "org.freedesktop.home1.HomeAlreadyFixated";
    pub const HOME_UNFIXATED: &str = "org.freedesktop.home1.HomeUnfixated";
    pub const HOME_NOT_ACTIVE: &str = "org.freedesktop.home1.HomeNotActive";
    pub const HOME_ABSENT: &str = "org.freedesktop.home1.HomeAbsent";
    pub const HOME_BUSY: &str = "org.freedesktop.home1.HomeBusy";
    pub const BAD_PASSWORD: &str = "org.freedesktop.home1.BadPassword";
    pub const BAD_RECOVERY_KEY: &str = "org.freedesktop.home1.BadRecoveryKey";
    pub const BAD_PASSWORD_AND_NO_TOKEN: &str = "org.freedesktop.home1.BadPasswordAndNoToken";
    pub const TOKEN_PIN_NEEDED: &str = "org.freedesktop.home1.TokenPinNeeded";
    pub const TOKEN_PROTECTED_AUTHENTICATION_PATH_NEEDED: &str =
        "org.freedesktop.home1.TokenProtectedAuthenticationPathNeeded";
    pub const TOKEN_USER_PRESENCE_NEEDED: &str = "org.freedesktop.home1.TokenUserPresenceNeeded";
    pub const TOKEN_USER_VERIFICATION_NEEDED: &str =
        "org.freedesktop.home1.TokenUserVerificationNeeded";
    pub const TOKEN_PIN_LOCKED: &str = "org.freedesktop.home1.TokenPinLocked";
    pub const BAD_PIN: &str = "org.freedesktop.home1.BadPin";
    pub const BAD_PIN_FEW_TRIES_LEFT: &str = "org.freedesktop.home1.BadPinFewTriesLeft";
    pub const BAD_PIN_ONE_TRY_LEFT: &str = "org.freedesktop.home1.BadPinOneTryLeft";
    pub const HOME_CANT_AUTHENTICATE: &str = "org.freedesktop.home1.HomeCantAuthenticate";
    pub const BAD_SIGNATURE: &str = "org.freedesktop.home1.BadSignature";
    pub const RECORD_MISMATCH: &str = "org.freedesktop.home1.RecordMismatch";
    pub const RECORD_DOWNGRADE: &str = "org.freedesktop.home1.RecordDowngrade";
    pub const RECORD_SIGNED: &str = "org.freedesktop.home1.RecordSigned";
    pub const NO_PRIVATE_KEY: &str = "org.freedesktop.home1.NoPrivateKey";
    pub const HOME_NOT_LOCKED: &str = "org.freedesktop.home1.HomeNotLocked";
    pub const HOME_LOCKED: &str = "org.freedesktop.home1.HomeLocked";
    pub const TOO_MANY_OPERATIONS: &str = "org.freedesktop.home1.TooManyOperations";
    pub const AUTHENTICATION_LIMIT_HIT: &str = "org.freedesktop.home1.AuthenticationLimitHit";
    pub const REBALANCE_NOT_NEEDED: &str = "org.freedesktop.home1.RebalanceNotNeeded";
    pub const NO_DISK_SPACE: &str = "org.freedesktop.home1.NoDiskSpace";
    pub const BAD_HOME_SIZE: &str = "org.freedesktop.home1.BadHomeSize";
    pub const ACCESS_DENIED: &str = "org.freedesktop.DBus.Error.AccessDenied";
    pub const INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";
    pub const NOT_SUPPORTED: &str = "org.freedesktop.DBus.Error.NotSupported";
    pub const FAILED: &str = "org.freedesktop.DBus.Error.Failed";

    /// The part after `org.freedesktop.home1.` of a home1 error name.
    pub fn home1_short(name: &str) -> Option<&str> {
        name.strip_prefix("org.freedesktop.home1.")
    }
}
