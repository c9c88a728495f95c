//! pam_homed
