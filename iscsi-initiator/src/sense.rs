//! SCSI sense data as an initiator sees it (SPC-4 §4.5).

use bytes::Bytes;

/// The parts of sense data a caller acts on, from fixed (0x70/0x71) or descriptor
/// (0x72/0x73) format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sense {
    /// SENSE KEY.
    pub key: u8,
    /// ADDITIONAL SENSE CODE.
    pub asc: u8,
    /// ADDITIONAL SENSE CODE QUALIFIER.
    pub ascq: u8,
    /// The whole sense data, for callers that want more (INFORMATION, descriptors).
    pub raw: Bytes,
}

impl Sense {
    /// Decode sense data (without the 2-byte SenseLength iSCSI puts in front).
    pub fn parse(raw: Bytes) -> Option<Sense> {
        let code = *raw.first()? & 0x7f;
        let (key, asc, ascq) = match code {
            0x70 | 0x71 => (*raw.get(2)? & 0x0f, *raw.get(12)?, *raw.get(13)?),
            0x72 | 0x73 => (*raw.get(1)? & 0x0f, *raw.get(2)?, *raw.get(3)?),
            _ => return None,
        };
        Some(Sense {
            key,
            asc,
            ascq,
            raw,
        })
    }

    /// Decode the data segment of a SCSI Response: SenseLength (2 bytes) then sense
    /// data (RFC 7143 §11.4.7). `None` when there is none.
    pub fn from_response_data(data: &Bytes) -> Option<Sense> {
        if data.len() < 2 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        if len == 0 || data.len() < 2 + len {
            return None;
        }
        Sense::parse(data.slice(2..2 + len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_descriptor() {
        let mut fixed = vec![0u8; 18];
        fixed[0] = 0x70;
        fixed[2] = 0x05;
        fixed[12] = 0x21;
        fixed[13] = 0x00;
        let mut seg = vec![0, 18];
        seg.extend_from_slice(&fixed);
        let s = Sense::from_response_data(&Bytes::from(seg)).unwrap();
        assert_eq!((s.key, s.asc, s.ascq), (5, 0x21, 0));
        let d = Sense::parse(Bytes::from_static(&[0x72, 0x06, 0x29, 0x01])).unwrap();
        assert_eq!((d.key, d.asc, d.ascq), (6, 0x29, 1));
        assert!(Sense::parse(Bytes::from_static(&[0x00])).is_none());
        assert!(Sense::from_response_data(&Bytes::from_static(&[0, 0])).is_none());
    }
}
