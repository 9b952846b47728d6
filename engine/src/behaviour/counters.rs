//! The `metrics` facade's labels and the modelled energy counters.

use multidriver_scoring::Medium;

pub(crate) fn medium_label(m: Medium) -> &'static str {
    match m {
        Medium::Loopback => "loopback",
        Medium::Ethernet => "ethernet",
        Medium::Wifi => "wifi",
        Medium::Cellular(_) => "cellular",
        Medium::Bluetooth => "bluetooth",
        _ => "unknown",
    }
}

/// Adds modelled radio energy to `multidriver_modelled_energy_millijoules_total`.
pub(crate) fn record_energy(medium: Medium, activity: &'static str, joules: f64) {
    // Millijoules, rounded: counters count whole units.
    let mj = (joules * 1000.0).round().max(0.0) as u64;
    metrics::counter!(
        "multidriver_modelled_energy_millijoules_total",
        "medium" => medium_label(medium),
        "activity" => activity
    )
    .increment(mj);
}
