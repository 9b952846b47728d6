//! The runaway bound: events each node causes per simulated second, against
//! the scenario's `limits.max_events_per_node_second`.

use std::cmp::Reverse;

use multidriver_scoring::Timestamp;

use crate::agent::Output;

/// What a node's event or output was, for the runaway bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Timer,
    DialDone,
    Answer,
    Ping,
    QuicKeepalive,
    Detect,
    IdleCheck,
    Message,
    Punch,
    CircuitEnd,
    OutDial,
    OutCancel,
    OutClose,
    OutAdvertise,
    OutStopAdvertising,
    OutDiscover,
    OutKeepAlive,
    OutPrimary,
    OutAdopt,
}

impl Kind {
    const COUNT: usize = 19;

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Timer => "policy timer",
            Kind::DialDone => "dial outcome",
            Kind::Answer => "discovery answer",
            Kind::Ping => "ping",
            Kind::QuicKeepalive => "QUIC keep-alive",
            Kind::Detect => "dead-connection check",
            Kind::IdleCheck => "idle-connection check",
            Kind::Message => "app message",
            Kind::Punch => "hole punch outcome",
            Kind::CircuitEnd => "relay circuit limit",
            Kind::OutDial => "dial (asked by the policy)",
            Kind::OutCancel => "dial cancel (asked by the policy)",
            Kind::OutClose => "close (asked by the policy)",
            Kind::OutAdvertise => "advertisement (asked by the policy)",
            Kind::OutStopAdvertising => "stop advertising (asked by the policy)",
            Kind::OutDiscover => "discovery lookup (asked by the policy)",
            Kind::OutKeepAlive => "keep-alive (asked by the policy)",
            Kind::OutPrimary => "primary change (asked by the policy)",
            Kind::OutAdopt => "punched connection taken (asked by the policy)",
        }
    }

    pub(super) fn of_output(out: &Output) -> Kind {
        match out {
            Output::Dial { .. } => Kind::OutDial,
            Output::CancelDial { .. } => Kind::OutCancel,
            Output::Close { .. } => Kind::OutClose,
            Output::Advertise { .. } => Kind::OutAdvertise,
            Output::StopAdvertising { .. } => Kind::OutStopAdvertising,
            Output::Discover { .. } => Kind::OutDiscover,
            Output::KeepAlive { .. } => Kind::OutKeepAlive,
            Output::Primary { .. } => Kind::OutPrimary,
            Output::Adopt { .. } => Kind::OutAdopt,
        }
    }
}

/// Events each node caused in the current simulated second, against
/// `limits.max_events_per_node_second`.
pub(super) struct Budget {
    pub(super) limit: u32,
    second: u64,
    counts: Vec<[u32; Kind::COUNT]>,
    totals: Vec<u32>,
    touched: Vec<u32>,
}

impl Budget {
    pub(super) fn new(nodes: usize, limit: u32) -> Budget {
        Budget {
            limit,
            second: 0,
            counts: vec![[0; Kind::COUNT]; nodes],
            totals: vec![0; nodes],
            touched: Vec::new(),
        }
    }

    /// Counts one event of `kind` for `node` at `now`; `Some((kind, count))`
    /// of the node's commonest kind once it is over the limit.
    pub(super) fn charge(&mut self, node: u32, kind: Kind, now: Timestamp) -> Option<(Kind, u32)> {
        let second = now.since_origin().as_secs();
        if second != self.second {
            for &n in &self.touched {
                self.counts[n as usize] = [0; Kind::COUNT];
                self.totals[n as usize] = 0;
            }
            self.touched.clear();
            self.second = second;
        }
        let n = node as usize;
        if n >= self.totals.len() {
            return None;
        }
        if self.totals[n] == 0 {
            self.touched.push(node);
        }
        self.totals[n] += 1;
        self.counts[n][kind as usize] += 1;
        if self.totals[n] <= self.limit {
            return None;
        }
        let (i, &c) = self.counts[n]
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, Reverse(*i)))?;
        Some((ALL_KINDS[i], c))
    }
}

const ALL_KINDS: [Kind; Kind::COUNT] = [
    Kind::Timer,
    Kind::DialDone,
    Kind::Answer,
    Kind::Ping,
    Kind::QuicKeepalive,
    Kind::Detect,
    Kind::IdleCheck,
    Kind::Message,
    Kind::Punch,
    Kind::CircuitEnd,
    Kind::OutDial,
    Kind::OutCancel,
    Kind::OutClose,
    Kind::OutAdvertise,
    Kind::OutStopAdvertising,
    Kind::OutDiscover,
    Kind::OutKeepAlive,
    Kind::OutPrimary,
    Kind::OutAdopt,
];
