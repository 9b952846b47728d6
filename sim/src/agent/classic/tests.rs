//! Unit tests of the classic stacks' models.
use super::*;

fn addr(node: u32, quic: bool, epoch: u16) -> AddrKey {
    AddrKey {
        node,
        kind: IfKind::Wifi,
        epoch,
        lan: false,
        quic,
        relay: None,
    }
}

/// libp2p-ping reports a dead connection at its second failure: at the
/// defaults 20 s timeout + 15 s interval + the second attempt's 10 s
/// stream negotiation; tuned, with lazy negotiation, 1 + 1 + 1 s. QUIC
/// idles out after 10 s at the defaults, 3 s tuned.
#[test]
fn ping_reports_the_second_failure() {
    let lv = |flavor, quic| {
        let agent = ClassicAgent {
            flavor,
            tinder: flavor == Flavor::Tinder,
            ..blank()
        };
        agent.liveness(quic, Medium::Wifi)
    };
    let s = Duration::from_secs;
    let stock = lv(Flavor::Stock, false);
    assert_eq!(stock.ping_every, Some(s(15)));
    assert_eq!(stock.ping_timeout, Some(s(45)));
    assert_eq!(stock.quic_idle, None);
    assert_eq!(lv(Flavor::Stock, true).quic_idle, Some(s(10)));
    let tuned = lv(Flavor::Tuned, true);
    assert_eq!(tuned.ping_every, Some(s(1)));
    assert_eq!(tuned.ping_timeout, Some(s(3)));
    assert_eq!(tuned.quic_idle, Some(s(3)));
    assert!(tuned.quic_keepalive < tuned.quic_idle);
    assert_eq!(tuned.idle_close, Some(SWARM_IDLE));
    assert_eq!(lv(Flavor::Tinder, true).idle_close, None);
}

fn blank() -> ClassicAgent {
    ClassicAgent {
        me: 0,
        flavor: Flavor::Stock,
        tinder: false,
        losing: Vec::new(),
        peers: BTreeMap::new(),
        conn_peer: BTreeMap::new(),
        queries: BTreeMap::new(),
        next_id: 0,
        out: VecDeque::new(),
        dht: false,
        servers: 0,
        ble: false,
        mdns_next: None,
        mdns_gap: MDNS_FIRST_PROBE,
        bootstrap_next: None,
        publish_next: None,
        register_next: None,
        poll_next: None,
    }
}

#[test]
fn smart_dial_delays_follow_the_rust_libp2p_ranker() {
    // libp2p-swarm `dial_ranker.rs` tests: three public QUIC addresses
    // get 0, 250 ms, 250 ms; TCP starts 250 ms after the last QUIC one.
    let ms = Duration::from_millis;
    let sorted = [
        addr(1, true, 1),
        addr(1, true, 2),
        addr(1, true, 3),
        addr(1, false, 1),
        addr(1, false, 2),
    ];
    let got: Vec<Duration> = smart_dial_delays(sorted.into_iter(), PUBLIC_DELAY)
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(got, [ms(0), ms(250), ms(250), ms(500), ms(750)]);
    // Private addresses: the same shape at 30 ms.
    let got: Vec<Duration> = smart_dial_delays(
        [addr(1, true, 1), addr(1, false, 1)].into_iter(),
        PRIVATE_DELAY,
    )
    .into_iter()
    .map(|(d, _)| d)
    .collect();
    assert_eq!(got, [ms(0), ms(30)]);
}

/// Two phones on 4G behind carrier-grade NATs, each messaging the other
/// every `interval_s` through one relay: no hole punch can work between
/// them (symmetric ↔ symmetric), so every connection is relayed.
fn relayed_phones(interval_s: u64) -> crate::Scenario {
    crate::Scenario::from_toml_str(&format!(
        r#"
name = "relayed phones"
duration_s = 600
seed = 5
[traffic]
message_interval_s = {interval_s}
[[rendezvous]]
name = "relay"
relay = true
[[groups]]
name = "phones"
count = 2
cellular = "4g"
nat = "cgnat"
contacts = [{{ group = "phones", count = 1 }}]
"#
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// libp2p-dcutr 0.15's handler keeps a relayed connection alive until three
/// upgrade attempts were made on it (`handler/relayed.rs`,
/// `connection_keep_alive`), so the swarm's 10 s idle timeout cannot close
/// a circuit DCUtR still works on; once the attempts are spent, the idle
/// timeout applies as on any connection. Between two symmetric NATs each
/// attempt waits out a direct dial's 5 s timeout, so DCUtR holds the
/// circuit open for more than 10 s after it opened, and it closes 10 s
/// later. With a message every 15 s, the message after the one that opened
/// a circuit finds it still open, and the next one finds it closed: one
/// relayed connection per two messages. (A model whose idle timeout cut
/// the circuit under DCUtR dials one per message; one that never let a
/// relayed connection idle out dials one per circuit limit.)
#[test]
fn dcutr_keeps_a_relayed_connection_open_until_its_attempts_are_spent() {
    let s = relayed_phones(15);
    for policy in ["libp2p-stock", "libp2p-tuned"] {
        let options = crate::RunOptions {
            seed: None,
            policies: Some(vec![policy.to_owned()]),
            threads: 1,
            check_invariants: true,
        };
        let r = crate::run(&s, &options, &|_| {}).unwrap_or_else(|e| panic!("{e}"));
        let p = &r.policies[0];
        let (relayed, sent) = (p.nat.relayed_connections, p.messages_sent);
        // DCUtR ran on every relayed connection, and never punched.
        assert_eq!(p.nat.hole_punches, relayed, "{policy}: {:?}", p.nat);
        assert_eq!(p.nat.hole_punches_ok, 0, "{policy}: {:?}", p.nat);
        assert_eq!(p.direct_share, Some(0.0), "{policy}: {p:?}");
        assert!(
            4 * relayed < 3 * sent,
            "{policy}: {relayed} relayed connections for {sent} messages: \
             the idle timeout closed circuits DCUtR still held"
        );
        assert!(
            4 * relayed > sent,
            "{policy}: {relayed} relayed connections for {sent} messages: \
             circuits never idled out once DCUtR gave up"
        );
    }
}
