use super::*;
use crate::config::dump;
use std::collections::HashMap;

fn no_include(p: &str) -> Result<Vec<(String, String)>, String> {
    Err(format!("no such file: {p}"))
}

fn ok(text: &str) -> Config {
    parse(text, "targets.conf", &mut no_include).unwrap()
}

fn fails(text: &str) -> ConfigError {
    parse(text, "targets.conf", &mut no_include).unwrap_err()
}

#[test]
fn simple_target() {
    let c = ok("default-driver iscsi\n<target iqn.a:b>\n  backing-store /x.img\n</target>\n");
    assert_eq!(c.default_driver.as_deref(), Some("iscsi"));
    assert_eq!(c.targets.len(), 1);
    assert_eq!(c.targets[0].name, "iqn.a:b");
    assert_eq!(c.targets[0].luns[0].lun, 1);
    assert_eq!(c.targets[0].luns[0].path, "/x.img");
}

#[test]
fn several_luns_numbers_and_settings() {
    let c = ok("<target iqn.a:b>\n\
         vendor_id ACME\n\
         write-cache off\n\
         <backing-store /one>\n</backing-store>\n\
         <backing-store /five>\n lun 5\n vendor_id OTHER\n bs-type aio\n</backing-store>\n\
         direct-store /dev/sdb\n\
         bs-type rdwr\n\
         MaxRecvDataSegmentLength = 65536\n\
         </target>\n");
    let t = &c.targets[0];
    // tgt-admin's order: backing stores by path, then direct stores; numbers from 1
    // around the explicit ones.
    let nums: Vec<u64> = t.luns.iter().map(|l| l.lun).collect();
    assert_eq!(nums, [5, 1, 2]);
    assert!(t.luns[2].direct);
    let five = &t.luns[0];
    assert_eq!(five.bstype.as_deref(), Some("aio"));
    assert_eq!(
        five.params_string().as_deref(),
        Some("write_cache=0,vendor_id=OTHER")
    );
    assert_eq!(t.luns[1].bstype.as_deref(), Some("rdwr"));
    assert_eq!(
        t.params,
        [("MaxRecvDataSegmentLength".into(), "65536".into())]
    );
}

#[test]
fn acls_and_chap() {
    let c = ok(
        "incomingdiscoveryuser disc secret1\nincominguser ignored pw\n<target iqn.a:b>\n\
         initiator-address 10.0.0.0/8, 192.168.1.1\n\
         initiator-name iqn.1994-05.com.redhat:c\n\
         incominguser alice pw1\n incominguser carol pw3\n outgoinguser bob pw2\n</target>\n",
    );
    let t = &c.targets[0];
    assert_eq!(t.initiator_addresses, ["10.0.0.0/8", "192.168.1.1"]);
    assert_eq!(t.initiator_names, ["iqn.1994-05.com.redhat:c"]);
    assert_eq!(t.incoming.len(), 2);
    assert_eq!(t.outgoing.as_ref().map(|u| u.user.as_str()), Some("bob"));
    assert_eq!(c.discovery_incoming.len(), 1);
    assert_eq!(c.discovery_incoming[0].user, "disc");
    // tgt-admin ignores a top-level incominguser; we say so.
    assert!(c.ignored[0].starts_with("targets.conf:2: 'incominguser' outside a target"));
}

/// What tgt-admin skips silently is skipped, and listed in `ignored`.
#[test]
fn unknown_directives_are_ignored_with_a_note() {
    let c = ok("bogus 1\n<target iqn.a:b>\nblock-size 4096\nwhat 2\n<backing-store /x>\nnope 3\n</backing-store>\n</target>\n");
    assert_eq!(
        c.ignored,
        [
            "targets.conf:1: unknown directive 'bogus' ignored (as tgt-admin does)",
            "targets.conf:3: 'block-size' outside a store block is ignored (as tgt-admin does)",
            "targets.conf:4: unknown directive 'what' ignored (as tgt-admin does)",
            "targets.conf:6: unknown directive 'nope' ignored (as tgt-admin does)",
        ]
    );
    assert_eq!(c.targets[0].luns[0].blocksize, None);
}

#[test]
fn includes_come_through_the_callback() {
    let files: HashMap<&str, &str> = [(
        "/etc/tgt/conf.d/*.conf",
        "<target iqn.inc:1>\nbacking-store /i\n</target>\n",
    )]
    .into();
    let mut inc = |p: &str| -> Result<Vec<(String, String)>, String> {
        files
            .get(p)
            .map(|t| vec![("conf.d/a.conf".to_string(), t.to_string())])
            .ok_or_else(|| "not found".to_string())
    };
    let c = parse(
        "include /etc/tgt/conf.d/*.conf\n<target iqn.main:1>\nbacking-store /m\n</target>\n",
        "targets.conf",
        &mut inc,
    )
    .unwrap();
    let names: Vec<&str> = c.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["iqn.inc:1", "iqn.main:1"]);
    let e = parse("\n\ninclude /nope\n", "t.conf", &mut inc).unwrap_err();
    assert_eq!(e.to_string(), "t.conf:3: include /nope: not found");
    // A file including itself stops at the depth limit instead of looping.
    let mut looping = |_: &str| Ok(vec![("self".to_string(), "include x\n".to_string())]);
    let e = parse("include x\n", "self", &mut looping).unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::IncludeDepth);
}

#[test]
fn malformed_lines_name_their_line() {
    let cases = [
        ("<target iqn.a:b>\nbacking-store\n</target>\n", "targets.conf:2: option backing-store has a missing value (target: iqn.a:b)"),
        ("default-driver\n", "targets.conf:1: 'default-driver' needs a value"),
        ("<target a>\nbacking-store /x\n<backing-store /y>\n</backing-store>\n</target>\n", "targets.conf:3: 'backing-store' is given both as a line and as a block"),
        ("\n<target iqn.a:b>\nbacking-store /x\n", "targets.conf:2: '<target>' is not closed"),
        ("</target>\n", "targets.conf:1: '</target>' without a matching opening tag"),
        ("<backing-store /x>\n", "targets.conf:1: '<backing-store>' is not allowed here"),
        ("<target a>\n<target b>\n", "targets.conf:2: '<target>' is not allowed here"),
        ("<target a>\nincominguser onlyname\n</target>\n", "targets.conf:2: invalid value 'onlyname' for 'incominguser'"),
        (
            "<target a>\n<backing-store /x>\nlun 1\n</backing-store>\n<backing-store /y>\nlun 1\n</backing-store>\n</target>\n",
            "targets.conf:5: LUN 1 is defined twice",
        ),
        ("default-driver iscsi\ndefault-driver iscsi\n", "targets.conf:2: 'default-driver' is given more than once"),
    ];
    for (text, want) in cases {
        assert_eq!(fails(text).to_string(), want, "{text:?}");
    }
}

#[test]
fn dump_then_parse_is_the_same_config() {
    let c = ok("incomingdiscoveryuser disc s1\n<target iqn.a:b>\n\
         <backing-store /one>\n</backing-store>\n<backing-store 64M>\nlun 3\nbs-type memory\nreadonly on\nscsi_sn SN3\n</backing-store>\n\
         initiator-address ALL\ninitiator-name iqn.x\nincominguser alice pw\noutgoinguser bob pw2\n\
         nop_interval 5\n</target>\n<target iqn.c:d>\n</target>\n");
    let text = dump(&c);
    let again = ok(&text);
    let mut expected = c.clone();
    expected.default_driver = Some("iscsi".into());
    assert_eq!(again, expected);
    assert_eq!(dump(&again), text);
}

/// tgt-admin's other LU directives: geometry, sense_format, mode_page (what its
/// `write-cache off` becomes) and a raw `params` string.
#[test]
fn tgt_admin_lu_directives() {
    let c = ok("<target iqn.a:b>\n\
         <backing-store /one>\n\
         mode_page 8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0\n\
         lbppbe 3\n\
         sense_format 1\n\
         params thin_provisioning=1, optimal_xfer_len=256\n\
         </backing-store>\n\
         </target>\n");
    assert_eq!(
        c.targets[0].luns[0].params_string().as_deref(),
        Some(
            "mode_page=8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0,\
             lbppbe=3,sense_format=1,thin_provisioning=1,optimal_xfer_len=256"
        )
    );
    let e =
        fails("<target iqn.a:b>\n<backing-store /one>\nparams oops\n</backing-store>\n</target>\n");
    assert_eq!(e.line, 3);
}

/// Every directive kind survives dump → parse (the admin_input fuzz target's seed).
#[test]
fn dump_of_every_directive_parses() {
    let c = ok("default-driver iscsi\n<target iqn.2026-11.a:b>\n  <backing-store /x.img>\n  </backing-store>\n  \
         <backing-store /y.img>\n    lun 3\n    vendor_id ACME\n    mode_page 8:0:18:0x14\n    \
         params thin_provisioning=1,lbppbe=3\n  </backing-store>\n  initiator-address 10.0.0.0/8\n  \
         incominguser alice secretsecret12\n  MaxRecvDataSegmentLength 65536\n  \
         RedirectAddress 10.1.1.1\n</target>\niSNSServerIP 10.0.0.9\n");
    let text = dump(&c);
    let again =
        parse(&text, "dump.conf", &mut no_include).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, c, "{text}");
}

/// Inputs the admin_input fuzz target found that parsed but did not dump back to the
/// same configuration: now refused with their line.
#[test]
fn values_that_would_not_survive_a_dump_are_refused() {
    for (text, line) in [
        ("<target iqn.a:b>\n  backing-store /x\r.img\n</target>\n", 2),
        (
            "<target iqn.a:b>\n  initiator-address 10.0.0.1 =\n</target>\n",
            2,
        ),
        ("<target iqn.a:b>\n  vendor_id = =x\n</target>\n", 2),
        ("<target iqn.a:b>\n  backing-store >\n</target>\n", 2),
        (
            "<target iqn.a:b>\n<backing-store /x>\nparams a b=1\n</backing-store>\n</target>\n",
            3,
        ),
    ] {
        assert_eq!(fails(text).line, line, "{text:?}");
    }
}

/// tgt-admin's `path` inside a LUN block: the LU's store is that file.
#[test]
fn path_directive_names_the_store() {
    let c = ok("<target iqn.a:b>\n<backing-store /first.img>\npath /second.img\n</backing-store>\n</target>\n");
    assert_eq!(c.targets[0].luns[0].path, "/second.img");
    let c = ok("<target iqn.a:b>\npath /second.img\n</target>\n");
    assert_eq!(c.ignored.len(), 1, "outside a LUN block");
}

/// Config::General (tgt-admin's reader) merges blocks of one name; a single-valued
/// LU directive given twice is kept for apply to refuse as tgt-admin does; the first
/// outgoinguser wins.
#[test]
fn merged_blocks_duplicates_and_first_outgoing() {
    let c = ok("<target a>\nbacking-store /x\noutgoinguser bob pw1\noutgoinguser dave pw2\n</target>\n\
         <target b>\n</target>\n<target a>\ninitiator-address 10.0.0.1\nbs-type rdwr\nbs-type null\n</target>\n");
    assert_eq!(c.targets.len(), 2);
    let a = &c.targets[0];
    assert_eq!(a.name, "a");
    assert_eq!(a.initiator_addresses, ["10.0.0.1"]);
    assert_eq!(a.luns[0].duplicate.as_deref(), Some("bs-type"));
    assert_eq!(a.outgoing.as_ref().map(|u| u.user.as_str()), Some("bob"));
    let c = ok("<target a>\ninitiator-address 1.2.3.4\ninitiator-address 5.6.7.8\nbacking-store /x\n</target>\n");
    assert_eq!(c.targets[0].luns[0].duplicate, None);
}
