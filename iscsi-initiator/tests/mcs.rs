//! Multiple connections per session (MC/S) between the initiator and the target core
//! in process: four connections share one CmdSN window, commands spread over them
//! complete on the connection that carried them, and logout closes one connection
//! (reason 1) and then the session (reason 0).
#![allow(clippy::disallowed_methods)]

mod common;

use bytes::BytesMut;
use common::{config, pattern};
use iscsi_initiator::{cdb, Command, DataDirection, Event, Session, State};
use std::sync::Arc;
use std::time::Instant;
use target_core::connection::{ConnConfig, Connection, IoCompletion};
use target_core::testkit::fixture::{self, Fixture};
use target_core::testkit::Kick;

struct Link {
    conn: Connection,
    kick: Arc<Kick>,
    ini: Session,
    events: Vec<Event>,
}

impl Link {
    fn new(fx: &Fixture, ini: Session, now: Instant) -> Link {
        let kick = Arc::new(Kick::default());
        let mut conn =
            Connection::new(fx.core.clone(), fixture::peer(), ConnConfig::default(), now);
        conn.set_waker(kick.clone());
        Link {
            conn,
            kick,
            ini,
            events: Vec::new(),
        }
    }
}

/// Step every link until none moves: bytes both ways, storage at once, kicks as
/// empty inputs, and every session resumed (the window may have opened elsewhere).
fn drive(links: &mut [Link], now: Instant) {
    for _ in 0..100_000 {
        let mut progress = false;
        for l in links.iter_mut() {
            if l.kick.take() {
                l.conn.handle_input(&mut BytesMut::new(), now);
                progress = true;
            }
            l.ini.resume();
            let mut out = BytesMut::new();
            while let Some(e) = l.ini.poll_transmit() {
                out.extend_from_slice(&e.header);
                out.extend_from_slice(&e.data);
                out.extend_from_slice(&e.trailer);
            }
            if !out.is_empty() && !l.conn.is_closed() {
                l.conn.handle_input(&mut out, now);
                progress = true;
            }
            while let Some(io) = l.conn.poll_io() {
                let result = io.store.execute(&io.op);
                l.conn
                    .handle_io_completion(IoCompletion::new(io.tag, result), now);
                progress = true;
            }
            let mut back = BytesMut::new();
            while let Some(t) = l.conn.poll_transmit() {
                back.extend_from_slice(&t.header);
                back.extend_from_slice(&t.data);
                back.extend_from_slice(&t.trailer);
            }
            while l.conn.poll_event().is_some() {}
            if !back.is_empty() {
                l.ini.handle_input(&back).expect("initiator input");
                progress = true;
            }
            while let Some(e) = l.ini.poll_event() {
                l.events.push(e);
                progress = true;
            }
        }
        if !progress {
            return;
        }
    }
    panic!("did not settle");
}

fn completion(l: &Link, itt: iscsi_initiator::Itt) -> Option<&iscsi_initiator::Completion> {
    l.events.iter().find_map(|e| match e {
        Event::CommandComplete(c) if c.task == itt => Some(c),
        _ => None,
    })
}

#[test]
fn four_connections_share_a_session() {
    let fx = fixture::single_target(4096, fixture::Bind::All);
    let now = Instant::now();
    let mut cfg = config();
    cfg.max_connections = 4;
    let mut links = vec![Link::new(&fx, Session::new(cfg, now), now)];
    drive(&mut links, now);
    assert_eq!(links[0].ini.state(), State::FullFeature);
    assert_eq!(links[0].ini.params().max_connections, 4);
    // Clear the new nexus's unit attention through the leading connection.
    for _ in 0..2 {
        links[0]
            .ini
            .submit(Command::new(
                1,
                &cdb::test_unit_ready(),
                DataDirection::None,
            ))
            .unwrap();
        drive(&mut links, now);
    }
    for cid in 1..4 {
        let ini = Session::join(&links[0].ini, cid, now);
        links.push(Link::new(&fx, ini, now));
        drive(&mut links, now);
        assert_eq!(
            links[cid as usize].ini.state(),
            State::FullFeature,
            "cid {cid}"
        );
    }
    assert_eq!(fx.target.sessions().len(), 1);
    assert_eq!(fx.target.sessions()[0].connections.len(), 4);
    // 64 writes spread round-robin, all submitted before any is driven.
    let mut writes = Vec::new();
    for i in 0..64u64 {
        let k = (i % 4) as usize;
        let data = pattern(4096, i as u8);
        let itt = links[k]
            .ini
            .submit(Command::new(
                1,
                &cdb::write16(i * 8, 8),
                DataDirection::Write(data),
            ))
            .unwrap();
        writes.push((k, itt));
    }
    drive(&mut links, now);
    for (k, itt) in &writes {
        let c = completion(&links[*k], *itt).expect("write completed on its connection");
        assert_eq!(c.status, 0);
    }
    // Read each block back on another connection.
    let mut reads = Vec::new();
    for i in 0..64u64 {
        let k = ((i + 1) % 4) as usize;
        let itt = links[k]
            .ini
            .submit(Command::new(
                1,
                &cdb::read16(i * 8, 8),
                DataDirection::Read(4096),
            ))
            .unwrap();
        reads.push((k, i, itt));
    }
    drive(&mut links, now);
    for (k, i, itt) in &reads {
        let c = completion(&links[*k], *itt).expect("read completed");
        assert_eq!((c.status, &c.data[..]), (0, &pattern(4096, *i as u8)[..]));
    }
    // One window for all: 2 TURs + 128 commands past the login's CmdSN.
    let (cmd_sn, exp, _) = links[3].ini.window();
    assert_eq!(cmd_sn, exp);
    // Close connection 3, then the session.
    links[3].ini.logout_connection().unwrap();
    drive(&mut links, now);
    assert_eq!(links[3].ini.state(), State::Closed);
    assert!(links[3].conn.is_closed());
    assert_eq!(fx.target.sessions()[0].connections.len(), 3);
    links[0].ini.logout().unwrap();
    drive(&mut links, now);
    assert_eq!(links[0].ini.state(), State::Closed);
    assert!(links.iter().all(|l| l.conn.is_closed()));
    assert!(fx.target.sessions().is_empty());
}
