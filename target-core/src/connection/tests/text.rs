//! Text requests in full feature phase (RFC 7143 §11.10, §11.11, Appendix C): every
//! request is answered, malformed SendTargets requests are rejected, and a broken
//! Data-Out sequence ends only its own task.

use super::{assert_clean, logged_in};
use crate::testkit::fixture;
use bytes::Bytes;
use iscsi_proto::pdu::{reject_reason, DataOut, Pdu};
use iscsi_proto::text::{self, Pair};
use iscsi_proto::{Itt, Ttt};

fn pairs(v: &[(&str, &str)]) -> Vec<Pair> {
    v.iter()
        .map(|(k, x)| (k.to_string(), x.to_string()))
        .collect()
}

/// The ITTs of the Reject PDUs received (from the rejected header's bytes 16..20).
fn rejected(sim: &crate::testkit::Sim) -> Vec<(u8, Itt)> {
    sim.ini.received_where(|p| match p {
        Pdu::Reject(r) => Some((
            r.reason,
            Itt(u32::from_be_bytes([
                r.data[16], r.data[17], r.data[18], r.data[19],
            ])),
        )),
        _ => None,
    })
}

#[test]
fn send_targets_all_in_a_normal_session_names_its_own_target() {
    let (mut sim, _fx) = logged_in(41);
    for value in ["All", ""] {
        let req = sim.ini.text_request(&pairs(&[("SendTargets", value)]));
        let itt = req.itt;
        sim.send(Pdu::TextRequest(req));
        let resp = sim.ini.text_responses(itt);
        assert_eq!(resp.len(), 1, "SendTargets={value}");
        assert!(resp[0].final_bit);
        assert_eq!(
            text::parse(&resp[0].data).unwrap(),
            pairs(&[
                ("TargetName", fixture::TARGET),
                ("TargetAddress", "10.0.0.1:3260,1"),
            ]),
            "SendTargets={value}"
        );
    }
    assert_clean(&sim);
}

#[test]
fn malformed_send_targets_is_rejected_and_the_next_request_answered() {
    let (mut sim, _fx) = logged_in(42);
    let bad = [
        ("SendTargetsPlease", "All"),
        ("SendTargets", "Alle"),
        ("SendTargets", "A"),
        ("sENDtARGETS", "aLL"),
    ];
    let mut itts = Vec::new();
    for (k, v) in bad {
        // As libiscsi's test sends them: immediate.
        let mut req = sim.ini.text_request(&pairs(&[(k, v)]));
        req.immediate = true;
        sim.ini.cmd_sn = req.cmd_sn;
        itts.push(req.itt);
        sim.send(Pdu::TextRequest(req));
        assert!(sim.ini.text_responses(*itts.last().unwrap()).is_empty());
    }
    let want: Vec<_> = itts
        .iter()
        .map(|i| (reject_reason::PROTOCOL_ERROR, *i))
        .collect();
    assert_eq!(rejected(&sim), want);
    // Vendor keys and RFC keys are answered NotUnderstood, not rejected.
    let req = sim.ini.text_request(&pairs(&[
        ("X-com.example.thing", "1"),
        ("MaxBurstLength", "512"),
    ]));
    let itt = req.itt;
    sim.send(Pdu::TextRequest(req));
    assert_eq!(
        text::parse(&sim.ini.text_responses(itt)[0].data).unwrap(),
        pairs(&[
            ("X-com.example.thing", "NotUnderstood"),
            ("MaxBurstLength", "NotUnderstood")
        ])
    );
    // A well-formed request still works, and a named target too.
    let req = sim
        .ini
        .text_request(&pairs(&[("SendTargets", fixture::TARGET)]));
    let itt = req.itt;
    sim.send(Pdu::TextRequest(req));
    let got = text::parse(&sim.ini.text_responses(itt)[0].data).unwrap();
    assert_eq!(
        got[0],
        ("TargetName".to_string(), fixture::TARGET.to_string())
    );
    assert_clean(&sim);
}

#[test]
fn a_request_sent_in_pieces_is_answered_once_whole() {
    let (mut sim, _fx) = logged_in(43);
    let body = text::encode(&pairs(&[("SendTargets", "All")]));
    let mut first = sim.ini.text_request(&[]);
    first.data = body.slice(..5);
    first.continue_bit = true;
    first.final_bit = false;
    let itt = first.itt;
    sim.send(Pdu::TextRequest(first));
    let resp = sim.ini.text_responses(itt);
    assert_eq!(resp.len(), 1);
    assert!(resp[0].data.is_empty() && !resp[0].final_bit);
    assert_ne!(resp[0].ttt, Ttt::RESERVED);
    // The rest, continued with the TTT the target gave (RFC 7143 §11.11.4).
    let mut rest = sim.ini.text_request(&[]);
    rest.itt = itt;
    rest.ttt = resp[0].ttt;
    rest.data = body.slice(5..);
    sim.send(Pdu::TextRequest(rest));
    let resp = sim.ini.text_responses(itt);
    assert_eq!(resp.len(), 2);
    assert!(resp[1].final_bit);
    assert_eq!(
        text::parse(&resp[1].data).unwrap()[0],
        ("TargetName".to_string(), fixture::TARGET.to_string())
    );
    // A TTT the target never gave out is answered with a Reject, not silence.
    let mut stray = sim.ini.text_request(&[]);
    stray.ttt = Ttt(0x7777);
    let stray_itt = stray.itt;
    sim.send(Pdu::TextRequest(stray));
    assert_eq!(
        rejected(&sim),
        vec![(reject_reason::INVALID_PDU_FIELD, stray_itt)]
    );
    assert_clean(&sim);
}

#[test]
fn a_data_sn_error_ends_only_its_task_and_the_connection_goes_on() {
    let (mut sim, fx) = super::sim_with(1024, crate::connection::ConnConfig::default(), 44);
    sim.ini.offer.immediate_data = false;
    sim.login_ready(fixture::TARGET);
    sim.ini.auto_data_out = false;
    let data = Bytes::from(vec![0x5a; 2048]);
    let itt = sim
        .ini
        .write(1, &crate::testkit::cdb::write10(10, 4), data.clone());
    sim.drive();
    let r2t = sim.ini.task(itt).unwrap().r2ts[0].clone();
    // DataSN 27 where 0 is due.
    let d = DataOut {
        final_bit: true,
        lun: r2t.lun,
        itt,
        ttt: r2t.ttt,
        exp_stat_sn: sim.ini.exp_stat_sn,
        data_sn: 27,
        buffer_offset: 0,
        data: data.clone(),
    };
    sim.send(Pdu::DataOut(d));
    let t = sim.ini.task(itt).unwrap();
    assert_eq!(t.status, Some(2), "CHECK CONDITION at once");
    let s = t.sense.unwrap();
    assert_eq!((s.key, s.asc, s.ascq), (0x0b, 0x0c, 0x0d));
    assert_eq!(rejected(&sim), vec![(reject_reason::PROTOCOL_ERROR, itt)]);
    // Nothing was written, and the connection serves the next command.
    assert_eq!(fx.store.read_at(10 * 512, 4), vec![0; 4]);
    sim.ini.auto_data_out = true;
    let w = sim
        .ini
        .write(1, &crate::testkit::cdb::write10(20, 1), data.slice(..512));
    sim.drive();
    assert_eq!(sim.ini.task(w).unwrap().status, Some(0));
    assert_eq!(fx.store.read_at(20 * 512, 2), vec![0x5a; 2]);
    assert!(!sim.conn.is_closed());
}
