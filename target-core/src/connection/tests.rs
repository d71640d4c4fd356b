//! Connection scenarios driven by an in-memory initiator ([`crate::testkit`]). Each
//! scenario asserts what the initiator sees (PDUs, status, sense, text) and replays
//! exactly from its seed.

mod digests;
mod erl2;
mod full_feature;
mod limits;
mod login;
mod mcs;
mod recovery;
mod reset;
mod rw;
mod text;

use super::{ConnConfig, ConnEvent};
use crate::testkit::{fixture, Sim};
use std::time::Instant;

/// The fake clock's zero; the one place a test reads the real clock.
#[allow(clippy::disallowed_methods)]
fn base() -> Instant {
    Instant::now()
}

/// A simulation against the fixture target (LUN 1 of `blocks` blocks), bound to ALL.
fn sim_with(blocks: u64, config: ConnConfig, seed: u64) -> (Sim, fixture::Fixture) {
    let fx = fixture::single_target(blocks, fixture::Bind::All);
    let sim = Sim::new(fx.core.clone(), fixture::peer(), config, seed, base());
    (sim, fx)
}

/// A simulation with default settings, logged in to the fixture target.
fn logged_in(seed: u64) -> (Sim, fixture::Fixture) {
    let (mut sim, fx) = sim_with(1024, ConnConfig::default(), seed);
    sim.login_ready(fixture::TARGET);
    (sim, fx)
}

/// The initiator saw no protocol violation and could decode everything.
fn assert_clean(sim: &Sim) {
    assert!(
        sim.ini.protocol_errors.is_empty(),
        "{:?}",
        sim.ini.protocol_errors
    );
    assert!(
        sim.ini.decode_errors.is_empty(),
        "{:?}",
        sim.ini.decode_errors
    );
}

/// Whether the connection reported a close.
fn closed_event(sim: &Sim) -> bool {
    sim.events
        .iter()
        .any(|e| matches!(e, ConnEvent::Closed { .. }))
}
