//! Arbitrary bytes through `PduDecoder`, with and without digests. Invariants: nothing
//! panics; a decoder never consumes bytes when it answers "need more"; every decoded PDU
//! re-encodes into bytes that decode to the same value, whole.
#![no_main]

use bytes::BytesMut;
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::pdu::Digests;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &[u8])| {
    let (flags, bytes) = input;
    let digests = Digests {
        header: flags & 1 != 0,
        data: flags & 2 != 0,
    };
    let max = if flags & 4 != 0 { 512 } else { 1 << 24 };
    let dec = PduDecoder {
        digests,
        max_data_segment: max,
    };
    let mut buf = BytesMut::from(bytes);
    loop {
        let before = buf.len();
        match dec.decode(&mut buf) {
            Ok(Some(pdu)) => {
                assert!(buf.len() < before, "a PDU consumes bytes");
                let wire = pdu.encode(digests).to_vec();
                let mut again = BytesMut::from(&wire[..]);
                let back = dec
                    .decode(&mut again)
                    .expect("a re-encoded PDU decodes")
                    .expect("a re-encoded PDU is whole");
                assert_eq!(back, pdu);
                assert!(again.is_empty(), "re-encoding has no trailing bytes");
                // Encoding is deterministic: the same value gives the same bytes.
                assert_eq!(back.encode(digests).to_vec(), wire);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "need-more consumes nothing");
                break;
            }
            Err(e) if e.is_fatal() => break,
            Err(_) => assert!(buf.len() < before, "a rejected PDU is consumed"),
        }
    }
});
