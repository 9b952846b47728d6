//! The open-file limit, and the connections it allows.
//!
//! Every TCP connection holds a file descriptor (QUIC connections share
//! their UDP socket). A point left at the common soft limit of 1024 open
//! files cannot reach its default of 10 000 connections: the kernel
//! refuses `accept` long before, and clients wait. At start the point
//! raises its soft limit toward the hard one ([`raise_open_file_limit`])
//! and reports the connections it can really hold
//! ([`connection_capacity`]).

/// File descriptors kept for what is not a connection: the database and
/// its journal, the listeners, `/metrics` clients
/// ([`crate::http::MAX_CLIENTS`]), standard streams and the runtime (our
/// estimate, with room to spare).
pub const RESERVED_FILES: u64 = 64;

/// The open-file limit before and after [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    /// The soft limit the process started with (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit now.
    pub now: Option<u64>,
    /// The hard limit, the most the soft one can be raised to.
    pub hard: Option<u64>,
}

/// Raises the soft open-file limit to the hard one. On failure (or where
/// there are no such limits) it reports the limit as it is.
#[cfg(unix)]
pub fn raise_open_file_limit() -> FileLimit {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let start = getrlimit(Resource::Nofile);
    let mut limit = FileLimit {
        before: start.current,
        now: start.current,
        hard: start.maximum,
    };
    if start.current != start.maximum {
        let raised = Rlimit {
            current: start.maximum,
            maximum: start.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit.now = getrlimit(Resource::Nofile).current;
        }
    }
    limit
}

/// Raises the soft open-file limit to the hard one (no such limits here).
#[cfg(not(unix))]
pub fn raise_open_file_limit() -> FileLimit {
    FileLimit {
        before: None,
        now: None,
        hard: None,
    }
}

/// The connections the point can hold at once: `max_connections`, or
/// fewer when the open-file limit (less [`RESERVED_FILES`]) is lower.
pub fn connection_capacity(open_files: Option<u64>, max_connections: u32) -> u32 {
    match open_files {
        None => max_connections,
        Some(n) => {
            let room = n.saturating_sub(RESERVED_FILES);
            u32::try_from(room).map_or(max_connections, |r| r.min(max_connections))
        }
    }
}

/// Returns the allocator's free memory to the system (glibc's
/// `malloc_trim(0)`, which since glibc 2.8 releases free pages in every
/// arena, not only at the top of the heap). Elsewhere it does nothing:
/// other allocators return memory on their own schedule.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "malloc_trim is a C function without a safe binding"
)]
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes no pointer from us; it only walks the
    // allocator's own free lists, under the allocator's locks (MT-Safe).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Returns the allocator's free memory to the system: nothing to do here,
/// off glibc (see the Linux/glibc version).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_the_smaller_of_the_limit_and_the_files_left() {
        assert_eq!(connection_capacity(None, 10_000), 10_000);
        assert_eq!(connection_capacity(Some(1024), 10_000), 960);
        assert_eq!(connection_capacity(Some(1 << 20), 10_000), 10_000);
        assert_eq!(connection_capacity(Some(10), 10_000), 0);
        assert_eq!(connection_capacity(Some(u64::MAX), 5), 5);
    }
}
