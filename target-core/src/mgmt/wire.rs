//! The control-socket encoding of requests and answers, sans-IO.
//!
//! A frame is an 8-byte header and a JSON body:
//!
//! ```text
//! 0..3  magic  b"TGT"
//! 3     version (1)
//! 4..8  body length, big-endian u32
//! 8..   body: JSON of a Request, or of an answer (see below)
//! ```
//!
//! tgt sends a raw C struct, which ties client and daemon to one build and one ABI.
//! A magic and a version let a mismatched `tgtadm` fail with a clear error, the
//! length lets a reader know when a frame is complete without parsing, and JSON keeps
//! the body readable in `strace` and easy to extend.
//!
//! An answer body is `{"ok":{"output":...}}` or
//! `{"err":{"code":N,"message":"...","error":<MgmtError>}}`. The code and text ride
//! along so a client that cannot decode a newer error variant still prints the
//! daemon's message ([`MgmtError::Other`]).
//!
//! Decoders take the bytes read so far and return `Ok(None)` until a whole frame is
//! there, then the value and how many bytes it used.

use super::{MgmtError, Request, Response};
use serde::{Deserialize, Serialize};

/// First three bytes of every frame.
pub const MAGIC: [u8; 3] = *b"TGT";
/// The frame version this build speaks.
pub const VERSION: u8 = 1;
/// Header length: magic, version, body length.
pub const HEADER_LEN: usize = 8;
/// Largest request body accepted. tgt caps request data at 8 KiB
/// (`MAX_MGT_BUFSIZE`); ours are JSON, so allow more, but still small.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;
/// Largest answer body accepted: `show` of thousands of targets fits.
pub const MAX_RESPONSE_LEN: usize = 64 * 1024 * 1024;

/// Why bytes on the control socket are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The first bytes are not [`MAGIC`]: not our protocol (or an old tgt tgtadm).
    #[error("bad magic {0:02x?}: not a tgtd management frame")]
    BadMagic([u8; 3]),
    /// A frame version this build does not speak.
    #[error("unsupported management protocol version {got} (this build speaks {VERSION})")]
    UnsupportedVersion {
        /// The version in the frame.
        got: u8,
    },
    /// The body length is over the limit for this direction.
    #[error("management frame of {len} bytes exceeds the {max} byte limit")]
    TooLong {
        /// Declared body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not valid JSON for the expected type.
    #[error("malformed management frame: {0}")]
    Malformed(String),
}

/// An answer as it travels: `Result<Response, MgmtError>` with the error's code and
/// text spelled out.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Answer {
    Ok(Response),
    Err {
        code: u32,
        message: String,
        #[serde(default)]
        error: serde_json::Value,
    },
}

fn encode_frame(body: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(body.len()).expect("management frames are far below 4 GiB");
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
}

/// The body of the first frame in `buf`, if complete, and the frame's total length.
fn decode_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, WireError> {
    // Check the magic on as few bytes as have arrived, so garbage fails fast
    // instead of waiting for a header that will never make sense.
    let seen = buf.len().min(MAGIC.len());
    if buf[..seen] != MAGIC[..seen] {
        let mut got = [0u8; 3];
        got[..seen].copy_from_slice(&buf[..seen]);
        return Err(WireError::BadMagic(got));
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[3] != VERSION {
        return Err(WireError::UnsupportedVersion { got: buf[3] });
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if len > max {
        return Err(WireError::TooLong { len, max });
    }
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((&buf[HEADER_LEN..total], total)))
}

/// A decoded answer and the number of bytes its frame used.
pub type DecodedAnswer = (Result<Response, MgmtError>, usize);

/// Append the frame for `req` to `out`.
pub fn encode_request(req: &Request, out: &mut Vec<u8>) {
    let body = serde_json::to_vec(req).expect("a Request always serializes");
    encode_frame(&body, out);
}

/// Decode a request from the front of `buf`: `Ok(None)` when more bytes are needed,
/// else the request and the number of bytes it used.
pub fn decode_request(buf: &[u8]) -> Result<Option<(Request, usize)>, WireError> {
    let Some((body, used)) = decode_frame(buf, MAX_REQUEST_LEN)? else {
        return Ok(None);
    };
    let req = serde_json::from_slice(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    Ok(Some((req, used)))
}

/// Append the frame for an answer to `out`.
pub fn encode_response(answer: &Result<Response, MgmtError>, out: &mut Vec<u8>) {
    let wire = match answer {
        Ok(r) => Answer::Ok(r.clone()),
        Err(e) => Answer::Err {
            code: e.code(),
            message: e.to_string(),
            error: serde_json::to_value(e).expect("a MgmtError always serializes"),
        },
    };
    let body = serde_json::to_vec(&wire).expect("an answer always serializes");
    encode_frame(&body, out);
}

/// Decode an answer from the front of `buf`: `Ok(None)` when more bytes are needed,
/// else the answer and the number of bytes it used.
pub fn decode_response(buf: &[u8]) -> Result<Option<DecodedAnswer>, WireError> {
    let Some((body, used)) = decode_frame(buf, MAX_RESPONSE_LEN)? else {
        return Ok(None);
    };
    let wire: Answer =
        serde_json::from_slice(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    let answer = match wire {
        Answer::Ok(r) => Ok(r),
        Answer::Err {
            code,
            message,
            error,
        } => Err(match serde_json::from_value::<MgmtError>(error) {
            // Trust the variant only if it agrees with the code and text sent with it.
            Ok(e) if e.code() == code && e.to_string() == message => e,
            _ => MgmtError::Other { code, message },
        }),
    };
    Ok(Some((answer, used)))
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
