//! Checks the `[[lans]]` section: unique names, the medium, the RTT and the
//! region; and resolves references to a LAN from later sections.

use toml::Spanned;

use super::Validator;
use crate::Error;
use crate::scenario::raw::RawLan;
use crate::scenario::{Lan, LanMedium, Nat};

impl Validator<'_> {
    pub(super) fn lans(
        &self,
        raw_lans: &[RawLan],
        lan_names: &[&str],
        region_names: &[&str],
    ) -> Result<Vec<Lan>, Error> {
        self.unique(lan_names, "lans")?;
        let mut lans = Vec::new();
        for l in raw_lans {
            let medium = match l.medium.get_ref().as_str() {
                "wifi" => LanMedium::Wifi,
                "ethernet" => LanMedium::Ethernet,
                other => {
                    return Err(self.err(
                        l.medium.span(),
                        format!("lans.medium = \"{other}\": expected wifi or ethernet"),
                    ));
                }
            };
            lans.push(Lan {
                name: l.name.clone(),
                medium,
                rtt_ms: self.range(&l.rtt_ms, "lans.rtt_ms", 0.01, 1000.0)?,
                internet: l.internet,
                region: self.region_of(region_names, &l.region, "lans.region")?,
                // A LAN that says nothing has a public uplink, as every LAN
                // had before NATs were modelled; the shipped scenarios all
                // say which NAT they mean.
                nat: self.nat(l.nat.as_ref(), "lans.nat", Nat::None)?,
            });
        }
        Ok(lans)
    }

    /// The LAN a field names, which must be of the medium `want`.
    pub(super) fn lan_of(
        &self,
        lan_names: &[&str],
        lans: &[Lan],
        v: &Spanned<String>,
        field: &str,
        want: LanMedium,
    ) -> Result<usize, Error> {
        let i = self.lookup(lan_names, v, field, "LAN")?;
        if lans[i].medium == want {
            Ok(i)
        } else {
            Err(self.err(
                v.span(),
                format!(
                    "{field} = \"{}\" is a{} LAN",
                    v.get_ref(),
                    if want == LanMedium::Wifi {
                        "n Ethernet"
                    } else {
                        " Wi-Fi"
                    }
                ),
            ))
        }
    }
}
