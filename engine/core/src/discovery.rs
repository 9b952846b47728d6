//! Discovery driver orchestration: registry, advertise and discover fan-out
//! by schedule and environment, re-advertising, health and backoff.

use std::collections::BTreeMap;
use std::time::Duration;

use multidriver_scoring::{Medium, Timestamp};

use crate::{
    Command, DriverCaps, DriverId, EnergyClass, Engine, Error, Event, InterfaceId, QueryId,
    QueryOutcome, Reach,
};

/// Longest namespace accepted: libp2p-rendezvous' limit of 255 bytes
/// (libp2p-rendezvous `lib.rs`), so every driver can carry it.
pub const MAX_NAMESPACE_LEN: usize = 255;

/// Shortest advertisement TTL accepted: re-advertising at 4/5 of a shorter
/// one would keep drivers busy for nothing. Our bound; rendezvous servers
/// enforce far longer minimums (2 h in libp2p-rendezvous `lib.rs`).
pub const MIN_ADVERT_TTL: Duration = Duration::from_secs(10);

/// Gain of the answer-latency average: 1/8, as RFC 6298's SRTT.
const LATENCY_GAIN: f64 = 1.0 / 8.0;

#[derive(Debug, Clone)]
pub(crate) struct Driver {
    caps: DriverCaps,
    healthy: bool,
    consecutive_failures: u32,
    successes: u64,
    failures: u64,
    /// Smoothed answer latency in seconds.
    latency: Option<f64>,
    backoff_until: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct AdvertSlot {
    query: Option<QueryId>,
    /// When to (re-)advertise; `None` until first scheduled.
    refresh_at: Option<Timestamp>,
    /// Whether the driver holds a registration we have not withdrawn.
    active: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Advert {
    ttl: Duration,
    slots: BTreeMap<DriverId, AdvertSlot>,
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Advertise(String),
    Discover(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Query {
    driver: DriverId,
    op: Op,
    started: Timestamp,
}

/// The driver-side state of an [`Engine`].
#[derive(Debug, Clone, Default)]
pub(crate) struct DriverRegistry {
    drivers: BTreeMap<DriverId, Driver>,
    adverts: BTreeMap<String, Advert>,
    /// Namespaces looked up again periodically, with the next lookup time.
    subscriptions: BTreeMap<String, Option<Timestamp>>,
    queries: BTreeMap<QueryId, Query>,
    next_query: u64,
    rng: u64,
}

impl DriverRegistry {
    pub(crate) fn new(seed: u64) -> Self {
        DriverRegistry {
            // xorshift needs a non-zero state.
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            ..DriverRegistry::default()
        }
    }

    /// A jitter factor in `0.8..1.2` from a seeded xorshift64.
    fn jitter(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        // The top 53 bits as a fraction in [0, 1).
        let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
        0.8 + 0.4 * unit
    }
}

fn check_namespace(namespace: &str) -> Result<(), Error> {
    let reason = if namespace.is_empty() {
        "is empty"
    } else if namespace.len() > MAX_NAMESPACE_LEN {
        "is longer than 255 bytes (the rendezvous protocol's limit)"
    } else {
        return Ok(());
    };
    Err(Error::InvalidNamespace {
        namespace: namespace.chars().take(64).collect(),
        reason,
    })
}

impl Engine {
    /// Registers a driver instance (a DHT, one rendezvous point, mDNS, …) and
    /// advertises the app's namespaces through it where the schedule allows.
    ///
    /// # Errors
    /// [`Error::TableFull`] beyond [`Config::max_drivers`](crate::Config::max_drivers).
    pub fn register_driver(&mut self, caps: DriverCaps, now: Timestamp) -> Result<DriverId, Error> {
        self.last_now = self.last_now.max(now);
        if self.drivers.drivers.len() >= self.config.max_drivers {
            return Err(Error::TableFull {
                table: "drivers",
                limit: self.config.max_drivers,
            });
        }
        let id = DriverId(
            self.drivers
                .drivers
                .keys()
                .next_back()
                .map_or(0, |d| d.0 + 1),
        );
        self.drivers.drivers.insert(
            id,
            Driver {
                caps,
                healthy: true,
                consecutive_failures: 0,
                successes: 0,
                failures: 0,
                latency: None,
                backoff_until: Timestamp::ZERO,
            },
        );
        self.schedule_drivers(now);
        Ok(id)
    }

    /// Advertises `namespace` for `ttl` through every driver the schedule
    /// allows, re-advertising at 4/5 of the TTL and at once when the local
    /// addresses change.
    ///
    /// # Errors
    /// [`Error::InvalidNamespace`] for an empty or over-long namespace;
    /// [`Error::TableFull`] beyond
    /// [`Config::max_namespaces`](crate::Config::max_namespaces).
    pub fn advertise(
        &mut self,
        namespace: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.last_now = self.last_now.max(now);
        check_namespace(namespace)?;
        if ttl < MIN_ADVERT_TTL {
            return Err(Error::InvalidTtl {
                ttl,
                min: MIN_ADVERT_TTL,
            });
        }
        if !self.drivers.adverts.contains_key(namespace)
            && self.drivers.adverts.len() >= self.config.max_namespaces
        {
            return Err(Error::TableFull {
                table: "namespaces",
                limit: self.config.max_namespaces,
            });
        }
        let advert = self
            .drivers
            .adverts
            .entry(namespace.to_owned())
            .or_insert_with(|| Advert {
                ttl,
                slots: BTreeMap::new(),
            });
        advert.ttl = ttl;
        for slot in advert.slots.values_mut() {
            slot.refresh_at = Some(now);
        }
        self.schedule_drivers(now);
        Ok(())
    }

    /// Stops advertising `namespace`: registrations are withdrawn and
    /// operations in flight cancelled.
    pub fn stop_advertising(&mut self, namespace: &str, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let Some(advert) = self.drivers.adverts.remove(namespace) else {
            return;
        };
        for (driver, slot) in advert.slots {
            if let Some(query) = slot.query {
                self.drivers.queries.remove(&query);
                self.commands.push(Command::CancelQuery { query });
            }
            if slot.active {
                self.commands.push(Command::StopAdvertising {
                    driver,
                    namespace: namespace.to_owned(),
                });
            }
        }
        // Freed operation slots go to advertisements that waited for them.
        self.schedule_drivers(now);
    }

    /// Keeps looking up `namespace`: now, then every
    /// [`DriverSchedule::interval`](crate::DriverSchedule::interval) for
    /// the current lifecycle state (none while suspended), until
    /// [`unsubscribe`](Self::unsubscribe).
    ///
    /// # Errors
    /// [`Error::InvalidNamespace`], or [`Error::TableFull`] beyond
    /// [`Config::max_namespaces`](crate::Config::max_namespaces)
    /// subscriptions.
    pub fn subscribe(&mut self, namespace: &str, now: Timestamp) -> Result<(), Error> {
        self.last_now = self.last_now.max(now);
        check_namespace(namespace)?;
        if !self.drivers.subscriptions.contains_key(namespace)
            && self.drivers.subscriptions.len() >= self.config.max_namespaces
        {
            return Err(Error::TableFull {
                table: "subscriptions",
                limit: self.config.max_namespaces,
            });
        }
        // The first lookup runs at once, whatever the radio: the app asked.
        let _ = self.discover(namespace, now);
        let interval = self.subscription_interval();
        self.drivers
            .subscriptions
            .insert(namespace.to_owned(), interval.map(|every| now + every));
        Ok(())
    }

    /// Stops the periodic lookups of [`subscribe`](Self::subscribe).
    pub fn unsubscribe(&mut self, namespace: &str) {
        self.drivers.subscriptions.remove(namespace);
    }

    /// Runs the subscriptions that are due and schedules their next run.
    ///
    /// Radio-aware: with only cellular up, a due lookup waits for the radio
    /// to be up anyway (the engine's own traffic or the app's) for at most
    /// half its interval, and one due within half its interval runs early
    /// while the radio is up, so lookups ride on wake-ups instead of
    /// causing them. Over Wi-Fi or Ethernet they run when due.
    pub(crate) fn rediscover(&mut self, now: Timestamp) {
        let interval = self.subscription_interval();
        let slack = self.subscription_slack();
        let awake = self.cellular_riding(now);
        let cheap = awake || !self.only_cellular();
        let due: Vec<String> = self
            .drivers
            .subscriptions
            .iter()
            .filter(|(_, t)| {
                t.is_some_and(|t| {
                    (t <= now && (cheap || now >= t + slack)) || (awake && t <= now + slack)
                })
            })
            .map(|(ns, _)| ns.clone())
            .collect();
        if !due.is_empty() {
            let cellular: Vec<InterfaceId> = self
                .interfaces
                .iter()
                .filter(|(_, i)| i.up && i.medium.is_cellular())
                .map(|(id, _)| *id)
                .collect();
            if self.only_cellular() {
                for i in cellular {
                    self.note_radio(i, now);
                }
            }
        }
        for ns in due {
            // The namespace was checked when subscribed.
            let _ = self.discover(&ns, now);
            // While suspended there are no periodic lookups; they resume when
            // the lifecycle state changes.
            self.drivers
                .subscriptions
                .insert(ns, interval.map(|every| now + every));
        }
    }

    /// The interval of subscription lookups now: the lifecycle's; `None`
    /// while suspended.
    fn subscription_interval(&self) -> Option<Duration> {
        self.config.schedule.interval(self.power.lifecycle)
    }

    /// How long a due subscription lookup may wait for a radio wake-up:
    /// half the current interval.
    fn subscription_slack(&self) -> Duration {
        self.subscription_interval()
            .map_or(Duration::ZERO, |i| i / 2)
    }

    /// Whether every interface that is up is cellular (and one is).
    fn only_cellular(&self) -> bool {
        let mut up = self.interfaces.values().filter(|i| i.up).peekable();
        up.peek().is_some() && up.all(|i| i.medium.is_cellular())
    }

    /// The lifecycle state changed: subscriptions follow the new interval
    /// from now (at once after a suspension).
    pub(crate) fn reschedule_subscriptions(&mut self, now: Timestamp) {
        let interval = self.config.schedule.interval(self.power.lifecycle);
        for next in self.drivers.subscriptions.values_mut() {
            *next = match (interval, *next) {
                (None, _) => None,
                (Some(_), None) => Some(now),
                (Some(every), Some(t)) => Some(t.min(now + every)),
            };
        }
        self.rediscover(now);
    }

    /// Looks up `namespace` with every driver that may run now and is not
    /// backing off; returns how many were asked. With no driver able to run
    /// (e.g. no DHT registered and the rendezvous points backing off) it asks
    /// none and returns 0: not an error.
    ///
    /// # Errors
    /// [`Error::InvalidNamespace`] for an empty or over-long namespace.
    pub fn discover(&mut self, namespace: &str, now: Timestamp) -> Result<usize, Error> {
        self.last_now = self.last_now.max(now);
        check_namespace(namespace)?;
        let ready: Vec<DriverId> = self
            .drivers
            .drivers
            .keys()
            .copied()
            .filter(|d| self.driver_ready(*d, now))
            .collect();
        let mut asked = 0;
        for driver in ready {
            if self.drivers.queries.len() >= self.config.max_queries {
                break;
            }
            let query = self.new_query(driver, Op::Discover(namespace.to_owned()), now);
            self.commands.push(Command::Discover {
                query,
                driver,
                namespace: namespace.to_owned(),
            });
            asked += 1;
        }
        Ok(asked)
    }

    /// The outcome of an advertisement or discovery. Failures put the driver
    /// in exponential backoff with jitter; its advertisements are retried
    /// when the backoff ends while the other drivers carry on.
    pub fn handle_query_outcome(&mut self, query: QueryId, outcome: QueryOutcome, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let Some(q) = self.drivers.queries.remove(&query) else {
            return;
        };
        self.query_finished(query, &q, outcome, now);
        self.schedule_drivers(now);
    }

    /// Whether a driver is healthy (not backing off after failures).
    pub fn driver_healthy(&self, driver: DriverId) -> Option<bool> {
        self.drivers.drivers.get(&driver).map(|d| d.healthy)
    }

    /// A driver's smoothed answer latency, once it answered.
    pub fn driver_latency(&self, driver: DriverId) -> Option<Duration> {
        self.drivers
            .drivers
            .get(&driver)
            .and_then(|d| d.latency)
            .map(Duration::from_secs_f64)
    }

    /// A driver's successful and failed operations so far.
    pub fn driver_outcomes(&self, driver: DriverId) -> Option<(u64, u64)> {
        self.drivers
            .drivers
            .get(&driver)
            .map(|d| (d.successes, d.failures))
    }

    /// Driver operations in flight.
    pub fn queries_in_flight(&self) -> usize {
        self.drivers.queries.len()
    }

    fn new_query(&mut self, driver: DriverId, op: Op, now: Timestamp) -> QueryId {
        self.drivers.next_query += 1;
        let id = QueryId(self.drivers.next_query);
        self.drivers.queries.insert(
            id,
            Query {
                driver,
                op,
                started: now,
            },
        );
        id
    }

    fn query_finished(&mut self, id: QueryId, q: &Query, outcome: QueryOutcome, now: Timestamp) {
        let backoff_base = self.config.backoff_base;
        let backoff_max = self.config.backoff_max;
        let jitter = self.drivers.jitter();
        let Some(driver) = self.drivers.drivers.get_mut(&q.driver) else {
            return;
        };
        let event = match outcome {
            QueryOutcome::Succeeded { .. } => {
                driver.successes += 1;
                let sample = now.saturating_duration_since(q.started).as_secs_f64();
                driver.latency = Some(match driver.latency {
                    None => sample,
                    Some(l) => l + LATENCY_GAIN * (sample - l),
                });
                driver.consecutive_failures = 0;
                let was = std::mem::replace(&mut driver.healthy, true);
                (!was).then_some(Event::DriverHealthChanged {
                    driver: q.driver,
                    healthy: true,
                    consecutive_failures: 0,
                    retry_at: None,
                })
            }
            QueryOutcome::Failed => {
                driver.failures += 1;
                driver.consecutive_failures = driver.consecutive_failures.saturating_add(1);
                let doublings = driver.consecutive_failures.saturating_sub(1).min(30);
                let delay = backoff_base
                    .saturating_mul(1 << doublings)
                    .min(backoff_max)
                    .mul_f64(jitter);
                driver.backoff_until = now + delay;
                driver.healthy = false;
                Some(Event::DriverHealthChanged {
                    driver: q.driver,
                    healthy: false,
                    consecutive_failures: driver.consecutive_failures,
                    retry_at: Some(driver.backoff_until),
                })
            }
        };
        let retry_at = self.drivers.drivers[&q.driver].backoff_until;
        if let Some(e) = event {
            self.push_event(e);
        }
        match (&q.op, outcome) {
            (Op::Advertise(ns), outcome) => {
                let ttl_refresh = self.drivers.adverts.get(ns).map(|a| a.ttl.mul_f64(0.8));
                if let Some(slot) = self
                    .drivers
                    .adverts
                    .get_mut(ns)
                    .and_then(|a| a.slots.get_mut(&q.driver))
                {
                    slot.query = None;
                    match outcome {
                        QueryOutcome::Succeeded { .. } => {
                            slot.active = true;
                            // Re-advertise at 4/5 of the TTL (Berty's tinder
                            // does the same: berty/weshnet `pkg/tinder`).
                            slot.refresh_at = ttl_refresh.map(|r| now + r);
                        }
                        QueryOutcome::Failed => slot.refresh_at = Some(retry_at),
                    }
                }
            }
            (Op::Discover(ns), QueryOutcome::Succeeded { found }) => {
                if found > 0 && self.profile.racing.cancel_slower_discovery {
                    let others: Vec<QueryId> = self
                        .drivers
                        .queries
                        .iter()
                        .filter(|(qid, o)| {
                            **qid != id && matches!(&o.op, Op::Discover(n) if n == ns)
                        })
                        .map(|(qid, _)| *qid)
                        .collect();
                    for query in others {
                        self.drivers.queries.remove(&query);
                        self.commands.push(Command::CancelQuery { query });
                    }
                }
            }
            (Op::Discover(_), QueryOutcome::Failed) => {}
        }
    }

    /// Whether the schedule and the environment let a driver run (backoff
    /// aside).
    fn driver_runnable(&self, driver: DriverId) -> bool {
        let Some(d) = self.drivers.drivers.get(&driver) else {
            return false;
        };
        let environment = match d.caps.reach {
            Reach::Lan => self.interfaces.values().any(|i| {
                i.up && matches!(
                    i.medium,
                    Medium::Wifi | Medium::Ethernet | Medium::Bluetooth
                )
            }),
            Reach::Internet => self.interfaces.values().any(|i| i.up && i.validated),
        };
        let only_costly_links = !self
            .interfaces
            .values()
            .any(|i| i.up && i.validated && !i.conditions.is_costly());
        let costly_blocks = d.caps.energy == EnergyClass::High
            && only_costly_links
            && !self.config.schedule.high_energy_on_costly_links;
        environment
            && !costly_blocks
            && self
                .config
                .schedule
                .allows(d.caps.kind, d.caps.energy, self.power)
    }

    fn driver_ready(&self, driver: DriverId, now: Timestamp) -> bool {
        self.driver_runnable(driver)
            && self
                .drivers
                .drivers
                .get(&driver)
                .is_some_and(|d| d.backoff_until <= now)
    }

    /// The addresses the local peer announces changed (a new external
    /// address was confirmed, one expired): every registration is renewed
    /// at once, so drivers carry the new addresses. Drivers backing off
    /// renew when their backoff ends.
    pub fn handle_local_addresses_changed(&mut self, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        self.readvertise_all(now);
    }

    /// The local addresses changed: every registration is renewed at once.
    pub(crate) fn readvertise_all(&mut self, now: Timestamp) {
        for advert in self.drivers.adverts.values_mut() {
            for slot in advert.slots.values_mut() {
                slot.refresh_at = Some(now);
            }
        }
        self.schedule_drivers(now);
    }

    /// Starts due advertisements on drivers that may run and withdraws
    /// registrations from drivers that may no longer run.
    pub(crate) fn schedule_drivers(&mut self, now: Timestamp) {
        self.drivers_checked = self.drivers_checked.max(now);
        let drivers: Vec<DriverId> = self.drivers.drivers.keys().copied().collect();
        let namespaces: Vec<String> = self.drivers.adverts.keys().cloned().collect();
        for ns in namespaces {
            for &driver in &drivers {
                let runnable = self.driver_runnable(driver);
                let ready = self.driver_ready(driver, now);
                let capacity = self.drivers.queries.len() < self.config.max_queries;
                let Some(advert) = self.drivers.adverts.get_mut(&ns) else {
                    continue;
                };
                let ttl = advert.ttl;
                let slot = advert.slots.entry(driver).or_default();
                if runnable && slot.refresh_at.is_none() && slot.query.is_none() && !slot.active {
                    // Never advertised here yet: due now (or when a backoff
                    // ends).
                    slot.refresh_at = Some(now);
                }
                if !runnable {
                    if let Some(query) = slot.query.take() {
                        self.drivers.queries.remove(&query);
                        self.commands.push(Command::CancelQuery { query });
                    }
                    if std::mem::take(&mut slot.active) {
                        self.commands.push(Command::StopAdvertising {
                            driver,
                            namespace: ns.clone(),
                        });
                    }
                    // Advertise as soon as it may run again.
                    slot.refresh_at = None;
                    continue;
                }
                let due = slot.refresh_at.is_none_or(|t| t <= now);
                if ready && capacity && slot.query.is_none() && due {
                    let query = self.new_query(driver, Op::Advertise(ns.clone()), now);
                    if let Some(slot) = self
                        .drivers
                        .adverts
                        .get_mut(&ns)
                        .and_then(|a| a.slots.get_mut(&driver))
                    {
                        slot.query = Some(query);
                        slot.refresh_at = None;
                    }
                    self.commands.push(Command::Advertise {
                        query,
                        driver,
                        namespace: ns.clone(),
                        ttl,
                    });
                }
            }
        }
    }

    /// Times out driver operations and starts due re-advertisements.
    pub(crate) fn drivers_timeout(&mut self, now: Timestamp) {
        let timeout = self.config.query_timeout;
        let expired: Vec<QueryId> = self
            .drivers
            .queries
            .iter()
            .filter(|(_, q)| q.started + timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(q) = self.drivers.queries.remove(&id) {
                self.commands.push(Command::CancelQuery { query: id });
                self.query_finished(id, &q, QueryOutcome::Failed, now);
            }
        }
        self.rediscover(now);
        self.schedule_drivers(now);
    }

    /// The next driver deadline: a query timeout, a re-advertisement (one
    /// not yet looked at may be overdue), or the end of a backoff that
    /// holds one back.
    pub(crate) fn drivers_next_timeout(&self) -> Option<Timestamp> {
        let queries = self
            .drivers
            .queries
            .values()
            .map(|q| q.started + self.config.query_timeout)
            .min();
        let refresh = self
            .drivers
            .adverts
            .values()
            .flat_map(|a| a.slots.iter())
            .filter(|(d, s)| s.query.is_none() && self.driver_runnable(**d))
            .filter_map(|(d, s)| {
                let backoff = self.drivers.drivers.get(d).map(|d| d.backoff_until)?;
                s.refresh_at.map(|t| t.max(backoff))
            })
            // Deadlines already looked at wait for capacity (a query
            // outcome reschedules them); one that passed since (an input
            // moved the clock past it before a timeout ran) is due now.
            .filter(|t| *t > self.drivers_checked)
            .min();
        // A lookup deferred for a radio wake-up (only cellular up, the
        // radio asleep) runs at the latest half an interval after it was
        // due; otherwise when due.
        let deferring = self.only_cellular() && !self.cellular_riding(self.last_now);
        let slack = if deferring {
            self.subscription_slack()
        } else {
            Duration::ZERO
        };
        let subscriptions = self
            .drivers
            .subscriptions
            .values()
            .flatten()
            .map(|&t| {
                if t > self.last_now {
                    t
                } else {
                    (t + slack).max(self.last_now)
                }
            })
            .min();
        [queries, refresh, subscriptions]
            .into_iter()
            .flatten()
            .min()
    }
}
