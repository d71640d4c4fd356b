//! A management answer that succeeded.
//!
//! tgt answers with an error code and, for `show`, text that `tgtadm` prints as is.
//! Failures are [`MgmtError`](super::MgmtError) values, so a `Response` is only the
//! success case: nothing to print, or the text to print.

use serde::{Deserialize, Serialize};

/// The answer to a request that succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Text for `tgtadm` to print on stdout exactly as given (tgt's `show` layout,
    /// newline-terminated lines). `None` for operations that print nothing.
    pub output: Option<String>,
}

impl Response {
    /// Success with nothing to print (`new`, `delete`, `bind`, ...).
    pub fn ok() -> Self {
        Response { output: None }
    }

    /// Success with text to print.
    pub fn text(output: String) -> Self {
        Response {
            output: Some(output),
        }
    }
}
