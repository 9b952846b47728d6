//! The crate's one error type, as the bindings see it: a Kotlin exception
//! class, a Swift `Error`, a Python exception.

/// Everything a [`Node`](crate::Node) call can refuse. A refused call
/// changed nothing.
///
/// No variant has a field called `message`: Kotlin exceptions own that
/// name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum MobileError {
    /// An argument was malformed: `field` names it, `value` is what was
    /// given (cut to 200 characters), `reason` what is wrong with it.
    #[error("{field}: `{value}` is not valid: {reason}")]
    InvalidInput {
        /// The argument or config field.
        field: String,
        /// What was given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The node was stopped; start a new one.
    #[error("the node is stopped")]
    Stopped,
    /// The node's queue of host calls is full (the node is far behind);
    /// nothing was queued. Try again after a moment.
    #[error("the node's queue of calls is full ({capacity} waiting); nothing was queued")]
    Busy {
        /// The queue's bound ([`NodeConfig::max_pending_calls`](crate::NodeConfig)).
        capacity: u64,
    },
    /// The node could not start: `part` names what failed.
    #[error("the node cannot start: {part}: {reason}")]
    Start {
        /// What failed (the runtime, a transport, a driver, a listen
        /// address...).
        part: String,
        /// Why.
        reason: String,
    },
    /// The engine refused the call (a full table, a bad namespace).
    #[error("the engine refused {call}: {reason}")]
    Engine {
        /// The call.
        call: String,
        /// Why.
        reason: String,
    },
    /// A proximity link the host reported is unknown, or its inbound
    /// buffer is full (the data was not taken: send it again later).
    #[error("proximity link {link}: {reason}")]
    Link {
        /// The host's link id.
        link: u64,
        /// What is wrong.
        reason: String,
    },
    /// The log bridge could not be set up (another global `tracing`
    /// subscriber is installed, say).
    #[error("logging: {reason}")]
    Logging {
        /// Why.
        reason: String,
    },
}

impl MobileError {
    /// An [`InvalidInput`](Self::InvalidInput), with `value` cut to 200
    /// characters so a huge input does not become a huge message.
    pub(crate) fn invalid(field: &str, value: &str, reason: impl std::fmt::Display) -> Self {
        const MAX: usize = 200;
        let value = match value.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}…", &value[..cut]),
            None => value.to_owned(),
        };
        MobileError::InvalidInput {
            field: field.to_owned(),
            value,
            reason: reason.to_string(),
        }
    }

    pub(crate) fn start(part: &str, reason: impl std::fmt::Display) -> Self {
        MobileError::Start {
            part: part.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// What a host's [`ProximityRadio`](crate::ProximityRadio) can answer
/// instead of doing what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum RadioError {
    /// Bluetooth is off.
    #[error("the radio is off")]
    Off,
    /// The app lacks the permission (Android `BLUETOOTH_SCAN` /
    /// `BLUETOOTH_ADVERTISE` / `BLUETOOTH_CONNECT`, iOS
    /// `NSBluetoothAlwaysUsageDescription`).
    #[error("not permitted: {reason}")]
    NotPermitted {
        /// What the platform said.
        reason: String,
    },
    /// Anything else the platform reported.
    #[error("radio failure: {reason}")]
    Failed {
        /// What the platform said.
        reason: String,
    },
}

/// A foreign implementation that threw something that is not a
/// [`RadioError`] (a bug in the host's radio code) becomes `Failed`.
impl From<uniffi::UnexpectedUniFFICallbackError> for RadioError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        RadioError::Failed { reason: e.reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_values_are_cut_in_messages() {
        let e = MobileError::invalid("peer", &"x".repeat(10_000), "not a peer id");
        let text = e.to_string();
        assert!(text.len() < 300, "{text}");
        assert!(text.starts_with("peer: `xxx"));
        assert!(text.ends_with("not a peer id"));
    }
}
