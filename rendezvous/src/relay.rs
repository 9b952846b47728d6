//! Circuit relay v2 on the rendezvous point: libp2p-relay's server with the
//! operator's [`RelayLimits`], and its Prometheus metrics.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `multidriver_rendezvous_relay_reservations` | gauge | reservations held now |
//! | `multidriver_rendezvous_relay_reservation_requests_total` | counter | `status`: `accepted`, `renewed`, or the denial (`resource_limit_exceeded`, …) |
//! | `multidriver_rendezvous_relay_reservations_ended_total` | counter | `reason`: `closed`, `timed_out` |
//! | `multidriver_rendezvous_relay_circuits` | gauge | circuits open now |
//! | `multidriver_rendezvous_relay_circuit_requests_total` | counter | `status`: `accepted`, or the denial (`resource_limit_exceeded`, `no_reservation`, …) |
//! | `multidriver_rendezvous_relay_circuits_closed_total` | counter | `reason`: `done`, `error` (a limit reached, a side gone) |
//!
//! libp2p-relay 0.22 copies a circuit's bytes inside its connection
//! handler and reports no byte counts, so bytes relayed are not a metric of
//! their own; libp2p's bandwidth counters (`libp2p_swarm_bandwidth_*`)
//! include them with the rest of the point's traffic.

use std::time::Duration;

use libp2p::relay;

use crate::config::{Config, RelayLimits};

/// The libp2p-relay configuration for `config`'s limits; the rate limiters
/// are libp2p-relay's defaults.
///
/// libp2p-relay 0.22 (`behaviour.rs`) denies a peer's new reservation or
/// circuit only when the peer already has *more* than its per-peer limit
/// (`count > max_…_per_peer`), so it admits one past the limit; the totals
/// it checks with `>=`, exactly. The point passes each per-peer limit less
/// one, so that the operator's limit is the number admitted.
/// The tests in `tests/relay.rs` hold it to that, at each bound.
pub(crate) fn relay_config(config: &Config) -> relay::Config {
    let l: &RelayLimits = &config.relay;
    relay::Config {
        max_reservations: l.max_reservations,
        max_reservations_per_peer: l.max_reservations_per_peer - 1,
        reservation_duration: Duration::from_secs(l.reservation_duration_secs),
        max_circuits: l.max_circuits,
        max_circuits_per_peer: l.max_circuits_per_peer - 1,
        max_circuit_duration: Duration::from_secs(l.max_circuit_duration_secs),
        max_circuit_bytes: l.max_circuit_bytes,
        ..relay::Config::default()
    }
}

/// A denial's status as a metric label.
fn status_label(status: &relay::StatusCode) -> &'static str {
    match status {
        relay::StatusCode::OK => "ok",
        relay::StatusCode::ReservationRefused => "reservation_refused",
        relay::StatusCode::ResourceLimitExceeded => "resource_limit_exceeded",
        relay::StatusCode::PermissionDenied => "permission_denied",
        relay::StatusCode::ConnectionFailed => "connection_failed",
        relay::StatusCode::NoReservation => "no_reservation",
        relay::StatusCode::MalformedMessage => "malformed_message",
        relay::StatusCode::UnexpectedMessage => "unexpected_message",
    }
}

/// What the relay holds now, for the gauges.
#[derive(Debug, Default)]
pub(crate) struct RelayStats {
    reservations: u64,
    circuits: u64,
}

impl RelayStats {
    /// Counts one relay event.
    #[allow(deprecated)] // The failure events libp2p-relay still emits.
    pub(crate) fn on_event(&mut self, event: &relay::Event) {
        let requests = |status: &'static str| {
            metrics::counter!("multidriver_rendezvous_relay_reservation_requests_total", "status" => status)
                .increment(1);
        };
        let circuit_requests = |status: &'static str| {
            metrics::counter!("multidriver_rendezvous_relay_circuit_requests_total", "status" => status)
                .increment(1);
        };
        match event {
            relay::Event::ReservationReqAccepted { renewed, .. } => {
                if *renewed {
                    requests("renewed");
                } else {
                    requests("accepted");
                    self.reservations += 1;
                }
            }
            relay::Event::ReservationReqDenied { status, .. } => requests(status_label(status)),
            relay::Event::ReservationReqAcceptFailed { .. }
            | relay::Event::ReservationReqDenyFailed { .. } => requests("failed"),
            relay::Event::ReservationClosed { .. } => {
                self.reservations = self.reservations.saturating_sub(1);
                metrics::counter!("multidriver_rendezvous_relay_reservations_ended_total", "reason" => "closed")
                    .increment(1);
            }
            relay::Event::ReservationTimedOut { .. } => {
                self.reservations = self.reservations.saturating_sub(1);
                metrics::counter!("multidriver_rendezvous_relay_reservations_ended_total", "reason" => "timed_out")
                    .increment(1);
            }
            relay::Event::CircuitReqAccepted { .. } => {
                circuit_requests("accepted");
                self.circuits += 1;
            }
            relay::Event::CircuitReqDenied { status, .. } => circuit_requests(status_label(status)),
            relay::Event::CircuitReqDenyFailed { .. }
            | relay::Event::CircuitReqAcceptFailed { .. }
            | relay::Event::CircuitReqOutboundConnectFailed { .. } => circuit_requests("failed"),
            relay::Event::CircuitClosed { error, .. } => {
                self.circuits = self.circuits.saturating_sub(1);
                let reason = if error.is_some() { "error" } else { "done" };
                metrics::counter!("multidriver_rendezvous_relay_circuits_closed_total", "reason" => reason)
                    .increment(1);
            }
            relay::Event::StatusChanged { .. } => {}
        }
        metrics::gauge!("multidriver_rendezvous_relay_reservations").set(self.reservations as f64);
        metrics::gauge!("multidriver_rendezvous_relay_circuits").set(self.circuits as f64);
    }

    /// Reservations held now.
    pub(crate) fn reservations(&self) -> u64 {
        self.reservations
    }

    /// Circuits open now.
    pub(crate) fn circuits(&self) -> u64 {
        self.circuits
    }
}
