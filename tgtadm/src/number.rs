//! Numbers on the command line, read the way tgt reads them.
//!
//! tgt's `str_to_int` macros call `strtoull(str, &end, 0)`: leading blanks and a
//! sign are allowed, `0x` means hex and a leading `0` octal, and trailing garbage is
//! ignored (`--tid 1abc` is tid 1). No digits at all, or `ULLONG_MAX` (overflow, or
//! `-1`), is "invalid"; a value that does not fit the variable, or is below the
//! minimum, is "out of range".

/// The C variable an option is stored in, which decides the range check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgKind {
    /// `uint64_t` (`--lun`, `--sid`).
    U64,
    /// `uint32_t` (`--cid`).
    U32,
    /// `int`, at least 0 (`--tid`, `--host`).
    NonNegativeInt,
    /// `short`, at least 0 (`--control-port`).
    NonNegativeShort,
}

/// Why tgt refuses a number (`bad_optarg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgError {
    /// EINVAL: "invalid".
    Invalid,
    /// ERANGE: "out of range".
    OutOfRange,
}

/// `strtoull(s, &end, 0)`: the value, or `None` when no digit was read. Overflow
/// saturates to `u64::MAX` as C does.
fn strtoull(s: &str) -> Option<u64> {
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let b = s.as_bytes();
    let (radix, digits) =
        if b.len() > 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' && b[2].is_ascii_hexdigit() {
            (16, &s[2..])
        } else if b.first() == Some(&b'0') {
            (8, s)
        } else {
            (10, s)
        };
    let mut value: u64 = 0;
    let mut any = false;
    let mut overflow = false;
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else { break };
        any = true;
        match value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    if !any {
        return None;
    }
    if overflow {
        return Some(u64::MAX);
    }
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// Read an option value as tgt does for a variable of `kind`. The result is the
/// value as stored (non-negative for the signed kinds).
pub(crate) fn parse_arg(s: &str, kind: ArgKind) -> Result<u64, ArgError> {
    let v = strtoull(s)
        .filter(|&v| v != u64::MAX)
        .ok_or(ArgError::Invalid)?;
    // C stores into the variable, then compares it (widened back) with the u64.
    let fits = match kind {
        ArgKind::U64 => true,
        ArgKind::U32 => u64::from(v as u32) == v,
        ArgKind::NonNegativeInt => (v as i32) as i64 as u64 == v && (v as i32) >= 0,
        ArgKind::NonNegativeShort => (v as i16) as i64 as u64 == v && (v as i16) >= 0,
    };
    if fits {
        Ok(v)
    } else {
        Err(ArgError::OutOfRange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_strtoull() {
        assert_eq!(parse_arg("12", ArgKind::U64), Ok(12));
        assert_eq!(parse_arg("0x10", ArgKind::U64), Ok(16));
        assert_eq!(parse_arg("010", ArgKind::U64), Ok(8));
        assert_eq!(parse_arg(" 7abc", ArgKind::U64), Ok(7));
        assert_eq!(parse_arg("0x", ArgKind::U64), Ok(0));
        assert_eq!(parse_arg("abc", ArgKind::U64), Err(ArgError::Invalid));
        assert_eq!(parse_arg("", ArgKind::U64), Err(ArgError::Invalid));
        assert_eq!(parse_arg("-1", ArgKind::U64), Err(ArgError::Invalid));
        assert_eq!(
            parse_arg("99999999999999999999999", ArgKind::U64),
            Err(ArgError::Invalid)
        );
    }

    #[test]
    fn range_checks_follow_the_c_variable() {
        assert_eq!(
            parse_arg("-2", ArgKind::NonNegativeInt),
            Err(ArgError::OutOfRange)
        );
        assert_eq!(
            parse_arg("2147483647", ArgKind::NonNegativeInt),
            Ok(2147483647)
        );
        assert_eq!(
            parse_arg("2147483648", ArgKind::NonNegativeInt),
            Err(ArgError::OutOfRange)
        );
        assert_eq!(
            parse_arg("4294967296", ArgKind::U32),
            Err(ArgError::OutOfRange)
        );
        assert_eq!(parse_arg("32767", ArgKind::NonNegativeShort), Ok(32767));
        assert_eq!(
            parse_arg("32768", ArgKind::NonNegativeShort),
            Err(ArgError::OutOfRange)
        );
        assert_eq!(parse_arg("0", ArgKind::NonNegativeInt), Ok(0));
    }
}
