//! proptest strategies for every PDU (tests and downstream fuzzing of encoders).

use crate::pdu::*;
use crate::serial::SerialNumber;
use crate::types::{Isid, Itt, LunField, Tsih, Ttt};
use bytes::Bytes;
use proptest::prelude::*;

fn sn() -> impl Strategy<Value = SerialNumber> {
    any::<u32>().prop_map(SerialNumber)
}
fn itt() -> impl Strategy<Value = Itt> {
    any::<u32>().prop_map(Itt)
}
fn ttt() -> impl Strategy<Value = Ttt> {
    any::<u32>().prop_map(Ttt)
}
fn lun() -> impl Strategy<Value = LunField> {
    any::<[u8; 8]>().prop_map(LunField)
}
fn data() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..70).prop_map(Bytes::from)
}
fn stage() -> impl Strategy<Value = Stage> {
    prop_oneof![
        Just(Stage::Security),
        Just(Stage::Operational),
        Just(Stage::Reserved),
        Just(Stage::FullFeature)
    ]
}
fn attr() -> impl Strategy<Value = TaskAttr> {
    (0u8..8).prop_map(|b| match b {
        0 => TaskAttr::Untagged,
        1 => TaskAttr::Simple,
        2 => TaskAttr::Ordered,
        3 => TaskAttr::HeadOfQueue,
        4 => TaskAttr::Aca,
        r => TaskAttr::Reserved(r),
    })
}

/// Any PDU with field values that survive a round trip (reserved bits zero).
pub fn any_pdu() -> impl Strategy<Value = Pdu> {
    prop_oneof![
        (any::<bool>(), lun(), itt(), ttt(), sn(), sn(), data()).prop_map(
            |(immediate, lun, itt, ttt, cmd_sn, exp_stat_sn, data)| {
                Pdu::NopOut(NopOut {
                    immediate,
                    lun,
                    itt,
                    ttt,
                    cmd_sn,
                    exp_stat_sn,
                    data,
                })
            }
        ),
        (
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                attr()
            ),
            (lun(), itt(), any::<u32>(), sn(), sn()),
            proptest::collection::vec(any::<u8>(), 16..40),
            data()
        )
            .prop_map(
                |(
                    (immediate, final_bit, read, write, attr),
                    (lun, itt, edtl, cmd_sn, exp_stat_sn),
                    cdb,
                    data,
                )| {
                    Pdu::ScsiCommand(ScsiCommand {
                        immediate,
                        final_bit,
                        read,
                        write,
                        attr,
                        lun,
                        itt,
                        expected_data_transfer_length: edtl,
                        cmd_sn,
                        exp_stat_sn,
                        cdb: Bytes::from(cdb),
                        data,
                    })
                }
            ),
        (
            any::<bool>(),
            0u8..128,
            lun(),
            itt(),
            itt(),
            sn(),
            sn(),
            sn(),
            any::<u32>()
        )
            .prop_map(
                |(
                    immediate,
                    function,
                    lun,
                    itt,
                    rtt,
                    cmd_sn,
                    exp_stat_sn,
                    ref_cmd_sn,
                    exp_data_sn,
                )| {
                    Pdu::TaskMgmtRequest(TaskMgmtRequest {
                        immediate,
                        function,
                        lun,
                        itt,
                        referenced_task_tag: rtt,
                        cmd_sn,
                        exp_stat_sn,
                        ref_cmd_sn,
                        exp_data_sn,
                    })
                }
            ),
        (
            (
                any::<bool>(),
                any::<bool>(),
                stage(),
                stage(),
                any::<u8>(),
                any::<u8>()
            ),
            (
                any::<[u8; 6]>(),
                any::<u16>(),
                itt(),
                any::<u16>(),
                sn(),
                sn()
            ),
            data()
        )
            .prop_map(
                |(
                    (transit, continue_bit, csg, nsg, version_max, version_min),
                    (isid, tsih, itt, cid, cmd_sn, exp_stat_sn),
                    data,
                )| {
                    Pdu::LoginRequest(LoginRequest {
                        transit,
                        continue_bit,
                        csg,
                        nsg,
                        version_max,
                        version_min,
                        isid: Isid(isid),
                        tsih: Tsih(tsih),
                        itt,
                        cid,
                        cmd_sn,
                        exp_stat_sn,
                        data,
                    })
                }
            ),
        (
            (any::<bool>(), any::<bool>(), any::<bool>()),
            lun(),
            itt(),
            ttt(),
            sn(),
            sn(),
            data()
        )
            .prop_map(
                |(
                    (immediate, final_bit, continue_bit),
                    lun,
                    itt,
                    ttt,
                    cmd_sn,
                    exp_stat_sn,
                    data,
                )| {
                    Pdu::TextRequest(TextRequest {
                        immediate,
                        final_bit,
                        continue_bit,
                        lun,
                        itt,
                        ttt,
                        cmd_sn,
                        exp_stat_sn,
                        data,
                    })
                }
            ),
        (
            any::<bool>(),
            lun(),
            itt(),
            ttt(),
            sn(),
            any::<u32>(),
            any::<u32>(),
            data()
        )
            .prop_map(
                |(final_bit, lun, itt, ttt, exp_stat_sn, data_sn, buffer_offset, data)| {
                    Pdu::DataOut(DataOut {
                        final_bit,
                        lun,
                        itt,
                        ttt,
                        exp_stat_sn,
                        data_sn,
                        buffer_offset,
                        data,
                    })
                }
            ),
        (any::<bool>(), 0u8..128, itt(), any::<u16>(), sn(), sn()).prop_map(
            |(immediate, reason, itt, cid, cmd_sn, exp_stat_sn)| {
                Pdu::LogoutRequest(LogoutRequest {
                    immediate,
                    reason,
                    itt,
                    cid,
                    cmd_sn,
                    exp_stat_sn,
                })
            }
        ),
        (
            0u8..16,
            lun(),
            itt(),
            ttt(),
            sn(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(
                |(snack_type, lun, itt, ttt, exp_stat_sn, beg_run, run_length)| {
                    Pdu::SnackRequest(SnackRequest {
                        snack_type,
                        lun,
                        itt,
                        ttt,
                        exp_stat_sn,
                        beg_run,
                        run_length,
                    })
                }
            ),
        (lun(), itt(), ttt(), sn(), sn(), sn(), data()).prop_map(
            |(lun, itt, ttt, stat_sn, exp_cmd_sn, max_cmd_sn, data)| {
                Pdu::NopIn(NopIn {
                    lun,
                    itt,
                    ttt,
                    stat_sn,
                    exp_cmd_sn,
                    max_cmd_sn,
                    data,
                })
            }
        ),
        (
            any::<[bool; 4]>(),
            (any::<u8>(), any::<u8>(), itt(), any::<u32>()),
            (sn(), sn(), sn(), any::<u32>(), any::<u32>(), any::<u32>()),
            data()
        )
            .prop_map(
                |(
                    b,
                    (response, status, itt, snack_tag),
                    (stat_sn, exp_cmd_sn, max_cmd_sn, exp_data_sn, bidi, resid),
                    data,
                )| {
                    Pdu::ScsiResponse(ScsiResponse {
                        bidi_overflow: b[0],
                        bidi_underflow: b[1],
                        overflow: b[2],
                        underflow: b[3],
                        response,
                        status,
                        itt,
                        snack_tag,
                        stat_sn,
                        exp_cmd_sn,
                        max_cmd_sn,
                        exp_data_sn,
                        bidi_residual_count: bidi,
                        residual_count: resid,
                        data,
                    })
                }
            ),
        (any::<u8>(), itt(), sn(), sn(), sn()).prop_map(
            |(response, itt, stat_sn, exp_cmd_sn, max_cmd_sn)| {
                Pdu::TaskMgmtResponse(TaskMgmtResponse {
                    response,
                    itt,
                    stat_sn,
                    exp_cmd_sn,
                    max_cmd_sn,
                })
            }
        ),
        (
            (
                any::<bool>(),
                any::<bool>(),
                stage(),
                stage(),
                any::<u8>(),
                any::<u8>()
            ),
            (any::<[u8; 6]>(), any::<u16>(), itt(), sn(), sn(), sn()),
            (any::<u8>(), any::<u8>()),
            data()
        )
            .prop_map(
                |(
                    (transit, continue_bit, csg, nsg, version_max, version_active),
                    (isid, tsih, itt, stat_sn, exp_cmd_sn, max_cmd_sn),
                    (status_class, status_detail),
                    data,
                )| {
                    Pdu::LoginResponse(LoginResponse {
                        transit,
                        continue_bit,
                        csg,
                        nsg,
                        version_max,
                        version_active,
                        isid: Isid(isid),
                        tsih: Tsih(tsih),
                        itt,
                        stat_sn,
                        exp_cmd_sn,
                        max_cmd_sn,
                        status_class,
                        status_detail,
                        data,
                    })
                }
            ),
        (
            (any::<bool>(), any::<bool>()),
            lun(),
            itt(),
            ttt(),
            sn(),
            sn(),
            sn(),
            data()
        )
            .prop_map(
                |(
                    (final_bit, continue_bit),
                    lun,
                    itt,
                    ttt,
                    stat_sn,
                    exp_cmd_sn,
                    max_cmd_sn,
                    data,
                )| {
                    Pdu::TextResponse(TextResponse {
                        final_bit,
                        continue_bit,
                        lun,
                        itt,
                        ttt,
                        stat_sn,
                        exp_cmd_sn,
                        max_cmd_sn,
                        data,
                    })
                }
            ),
        (
            (any::<[bool; 5]>(), any::<u8>(), lun(), itt(), ttt()),
            (sn(), sn(), sn(), any::<u32>(), any::<u32>(), any::<u32>()),
            data()
        )
            .prop_map(
                |(
                    (b, status, lun, itt, ttt),
                    (stat_sn, exp_cmd_sn, max_cmd_sn, data_sn, buffer_offset, residual_count),
                    data,
                )| {
                    Pdu::DataIn(DataIn {
                        final_bit: b[0],
                        ack: b[1],
                        overflow: b[2],
                        underflow: b[3],
                        status_present: b[4],
                        status,
                        lun,
                        itt,
                        ttt,
                        stat_sn,
                        exp_cmd_sn,
                        max_cmd_sn,
                        data_sn,
                        buffer_offset,
                        residual_count,
                        data,
                    })
                }
            ),
        (
            any::<u8>(),
            itt(),
            sn(),
            sn(),
            sn(),
            any::<u16>(),
            any::<u16>()
        )
            .prop_map(
                |(response, itt, stat_sn, exp_cmd_sn, max_cmd_sn, time2wait, time2retain)| {
                    Pdu::LogoutResponse(LogoutResponse {
                        response,
                        itt,
                        stat_sn,
                        exp_cmd_sn,
                        max_cmd_sn,
                        time2wait,
                        time2retain,
                    })
                }
            ),
        (
            (lun(), itt(), ttt()),
            (sn(), sn(), sn()),
            (any::<u32>(), any::<u32>(), any::<u32>())
        )
            .prop_map(
                |(
                    (lun, itt, ttt),
                    (stat_sn, exp_cmd_sn, max_cmd_sn),
                    (r2t_sn, buffer_offset, len),
                )| {
                    Pdu::R2t(R2t {
                        lun,
                        itt,
                        ttt,
                        stat_sn,
                        exp_cmd_sn,
                        max_cmd_sn,
                        r2t_sn,
                        buffer_offset,
                        desired_data_transfer_length: len,
                    })
                }
            ),
        (
            (lun(), sn(), sn(), sn()),
            (
                any::<u8>(),
                any::<u8>(),
                any::<u16>(),
                any::<u16>(),
                any::<u16>()
            ),
            data()
        )
            .prop_map(
                |(
                    (lun, stat_sn, exp_cmd_sn, max_cmd_sn),
                    (async_event, async_vcode, parameter1, parameter2, parameter3),
                    data,
                )| {
                    Pdu::AsyncMessage(AsyncMessage {
                        lun,
                        stat_sn,
                        exp_cmd_sn,
                        max_cmd_sn,
                        async_event,
                        async_vcode,
                        parameter1,
                        parameter2,
                        parameter3,
                        data,
                    })
                }
            ),
        (any::<u8>(), sn(), sn(), sn(), any::<u32>(), data()).prop_map(
            |(reason, stat_sn, exp_cmd_sn, max_cmd_sn, data_sn, data)| {
                Pdu::Reject(Reject {
                    reason,
                    stat_sn,
                    exp_cmd_sn,
                    max_cmd_sn,
                    data_sn,
                    data,
                })
            }
        ),
    ]
}
