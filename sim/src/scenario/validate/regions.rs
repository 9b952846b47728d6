//! Checks the `[[regions]]` section: unique names and the core RTT between
//! every pair of regions.

use std::collections::BTreeMap;

use toml::Spanned;

use super::Validator;
use crate::Error;
use crate::scenario::Region;
use crate::scenario::raw::RawRegion;

/// The regions as written, or a single `default` one if none is given.
pub(super) fn with_default(mut raw_regions: Vec<RawRegion>) -> Vec<RawRegion> {
    // Regions: a default one if none is given.
    if raw_regions.is_empty() {
        raw_regions.push(RawRegion {
            name: "default".to_owned(),
            core_rtt_ms: BTreeMap::new(),
        });
    }
    raw_regions
}

impl Validator<'_> {
    pub(super) fn regions(
        &self,
        raw_regions: &[RawRegion],
        region_names: &[&str],
    ) -> Result<Vec<Region>, Error> {
        self.unique(region_names, "regions")?;
        let mut regions = Vec::new();
        for r in raw_regions {
            let mut core = Vec::new();
            for other in raw_regions {
                // Defaults: 10 ms inside a region (our assumption: a metro
                // core); 63.3 ms between regions, the median US west↔east
                // RTT (libp2p/test-plans perf results, docs/PARAMETERS.md).
                let default = if other.name == r.name { 10.0 } else { 63.3 };
                let v = r
                    .core_rtt_ms
                    .get(&other.name)
                    .or_else(|| other.core_rtt_ms.get(&r.name));
                core.push(self.opt_range(
                    v,
                    &format!("regions.{}.core_rtt_ms.{}", r.name, other.name),
                    0.0,
                    2000.0,
                    default,
                )?);
            }
            for (k, v) in &r.core_rtt_ms {
                if !region_names.contains(&k.as_str()) {
                    return Err(self.err(
                        v.span(),
                        format!("regions.{}.core_rtt_ms: no region is named \"{k}\"", r.name),
                    ));
                }
            }
            regions.push(Region {
                name: r.name.clone(),
                core_rtt_ms: core,
            });
        }
        Ok(regions)
    }

    /// The region a `region` field names; the first region if it is absent.
    pub(super) fn region_of(
        &self,
        region_names: &[&str],
        v: &Option<Spanned<String>>,
        field: &str,
    ) -> Result<usize, Error> {
        v.as_ref()
            .map_or(Ok(0), |v| self.lookup(region_names, v, field, "region"))
    }
}
