//! Deterministic simulation kit (feature `testkit`): an in-memory [`Initiator`] built on
//! [`iscsi_proto`], a [`MemStore`] backing store and a [`Sim`] driver in the style of
//! quinn-proto's test `Pair`.
//!
//! A [`Sim`] owns one [`Connection`](crate::connection::Connection), one [`Initiator`] and a
//! fake clock (a base `Instant` handed in once, plus an offset the test advances). Each
//! [`Sim::step`] moves bytes both ways (optionally in seeded random-sized chunks) and
//! runs the storage requests the connection asked for, at once, when the test says, or
//! in a seeded random order. Nothing here reads a clock, spawns a thread or opens a
//! socket, so every scenario replays exactly from its seed.
//!
//! ```
//! # #[allow(clippy::disallowed_methods)]
//! # let base = std::time::Instant::now();
//! use target_core::testkit::{cdb, fixture, Sim};
//!
//! let fx = fixture::single_target(64, fixture::Bind::All);
//! let mut sim = Sim::new(fx.core.clone(), fixture::peer(), Default::default(), 7, base);
//! sim.login_ready(fixture::TARGET); // logs in and clears the power-on unit attention
//! let itt = sim.ini.read(1, &cdb::read10(0, 1), 512);
//! sim.drive();
//! assert_eq!(sim.ini.task(itt).unwrap().status, Some(0));
//! ```

pub mod cdb;
pub mod fixture;
mod initiator;
mod rng;
mod sim;
mod store;

pub use initiator::{Initiator, Offer, SenseView, TaskView};
pub use rng::Rng;
pub use sim::{drive_all, IoMode, Kick, Sim};
pub use store::MemStore;
