//! Login: status codes (RFC 7143 §11.13.5) and key negotiation.

pub mod answer;
pub mod chap;
pub mod negotiate;

pub use negotiate::{NegotiationError, Negotiator};

/// A login status (class, detail) as RFC 7143 §11.13.5 defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginStatus {
    /// Status-Class.
    pub class: u8,
    /// Status-Detail.
    pub detail: u8,
}

impl LoginStatus {
    /// 0x0000: accept.
    pub const SUCCESS: Self = Self {
        class: 0,
        detail: 0,
    };
    /// 0x0101: target moved temporarily.
    pub const TARGET_MOVED_TEMPORARILY: Self = Self {
        class: 1,
        detail: 1,
    };
    /// 0x0102: target moved permanently.
    pub const TARGET_MOVED_PERMANENTLY: Self = Self {
        class: 1,
        detail: 2,
    };
    /// 0x0200: initiator error (miscellaneous).
    pub const INITIATOR_ERROR: Self = Self {
        class: 2,
        detail: 0,
    };
    /// 0x0201: authentication failure.
    pub const AUTH_FAILURE: Self = Self {
        class: 2,
        detail: 1,
    };
    /// 0x0202: authorization failure.
    pub const AUTHORIZATION_FAILURE: Self = Self {
        class: 2,
        detail: 2,
    };
    /// 0x0203: target not found.
    pub const NOT_FOUND: Self = Self {
        class: 2,
        detail: 3,
    };
    /// 0x0204: target removed.
    pub const TARGET_REMOVED: Self = Self {
        class: 2,
        detail: 4,
    };
    /// 0x0205: unsupported version.
    pub const UNSUPPORTED_VERSION: Self = Self {
        class: 2,
        detail: 5,
    };
    /// 0x0206: too many connections.
    pub const TOO_MANY_CONNECTIONS: Self = Self {
        class: 2,
        detail: 6,
    };
    /// 0x0207: missing parameter.
    pub const MISSING_PARAMETER: Self = Self {
        class: 2,
        detail: 7,
    };
    /// 0x0208: can't include in session.
    pub const CANT_INCLUDE_IN_SESSION: Self = Self {
        class: 2,
        detail: 8,
    };
    /// 0x0209: session type not supported.
    pub const SESSION_TYPE_NOT_SUPPORTED: Self = Self {
        class: 2,
        detail: 9,
    };
    /// 0x020a: session does not exist.
    pub const SESSION_DOES_NOT_EXIST: Self = Self {
        class: 2,
        detail: 0x0a,
    };
    /// 0x020b: invalid request during login.
    pub const INVALID_DURING_LOGIN: Self = Self {
        class: 2,
        detail: 0x0b,
    };
    /// 0x0300: target error.
    pub const TARGET_ERROR: Self = Self {
        class: 3,
        detail: 0,
    };
    /// 0x0301: service unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self {
        class: 3,
        detail: 1,
    };
    /// 0x0302: out of resources.
    pub const OUT_OF_RESOURCES: Self = Self {
        class: 3,
        detail: 2,
    };
}
