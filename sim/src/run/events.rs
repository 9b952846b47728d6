//! The event queue: the kinds of event, their order in the queue, and
//! scheduling one.

use std::cmp::Reverse;

use multidriver_scoring::Timestamp;

use super::Sim;
use super::budget::Kind;
use super::discovery::AnswerEv;

#[derive(Debug)]
pub(super) enum Ev {
    Timeline,
    Timer {
        node: u32,
        generation: u32,
    },
    DialDone {
        key: u64,
        ok: bool,
    },
    Answer(Box<AnswerEv>),
    Ping {
        key: u64,
    },
    QuicKeepalive {
        key: u64,
    },
    Detect {
        key: u64,
    },
    IdleCheck {
        key: u64,
    },
    Message {
        node: u32,
        slot: u16,
    },
    /// DCUtR over a relayed connection ends: a direct path, or none.
    Punch {
        key: u64,
        ok: bool,
    },
    /// A relay cuts a circuit at its duration or byte limit.
    CircuitEnd {
        key: u64,
    },
    Sample,
    Progress,
}

impl Ev {
    /// The node an event belongs to, and its kind, for the runaway bound;
    /// `None` for the world's own events (the timeline, samples, progress),
    /// which the scenario bounds.
    pub(super) fn charged_to(&self) -> Option<(u32, Kind)> {
        let owner = |key: u64| (key >> 40) as u32;
        Some(match self {
            Ev::Timeline | Ev::Sample | Ev::Progress => return None,
            Ev::Timer { node, .. } => (*node, Kind::Timer),
            Ev::DialDone { key, .. } => (owner(*key), Kind::DialDone),
            Ev::Answer(a) => (a.node, Kind::Answer),
            Ev::Ping { key } => (owner(*key), Kind::Ping),
            Ev::QuicKeepalive { key } => (owner(*key), Kind::QuicKeepalive),
            Ev::Detect { key } => (owner(*key), Kind::Detect),
            Ev::IdleCheck { key } => (owner(*key), Kind::IdleCheck),
            Ev::Message { node, .. } => (*node, Kind::Message),
            Ev::Punch { key, .. } => (owner(*key), Kind::Punch),
            Ev::CircuitEnd { key } => (owner(*key), Kind::CircuitEnd),
        })
    }
}

pub(super) struct Queued {
    pub(super) key: (Timestamp, u64),
    pub(super) ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

impl Sim<'_> {
    pub(super) fn push(&mut self, t: Timestamp, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            key: (t.max(self.now), self.seq),
            ev,
        }));
    }
}
