//! A sequence of arbitrary CDBs (with data-out) through a tape LU: the target side
//! (`scsi_ssc::prepare_in` / `execute_in` / `complete_in`) and the drive over an
//! in-memory image that the input may also corrupt. Invariants: nothing panics or
//! hangs (a corrupt chain is a MEDIUM ERROR, never a loop); a CHECK CONDITION carries
//! sense; GOOD carries none; the image stays a chain from BOT to EOD that a fresh
//! drive loads again after any accepted write.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use scsi_sbc::state::LuState;
use scsi_sbc::{BlockOp, DeviceType, LuConfig, LuContext, LuIdentity, Nexus, Plan, ScsiStatus};
use scsi_ssc::image::{new_image, Cartridge};
use scsi_ssc::{Drive, MemoryMedium, TapeMedium};

#[derive(Debug, Arbitrary)]
enum Step {
    Cmd { cdb: Vec<u8>, data: Vec<u8> },
    Corrupt { offset: u16, byte: u8 },
    Unload,
    Reload,
}

#[derive(Debug, Arbitrary)]
struct Input {
    cartridge: u8,
    readonly: bool,
    steps: Vec<Step>,
}

fuzz_target!(|input: Input| {
    let lu = LuConfig {
        device_type: DeviceType::Tape,
        block_size: 1,
        num_blocks: 0,
        identity: LuIdentity {
            vendor_id: "IET".into(),
            product_id: "VIRTUAL-TAPE".into(),
            product_rev: "0001".into(),
            scsi_id: "IET     00010001".into(),
            scsi_sn: "beaf11".into(),
        },
        readonly: input.readonly,
        removable: true,
        write_cache: false,
        thin_provisioning: false,
        descriptor_sense: false,
        sanitize: false,
        geometry: Default::default(),
    };
    let cart = Cartridge::from_byte(input.cartridge % 6);
    let mut medium = MemoryMedium {
        bytes: new_image("FUZZ", 1, cart, 0),
        readonly: false,
    };
    let mut drive = Drive::new(false);
    drive.load(&mut medium).expect("a new image loads");
    let mut present = true;
    let mut corrupted = false;
    let mut state = LuState::new();
    let ctx = LuContext {
        lun: 1,
        luns: &[0, 1],
        target_name: "iqn.2024-01.com.example:fuzz",
        tpgt: 1,
        nexus: Nexus {
            id: 1,
            initiator_port: 1,
            initiator: "iqn.2024-01.com.example:a",
        },
        peers: &[],
        alua: None,
    };
    for step in input.steps.into_iter().take(48) {
        let (cdb, data) = match step {
            Step::Cmd { cdb, data } => (cdb, data),
            Step::Corrupt { offset, byte } => {
                let at = usize::from(offset) % medium.bytes.len().max(1);
                medium.bytes[at] ^= byte;
                corrupted |= byte != 0;
                continue;
            }
            Step::Unload => {
                drive.eject();
                present = false;
                continue;
            }
            Step::Reload => {
                present = drive.load(&mut medium).is_ok();
                continue;
            }
        };
        let outcome = match scsi_ssc::prepare_in(&cdb, &lu, &ctx, &mut state) {
            Err(o) => o,
            Ok(p) => {
                let n = (p.data_out_len as usize).min(data.len());
                let out = Bytes::copy_from_slice(&data[..n]);
                match scsi_ssc::execute_in(&cdb, &lu, &ctx, &mut state, out) {
                    Plan::Done(o) => o,
                    Plan::Io(op) => {
                        let BlockOp::Device { request } = &op else {
                            panic!("a tape LU only sends device requests: {op:?}");
                        };
                        let (c, d) = scsi_ssc::wire::decode_request(request).expect("request");
                        let m: Option<&mut dyn TapeMedium> =
                            if present { Some(&mut medium) } else { None };
                        let reply = drive.run(c, d, m);
                        let bytes = scsi_ssc::wire::encode_reply(&reply);
                        scsi_ssc::complete_in(&cdb, &lu, 1, &mut state, &op, Ok(bytes))
                    }
                }
            }
        };
        match outcome.status {
            ScsiStatus::Good => assert!(outcome.sense.is_none()),
            ScsiStatus::CheckCondition => assert!(outcome.sense.is_some()),
            s => panic!("unexpected status {s:?}"),
        }
        if !corrupted {
            // What the drive wrote is an image a fresh drive loads.
            let mut copy = medium.clone();
            Drive::new(false).load(&mut copy).expect("the image still loads");
        }
    }
});
