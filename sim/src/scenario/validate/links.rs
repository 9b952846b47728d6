//! Checks the `[links]` section: loss rates, the cellular access RTT and the
//! BLE range.

use super::Validator;
use crate::Error;
use crate::scenario::Links;
use crate::scenario::raw::RawLinks;

impl Validator<'_> {
    pub(super) fn links(&self, raw: &RawLinks) -> Result<Links, Error> {
        Ok(Links {
            wifi_loss: self.opt_range(raw.wifi_loss.as_ref(), "links.wifi_loss", 0.0, 0.5, 0.0)?,
            cellular_loss: self.opt_range(
                raw.cellular_loss.as_ref(),
                "links.cellular_loss",
                0.0,
                0.5,
                0.0,
            )?,
            // BLE reaches ~10–30 m indoors at 0 dBm; 30 m is our assumption,
            // not a measurement.
            ble_range_m: self.opt_range(
                raw.ble_range_m.as_ref(),
                "links.ble_range_m",
                0.0,
                1000.0,
                30.0,
            )?,
            cellular_access_rtt_ms: raw
                .cellular_access_rtt_ms
                .as_ref()
                .map(|v| self.range(v, "links.cellular_access_rtt_ms", 0.1, 2000.0))
                .transpose()?,
        })
    }
}
