//! Why the initiator gave up on a connection or refused a request.

use iscsi_proto::login::chap::ChapError;
use iscsi_proto::login::{LoginStatus, NegotiationError};
use iscsi_proto::pdu::DecodeError;
use iscsi_proto::text::TextError;

/// A failure of the connection. Every variant except [`Error::NotReady`],
/// [`Error::TooLarge`] and [`Error::Busy`] is fatal: the session moves to
/// [`State::Failed`](crate::State::Failed) and the caller should close the socket
/// (at ErrorRecoveryLevel 0 there is no way to resynchronise a stream that lied once).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target's bytes could not be decoded (bad digest, oversized segment...).
    #[error("undecodable PDU from the target: {0}")]
    Decode(#[from] DecodeError),
    /// The target refused the login with a non-zero status class.
    #[error("login refused with status {:#04x}{:02x}{}", .status.class, .status.detail,
        .redirect.as_ref().map(|a| format!(" (redirected to {a})")).unwrap_or_default())]
    LoginRefused {
        /// Status-Class and Status-Detail.
        status: LoginStatus,
        /// `TargetAddress` of a redirection (class 1).
        redirect: Option<String>,
    },
    /// The target asked for CHAP but no CHAP credentials are configured, or it chose
    /// no authentication while we require it to authenticate itself (mutual CHAP).
    #[error("authentication mismatch: {0}")]
    AuthMismatch(&'static str),
    /// CHAP keys from the target were malformed or its mutual response was wrong.
    #[error("CHAP failed: {0}")]
    Chap(#[from] ChapError),
    /// The target's answer to a key breaks the negotiation rules.
    #[error("negotiation failed: {0}")]
    Negotiation(#[from] NegotiationError),
    /// Login or text key=value data was malformed.
    #[error("bad text data: {0}")]
    Text(#[from] TextError),
    /// The login did not finish before its deadline.
    #[error("login timed out")]
    LoginTimeout,
    /// The target broke the protocol (a PDU for an unknown task, data beyond the
    /// expected length, DataSN out of order...).
    #[error("protocol violation by the target: {0}")]
    Protocol(String),
    /// The target closed the session (Async Message "drop connection"/"drop all").
    #[error("target dropped the connection (async event {0})")]
    Dropped(u8),
    /// A request was made before login finished or after the session ended.
    #[error("session is not in full feature phase")]
    NotReady,
    /// A request does not fit (EDTL beyond 2^32-1, CDB too long...).
    #[error("request too large: {0}")]
    TooLarge(&'static str),
    /// A request refers to a task that is not outstanding, or one of its kind is
    /// already in progress.
    #[error("cannot do that now: {0}")]
    Busy(&'static str),
}

impl Error {
    /// Whether the session can go on after this error.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Error::NotReady | Error::TooLarge(_) | Error::Busy(_))
    }
}
