//! Tests for the control-socket framing.

use super::*;
use proptest::prelude::*;

fn sample_requests() -> Vec<Request> {
    vec![
        Request::SystemShow,
        Request::SystemDelete,
        Request::TargetNew {
            tid: 2,
            name: "iqn.2012-12.com.example:server.target".into(),
        },
        Request::TargetDelete {
            tid: 2,
            force: true,
        },
        Request::TargetShow,
        Request::TargetBind {
            tid: 2,
            address: Some("ALL".into()),
            initiator_name: None,
        },
        Request::TargetUnbind {
            tid: 2,
            address: None,
            initiator_name: Some("iqn.i".into()),
        },
        Request::LuNew {
            tid: 2,
            lun: 1,
            backing_store: "/home/lun.bin".into(),
            bstype: Some("rdwr".into()),
            blocksize: Some(4096),
            params: Some("readonly=1".into()),
            bsoflags: Some("sync".into()),
            bsopts: None,
            device_type: None,
        },
        Request::AccountBind {
            tid: None,
            user: "alice".into(),
            outgoing: true,
        },
        Request::ConnectionDelete {
            tid: 1,
            sid: 3,
            cid: 0,
        },
        Request::LuDelete {
            tid: 2,
            lun: u64::MAX,
        },
    ]
}

fn sample_answers() -> Vec<Result<Response, MgmtError>> {
    vec![
        Ok(Response::ok()),
        Ok(Response::text("Target 1: iqn.x\n".into())),
        Err(MgmtError::NoTarget),
        Err(MgmtError::LunExists),
        Err(MgmtError::BackingStore(
            "can't open /x: No such file or directory".into(),
        )),
        Err(MgmtError::PermissionDenied),
        Err(MgmtError::Other {
            code: 23,
            message: "unknown parameter".into(),
        }),
    ]
}

#[test]
fn requests_round_trip() {
    for req in sample_requests() {
        let mut buf = Vec::new();
        encode_request(&req, &mut buf);
        assert_eq!(&buf[..4], b"TGT\x01");
        assert_eq!(
            u32::from_be_bytes(buf[4..8].try_into().unwrap()) as usize,
            buf.len() - 8
        );
        assert_eq!(decode_request(&buf), Ok(Some((req.clone(), buf.len()))));
        // Every proper prefix asks for more.
        for cut in 0..buf.len() {
            assert_eq!(
                decode_request(&buf[..cut]),
                Ok(None),
                "{req:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn answers_round_trip_with_code_and_message() {
    for answer in sample_answers() {
        let mut buf = Vec::new();
        encode_response(&answer, &mut buf);
        let (got, used) = decode_response(&buf).unwrap().unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(got, answer);
        if let (Err(sent), Err(got)) = (&answer, &got) {
            assert_eq!(
                (sent.code(), sent.to_string()),
                (got.code(), got.to_string())
            );
        }
    }
}

#[test]
fn frames_are_taken_one_at_a_time() {
    let mut buf = Vec::new();
    encode_request(&Request::SystemShow, &mut buf);
    let first = buf.len();
    encode_request(&Request::TargetShow, &mut buf);
    assert_eq!(decode_request(&buf), Ok(Some((Request::SystemShow, first))));
    assert_eq!(
        decode_request(&buf[first..]).unwrap().unwrap().0,
        Request::TargetShow
    );
}

#[test]
fn an_unknown_error_variant_keeps_code_and_text() {
    let body = br#"{"err":{"code":21,"message":"this driver is busy","error":"FromTheFuture"}}"#;
    let mut buf = b"TGT\x01".to_vec();
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
    let (got, _) = decode_response(&buf).unwrap().unwrap();
    let err = got.unwrap_err();
    assert_eq!(
        (err.code(), err.to_string().as_str()),
        (21, "this driver is busy")
    );
}

#[test]
fn bad_frames_are_typed_errors() {
    assert_eq!(decode_request(b"X"), Err(WireError::BadMagic([b'X', 0, 0])));
    assert_eq!(
        decode_request(b"TGX\x01"),
        Err(WireError::BadMagic(*b"TGX"))
    );
    assert_eq!(
        decode_request(b"TGT\x02\0\0\0\0"),
        Err(WireError::UnsupportedVersion { got: 2 })
    );
    let too_long = [b"TGT\x01".as_slice(), &(1u32 << 20).to_be_bytes()].concat();
    assert_eq!(
        decode_request(&too_long),
        Err(WireError::TooLong {
            len: 1 << 20,
            max: MAX_REQUEST_LEN
        })
    );
    // The same length is fine for an answer: shows can be long.
    assert_eq!(decode_response(&too_long), Ok(None));
    let garbage = [b"TGT\x01".as_slice(), &3u32.to_be_bytes(), b"{x}"].concat();
    assert!(matches!(
        decode_request(&garbage),
        Err(WireError::Malformed(_))
    ));
    let unknown = [b"TGT\x01".as_slice(), &8u32.to_be_bytes(), b"\"NoSuch\""].concat();
    assert!(matches!(
        decode_request(&unknown),
        Err(WireError::Malformed(_))
    ));
    assert_eq!(decode_request(b""), Ok(None));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_request(&bytes);
        let _ = decode_response(&bytes);
    }

    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut buf = b"TGT\x01".to_vec();
        buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
        buf.extend_from_slice(&body);
        let _ = decode_request(&buf);
        let _ = decode_response(&buf);
    }

    #[test]
    fn names_round_trip(tid in 1u32.., name in "\\PC*", lun in any::<u64>()) {
        for req in [
            Request::TargetNew { tid, name: name.clone() },
            Request::LuNew { tid, lun, backing_store: name.clone(), bstype: None, blocksize: None, params: None, bsoflags: None, bsopts: None, device_type: None },
        ] {
            let mut buf = Vec::new();
            encode_request(&req, &mut buf);
            prop_assert_eq!(decode_request(&buf), Ok(Some((req, buf.len()))));
        }
    }
}
