//! What the other gateways of a shared medium send this one through the cluster:
//! their reports on the watch channel (ALUA view and epoch) and the reservation
//! object's text (published by whichever gateway changed it). Never a panic; a
//! report that parses encodes to the same report.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scsi_sbc::gateway_report::GatewayReport;
use scsi_sbc::pr_shared::SharedPr;

fuzz_target!(|data: &[u8]| {
    if let Some(r) = GatewayReport::parse(data) {
        assert_eq!(GatewayReport::parse(&r.encode()), Some(r));
    }
    let _ = SharedPr::new(1).publish(data);
});
