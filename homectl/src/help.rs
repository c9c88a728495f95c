//! `homectl --help`.

pub fn text() -> String {
    let name = "homectl";
    format!(
        "{name} [OPTIONS...] COMMAND ...

Create, manipulate or inspect home directories.

Commands:
  list                         List home areas
  activate USER…               Activate a home area
  deactivate USER…             Deactivate a home area
  inspect USER…                Inspect a home area
  authenticate USER…           Authenticate a home area
  create USER                  Create a home area
  remove USER…                 Remove a home area
  update USER                  Update a home area
  passwd USER                  Change password of a home area
  resize USER SIZE             Resize a home area
  lock USER…                   Temporarily lock an active home area
  unlock USER…                 Unlock a temporarily locked home area
  lock-all                     Lock all suitable home areas
  deactivate-all               Deactivate all active home areas
  rebalance                    Rebalance free space between home areas
  with USER [COMMAND…]         Run shell or command with access to a home area

Options:
  -h --help                    Show this help
     --version                 Show package version
     --no-pager                Do not pipe output into a pager
     --no-legend               Do not show the headers and footers
     --no-ask-password         Do not ask for system passwords
     --identity=PATH           Read JSON identity from file
     --json=FORMAT             Output inspection data in JSON (takes one of
                               pretty, short, off)
  -j                           Equivalent to --json=pretty (on TTY) or
                               --json=short (otherwise)
     --export-format=          Strip JSON inspection data (full, stripped,
                               minimal)
  -E                           When specified once equals -j --export-format=
                               stripped, when specified twice equals
                               -j --export-format=minimal

General User Record Properties:
  -c --real-name=REALNAME      Real name for user
     --realm=REALM             Realm to create user in
     --email-address=EMAIL     Email address for user
     --location=LOCATION       Set location of user on earth
     --icon-name=NAME          Icon name for user
  -d --home-dir=PATH           Home directory
  -u --uid=UID                 Numeric UID for user
  -G --member-of=GROUP         Add user to group
     --skel=PATH               Skeleton directory to use
     --shell=PATH              Shell for account
     --setenv=VARIABLE[=VALUE] Set an environment variable at log-in
     --timezone=TIMEZONE       Set a time-zone
     --language=LOCALE         Set preferred language
     --ssh-authorized-keys=KEYS
                               Specify SSH public keys

Account Management User Record Properties:
     --locked=BOOL             Set locked account state
     --not-before=TIMESTAMP    Do not allow logins before
     --not-after=TIMESTAMP     Do not allow logins after
     --rate-limit-interval=SECS
                               Login rate-limit interval in seconds
     --rate-limit-burst=NUMBER
                               Login rate-limit attempts per interval

Password Policy User Record Properties:
     --password-hint=HINT      Set Password hint
     --enforce-password-policy=BOOL
                               Control whether to enforce system's password
                               policy for this user
  -P                           Same as --enforce-password-password=no
     --password-change-now=BOOL
                               Require the password to be changed on next login
     --password-change-min=TIME
                               Require minimum time between password changes
     --password-change-max=TIME
                               Require maximum time between password changes
     --password-change-warn=TIME
                               How much time to warn before password expiry
     --password-change-inactive=TIME
                               How much time to block password after expiry

Resource Management User Record Properties:
     --disk-size=BYTES         Size to assign the user on disk
     --access-mode=MODE        User home directory access mode
     --umask=MODE              Umask for user when logging in
     --nice=NICE               Nice level for user
     --rlimit=LIMIT=VALUE[:VALUE]
                               Set resource limits
     --tasks-max=MAX           Set maximum number of per-user tasks
     --memory-high=BYTES       Set high memory threshold in bytes
     --memory-max=BYTES        Set maximum memory limit
     --cpu-weight=WEIGHT       Set CPU weight
     --io-weight=WEIGHT        Set IO weight

Storage User Record Properties:
     --storage=STORAGE         Storage type to use (luks, fscrypt, directory,
                               subvolume, cifs)
     --image-path=PATH         Path to image file/directory
     --drop-caches=BOOL        Whether to automatically drop caches on logout

LUKS Storage User Record Properties:
     --fs-type=TYPE            File system type to use in case of luks
                               storage (btrfs, ext4, xfs)
     --luks-discard=BOOL       Whether to use 'discard' feature of file system
                               when activated (mounted)
     --luks-offline-discard=BOOL
                               Whether to trim file on logout
     --luks-cipher=CIPHER      Cipher to use for LUKS encryption
     --luks-cipher-mode=MODE   Cipher mode to use for LUKS encryption
     --luks-volume-key-size=BITS
                               Volume key size to use for LUKS encryption
     --luks-pbkdf-type=TYPE    Password-based Key Derivation Function to use
     --luks-pbkdf-hash-algorithm=ALGORITHM
                               PBKDF hash algorithm to use
     --luks-pbkdf-time-cost=SECS
                               Time cost for PBKDF in seconds
     --luks-pbkdf-memory-cost=BYTES
                               Memory cost for PBKDF in bytes
     --luks-pbkdf-parallel-threads=NUMBER
                               Number of parallel threads for PKBDF
     --luks-sector-size=BYTES
                               Sector size for LUKS encryption in bytes
     --luks-extra-mount-options=OPTIONS
                               LUKS extra mount options
     --auto-resize-mode=MODE   Automatically grow/shrink home on login/logout
     --rebalance-weight=WEIGHT Weight while rebalancing

Mounting User Record Properties:
     --nosuid=BOOL             Control the 'nosuid' flag of the home mount
     --nodev=BOOL              Control the 'nodev' flag of the home mount
     --noexec=BOOL             Control the 'noexec' flag of the home mount

CIFS User Record Properties:
     --cifs-domain=DOMAIN      CIFS (Windows) domain
     --cifs-user-name=USER     CIFS (Windows) user name
     --cifs-service=SERVICE    CIFS (Windows) service to mount as home area
     --cifs-extra-mount-options=OPTIONS
                               CIFS (Windows) extra mount options

Login Behaviour User Record Properties:
     --stop-delay=SECS         How long to leave user services running after
                               logout
     --kill-processes=BOOL     Whether to kill user processes when sessions
                               terminate
     --auto-login=BOOL         Try to log this user in automatically

Passwords:
  The current password is taken from $PASSWORD and a new one from $NEWPASSWORD
  (meant for scripts and tests), otherwise asked for on the terminal without
  echo. When standard input is not a terminal and no password was given (or
  the given one was refused), homectl fails at once with a clear message
  instead of waiting for a password agent as systemd's homectl 252 does.
  create --recovery-key=yes adds a recovery key, which may be entered in place
  of a password. Security tokens (PKCS#11, FIDO2) and remote operation (-H, -M)
  are not supported.

Exit status: 0 on success, 1 on failure; 'with' exits with the command's status.
"
    )
}
