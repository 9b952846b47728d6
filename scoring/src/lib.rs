//! Route scoring for multidriver: which route to a peer is best right now,
//! by measured latency and modelled battery cost, and why.
//!
//! This crate is pure: no sockets, no tasks, no clock. Every function that
//! depends on time takes a [`Timestamp`] on the caller's clock, so the libp2p
//! adapter and the simulator drive the same code.
//!
//! - [`route`]: the vocabulary: [`Medium`], [`TransportKind`], [`Source`],
//!   [`Route`] records, [`NetworkConditions`], [`PowerState`].
//! - [`rtt`]: an SRTT/RTTVAR estimator ([`RttEstimator`]) with per-medium
//!   priors and a decaying failure penalty.
//! - [`energy`]: radio promotion, tail, per-byte and keep-alive energy per
//!   medium, from the figures in the project's `docs/PARAMETERS.md`.
//! - [`profile`]: the presets `performance`, `balanced`, `battery-saver` and
//!   `background`, and user profiles from TOML (feature `serde`).
//! - [`rank()`]: rank a peer's routes with a per-component [`Breakdown`];
//!   [`RacePlan`]: staggered dial attempts; [`SwitchGuard`]: hysteresis for
//!   moving a connected peer to a better route.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use multidriver_scoring::{
//!     CellularGeneration, Context, LinkConditions, Medium, PowerState, Profile, RacePlan, Route,
//!     Source, Timestamp, rank,
//! };
//!
//! let peer = libp2p_identity::PeerId::random();
//! let now = Timestamp::from_millis(60_000);
//!
//! let mut wifi = Route::from_addr(peer, "/ip4/192.168.1.20/udp/4001/quic-v1".parse()?, Medium::Wifi)?;
//! wifi.record_sighting(Source::Mdns, false, now);
//! wifi.rtt.on_sample(Duration::from_millis(9));
//!
//! let mut lte = Route::from_addr(
//!     peer,
//!     "/ip4/198.51.100.7/tcp/4001".parse()?,
//!     Medium::Cellular(CellularGeneration::G4),
//! )?;
//! lte.record_sighting(Source::Rendezvous, true, now);
//!
//! let routes = [lte, wifi];
//! let profile = Profile::balanced();
//! let links = LinkConditions::default(); // cellular is metered and expensive
//! let ctx = Context { profile: &profile, links: &links, power: PowerState::on_battery(0.5), now };
//!
//! let ranking = rank(&routes, &ctx);
//! let best = ranking.best().expect("two dialable routes");
//! assert_eq!(routes[best.index].medium, Medium::Wifi);
//! println!("{}", ranking.explain(&routes, &ctx));
//!
//! let plan = RacePlan::new(&ranking, &routes, &profile.racing);
//! assert_eq!(plan.attempts()[0].start_after, Duration::ZERO);
//! assert!(plan.attempts()[1].start_after >= profile.racing.min_stagger());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod energy;
mod error;
#[cfg(feature = "serde")]
mod file;
pub mod profile;
pub mod race;
pub mod rank;
pub mod route;
mod route_set;
pub mod rtt;
pub mod switch;
mod time;

/// TOML helpers shared with other multidriver crates that load their own
/// files (the simulator's scenarios): errors that name the line, column and
/// field, in the same form as profile and route-set errors.
#[cfg(feature = "serde")]
pub mod toml_support {
    use std::ops::Range;

    use crate::Error;

    /// Deserializes `text`, turning TOML syntax and serde errors into
    /// [`Error::Toml`] with the offending line.
    ///
    /// # Errors
    /// [`Error::Toml`] if the text is not valid TOML for `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
        crate::file::parse(text)
    }

    /// An [`Error::Toml`] pointing at `span` (byte offsets into `text`, as
    /// `toml::Spanned` reports them) with `message`.
    pub fn error_at(text: &str, span: Range<usize>, message: String) -> Error {
        crate::file::at(text, span, message)
    }
}

pub use error::Error;
pub use profile::{CostlyLinks, PRESET_NAMES, Profile};
pub use race::{Attempt, RacePlan};
pub use rank::{Breakdown, Components, Context, Exclusion, RankedRoute, Ranking, rank};
pub use route::{
    CellularGeneration, DialHistory, Lifecycle, LinkConditions, Medium, NetworkConditions,
    PowerState, Route, RouteId, Scope, Sighting, Source, TransportKind,
};
pub use route_set::{MAX_LIST_ENTRIES, MAX_ROUTES, RouteSet};
pub use rtt::RttEstimator;
pub use switch::{SwitchDecision, SwitchGuard};
pub use time::Timestamp;
