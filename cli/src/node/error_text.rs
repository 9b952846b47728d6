//! libp2p's errors as one line of text, for warnings.

use libp2p::swarm::DialError;

/// Text on one line: libp2p's errors span several.
pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The innermost cause of an error, on one line: what the OS said, not the
/// layers that wrapped it.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    // Bounded: error chains are a few links deep.
    for _ in 0..16 {
        match current.source() {
            Some(inner) => current = inner,
            None => break,
        }
    }
    one_line(&current.to_string())
}

/// Why a dial failed, on one line: the cause, or with several addresses
/// tried, each address and its cause.
pub(super) fn dial_failure(error: &DialError) -> String {
    match error {
        DialError::Transport(attempts) if attempts.len() == 1 => root_cause(&attempts[0].1),
        DialError::Transport(attempts) if !attempts.is_empty() => attempts
            .iter()
            .map(|(addr, e)| format!("{addr}: {}", root_cause(e)))
            .collect::<Vec<_>>()
            .join("; "),
        other => one_line(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use libp2p::Multiaddr;
    use libp2p::swarm::DialError;

    use super::{dial_failure, one_line};

    #[test]
    fn a_dial_failure_is_one_line_with_the_os_error_per_address() {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let refused = std::io::Error::from(ErrorKind::ConnectionRefused);
        let wrapped =
            std::io::Error::other(format!("Multiple dial errors occurred:\n - {refused}"));
        let e = DialError::Transport(vec![(
            addr,
            libp2p::TransportError::Other(std::io::Error::other(wrapped)),
        )]);
        let text = dial_failure(&e);
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.starts_with("Multiple dial errors occurred: - "),
            "{text}"
        );
        let DialError::Transport(mut attempts) = e else {
            unreachable!()
        };
        let second: Multiaddr = "/ip4/127.0.0.1/tcp/2".parse().unwrap();
        attempts.push((second, libp2p::TransportError::Other(refused)));
        let text = dial_failure(&DialError::Transport(attempts));
        assert!(text.starts_with("/ip4/127.0.0.1/tcp/1: "), "{text}");
        assert!(
            text.ends_with("; /ip4/127.0.0.1/tcp/2: connection refused"),
            "{text}"
        );
        assert_eq!(one_line("a\n - b  c"), "a - b c");
    }
}
