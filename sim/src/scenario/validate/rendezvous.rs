//! Checks the `[[rendezvous]]` section: unique names, the region and the
//! outage windows.

use super::Validator;
use crate::Error;
use crate::scenario::Rendezvous;
use crate::scenario::raw::RawRendezvous;

impl Validator<'_> {
    pub(super) fn rendezvous(
        &self,
        raw_rendezvous: &[RawRendezvous],
        server_names: &[&str],
        region_names: &[&str],
    ) -> Result<Vec<Rendezvous>, Error> {
        self.unique(server_names, "rendezvous points")?;
        let mut rendezvous = Vec::new();
        for r in raw_rendezvous {
            let mut outages = Vec::new();
            for o in &r.outages {
                let [a, b] = *o.get_ref();
                if !(a.is_finite() && b.is_finite() && 0.0 <= a && a < b) {
                    return Err(self.err(
                        o.span(),
                        format!("rendezvous.outages: [{a}, {b}] must be [from_s, to_s] with 0 <= from_s < to_s"),
                    ));
                }
                outages.push([a, b]);
            }
            rendezvous.push(Rendezvous {
                name: r.name.clone(),
                region: self.region_of(region_names, &r.region, "rendezvous.region")?,
                outages,
                relay: r.relay,
            });
        }
        Ok(rendezvous)
    }
}
