//! The text key=value codec (RFC 7143 §6.1): `key=value\0` pairs in login and text PDUs,
//! and the assembly of text split over several PDUs with the C bit.

use bytes::{BufMut, Bytes, BytesMut};
use nom::bytes::complete::{take_till, take_until};
use nom::character::complete::char;
use nom::IResult;

/// Longest key name (RFC 7143 §6.1: 63 bytes).
pub const MAX_KEY_LEN: usize = 63;
/// Longest value we accept (RFC 7143 §6.1: 255 for most, 8192 for some; we allow 8192).
pub const MAX_VALUE_LEN: usize = 8192;
/// Largest text we assemble across continuation PDUs before refusing (bounded memory).
pub const MAX_TEXT_LEN: usize = 64 * 1024;

/// Why text data could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// A pair has no `=`.
    #[error("text pair without '=': {0:?}")]
    MissingEquals(String),
    /// A key is empty or longer than 63 bytes, or not printable.
    #[error("invalid key {0:?}")]
    BadKey(String),
    /// A value is longer than allowed.
    #[error("value of key {key} is {len} bytes long")]
    ValueTooLong {
        /// The key.
        key: String,
        /// The value's length.
        len: usize,
    },
    /// The text is not UTF-8.
    #[error("text is not UTF-8")]
    NotUtf8,
    /// Text assembled from continuations exceeds the bound.
    #[error("text of {0} bytes exceeds the limit")]
    TooLong(usize),
}

/// One `key=value` pair.
pub type Pair = (String, String);

fn pair(i: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    let (i, key) = take_until("=")(i)?;
    let (i, _) = char('=')(i)?;
    let (i, value) = take_till(|b| b == 0)(i)?;
    Ok((i, (key, value)))
}

/// Parse a complete text (every pair NUL-terminated; a missing final NUL is tolerated,
/// empty entries from extra NULs are skipped).
pub fn parse(data: &[u8]) -> Result<Vec<Pair>, TextError> {
    let mut out = Vec::new();
    for entry in data.split(|&b| b == 0) {
        if entry.is_empty() {
            continue;
        }
        let (rest, (k, v)) = pair(entry)
            .map_err(|_| TextError::MissingEquals(String::from_utf8_lossy(entry).into_owned()))?;
        debug_assert!(rest.is_empty());
        let key = std::str::from_utf8(k).map_err(|_| TextError::NotUtf8)?;
        let value = std::str::from_utf8(v).map_err(|_| TextError::NotUtf8)?;
        if key.is_empty()
            || key.len() > MAX_KEY_LEN
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:_+".contains(&b))
        {
            return Err(TextError::BadKey(key.to_string()));
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(TextError::ValueTooLong {
                key: key.to_string(),
                len: value.len(),
            });
        }
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

/// Encode pairs as `key=value\0` text.
pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Bytes {
    let mut b = BytesMut::new();
    for (k, v) in pairs {
        b.put_slice(k.as_ref().as_bytes());
        b.put_u8(b'=');
        b.put_slice(v.as_ref().as_bytes());
        b.put_u8(0);
    }
    b.freeze()
}

/// Collects text split over PDUs with the C (continue) bit.
#[derive(Debug, Default, Clone)]
pub struct TextAssembler {
    buf: BytesMut,
}

impl TextAssembler {
    /// Add one PDU's data. Returns `Ok(Some(text))` when `continues` is false (the text is
    /// complete), `Ok(None)` while more is expected.
    pub fn push(&mut self, data: &[u8], continues: bool) -> Result<Option<Bytes>, TextError> {
        if self.buf.len() + data.len() > MAX_TEXT_LEN {
            let len = self.buf.len() + data.len();
            self.buf.clear();
            return Err(TextError::TooLong(len));
        }
        self.buf.put_slice(data);
        if continues {
            Ok(None)
        } else {
            Ok(Some(self.buf.split().freeze()))
        }
    }

    /// Whether a partial text is pending.
    pub fn is_pending(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// Splits a long response text into chunks of at most `max` bytes for C-bit continuation.
pub fn chunks(text: &Bytes, max: usize) -> Vec<Bytes> {
    let max = max.max(1);
    if text.is_empty() {
        return vec![Bytes::new()];
    }
    (0..text.len())
        .step_by(max)
        .map(|s| text.slice(s..(s + max).min(text.len())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs = vec![
            (
                "InitiatorName".to_string(),
                "iqn.2004-10.com.ubuntu:01:abc".to_string(),
            ),
            ("SessionType".to_string(), "Normal".to_string()),
            ("X-empty".to_string(), String::new()),
        ];
        let text = encode(&pairs);
        assert_eq!(
            &text[..],
            b"InitiatorName=iqn.2004-10.com.ubuntu:01:abc\0SessionType=Normal\0X-empty=\0"
        );
        assert_eq!(parse(&text).unwrap(), pairs);
    }

    #[test]
    fn bad_text() {
        assert!(matches!(
            parse(b"NoEquals\0"),
            Err(TextError::MissingEquals(_))
        ));
        assert!(matches!(parse(b"=v\0"), Err(TextError::BadKey(_))));
        assert!(matches!(
            parse(&[b'K', b'=', 0xff, 0]),
            Err(TextError::NotUtf8)
        ));
        assert_eq!(parse(b"A=1").unwrap(), vec![("A".into(), "1".into())]);
        let long = format!("K={}\0", "v".repeat(MAX_VALUE_LEN + 1));
        assert!(matches!(
            parse(long.as_bytes()),
            Err(TextError::ValueTooLong { .. })
        ));
    }

    #[test]
    fn continuation() {
        let mut a = TextAssembler::default();
        assert_eq!(a.push(b"Initiator", true).unwrap(), None);
        assert!(a.is_pending());
        let full = a.push(b"Name=x\0", false).unwrap().unwrap();
        assert_eq!(
            parse(&full).unwrap(),
            vec![("InitiatorName".into(), "x".into())]
        );
        assert!(!a.is_pending());
        let big = vec![b'a'; MAX_TEXT_LEN + 1];
        assert!(matches!(a.push(&big, true), Err(TextError::TooLong(_))));
        let t = Bytes::from_static(b"abcdefg");
        assert_eq!(
            chunks(&t, 3),
            vec![
                Bytes::from_static(b"abc"),
                Bytes::from_static(b"def"),
                Bytes::from_static(b"g")
            ]
        );
    }
}
