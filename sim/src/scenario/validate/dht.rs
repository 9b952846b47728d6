//! Checks the `[dht]` section: the lookup success rate.

use super::Validator;
use crate::Error;
use crate::scenario::Dht;
use crate::scenario::raw::RawDht;

impl Validator<'_> {
    pub(super) fn dht(&self, raw: Option<&RawDht>) -> Result<Option<Dht>, Error> {
        Ok(match raw {
            None => None,
            Some(d) => Some(Dht {
                // Lookups of records that exist nearly always succeed in the
                // IPFS measurements (probe-lab); 0.98 is our assumption.
                lookup_success: self.opt_range(
                    d.lookup_success.as_ref(),
                    "dht.lookup_success",
                    0.0,
                    1.0,
                    0.98,
                )?,
            }),
        })
    }
}
