//! Which drivers run and which profile is in force in each power state and
//! lifecycle: the parts of [`Config`](crate::Config) that follow the
//! device.

use std::time::Duration;

use multidriver_scoring::{Lifecycle, PowerState, Profile, Source};

use crate::EnergyClass;

/// Which drivers run in each lifecycle state.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct DriverSchedule {
    pub(crate) foreground: Vec<Source>,
    pub(crate) background: Vec<Source>,
    pub(crate) suspended: Vec<Source>,
    pub(crate) high_energy_min_battery: f64,
    pub(crate) high_energy_on_costly_links: bool,
    pub(crate) foreground_interval: Duration,
    pub(crate) background_interval: Duration,
}

/// Read access to every setting; each says what happens at its bound.
impl DriverSchedule {
    /// Driver kinds that run in the foreground.
    pub fn foreground(&self) -> &Vec<Source> {
        &self.foreground
    }

    /// Builder: sets [`foreground`](Self::foreground).
    pub fn with_foreground(mut self, foreground: Vec<Source>) -> Self {
        self.foreground = foreground;
        self
    }

    /// Driver kinds that run in the background.
    pub fn background(&self) -> &Vec<Source> {
        &self.background
    }

    /// Builder: sets [`background`](Self::background).
    pub fn with_background(mut self, background: Vec<Source>) -> Self {
        self.background = background;
        self
    }

    /// Driver kinds that run while suspended (in the OS's short wake-ups).
    pub fn suspended(&self) -> &Vec<Source> {
        &self.suspended
    }

    /// Builder: sets [`suspended`](Self::suspended).
    pub fn with_suspended(mut self, suspended: Vec<Source>) -> Self {
        self.suspended = suspended;
        self
    }

    /// Never run drivers of [`EnergyClass::High`] (a DHT) on battery below
    /// this level (`0.0..=1.0`; 0 disables the rule).
    pub fn high_energy_min_battery(&self) -> f64 {
        self.high_energy_min_battery
    }

    /// Builder: sets [`high_energy_min_battery`](Self::high_energy_min_battery).
    pub fn with_high_energy_min_battery(mut self, high_energy_min_battery: f64) -> Self {
        self.high_energy_min_battery = high_energy_min_battery;
        self
    }

    /// Run drivers of [`EnergyClass::High`] even when every validated
    /// interface is metered, expensive or constrained. Default false: a DHT's
    /// background traffic (> 2 GB/h idle with many peers, kubo #2917 in
    /// docs/PARAMETERS.md) does not belong on a data plan.
    pub fn high_energy_on_costly_links(&self) -> bool {
        self.high_energy_on_costly_links
    }

    /// Builder: sets [`high_energy_on_costly_links`](Self::high_energy_on_costly_links).
    pub fn with_high_energy_on_costly_links(mut self, high_energy_on_costly_links: bool) -> Self {
        self.high_energy_on_costly_links = high_energy_on_costly_links;
        self
    }

    /// How often subscribed namespaces are looked up again in the
    /// foreground. Default 30 s, Berty's rendezvous poll (berty/weshnet
    /// `pkg/tinder`).
    pub fn foreground_interval(&self) -> Duration {
        self.foreground_interval
    }

    /// Builder: sets [`foreground_interval`](Self::foreground_interval).
    pub fn with_foreground_interval(mut self, foreground_interval: Duration) -> Self {
        self.foreground_interval = foreground_interval;
        self
    }

    /// The same in the background. Default 5 min (our choice: ten times
    /// rarer, the order of libp2p-mdns' 5 min query interval,
    /// libp2p-mdns `behaviour/iface.rs`).
    pub fn background_interval(&self) -> Duration {
        self.background_interval
    }

    /// Builder: sets [`background_interval`](Self::background_interval).
    pub fn with_background_interval(mut self, background_interval: Duration) -> Self {
        self.background_interval = background_interval;
        self
    }
}

impl Default for DriverSchedule {
    /// Everything in the foreground; no DHT in the background (our choice:
    /// kubo measured > 2 GB/h of DHT traffic with many peers,
    /// docs/PARAMETERS.md); only rendezvous while suspended; no DHT under
    /// 20 % battery.
    fn default() -> Self {
        DriverSchedule {
            foreground: vec![
                Source::Dht,
                Source::Rendezvous,
                Source::Mdns,
                Source::Proximity,
            ],
            background: vec![Source::Rendezvous, Source::Mdns, Source::Proximity],
            suspended: vec![Source::Rendezvous],
            high_energy_min_battery: 0.2,
            high_energy_on_costly_links: false,
            foreground_interval: Duration::from_secs(30),
            background_interval: Duration::from_secs(300),
        }
    }
}

impl DriverSchedule {
    /// How often subscriptions are looked up again in `lifecycle`; `None`
    /// while suspended (the OS grants only short wake-ups).
    pub fn interval(&self, lifecycle: Lifecycle) -> Option<Duration> {
        match lifecycle {
            Lifecycle::Foreground => Some(self.foreground_interval),
            Lifecycle::Background => Some(self.background_interval),
            Lifecycle::Suspended => None,
        }
    }

    /// Whether a driver of `kind` and `energy` may run under `power`.
    pub fn allows(&self, kind: Source, energy: EnergyClass, power: PowerState) -> bool {
        let kinds = match power.lifecycle {
            Lifecycle::Foreground => &self.foreground,
            Lifecycle::Background => &self.background,
            Lifecycle::Suspended => &self.suspended,
        };
        let low_battery = power.power_save
            || !power.on_mains()
                && power
                    .battery
                    .is_some_and(|b| b < self.high_energy_min_battery);
        kinds.contains(&kind) && !(energy == EnergyClass::High && low_battery)
    }
}

/// Which profile is in force for a power state.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileMap {
    pub(crate) foreground: Profile,
    pub(crate) background: Profile,
    pub(crate) suspended: Profile,
    pub(crate) low_battery: Profile,
    pub(crate) low_battery_below: f64,
}

/// Read access to every setting; each says what happens at its bound.
impl ProfileMap {
    /// In the foreground, or whenever on mains power.
    pub fn foreground(&self) -> &Profile {
        &self.foreground
    }

    /// In the background.
    pub fn background(&self) -> &Profile {
        &self.background
    }

    /// While suspended.
    pub fn suspended(&self) -> &Profile {
        &self.suspended
    }

    /// On battery below [`low_battery_below`](Self::low_battery_below), or
    /// with the OS's power-saving mode on, whatever the lifecycle state.
    pub fn low_battery(&self) -> &Profile {
        &self.low_battery
    }

    /// Builder: sets [`foreground`](Self::foreground).
    pub fn with_foreground(mut self, foreground: Profile) -> Self {
        self.foreground = foreground;
        self
    }

    /// Builder: sets [`background`](Self::background).
    pub fn with_background(mut self, background: Profile) -> Self {
        self.background = background;
        self
    }

    /// Builder: sets [`suspended`](Self::suspended).
    pub fn with_suspended(mut self, suspended: Profile) -> Self {
        self.suspended = suspended;
        self
    }

    /// Builder: sets [`low_battery`](Self::low_battery).
    pub fn with_low_battery(mut self, low_battery: Profile) -> Self {
        self.low_battery = low_battery;
        self
    }

    /// The low-battery threshold, `0.0..=1.0`.
    pub fn low_battery_below(&self) -> f64 {
        self.low_battery_below
    }

    /// Builder: sets [`low_battery_below`](Self::low_battery_below).
    pub fn with_low_battery_below(mut self, low_battery_below: f64) -> Self {
        self.low_battery_below = low_battery_below;
        self
    }
}

impl Default for ProfileMap {
    /// `balanced` in the foreground, `background` in the background and
    /// while suspended, `battery-saver` under 20 % battery.
    fn default() -> Self {
        ProfileMap {
            foreground: Profile::balanced(),
            background: Profile::background(),
            suspended: Profile::background(),
            low_battery: Profile::battery_saver(),
            low_battery_below: 0.2,
        }
    }
}

impl ProfileMap {
    /// The profile for `power`. Low battery (or the OS's power-saving mode)
    /// wins over the lifecycle state; mains power (charging, or no battery)
    /// counts as foreground unless the app is suspended.
    pub fn select(&self, power: PowerState) -> &Profile {
        let on_battery = !power.on_mains();
        if power.power_save
            || on_battery && power.battery.is_some_and(|b| b < self.low_battery_below)
        {
            return &self.low_battery;
        }
        match power.lifecycle {
            Lifecycle::Suspended => &self.suspended,
            Lifecycle::Background if on_battery => &self.background,
            _ => &self.foreground,
        }
    }
}
