//! Where events go: JSON lines or human-readable lines on stdout, warnings
//! on stderr.

use std::io::{ErrorKind, Write};
use std::time::Instant;

use super::error::NodeError;
use super::report::Report;

/// Where events go.
pub(super) struct Out {
    json: bool,
    start: Instant,
}

impl Out {
    pub(super) fn new(json: bool) -> Self {
        Out {
            json,
            start: Instant::now(),
        }
    }

    pub(super) fn emit(&mut self, report: &Report) -> Result<(), NodeError> {
        if self.json {
            let line = report.json(self.start.elapsed());
            return writeln!(std::io::stdout().lock(), "{line}").map_err(|e| {
                if e.kind() == ErrorKind::BrokenPipe {
                    NodeError::StdoutClosed
                } else {
                    NodeError::Output(e)
                }
            });
        }
        let line = report.human();
        if matches!(report, Report::Warning { .. }) {
            // A closed stderr loses the warning, nothing else.
            let _ = writeln!(std::io::stderr().lock(), "{line}");
            return Ok(());
        }
        writeln!(std::io::stdout().lock(), "{line}").map_err(|e| {
            if e.kind() == ErrorKind::BrokenPipe {
                NodeError::StdoutClosed
            } else {
                NodeError::Output(e)
            }
        })
    }
}
