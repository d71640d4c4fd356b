//! Management errors with tgt's codes and messages (tgt `usr/tgtadm_error.h` for the
//! codes, `tgtadm_strerror` in `usr/tgtadm.c` for the texts).

use serde::{Deserialize, Serialize};

/// Why a management request was refused. The message is what `tgtadm` prints after
/// `tgtadm: `; [`MgmtError::code`] is tgt's numeric code.
///
/// Serializable so the control socket can carry the exact variant (see
/// [`wire`](super::wire)); the wire also carries the code and the text, so a client
/// that does not know a newer variant still prints the right message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MgmtError {
    /// An error with no better description.
    #[error("unknown error")]
    Unknown,
    /// Allocation failed.
    #[error("out of memory")]
    NoMem,
    /// The `--lld` named no driver we have.
    #[error("can't find the driver")]
    NoDriver,
    /// No target with that tid.
    #[error("can't find the target")]
    NoTarget,
    /// No LUN with that number.
    #[error("can't find the logical unit")]
    NoLun,
    /// No session with that sid.
    #[error("can't find the session")]
    NoSession,
    /// No connection with that cid.
    #[error("can't find the connection")]
    NoConnection,
    /// No such binding (tgt's text says "binding", not "portal").
    #[error("can't find the binding")]
    NoBinding,
    /// A target with that tid or name exists.
    #[error("this target already exists")]
    TargetExists,
    /// A binding exists.
    #[error("this binding already exists")]
    BindingExists,
    /// A LUN with that number exists.
    #[error("this logical unit number already exists")]
    LunExists,
    /// The ACL entry is bound already.
    #[error("this access control rule already exists")]
    AclExists,
    /// The ACL entry is not bound.
    #[error("this access control rule does not exist")]
    AclNoExist,
    /// An account with that name exists.
    #[error("this account already exists")]
    UserExists,
    /// No account with that name.
    #[error("can't find the account")]
    NoUser,
    /// Too many accounts.
    #[error("too many accounts")]
    TooManyUsers,
    /// The request is malformed or not allowed.
    #[error("invalid request")]
    InvalidRequest,
    /// The target already has an outgoing account.
    #[error("this target already has an outgoing account")]
    OutAccountExists,
    /// The target has sessions.
    #[error("this target is still active")]
    TargetActive,
    /// The LUN is in use.
    #[error("this logical unit is still active")]
    LunActive,
    /// The driver is in use.
    #[error("this driver is busy")]
    DriverActive,
    /// The operation is not supported for this mode.
    #[error("this operation isn't supported")]
    UnsupportedOperation,
    /// A parameter name is unknown.
    #[error("unknown parameter")]
    UnknownParam,
    /// The medium is locked by PREVENT ALLOW MEDIUM REMOVAL.
    #[error("this device has Prevent Removal set")]
    PreventRemoval,
    /// The backing store could not be opened. tgt answers this with
    /// `TGTADM_INVALID_REQUEST` (`tgt_device_path_update`), so the code is 17; the text
    /// keeps tgt's "invalid request" and adds the store's reason, which tgt only logs.
    #[error("invalid request: {0}")]
    BackingStore(String),
    /// A configuration (targets.conf) could not be applied in full; the text lists
    /// what failed, one item per line. Code 17 like tgt's "invalid request".
    #[error("{0}")]
    Config(String),
    /// The peer on the control socket is neither root nor the daemon's user. tgt just
    /// closes the socket (`ipc_perm`); we answer first so `tgtadm` can say why.
    #[error("permission denied")]
    PermissionDenied,
    /// An error this build has no variant for (a newer daemon), rebuilt from the
    /// code and text on the wire.
    #[error("{message}")]
    Other {
        /// tgt's numeric code.
        code: u32,
        /// The text to print.
        message: String,
    },
}

impl MgmtError {
    /// tgt's numeric error code (`enum tgtadm_errno`).
    pub fn code(&self) -> u32 {
        match self {
            MgmtError::Unknown => 1,
            MgmtError::NoMem => 2,
            MgmtError::NoDriver => 3,
            MgmtError::NoTarget => 4,
            MgmtError::NoLun => 5,
            MgmtError::NoSession => 6,
            MgmtError::NoConnection => 7,
            MgmtError::NoBinding => 8,
            MgmtError::TargetExists => 9,
            // tgt's enum lists LUN_EXIST before BINDING_EXIST.
            MgmtError::LunExists => 10,
            MgmtError::BindingExists => 11,
            MgmtError::AclExists => 12,
            MgmtError::AclNoExist => 13,
            MgmtError::UserExists => 14,
            MgmtError::NoUser => 15,
            MgmtError::TooManyUsers => 16,
            MgmtError::InvalidRequest => 17,
            MgmtError::OutAccountExists => 18,
            MgmtError::TargetActive => 19,
            MgmtError::LunActive => 20,
            MgmtError::DriverActive => 21,
            MgmtError::UnsupportedOperation => 22,
            MgmtError::UnknownParam => 23,
            MgmtError::PreventRemoval => 24,
            MgmtError::BackingStore(_) => 17,
            MgmtError::Config(_) => 17,
            MgmtError::PermissionDenied => 1,
            MgmtError::Other { code, .. } => *code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes and texts as tgt 1.0.97 `usr/tgtadm_error.h` and `tgtadm_strerror` give them.
    #[test]
    fn codes_and_texts_match_tgt() {
        let cases = [
            (MgmtError::Unknown, 1, "unknown error"),
            (MgmtError::NoTarget, 4, "can't find the target"),
            (MgmtError::NoLun, 5, "can't find the logical unit"),
            (MgmtError::NoBinding, 8, "can't find the binding"),
            (MgmtError::TargetExists, 9, "this target already exists"),
            (
                MgmtError::LunExists,
                10,
                "this logical unit number already exists",
            ),
            (MgmtError::BindingExists, 11, "this binding already exists"),
            (
                MgmtError::AclExists,
                12,
                "this access control rule already exists",
            ),
            (MgmtError::InvalidRequest, 17, "invalid request"),
            (MgmtError::TargetActive, 19, "this target is still active"),
            (
                MgmtError::UnsupportedOperation,
                22,
                "this operation isn't supported",
            ),
            (
                MgmtError::PreventRemoval,
                24,
                "this device has Prevent Removal set",
            ),
        ];
        for (err, code, text) in cases {
            assert_eq!(err.code(), code, "{err:?}");
            assert_eq!(err.to_string(), text);
        }
        assert_eq!(MgmtError::BackingStore("x".into()).code(), 17);
    }
}
