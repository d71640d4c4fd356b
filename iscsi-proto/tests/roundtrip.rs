//! Every PDU round-trips through encode/decode, with and without digests, however the
//! stream is chunked; arbitrary bytes never panic the decoder.

use bytes::BytesMut;
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::pdu::{DecodeError, Digests};
use iscsi_proto::strategies::any_pdu;
use proptest::prelude::*;

proptest! {
    #[test]
    fn pdu_round_trip(pdu in any_pdu(), hd in any::<bool>(), dd in any::<bool>()) {
        let digests = Digests { header: hd, data: dd };
        let wire = pdu.encode(digests).to_vec();
        prop_assert_eq!(wire.len() % 4, 0);
        let mut dec = PduDecoder::new(1 << 24);
        dec.digests = digests;
        let mut buf = BytesMut::from(&wire[..]);
        let back = dec.decode(&mut buf).unwrap().unwrap();
        prop_assert_eq!(back, pdu);
        prop_assert!(buf.is_empty());
    }

    /// Headers carved from one kept arena are the same bytes as fresh ones, and a
    /// header already handed out is not disturbed by the next PDU's.
    #[test]
    fn arena_encoding_matches(pdus in proptest::collection::vec(any_pdu(), 1..8), hd in any::<bool>(), dd in any::<bool>()) {
        let digests = Digests { header: hd, data: dd };
        let mut arena = BytesMut::new();
        let carved: Vec<_> = pdus.iter().map(|p| p.encode_in(digests, &mut arena)).collect();
        for (p, e) in pdus.iter().zip(&carved) {
            prop_assert_eq!(e.to_vec(), p.encode(digests).to_vec());
        }
    }

    #[test]
    fn any_chunking_gives_same_pdus(pdus in proptest::collection::vec(any_pdu(), 1..5), cut in 1usize..64) {
        let mut wire = Vec::new();
        for p in &pdus {
            wire.extend_from_slice(&p.encode(Digests::default()).to_vec());
        }
        let dec = PduDecoder::new(1 << 24);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in wire.chunks(cut) {
            buf.extend_from_slice(chunk);
            while let Some(p) = dec.decode(&mut buf).unwrap() {
                out.push(p);
            }
        }
        prop_assert_eq!(out, pdus);
    }

    /// `missing` counts exactly the bytes that make the front PDU decodable: with
    /// fewer it stays undecoded, with them it decodes.
    #[test]
    fn missing_is_what_the_front_pdu_needs(pdu in any_pdu(), hd in any::<bool>(), dd in any::<bool>(), cut in 0usize..400) {
        let digests = Digests { header: hd, data: dd };
        let wire = pdu.encode(digests).to_vec();
        let mut dec = PduDecoder::new(1 << 24);
        dec.digests = digests;
        let have = cut.min(wire.len());
        let missing = dec.missing(&wire[..have]);
        if have == 0 || have == wire.len() {
            prop_assert_eq!(missing, 0);
        } else {
            prop_assert!(missing > 0);
            prop_assert!(have + missing <= wire.len());
            // The header alone tells the whole frame's length once it is here.
            if have >= 48 {
                prop_assert_eq!(have + missing, wire.len());
            }
            let mut buf = BytesMut::from(&wire[..have]);
            prop_assert!(dec.decode(&mut buf).unwrap().is_none());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), hd in any::<bool>(), dd in any::<bool>()) {
        let mut dec = PduDecoder::new(8192);
        dec.digests = Digests { header: hd, data: dd };
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) if e.is_fatal() => break,
                Err(_) => continue,
            }
        }
    }
}

#[test]
fn header_digest_error_is_fatal_data_digest_is_not() {
    use iscsi_proto::pdu::{NopOut, Pdu};
    use iscsi_proto::{Itt, LunField, SerialNumber, Ttt};
    let p = Pdu::NopOut(NopOut {
        immediate: false,
        lun: LunField::default(),
        itt: Itt(1),
        ttt: Ttt::RESERVED,
        cmd_sn: SerialNumber(1),
        exp_stat_sn: SerialNumber(1),
        data: bytes::Bytes::from_static(b"abc"),
    });
    let digests = Digests {
        header: true,
        data: true,
    };
    let mut dec = PduDecoder::new(8192);
    dec.digests = digests;
    let mut wire = p.encode(digests).to_vec();
    wire[50] ^= 1; // inside the header digest
    let e = dec.decode(&mut BytesMut::from(&wire[..])).unwrap_err();
    assert!(matches!(e, DecodeError::HeaderDigest { .. }) && e.is_fatal());
    let mut wire = p.encode(digests).to_vec();
    wire[52] ^= 1; // inside the data
    let mut buf = BytesMut::from(&wire[..]);
    let e = dec.decode(&mut buf).unwrap_err();
    assert!(matches!(e, DecodeError::DataDigest { .. }) && !e.is_fatal());
    assert!(buf.is_empty(), "a data digest error consumes the PDU");
}

#[test]
fn unknown_opcode_and_oversized_segment() {
    let mut hdr = [0u8; 48];
    hdr[0] = 0x1c;
    let dec = PduDecoder::new(8192);
    let e = dec.decode(&mut BytesMut::from(&hdr[..])).unwrap_err();
    assert!(matches!(e, DecodeError::UnknownOpcode { opcode: 0x1c, .. }));
    hdr[0] = 0x00;
    hdr[5] = 0x01; // 64 KiB data segment
    let e = dec.decode(&mut BytesMut::from(&hdr[..])).unwrap_err();
    assert_eq!(
        e,
        DecodeError::DataSegmentTooLong {
            len: 65536,
            max: 8192
        }
    );
}
