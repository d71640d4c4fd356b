//! Command lines and what tgt's tgtadm answers to them (texts from `usr/tgtadm.c`).

use super::*;

fn parse_words(line: &str) -> Result<Invocation, Exit> {
    let args: Vec<String> = line.split_whitespace().map(String::from).collect();
    parse(&args)
}

fn request(line: &str) -> Request {
    parse_words(line)
        .unwrap_or_else(|e| panic!("{line}: {e:?}"))
        .request
}

/// The stderr text and exit status of a refused command line.
fn refused(line: &str) -> (String, i32) {
    let e = parse_words(line).expect_err(line);
    (e.stderr, e.code)
}

fn tgtadm(msg: &str) -> (String, i32) {
    (format!("tgtadm: {msg}\n"), 22)
}

fn usage(msg: &str) -> (String, i32) {
    (
        format!("{msg}\nTry `tgtadm --help' for more information.\n"),
        22,
    )
}

#[test]
fn good_command_lines() {
    assert_eq!(
        request("--lld iscsi --mode target --op new --tid 2 --targetname iqn.2012-12.com.example:server.target"),
        Request::TargetNew { tid: 2, name: "iqn.2012-12.com.example:server.target".into() }
    );
    assert_eq!(
        request(
            "--lld iscsi --mode logicalunit --op new --tid 2 --lun 1 --backing-store /home/lun.bin"
        ),
        Request::LuNew {
            tid: 2,
            lun: 1,
            backing_store: "/home/lun.bin".into(),
            bstype: None,
            blocksize: None,
            params: None,
            bsoflags: None,
            bsopts: None,
            device_type: None,
        }
    );
    assert_eq!(
        request("-L iscsi -m lu -o new -t 2 -l 3 -b 1G -E memory -y 4096"),
        Request::LuNew {
            tid: 2,
            lun: 3,
            backing_store: "1G".into(),
            bstype: Some("memory".into()),
            blocksize: Some(4096),
            params: None,
            bsoflags: None,
            bsopts: None,
            device_type: None,
        }
    );
    assert_eq!(
        request("--lld iscsi --mode target --op bind --tid 2 --initiator-address ALL"),
        Request::TargetBind {
            tid: 2,
            address: Some("ALL".into()),
            initiator_name: None
        }
    );
    assert_eq!(
        request("-m target -o unbind -t 2 -Q iqn.1994-05.com.redhat:x"),
        Request::TargetUnbind {
            tid: 2,
            address: None,
            initiator_name: Some("iqn.1994-05.com.redhat:x".into())
        }
    );
    assert_eq!(
        request("--mode target --op delete --force --tid 0x2"),
        Request::TargetDelete {
            tid: 2,
            force: true
        }
    );
    assert_eq!(
        request("--mode tgt --op delete --tid 2"),
        Request::TargetDelete {
            tid: 2,
            force: false
        }
    );
    assert_eq!(
        request("--lld iscsi --mode target --op show"),
        Request::TargetShow
    );
    assert_eq!(request("--mode sys --op show"), Request::SystemShow);
    assert_eq!(request("--mode system --op delete"), Request::SystemDelete);
    assert_eq!(
        request("--mode lu --op delete --tid 1 --lun 5"),
        Request::LuDelete { tid: 1, lun: 5 }
    );
    // Options may come in any order and after operands are rejected (below).
    assert_eq!(request("--op show -d --mode target"), Request::TargetShow);
}

#[test]
fn control_socket_and_port() {
    let inv = parse_words("-C 3 --mode target --op show --control-socket /tmp/x.sock").unwrap();
    assert_eq!(inv.control_port, 3);
    assert_eq!(inv.control_socket, Some(PathBuf::from("/tmp/x.sock")));
    assert_eq!(
        refused("-C 40000 --mode target --op show"),
        usage("-C argument value '40000' out of range")
    );
}

#[test]
fn missing_pieces() {
    assert_eq!(
        refused("--mode target --tid 1"),
        tgtadm("specify the operation type")
    );
    assert_eq!(refused("--op show"), tgtadm("specify the mode"));
    assert_eq!(
        refused("--mode target --op new --targetname iqn.x"),
        tgtadm("'tid' option is necessary")
    );
    assert_eq!(
        refused("--mode target --op new --tid 0 --targetname iqn.x"),
        tgtadm("'tid' cannot be 0")
    );
    assert_eq!(
        refused("--mode target --op new --tid 1"),
        tgtadm("creating new target requires a name, use --targetname")
    );
    assert_eq!(
        refused("--mode logicalunit --op new --lun 1 -b /x"),
        tgtadm("'tid' option is necessary")
    );
    assert_eq!(
        refused("--mode logicalunit --op new --tid 0 --lun 1"),
        tgtadm("'tid' must not be 0")
    );
    assert_eq!(
        refused("--mode logicalunit --op new --tid 1 -b /x"),
        tgtadm("'lun' option is necessary")
    );
    assert_eq!(
        refused("--mode logicalunit --op new --tid 1 --lun 1"),
        tgtadm("'backing-store' option is necessary")
    );
    assert_eq!(
        refused("--mode target --op bind --tid 1"),
        tgtadm("bind operation requires initiator-address, initiator-nameor bus")
    );
}

#[test]
fn options_not_allowed_in_a_mode() {
    assert_eq!(
        refused("--mode target --op new --tid 1 --targetname iqn.x --lun 3"),
        tgtadm("target mode: option '-l' is not allowed/supported")
    );
    assert_eq!(
        refused("--mode target --op delete --tid 1 -b /x"),
        tgtadm("target mode: option '-b' is not allowed/supported")
    );
    assert_eq!(
        refused("--mode logicalunit --op new --tid 1 --lun 1 -b /x --params readonly=1"),
        tgtadm("logicalunit mode: option '-P' is not allowed/supported")
    );
    assert_eq!(
        refused("--mode logicalunit --op update --tid 1 --lun 1 -T x"),
        tgtadm("option '-T' not supported in logicalunit mode")
    );
    assert_eq!(
        refused("--mode target --op start --tid 1"),
        tgtadm("operation start not supported in target mode")
    );
    assert_eq!(
        refused("--mode system --op bind"),
        tgtadm("operation bind not supported in system mode")
    );
    assert_eq!(
        refused("--mode lld --op new"),
        tgtadm("option 0 not supported in lld mode")
    );
}

#[test]
fn unknown_mode_and_op_exit_1() {
    assert_eq!(
        refused("--mode bogus --op show"),
        ("tgtadm: unknown mode: bogus\n".into(), 1)
    );
    assert_eq!(
        refused("--mode target --op frob"),
        ("tgtadm: unknown operation: frob\n".into(), 1)
    );
    // Options are handled in order: the bad mode wins over a later bad number.
    assert_eq!(
        refused("--mode bogus --tid x"),
        ("tgtadm: unknown mode: bogus\n".into(), 1)
    );
}

#[test]
fn getopt_errors_and_bad_numbers() {
    assert_eq!(
        refused("--mode target --op show --frob"),
        usage("tgtadm: unrecognized option '--frob'")
    );
    assert_eq!(
        refused("--mode target --op show -z"),
        usage("tgtadm: invalid option -- 'z'")
    );
    assert_eq!(
        refused("--mode target --op show --tid"),
        usage("tgtadm: option '--tid' requires an argument")
    );
    assert_eq!(
        refused("--mode target --op show extra"),
        usage("tgtadm: unrecognized option 'extra'")
    );
    assert_eq!(
        refused("--mode target --op delete --tid abc"),
        usage("-t argument value 'abc' invalid")
    );
    assert_eq!(
        refused("--mode target --op delete --tid -5"),
        usage("-t argument value '-5' out of range")
    );
    assert_eq!(
        refused("--mode lu --op delete --tid 1 --lun x"),
        usage("-l argument value 'x' invalid")
    );
    assert_eq!(
        refused("--mode lu --op new -Y floppy"),
        tgtadm("unknown target type: floppy")
    );
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    let e = parse_words("--mode bogus-later -h").unwrap_err();
    assert_eq!(e.code, 1, "the mode is handled before -h");
    let e = parse_words("-h --mode bogus").unwrap_err();
    assert_eq!((e.code, e.stderr.as_str()), (0, ""));
    assert!(e
        .stdout
        .contains("--mode target --op new --tid ID --targetname NAME"));
    let e = parse_words("--version").unwrap_err();
    assert_eq!(
        (e.code, e.stdout),
        (0, format!("{}\n", env!("CARGO_PKG_VERSION")))
    );
}

#[test]
fn drivers_and_not_yet_supported_requests() {
    assert_eq!(
        refused("--lld iser --mode target --op show"),
        tgtadm("can't find the driver")
    );
    assert_eq!(
        refused("--mode target --op bind --tid 1 --bus nosuchbus,0"),
        tgtadm("can't find bus: nosuchbus")
    );
}

#[test]
fn every_mode_becomes_a_request() {
    let cases: Vec<(&str, Request)> = vec![
        ("--mode system --op stat", Request::SystemStat),
        (
            "--mode target --op stat --tid 2",
            Request::TargetStat { tid: 2 },
        ),
        (
            "--mode lu --op stat --tid 2 --lun 3",
            Request::LuStat { tid: 2, lun: 3 },
        ),
        (
            "--mode target --op show --tid 1",
            Request::TargetShowParams { tid: 1 },
        ),
        (
            "--mode target --op update --tid 1 --name nop_interval --value 5",
            Request::TargetUpdate {
                tid: 1,
                name: "nop_interval".into(),
                value: "5".into(),
            },
        ),
        (
            "--mode system --op update --name State --value offline",
            Request::SystemUpdate {
                name: "State".into(),
                value: "offline".into(),
            },
        ),
        (
            "--mode lu --op update --tid 1 --lun 2 --params readonly=1",
            Request::LuUpdate {
                tid: 1,
                lun: 2,
                params: Some("readonly=1".into()),
            },
        ),
        (
            "--mode account --op new --user u --password p",
            Request::AccountNew {
                user: "u".into(),
                password: "p".into(),
            },
        ),
        ("--mode account --op show", Request::AccountShow),
        (
            "--mode account --op bind --tid 1 --user u --outgoing",
            Request::AccountBind {
                tid: Some(1),
                user: "u".into(),
                outgoing: true,
            },
        ),
        (
            "--mode account --op unbind --user u",
            Request::AccountUnbind {
                tid: None,
                user: "u".into(),
                outgoing: false,
            },
        ),
        (
            "--mode portal --op new --param portal=[::1]:3261",
            Request::PortalNew {
                portal: "[::1]:3261".into(),
            },
        ),
        ("--mode portal --op show", Request::PortalShow),
        ("--mode lld --op stop", Request::LldStop),
        (
            "--mode conn --op delete --tid 1 --sid 2 --cid 0",
            Request::ConnectionDelete {
                tid: 1,
                sid: 2,
                cid: 0,
            },
        ),
        (
            "--mode sess --op show --tid 1",
            Request::SessionShow { tid: 1, sid: None },
        ),
    ];
    for (line, want) in cases {
        assert_eq!(request(line), want, "{line}");
    }
    assert!(parse_words("--mode target --op show --json").unwrap().json);
}
