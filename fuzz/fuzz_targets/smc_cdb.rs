//! A medium changer configured with arbitrary `--params` strings, then driven with
//! arbitrary CDBs (target side and library side). Invariants: nothing panics;
//! configuration errors are typed; a tape is never in two elements nor lost — the
//! number of full elements only changes through configuration, and the drives the
//! bay loaded are exactly the full data transfer elements.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use scsi_sbc::state::LuState;
use scsi_sbc::{BlockOp, DeviceType, LuConfig, LuContext, LuIdentity, Nexus, Plan, ScsiStatus};
use scsi_smc::{DriveBay, ElementType, Library};
use std::collections::BTreeMap;

#[derive(Default)]
struct Bay {
    loaded: BTreeMap<(u32, u64), String>,
    prevent: bool,
    fail: bool,
}

impl DriveBay for Bay {
    fn load(&mut self, drive: (u32, u64), path: &str) -> Result<(), String> {
        if self.fail {
            return Err("refused".into());
        }
        assert!(self.loaded.insert(drive, path.into()).is_none(), "drive loaded twice");
        Ok(())
    }
    fn unload(&mut self, drive: (u32, u64)) -> Result<(), String> {
        if self.prevent {
            return Err("prevented".into());
        }
        self.loaded.remove(&drive);
        Ok(())
    }
    fn prevented(&self, _drive: (u32, u64)) -> bool {
        self.prevent
    }
}

#[derive(Debug, Arbitrary)]
enum Step {
    Config(String),
    Cmd(Vec<u8>),
    Prevent(bool),
    Fail(bool),
}

fuzz_target!(|steps: Vec<Step>| {
    let lu = LuConfig {
        device_type: DeviceType::Changer,
        block_size: 1,
        num_blocks: 0,
        identity: LuIdentity {
            vendor_id: "IET".into(),
            product_id: "VIRTUAL-CHANGER".into(),
            product_rev: "0001".into(),
            scsi_id: "IET     00010003".into(),
            scsi_sn: "beaf13".into(),
        },
        readonly: false,
        removable: true,
        write_cache: false,
        thin_provisioning: false,
        descriptor_sense: false,
        sanitize: false,
        geometry: Default::default(),
    };
    let mut lib = Library::default();
    let _ = lib.configure("element_type=4,start_address=1,quantity=2,media_home=/vtl");
    let _ = lib.configure("element_type=4,address=1,tid=1,lun=1");
    let _ = lib.configure("element_type=2,start_address=100,quantity=4");
    let _ = lib.configure("element_type=2,address=100,barcode=T1");
    let mut bay = Bay::default();
    let mut state = LuState::new();
    let ctx = LuContext {
        lun: 3,
        luns: &[0, 1, 3],
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
    for step in steps.into_iter().take(48) {
        let cdb = match step {
            Step::Config(p) => {
                let _ = lib.configure(&p);
                continue;
            }
            Step::Prevent(p) => {
                bay.prevent = p;
                continue;
            }
            Step::Fail(f) => {
                bay.fail = f;
                continue;
            }
            Step::Cmd(c) => c,
        };
        let full_before = lib.elements.iter().filter(|e| e.full).count();
        let outcome = match scsi_smc::prepare_in(&cdb, &lu, &ctx, &mut state) {
            Err(o) => o,
            Ok(p) => {
                assert_eq!(p.data_out_len, 0);
                match scsi_smc::execute_in(&cdb, &lu, &ctx, &mut state, Bytes::new()) {
                    Plan::Done(o) => o,
                    Plan::Io(op) => {
                        let BlockOp::Device { request } = &op else {
                            panic!("a changer only sends device requests: {op:?}");
                        };
                        let (c, _) = scsi_ssc::wire::decode_request(request).expect("request");
                        let reply = scsi_smc::run(c, &mut lib, &mut bay);
                        let bytes = scsi_ssc::wire::encode_reply(&reply);
                        scsi_smc::complete_in(&cdb, &lu, 1, &mut state, &op, Ok(bytes))
                    }
                }
            }
        };
        match outcome.status {
            ScsiStatus::Good => assert!(outcome.sense.is_none()),
            ScsiStatus::CheckCondition => assert!(outcome.sense.is_some()),
            s => panic!("unexpected status {s:?}"),
        }
        assert_eq!(lib.elements.iter().filter(|e| e.full).count(), full_before);
        let full_drives: Vec<(u32, u64)> = lib
            .elements
            .iter()
            .filter(|e| e.kind == ElementType::DataTransfer && e.full)
            .filter_map(|e| e.drive)
            .collect();
        assert_eq!(bay.loaded.keys().copied().collect::<Vec<_>>(), full_drives);
    }
});
