//! Checks the `[traffic]` section: how often nodes send and how much.

use super::Validator;
use crate::Error;
use crate::scenario::Traffic;
use crate::scenario::raw::RawTraffic;

impl Validator<'_> {
    pub(super) fn traffic(&self, raw: &RawTraffic) -> Result<Traffic, Error> {
        Ok(Traffic {
            message_interval_s: self.opt_range(
                raw.message_interval_s.as_ref(),
                "traffic.message_interval_s",
                0.05,
                86_400.0,
                5.0,
            )?,
            message_bytes: raw.message_bytes.unwrap_or(200).clamp(1, 1 << 20),
            queue_limit: raw.queue_limit.unwrap_or(64).min(1 << 16),
        })
    }
}
