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
    /// The same facts as structured data, for `tgtadm --json` (every `show` fills
    /// it). Older daemons omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Response {
    /// Success with nothing to print (`new`, `delete`, `bind`, ...).
    pub fn ok() -> Self {
        Response {
            output: None,
            data: None,
        }
    }

    /// Success with text to print.
    pub fn text(output: String) -> Self {
        Response {
            output: Some(output),
            data: None,
        }
    }

    /// Success with text and its structured form.
    pub fn show(output: String, data: serde_json::Value) -> Self {
        Response {
            output: Some(output),
            data: Some(data),
        }
    }
}
