//! The iSNS client and SCN connection take whatever bytes a server (or anyone who
//! reaches the SCN port) sends: never a panic, whatever the chunking; the client keeps
//! producing well-formed requests.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use target_core::isns::client::{Client, ClientConfig};
use target_core::isns::message::{EntityView, Node};
use target_core::isns::scn::ScnConnection;

fuzz_target!(|input: (u8, &[u8])| {
    let (split, data) = input;
    let now = Instant::now();
    let mut c = Client::new(ClientConfig::default());
    let view = EntityView {
        entity_id: "192.0.2.1".into(),
        portals: vec!["192.0.2.1:3260".parse().unwrap()],
        nodes: vec![Node {
            name: "iqn.2026-11.test:fuzz".into(),
            alias: None,
        }],
        scn_port: Some(40000),
    };
    c.set_view(view, now);
    c.handle_connected(now);
    while c.poll_transmit().is_some() {}
    let cut = usize::from(split).min(data.len());
    let mut t = now;
    for chunk in [&data[..cut], &data[cut..]] {
        let mut buf = BytesMut::from(chunk);
        c.handle_input(&mut buf, t);
        while c.poll_transmit().is_some() {}
        while c.poll_event().is_some() {}
        t += Duration::from_secs(11);
        c.handle_timeout(t);
        while c.poll_transmit().is_some() {}
    }
    let _ = c.access();
    let mut scn = ScnConnection::new();
    for chunk in [&data[..cut], &data[cut..]] {
        let mut buf = BytesMut::from(chunk);
        if scn.handle_input(&mut buf).is_err() {
            break;
        }
    }
});
