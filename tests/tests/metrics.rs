//! The `Behaviour` reports through the `metrics` facade: a dial by outcome
//! and medium, the time to connect, the modelled energy of the dial. A
//! recorder local to the test thread collects them (the library installs
//! none).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{listen, node};
use libp2p::futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use multidriver::Event;
use multidriver_routing::DiscoveryConfig;

/// Counters and histogram sample counts by name and sorted labels.
#[derive(Default, Clone)]
struct Collected {
    values: Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>,
}

struct Sum(Arc<AtomicU64>);

impl CounterFn for Sum {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl HistogramFn for Sum {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Collected {
    fn slot(&self, key: &Key) -> Arc<AtomicU64> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.values.lock().unwrap().entry(name).or_default())
    }

    fn get(&self, name: &str) -> u64 {
        self.values
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |v| v.load(Ordering::Relaxed))
    }
}

impl Recorder for Collected {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Sum(self.slot(key))))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Sum(self.slot(key))))
    }
}

#[test]
fn a_connection_is_counted_timed_and_costed() {
    let collected = Collected::default();
    metrics::with_local_recorder(&collected, || {
        // One thread: every poll happens under the local recorder.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut b = node(DiscoveryConfig::default());
            let addr = listen(&mut b, "/ip4/127.0.0.1/tcp/0").await;
            let b_id = *b.local_peer_id();
            let mut a = node(DiscoveryConfig::default());
            a.behaviour_mut()
                .add_route(b_id, addr, Duration::from_secs(60))
                .unwrap();
            a.behaviour_mut().connect(b_id).unwrap();
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    tokio::select! {
                        _ = b.select_next_some() => {}
                        e = a.select_next_some() => {
                            if let SwarmEvent::Behaviour(Event::RouteSelected { .. }) = e {
                                return;
                            }
                        }
                    }
                }
            })
            .await
            .expect("connected within 10 s");
        });
    });
    assert_eq!(
        collected.get("multidriver_dials_total{medium=loopback,outcome=success}"),
        1
    );
    assert_eq!(
        collected.get("multidriver_dials_total{medium=loopback,outcome=failure}"),
        0
    );
    assert_eq!(
        collected.get("multidriver_dial_duration_seconds{medium=loopback}"),
        1,
        "one dial duration sample"
    );
    assert_eq!(
        collected.get("multidriver_time_to_connect_seconds{}"),
        1,
        "one time-to-connect sample"
    );
    assert!(
        collected
            .get("multidriver_modelled_energy_millijoules_total{activity=dial,medium=loopback}")
            < 1,
        "loopback costs no radio energy"
    );
    assert!(
        collected.values.lock().unwrap().contains_key(
            "multidriver_modelled_energy_millijoules_total{activity=dial,medium=loopback}"
        ),
        "the dial's energy was recorded"
    );
}
