//! Tests for [`apply`](super::apply): each refusal is the tgt code for the same case.

use super::*;
use crate::mgmt::{ConfigAction, ConfigReport, StoreSpec};
use crate::registry::{ConnectionInfo, SessionInfo};
use bytes::Bytes;
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind};
use std::sync::Mutex;

#[derive(Debug)]
struct FakeStore(u64);

impl BlockStore for FakeStore {
    fn size(&self) -> u64 {
        self.0
    }
    /// A "device" with 4 KiB physical sectors.
    fn physical_block_size(&self) -> Option<u32> {
        Some(4096)
    }
    fn execute(&self, _op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        Ok(Bytes::new())
    }
}

/// Opens any path as a 100 MiB store except `/missing`; records what it was asked.
#[derive(Default)]
struct FakeOpener {
    calls: Mutex<Vec<(String, String, bool)>>,
}

impl StoreOpener for FakeOpener {
    fn open(&self, spec: &StoreSpec<'_>) -> Result<Arc<dyn BlockStore>, String> {
        let (bstype, path, readonly) = (spec.bstype, spec.path, spec.readonly);
        self.calls
            .lock()
            .unwrap()
            .push((bstype.into(), path.into(), readonly));
        if path == "/missing" {
            return Err("can't open /missing: No such file or directory".into());
        }
        Ok(Arc::new(FakeStore(100 << 20)))
    }

    fn store_exists(&self, path: &str) -> bool {
        path != "/missing"
    }
}

fn run(core: &Core, req: Request) -> Result<Response, MgmtError> {
    apply(core, req, &FakeOpener::default())
}

/// `logicalunit update --params PARAMS`.
fn lu_update(core: &Core, tid: Tid, lun: u64, params: &str) -> Result<Response, MgmtError> {
    run(
        core,
        Request::LuUpdate {
            tid,
            lun,
            params: Some(params.into()),
        },
    )
}

fn new_target(core: &Core, tid: Tid, name: &str) -> Result<Response, MgmtError> {
    run(
        core,
        Request::TargetNew {
            tid,
            name: name.into(),
        },
    )
}

fn lu_new(tid: Tid, lun: u64, path: &str) -> Request {
    Request::LuNew {
        tid,
        lun,
        backing_store: path.into(),
        bstype: None,
        blocksize: None,
        params: None,
        bsoflags: None,
        bsopts: None,
        device_type: None,
    }
}

fn bind(tid: Tid, address: Option<&str>, name: Option<&str>) -> Request {
    Request::TargetBind {
        tid,
        address: address.map(Into::into),
        initiator_name: name.map(Into::into),
    }
}

fn unbind(tid: Tid, address: Option<&str>, name: Option<&str>) -> Request {
    Request::TargetUnbind {
        tid,
        address: address.map(Into::into),
        initiator_name: name.map(Into::into),
    }
}

#[test]
fn target_new_and_duplicates() {
    let core = Core::new();
    assert_eq!(
        new_target(&core, 1, "iqn.2012-12.com.example:t1"),
        Ok(Response::ok())
    );
    assert_eq!(
        new_target(&core, 1, "iqn.2012-12.com.example:other"),
        Err(MgmtError::TargetExists)
    );
    assert_eq!(
        new_target(&core, 2, "iqn.2012-12.com.example:t1"),
        Err(MgmtError::TargetExists)
    );
    assert_eq!(
        new_target(&core, 3, "bad name"),
        Err(MgmtError::InvalidRequest)
    );
    assert_eq!(
        new_target(&core, 3, "iqn_underscore"),
        Err(MgmtError::InvalidRequest)
    );
    assert_eq!(
        new_target(&core, 0, "iqn.x"),
        Err(MgmtError::InvalidRequest)
    );
    assert_eq!(new_target(&core, 3, ""), Err(MgmtError::InvalidRequest));
    // A new target has its LUN 0 controller.
    assert_eq!(core.registry.target(1).unwrap().lun_numbers(), vec![0]);
}

#[test]
fn target_delete() {
    let core = Core::new();
    assert_eq!(
        run(
            &core,
            Request::TargetDelete {
                tid: 9,
                force: false
            }
        ),
        Err(MgmtError::NoTarget)
    );
    new_target(&core, 1, "iqn.a").unwrap();
    let t = core.registry.target(1).unwrap();
    t.add_session(SessionInfo {
        sid: 1,
        tsih: 1,
        initiator: "iqn.i".into(),
        alias: None,
        connections: vec![],
    });
    assert_eq!(
        run(
            &core,
            Request::TargetDelete {
                tid: 1,
                force: false
            }
        ),
        Err(MgmtError::TargetActive)
    );
    assert_eq!(
        run(
            &core,
            Request::TargetDelete {
                tid: 1,
                force: true
            }
        ),
        Ok(Response::ok())
    );
    assert!(t.is_deleted());
    assert!(core.registry.target(1).is_none());
}

#[test]
fn lu_new_checks() {
    let core = Core::new();
    assert_eq!(run(&core, lu_new(1, 1, "/img")), Err(MgmtError::NoTarget));
    new_target(&core, 1, "iqn.a").unwrap();
    let opener = FakeOpener::default();
    assert_eq!(
        apply(&core, lu_new(1, 1, "/img"), &opener),
        Ok(Response::ok())
    );
    assert_eq!(
        opener.calls.lock().unwrap()[0],
        ("rdwr".into(), "/img".into(), false)
    );
    // A taken number is refused before the store is opened.
    assert_eq!(
        apply(&core, lu_new(1, 1, "/img2"), &opener),
        Err(MgmtError::LunExists)
    );
    assert_eq!(
        apply(&core, lu_new(1, 0, "/img2"), &opener),
        Err(MgmtError::LunExists)
    );
    assert_eq!(opener.calls.lock().unwrap().len(), 1);
    // tgt answers a store that will not open with TGTADM_INVALID_REQUEST.
    let err = run(&core, lu_new(1, 2, "/missing")).unwrap_err();
    assert_eq!(err.code(), 17);
    assert_eq!(
        err.to_string(),
        "invalid request: can't open /missing: No such file or directory"
    );
    let lun = core.registry.target(1).unwrap().lun(1).unwrap();
    assert_eq!(
        (lun.config.block_size, lun.config.num_blocks),
        (512, 204800)
    );
    assert_eq!(lun.backing.bstype, "rdwr");
}

#[test]
fn lu_new_blocksize_bstype_and_params() {
    let core = Core::new();
    new_target(&core, 1, "iqn.a").unwrap();
    let opener = FakeOpener::default();
    let req = Request::LuNew {
        tid: 1,
        lun: 3,
        backing_store: "64M".into(),
        bstype: Some("memory".into()),
        blocksize: Some(4096),
        params: Some(
            "readonly=1,scsi_sn=SN-0123456789012345678901234567890123456,vendor_id=ACME,\
             sanitize=1,sanitize_rate=8"
                .into(),
        ),
        bsoflags: None,
        bsopts: None,
        device_type: None,
    };
    assert_eq!(apply(&core, req, &opener), Ok(Response::ok()));
    assert_eq!(
        opener.calls.lock().unwrap()[0],
        ("memory".into(), "64M".into(), true)
    );
    let lun = core.registry.target(1).unwrap().lun(3).unwrap();
    assert_eq!(lun.config.block_size, 4096);
    assert!(lun.config.readonly);
    assert_eq!(lun.config.identity.scsi_sn.len(), 36);
    assert_eq!(lun.config.identity.vendor_id, "ACME");
    assert!(lun.config.sanitize);
    assert_eq!(lun.sanitize_rate, 8 << 20, "MiB/s");
    for (blocksize, params) in [
        (Some(1000), None),
        (Some(256), None),
        (None, Some("bogus=1")),
        (None, Some("readonly=yes")),
        (None, Some("sanitize_rate=fast")),
        (None, Some("sanitize_rate=99999999999999999")),
    ] {
        let req = Request::LuNew {
            tid: 1,
            lun: 4,
            backing_store: "/img".into(),
            bstype: None,
            blocksize,
            params: params.map(Into::into),
            bsoflags: None,
            bsopts: None,
            device_type: None,
        };
        assert_eq!(
            run(&core, req),
            Err(MgmtError::InvalidRequest),
            "{blocksize:?} {params:?}"
        );
    }
}

#[test]
fn lu_delete() {
    let core = Core::new();
    // tgt reports an unknown target as an unknown LUN here.
    assert_eq!(
        run(&core, Request::LuDelete { tid: 1, lun: 1 }),
        Err(MgmtError::NoLun)
    );
    new_target(&core, 1, "iqn.a").unwrap();
    assert_eq!(
        run(&core, Request::LuDelete { tid: 1, lun: 0 }),
        Err(MgmtError::InvalidRequest)
    );
    assert_eq!(
        run(&core, Request::LuDelete { tid: 1, lun: 1 }),
        Err(MgmtError::NoLun)
    );
    run(&core, lu_new(1, 1, "/img")).unwrap();
    assert_eq!(
        run(&core, Request::LuDelete { tid: 1, lun: 1 }),
        Ok(Response::ok())
    );
    assert_eq!(core.registry.target(1).unwrap().lun_numbers(), vec![0]);
}

#[test]
fn bind_and_unbind() {
    let core = Core::new();
    assert_eq!(
        run(&core, bind(1, Some("ALL"), None)),
        Err(MgmtError::NoTarget)
    );
    new_target(&core, 1, "iqn.a").unwrap();
    let t = core.registry.target(1).unwrap();
    let addr = "10.0.0.5".parse().unwrap();
    assert!(!t.allows_initiator(addr, "iqn.i"));
    assert_eq!(
        run(&core, bind(1, None, None)),
        Err(MgmtError::InvalidRequest)
    );
    assert_eq!(
        run(&core, bind(1, Some("10.0.0.0/33"), None)),
        Err(MgmtError::InvalidRequest)
    );
    assert_eq!(
        run(&core, bind(1, Some("host.example"), None)),
        Err(MgmtError::InvalidRequest)
    );
    assert_eq!(
        run(&core, bind(1, Some("10.0.0.0/24"), None)),
        Ok(Response::ok())
    );
    assert_eq!(
        run(&core, bind(1, Some("10.0.0.0/24"), None)),
        Err(MgmtError::AclExists)
    );
    assert!(t.allows_initiator(addr, "iqn.other"));
    assert_eq!(run(&core, bind(1, None, Some("iqn.i"))), Ok(Response::ok()));
    assert_eq!(
        run(&core, bind(1, None, Some("iqn.i"))),
        Err(MgmtError::AclExists)
    );
    assert!(t.allows_initiator("192.0.2.1".parse().unwrap(), "iqn.i"));
    assert_eq!(
        run(&core, unbind(1, Some("10.0.0.0/24"), None)),
        Ok(Response::ok())
    );
    assert_eq!(
        run(&core, unbind(1, Some("10.0.0.0/24"), None)),
        Err(MgmtError::AclNoExist)
    );
    assert_eq!(
        run(&core, unbind(1, Some("garbage"), None)),
        Err(MgmtError::InvalidRequest)
    );
    assert_eq!(
        run(&core, unbind(1, None, Some("iqn.i"))),
        Ok(Response::ok())
    );
    assert_eq!(
        run(&core, unbind(1, None, Some("iqn.i"))),
        Err(MgmtError::AclNoExist)
    );
    assert!(t.acl().is_empty() && t.initiator_name_acl().is_empty());
}

#[test]
fn system_delete_only_when_idle() {
    let core = Core::new();
    new_target(&core, 1, "iqn.a").unwrap();
    assert_eq!(
        run(&core, Request::SystemDelete),
        Err(MgmtError::InvalidRequest)
    );
    run(
        &core,
        Request::TargetDelete {
            tid: 1,
            force: false,
        },
    )
    .unwrap();
    assert_eq!(run(&core, Request::SystemDelete), Ok(Response::ok()));
}

/// The expected text is tgt 1.0.97's `tgt_target_show_all` layout for this setup,
/// worked out from its format strings (`_TAB1` = 4 spaces): one target, one session,
/// LUN 0 controller plus a 100 MiB rdwr LUN, an address rule and a name rule.
#[test]
fn target_show_is_byte_exact() {
    let core = Core::new();
    new_target(&core, 1, "iqn.2012-12.com.example:server.target").unwrap();
    new_target(&core, 2, "iqn.2012-12.com.example:empty").unwrap();
    run(&core, lu_new(1, 1, "/home/lun.bin")).unwrap();
    run(&core, bind(1, Some("ALL"), None)).unwrap();
    run(&core, bind(1, None, Some("iqn.1994-05.com.redhat:client"))).unwrap();
    core.registry.target(1).unwrap().add_session(SessionInfo {
        sid: 1,
        tsih: 1,
        initiator: "iqn.1994-05.com.redhat:client".into(),
        alias: Some("client".into()),
        connections: vec![ConnectionInfo {
            cid: 0,
            peer: "192.168.1.10:51234".parse().unwrap(),
            stats: Default::default(),
        }],
    });
    let expected = "\
Target 1: iqn.2012-12.com.example:server.target
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 1
            Initiator: iqn.1994-05.com.redhat:client alias: client
            Connection: 0
                IP Address: 192.168.1.10
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            SCSI SN: beaf10
            Size: 0 MB, Block size: 1
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: null
            Backing store path: None
            Backing store flags: \n        LUN: 1
            Type: disk
            SCSI ID: IET     00010001
            SCSI SN: beaf11
            Size: 105 MB, Block size: 512
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: rdwr
            Backing store path: /home/lun.bin
            Backing store flags: \n    Account information:
    ACL information:
        ALL
        iqn.1994-05.com.redhat:client
Target 2: iqn.2012-12.com.example:empty
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00020000
            SCSI SN: beaf20
            Size: 0 MB, Block size: 1
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: null
            Backing store path: None
            Backing store flags: \n    Account information:
    ACL information:
";
    let out = run(&core, Request::TargetShow).unwrap().output.unwrap();
    assert_eq!(out, expected);
}

#[test]
fn system_show_lists_the_openers_types() {
    let out = run(&Core::new(), Request::SystemShow)
        .unwrap()
        .output
        .unwrap();
    assert!(out.starts_with("System:\n    State: ready\n    debug: off\nLLDs:\n    iscsi: ready\n"));
    assert!(out.contains("Backing stores:\n    rdwr\n    memory\n    null\nDevice types:\n"));
}

#[test]
fn stat_lists_every_lun_of_every_session() {
    let core = Core::new();
    new_target(&core, 1, "iqn.a").unwrap();
    let t = core.registry.target(1).unwrap();
    let text = |r: Result<Response, MgmtError>| r.unwrap().output.unwrap();
    let header = super::stat::HEADER;
    assert_eq!(text(run(&core, Request::TargetStat { tid: 1 })), header);
    t.add_session(SessionInfo {
        sid: 7,
        tsih: 1,
        initiator: "iqn.i".into(),
        alias: None,
        connections: vec![],
    });
    t.lu_stats(7, 0)
        .submitted(crate::registry::DataDir::Read(512));
    let lun0 = "  1   0   7          512      1            0      0            0      0            0      0    0\n";
    assert_eq!(
        text(run(&core, Request::SystemStat)),
        format!("{header}{lun0}")
    );
    assert_eq!(
        text(run(&core, Request::LuStat { tid: 1, lun: 0 })),
        format!("{header}{lun0}")
    );
    assert_eq!(
        run(&core, Request::LuStat { tid: 1, lun: 4 }),
        Err(MgmtError::NoLun)
    );
    assert_eq!(
        run(&core, Request::TargetStat { tid: 2 }),
        Err(MgmtError::NoTarget)
    );
    t.remove_session(7);
    assert_eq!(text(run(&core, Request::SystemStat)), header);
}

/// tgt's host binding: one target per SCSI host, unbind by host, refused while the
/// bound target has sessions; deleting the target drops its bindings.
#[test]
fn host_binding_rules() {
    let core = Core::new();
    new_target(&core, 1, "iqn.2026-11.test:a").unwrap();
    new_target(&core, 2, "iqn.2026-11.test:b").unwrap();
    let bind = |tid, host| run(&core, Request::TargetBindHost { tid, host });
    let unbind = |host| run(&core, Request::TargetUnbindHost { tid: 1, host });
    assert_eq!(bind(1, 3), Ok(Response::ok()));
    assert_eq!(bind(2, 3), Err(MgmtError::BindingExists));
    assert_eq!(bind(9, 4), Err(MgmtError::NoTarget));
    assert_eq!(unbind(4), Err(MgmtError::NoBinding));
    core.registry.target(1).unwrap().add_session(SessionInfo {
        sid: 1,
        tsih: 1,
        initiator: "iqn.2026-11.test:ini".into(),
        alias: None,
        connections: Vec::new(),
    });
    assert_eq!(unbind(3), Err(MgmtError::TargetActive));
    core.registry.remove_target(1, true).unwrap();
    assert_eq!(core.registry.host_binding(3), None);
    assert_eq!(bind(2, 3), Ok(Response::ok()));
    assert_eq!(unbind(3), Ok(Response::ok()));
}

/// tgt's geometry params and `path=` (a new backing file: MEDIUM MAY HAVE CHANGED to
/// the nexuses that know the LU).
#[test]
fn lu_update_geometry_and_path() {
    let core = Core::new();
    new_target(&core, 1, "iqn.2026-11.test:geo").unwrap();
    run(&core, lu_new(1, 1, "/disk-a.img")).unwrap();
    let update = |params: &str| lu_update(&core, 1, 1, params);
    update("lbppbe=3,la_lba=1,optimal_xfer_gran=8,optimal_xfer_len=256,rotation_rate=7200")
        .unwrap();
    let lun = core.registry.target(1).unwrap().lun(1).unwrap();
    let g = lun.config.geometry;
    assert_eq!((g.lbppbe, g.la_lba), (3, 1));
    assert_eq!((g.optimal_xfer_gran, g.optimal_xfer_len), (8, 256));
    assert_eq!(g.rotation_rate, Some(7200));
    for bad in [
        "lbppbe=16",
        "la_lba=16384",
        "optimal_xfer_gran=70000",
        "rotation_rate=x",
    ] {
        assert_eq!(update(bad), Err(MgmtError::InvalidRequest), "{bad}");
    }
    // A nexus that knows the LU hears of the new medium, once.
    lun.lock_state().ua.see(9);
    while lun.lock_state().ua.take(9).is_some() {}
    update("path=/disk-b.img").unwrap();
    let lun = core.registry.target(1).unwrap().lun(1).unwrap();
    assert_eq!(lun.backing.path.as_deref(), Some("/disk-b.img"));
    let ua = lun.lock_state().ua.take(9).expect("a unit attention");
    assert_eq!((ua.asc, ua.ascq), (0x28, 0x00));
    assert_eq!(
        update("path=/missing"),
        Err(MgmtError::BackingStore(
            "can't open /missing: No such file or directory".into()
        ))
    );
    // `path` belongs to update; a new LU names its store with --backing-store.
    let mut req = lu_new(1, 2, "/disk-c.img");
    if let Request::LuNew { params, .. } = &mut req {
        *params = Some("path=/disk-d.img".into());
    }
    assert_eq!(run(&core, req), Err(MgmtError::InvalidRequest));
}

/// tgt's `mode_page=` param: the caching page's WCE and the control page's D_SENSE;
/// other pages and malformed lists are refused.
#[test]
fn lu_mode_page_param() {
    let core = Core::new();
    new_target(&core, 1, "iqn.2026-11.test:mp").unwrap();
    run(&core, lu_new(1, 1, "/disk.img")).unwrap();
    let update = |params: &str| lu_update(&core, 1, 1, params);
    let lun = || core.registry.target(1).unwrap().lun(1).unwrap();
    assert!(lun().config.write_cache);
    // What tgt-admin sends for `write-cache off`.
    update("mode_page=8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0")
        .unwrap();
    assert!(!lun().config.write_cache);
    update("mode_page=8:0:18:0x14").unwrap();
    assert!(lun().config.write_cache);
    update("mode_page=0xa:0:10:04").unwrap();
    assert!(lun().config.descriptor_sense);
    for bad in [
        "mode_page=0x1c:0:10:0",
        "mode_page=8:0:1:1:2",
        "mode_page=8:0:18:0x100",
        "mode_page=8:1:18:0",
        "mode_page=8:0",
        "mode_page=8:0:18:zz",
    ] {
        assert_eq!(update(bad), Err(MgmtError::InvalidRequest), "{bad}");
    }
}

/// The physical block size a store reports becomes the LU's LBPPBE, as tgt derives
/// it, unless `lbppbe` says otherwise.
#[test]
fn lbppbe_follows_the_medium_unless_set() {
    let core = Core::new();
    new_target(&core, 1, "iqn.2026-11.test:pb").unwrap();
    run(&core, lu_new(1, 1, "/dev/fake")).unwrap();
    let lun = |n| core.registry.target(1).unwrap().lun(n).unwrap();
    assert_eq!(
        lun(1).config.geometry.lbppbe,
        3,
        "512-byte blocks, 4 KiB sectors"
    );
    let mut req = lu_new(1, 2, "/dev/fake");
    if let Request::LuNew { params, .. } = &mut req {
        *params = Some("lbppbe=0".into());
    }
    run(&core, req).unwrap();
    assert_eq!(lun(2).config.geometry.lbppbe, 0);
    assert_eq!(super::apply_lu::auto_lbppbe(4096, Some(4096)), 0);
    assert_eq!(super::apply_lu::auto_lbppbe(512, Some(1536)), 0);
    assert_eq!(super::apply_lu::auto_lbppbe(512, None), 0);
}

/// The running state dumps every LU setting (thin provisioning, sense format,
/// SANITIZE and its rate, geometry), and the dump parses back to the same config.
#[test]
fn running_dump_keeps_lu_settings() {
    let core = Core::new();
    new_target(&core, 1, "iqn.2026-11.test:dump").unwrap();
    run(&core, lu_new(1, 1, "/disk.img")).unwrap();
    run(
        &core,
        Request::LuUpdate {
            tid: 1,
            lun: 1,
            params: Some(
                "thin_provisioning=1,sense_format=1,sanitize=1,sanitize_rate=8,\
                 optimal_xfer_len=256,rotation_rate=7200"
                    .into(),
            ),
        },
    )
    .unwrap();
    let text = crate::config::dump(&crate::mgmt::running_config(&core));
    for want in [
        "params thin_provisioning=1",
        "sense_format 1",
        "params sanitize=1",
        "params sanitize_rate=8",
        "optimal_xfer_len 256",
        "params rotation_rate=7200",
        // 4 KiB physical sectors of the fake store, auto-detected.
        "lbppbe 3",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    let mut no_include = |p: &str| -> Result<Vec<(String, String)>, String> { Err(p.into()) };
    let c = crate::config::parse(&text, "dump.conf", &mut no_include).expect("dump parses");
    assert_eq!(crate::config::dump(&c), text);
}

/// `tgt-admin -e` (`ConfigApply`, `Execute`) of `text` on `core`.
fn execute_config(core: &Core, text: &str) -> ConfigReport {
    let mut no_include = |p: &str| -> Result<Vec<(String, String)>, String> { Err(p.into()) };
    let config = crate::config::parse(text, "t.conf", &mut no_include).expect("parses");
    let req = Request::ConfigApply {
        config,
        action: ConfigAction::Execute,
        force: false,
        pretend: false,
        verbose: false,
        control_port: 0,
    };
    let resp = run(core, req).expect("config apply answers");
    ConfigReport::from_response(&resp).expect("a report")
}

/// tgt-admin's rules: targets by name, ACL ALL unless an initiator-address is
/// given (an initiator-name does not count), stores by path with missing and
/// in-use ones skipped and not numbered.
#[test]
fn config_apply_follows_tgt_admin() {
    let core = Core::new();
    let report = execute_config(
        &core,
        "<target iqn.b:second>\n backing-store /shared\n backing-store /missing\n backing-store /own\n</target>\n\
         <target iqn.a:first>\n backing-store /shared\n initiator-name iqn.x:y\n</target>\n\
         <target iqn.c:third>\n initiator-address 10.0.0.1\n</target>\n",
    );
    assert_eq!(report, ConfigReport::default());
    let t = |tid| core.registry.target(tid).expect("target");
    let paths = |tid| -> Vec<(u64, Option<String>)> {
        t(tid)
            .luns()
            .iter()
            .filter(|l| l.lun != 0)
            .map(|l| (l.lun, l.backing.path.clone()))
            .collect()
    };
    assert_eq!(t(1).name, "iqn.a:first");
    assert_eq!(paths(1), [(1, Some("/shared".to_string()))]);
    let acl: Vec<String> = t(1).acl().iter().map(|a| a.to_string()).collect();
    assert_eq!(acl, ["ALL"]);
    assert_eq!(t(1).initiator_name_acl(), ["iqn.x:y"]);
    assert_eq!(t(2).name, "iqn.b:second");
    assert_eq!(paths(2), [(1, Some("/own".to_string()))]);
    assert_eq!(t(3).name, "iqn.c:third");
    let acl: Vec<String> = t(3).acl().iter().map(|a| a.to_string()).collect();
    assert_eq!(acl, ["10.0.0.1"]);
    // A failing command stops tgt-admin, quoting it; what was done stays.
    let report = execute_config(
        &core,
        "<target iqn.d:bad>\n MaxConnections bogus\n backing-store /own2\n</target>\n",
    );
    assert_eq!(
        report.stdout,
        "Command:\n\ttgtadm -C 0 --lld iscsi --mode target --op update --tid 4 \
         --name MaxConnections --value bogus\nexited with code: 22.\n"
    );
    assert_eq!(report.stderr, "tgtadm: invalid request\n");
    assert_eq!(report.code, 22);
    assert!(paths(4).is_empty());
    // It stopped before its clean-up; a run that succeeds removes the targets the
    // file lacks and leaves an existing one as it is.
    assert!(core.registry.target(1).is_some());
    let report = execute_config(&core, "<target iqn.d:bad>\n</target>\n");
    assert_eq!(report, ConfigReport::default());
    let names: Vec<String> = core
        .registry
        .targets()
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(names, ["iqn.d:bad"]);
    assert!(t(4).acl().is_empty(), "left as it was");
}

/// A store whose size moves underneath (a grown file) and that takes `fault=`.
#[derive(Debug, Default)]
struct Movable {
    size: std::sync::atomic::AtomicU64,
    rules: Mutex<String>,
}

impl BlockStore for Movable {
    fn size(&self) -> u64 {
        self.size.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn execute(&self, _op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        Ok(Bytes::new())
    }
    fn refresh_size(&self) -> Option<u64> {
        Some(self.size())
    }
    fn configure(&self, key: &str, value: &str) -> Result<(), String> {
        match (key, value) {
            ("fault", "bad") => Err("fault rule 'bad': expected OP:ACTION".into()),
            ("fault", v) => {
                *self.rules.lock().unwrap() = v.into();
                Ok(())
            }
            _ => Err(format!("no setting '{key}'")),
        }
    }
}

/// `resize=1` reads the size again (CAPACITY DATA HAS CHANGED once per nexus), also
/// implicitly on any update; `fault=` reaches the store and `--bsopts` follows.
#[test]
fn lu_update_resize_and_fault() {
    let core = Core::new();
    new_target(&core, 1, "iqn.2026-11.test:rs").unwrap();
    run(&core, lu_new(1, 1, "/disk.img")).unwrap();
    let target = core.registry.target(1).unwrap();
    let store = Arc::new(Movable::default());
    store
        .size
        .store(1 << 20, std::sync::atomic::Ordering::Relaxed);
    let mut lu = (*target.lun(1).unwrap()).clone();
    lu.store = Some(store.clone());
    target.replace_lun(lu).unwrap();
    let lun = || core.registry.target(1).unwrap().lun(1).unwrap();
    lun().lock_state().ua.see(9);
    while lun().lock_state().ua.take(9).is_some() {}

    store
        .size
        .store(4 << 20, std::sync::atomic::Ordering::Relaxed);
    lu_update(&core, 1, 1, "resize=1").unwrap();
    assert_eq!(lun().config.num_blocks, (4 << 20) / 512);
    let ua = lun().lock_state().ua.take(9).expect("a unit attention");
    assert_eq!((ua.asc, ua.ascq), (0x2a, 0x09));
    assert!(lun().lock_state().ua.take(9).is_none(), "once");
    // Unchanged size: nothing to report.
    lu_update(&core, 1, 1, "resize=1").unwrap();
    assert!(lun().lock_state().ua.take(9).is_none());
    // Shrunk, with a plain update.
    store
        .size
        .store(1 << 20, std::sync::atomic::Ordering::Relaxed);
    lu_update(&core, 1, 1, "").unwrap();
    assert_eq!(lun().config.num_blocks, 2048);
    // Less than a block is refused when asked for.
    store.size.store(100, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(
        lu_update(&core, 1, 1, "resize=1"),
        Err(MgmtError::BackingStore(_))
    ));
    assert_eq!(lun().config.num_blocks, 2048);
    store
        .size
        .store(1 << 20, std::sync::atomic::Ordering::Relaxed);

    lu_update(&core, 1, 1, "fault=read:eio@1-2:p=0.5").unwrap();
    assert_eq!(*store.rules.lock().unwrap(), "read:eio@1-2:p=0.5");
    assert_eq!(lun().backing.bsopts, "rules=read:eio@1-2:p=0.5");
    assert_eq!(
        lu_update(&core, 1, 1, "fault=bad"),
        Err(MgmtError::BackingStore(
            "fault rule 'bad': expected OP:ACTION".into()
        ))
    );
    assert_eq!(
        MgmtError::BackingStore("x".into()).to_string(),
        "invalid request: x"
    );
    lu_update(&core, 1, 1, "fault=").unwrap();
    assert_eq!(lun().backing.bsopts, "rules=");

    // A store without a size on disk (the fake) refuses an explicit resize; neither
    // `resize` nor `fault` belong to a new LU.
    run(&core, lu_new(1, 2, "/other.img")).unwrap();
    assert!(matches!(
        lu_update(&core, 1, 2, "resize=1"),
        Err(MgmtError::BackingStore(_))
    ));
    let mut req = lu_new(1, 3, "/disk-c.img");
    if let Request::LuNew { params, .. } = &mut req {
        *params = Some("resize=1".into());
    }
    assert_eq!(run(&core, req), Err(MgmtError::InvalidRequest));
}

/// `--device-type cd`: a read-only, removable LU of 2048-byte blocks named
/// VIRTUAL-CDROM; other block sizes and device types we do not emulate are refused; the
/// running config says `device-type cd` and nothing a cd has by default, and a dump of
/// it applies again as the same LU.
#[test]
fn lu_new_cd() {
    let core = Core::new();
    new_target(&core, 1, "iqn.2026-12.test:cd").unwrap();
    let cd = |lun: u64, blocksize: Option<u32>, kind: &str, params: Option<&str>| {
        let mut req = lu_new(1, lun, "/disc.iso");
        if let Request::LuNew {
            device_type,
            blocksize: b,
            params: p,
            ..
        } = &mut req
        {
            *device_type = Some(kind.into());
            *b = blocksize;
            *p = params.map(Into::into);
        }
        run(&core, req)
    };
    assert_eq!(cd(2, Some(512), "cd", None), Err(MgmtError::InvalidRequest));
    for kind in ["pt", "osd"] {
        assert_eq!(
            cd(2, None, kind, None),
            Err(MgmtError::UnsupportedOperation),
            "{kind}"
        );
    }
    cd(1, None, "cd", Some("readonly=0,removable=0")).unwrap();
    let lun = core.registry.target(1).unwrap().lun(1).unwrap();
    let c = &lun.config;
    assert_eq!(c.device_type, scsi_sbc::DeviceType::Cd);
    assert_eq!((c.block_size, c.readonly, c.removable), (2048, true, true));
    assert_eq!(c.identity.product_id, "VIRTUAL-CDROM");
    let config = crate::mgmt::running_config(&core);
    let l = &config.targets[0].luns[0];
    assert_eq!(l.device_type.as_deref(), Some("cd"));
    assert_eq!((l.blocksize, l.params.is_empty()), (None, true), "{l:?}");
    let text = crate::config::dump(&config);
    assert!(text.contains("device-type cd"), "{text}");
    let again = Core::new();
    execute_config(&again, &text);
    let lun = again.registry.target(1).unwrap().lun(1).unwrap();
    assert_eq!(
        lun.config,
        core.registry.target(1).unwrap().lun(1).unwrap().config
    );
}

/// ALUA keys through `target update`: refused values leave everything as it was, a
/// reported change gives ASYMMETRIC ACCESS STATE CHANGED once per nexus on every LU,
/// and `--op show` lists the groups.
#[test]
fn alua_state_change_is_announced_once_per_nexus() {
    let core = Core::new();
    new_target(&core, 1, "iqn.2026-12.test:alua").unwrap();
    run(&core, lu_new(1, 1, "/disk.img")).unwrap();
    let update = |name: &str, value: &str| {
        run(
            &core,
            Request::TargetUpdate {
                tid: 1,
                name: name.into(),
                value: value.into(),
            },
        )
    };
    let target = core.registry.target(1).unwrap();
    for lun in [0, 1] {
        let l = target.lun(lun).unwrap();
        for nexus in [7, 8] {
            l.lock_state().ua.see(nexus);
            while l.lock_state().ua.take(nexus).is_some() {}
        }
    }
    let take = |lun: u64, nexus: u64| {
        let l = core.registry.target(1).unwrap().lun(lun).unwrap();
        let s = l.lock_state().ua.take(nexus);
        s.map(|s| (s.asc, s.ascq))
    };
    assert_eq!(
        update("alua_state", "1:sometimes"),
        Err(MgmtError::InvalidRequest)
    );
    assert_eq!(update("alua_group", "x"), Err(MgmtError::InvalidRequest));
    assert!(target.alua().is_none());
    update("alua_state", "1:active/optimized").unwrap();
    update("alua_state", "2:active/non-optimized").unwrap();
    assert_eq!(take(1, 7), None, "ALUA still off: nothing reported");
    update("alua_group", "2").unwrap();
    for (lun, nexus) in [(0, 7), (0, 8), (1, 7), (1, 8)] {
        assert_eq!(
            take(lun, nexus),
            Some((0x2a, 0x06)),
            "LUN {lun} nexus {nexus}"
        );
        assert_eq!(take(lun, nexus), None, "once");
    }
    update("alua_state", "2:standby").unwrap();
    assert_eq!(take(1, 8), Some((0x2a, 0x06)));
    assert_eq!(take(1, 8), None);
    update("alua_state", "2:standby").unwrap();
    assert_eq!(
        take(1, 7),
        Some((0x2a, 0x06)),
        "the earlier one, still queued"
    );
    assert_eq!(take(1, 7), None, "an unchanged state is not news");
    let pg = target.alua().unwrap();
    assert_eq!((pg.local_group, pg.local_port), (2, 2));

    let show = run(&core, Request::TargetShow).unwrap();
    let text = show.output.as_deref().unwrap_or_default();
    assert!(
        text.contains(
            "    ALUA information:\n        Local port group: 2\n        Local relative port: 2\n        Port group 1: active/optimized ports 1\n        Port group 2: standby ports 2\n"
        ),
        "{text}"
    );
    let params = run(&core, Request::TargetShowParams { tid: 1 }).unwrap();
    let text = params.output.as_deref().unwrap_or_default();
    assert!(
        text.ends_with("alua_state=1:active/optimized:1\nalua_state=2:standby:2\nalua_group=2\n"),
        "{text}"
    );
}

/// targets.conf `alua_*` keys (every `alua_state` line counts) reach the target, and
/// the dump writes them back so that they read in again the same.
#[test]
fn alua_keys_from_targets_conf_and_dump() {
    let core = Core::new();
    let report = execute_config(
        &core,
        "<target iqn.2026-12.test:gw>\n backing-store /disk\n alua_state 1:ao\n \
         alua_state 2:standby:2,3\n alua_group 2\n alua_port 3\n</target>\n",
    );
    assert_eq!(report, ConfigReport::default());
    let pg = core.registry.target(1).unwrap().alua().expect("ALUA on");
    assert_eq!((pg.local_group, pg.local_port), (2, 3));
    assert_eq!(pg.groups.len(), 2);
    assert_eq!(pg.groups[1].ports, vec![2, 3]);
    let text = crate::config::dump(&crate::mgmt::running_config(&core));
    assert!(
        text.contains(
            "    alua_state 1:active/optimized:1\n    alua_state 2:standby:2,3\n    alua_port 3\n    alua_group 2\n"
        ),
        "{text}"
    );
    let fresh = Core::new();
    execute_config(&fresh, &text);
    assert_eq!(fresh.registry.target(1).unwrap().alua(), Some(pg));
}
