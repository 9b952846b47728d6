//! Loading profiles and route sets from TOML: what loads, and the errors for
//! what does not (line, field, allowed values).

use multidriver_scoring::{
    CellularGeneration, Error, Lifecycle, Medium, NetworkConditions, PRESET_NAMES, Profile,
    RouteSet, Source, TransportKind,
};

fn toml_error(result: Result<impl std::fmt::Debug, Error>) -> (usize, String) {
    match result {
        Err(Error::Toml {
            line,
            message,
            snippet,
            ..
        }) => (line, format!("{message} | {snippet}")),
        other => panic!("expected a TOML error, got {other:?}"),
    }
}

#[test]
fn presets_round_trip_through_toml() {
    for name in PRESET_NAMES {
        let p = Profile::preset(name).unwrap();
        assert_eq!(
            Profile::from_toml_str(&p.to_toml_string()).unwrap(),
            p,
            "{name}"
        );
    }
}

/// `profiles/*.toml` are what `Profile::to_documented_toml` writes (and what
/// `multidriver profiles show` prints), so the shipped files cannot drift
/// from the presets.
#[test]
fn shipped_profile_files_are_the_documented_presets() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles");
    for name in PRESET_NAMES {
        let p = Profile::preset(name).unwrap();
        let documented = p.to_documented_toml();
        let shipped = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
        assert_eq!(documented, shipped, "profiles/{name}.toml");
        assert_eq!(Profile::from_toml_str(&documented).unwrap(), p, "{name}");
    }
    let mut custom = Profile::balanced();
    custom.name = "mine".to_owned();
    let text = custom.to_documented_toml();
    assert!(text.starts_with("# The profile `mine`"), "{text}");
    assert_eq!(Profile::from_toml_str(&text).unwrap(), custom);
}

#[test]
fn a_profile_written_before_quiet_liveness_loads_with_balanced_quiet_settings() {
    let mut p = Profile::background();
    let text = p.to_toml_string();
    let start = text.find("[quiet]").expect("a [quiet] section");
    let end = text[start + 1..]
        .find("\n[")
        .map_or(text.len(), |i| start + 1 + i + 1);
    let old = format!("{}{}", &text[..start], &text[end..]);
    assert!(!old.contains("quiet"), "{old}");
    let loaded = Profile::from_toml_str(&old).unwrap();
    p.quiet = multidriver_scoring::profile::Quiet::balanced();
    assert_eq!(loaded, p);
}

#[test]
fn a_quiet_value_out_of_range_is_named() {
    let text = Profile::balanced()
        .to_toml_string()
        .replace("after_s = 120", "after_s = 0");
    let (_, message) = toml_error(Profile::from_toml_str(&text));
    assert!(message.contains("quiet.after_s = 0"), "{message}");
    assert!(message.contains("1..=86400"), "{message}");
}

#[test]
fn profile_value_out_of_range_names_field_line_and_range() {
    let text = Profile::balanced()
        .to_toml_string()
        .replace("min_stagger_ms = 100", "min_stagger_ms = 5");
    let expected_line = text
        .lines()
        .position(|l| l.starts_with("min_stagger_ms"))
        .unwrap()
        + 1;
    let (line, message) = toml_error(Profile::from_toml_str(&text));
    assert_eq!(line, expected_line);
    assert!(message.contains("racing.min_stagger_ms = 5"), "{message}");
    assert!(message.contains("10..=2000"), "{message}");
}

#[test]
fn profile_unknown_field_is_rejected_at_its_line() {
    let text = Profile::balanced()
        .to_toml_string()
        .replace("[usage]\n", "[usage]\nhorizon_hours = 3\n");
    let expected_line = text
        .lines()
        .position(|l| l.starts_with("horizon_hours"))
        .unwrap()
        + 1;
    let (line, message) = toml_error(Profile::from_toml_str(&text));
    assert_eq!(line, expected_line);
    assert!(message.contains("horizon_hours"), "{message}");
}

#[test]
fn profile_missing_or_mistyped_fields_are_named() {
    let text = Profile::balanced()
        .to_toml_string()
        .replace("dwell_ms = 2000\n", "");
    let (_, message) = toml_error(Profile::from_toml_str(&text));
    assert!(message.contains("dwell_ms"), "{message}");

    let text = Profile::balanced()
        .to_toml_string()
        .replace("max_attempts = 3", "max_attempts = \"three\"");
    let expected_line = text
        .lines()
        .position(|l| l.starts_with("max_attempts"))
        .unwrap()
        + 1;
    let (line, message) = toml_error(Profile::from_toml_str(&text));
    assert_eq!(line, expected_line);
    assert!(
        message.contains(r#"racing.max_attempts: expected a whole number, got the string "three""#),
        "{message}"
    );

    let text = Profile::balanced()
        .to_toml_string()
        .replace("dwell_ms = 2000", "dwell_ms = 2.5");
    let (_, message) = toml_error(Profile::from_toml_str(&text));
    assert!(
        message.contains(
            "switching.dwell_ms: expected a whole number of milliseconds, got the number 2.5"
        ),
        "{message}"
    );

    let text = Profile::balanced()
        .to_toml_string()
        .replace("keep_warm_backup = false", "keep_warm_backup = \"no\"");
    let (_, message) = toml_error(Profile::from_toml_str(&text));
    assert!(
        message.contains(r#"racing.keep_warm_backup: expected true or false, got the string "no""#),
        "{message}"
    );

    let text = Profile::balanced()
        .to_toml_string()
        .replace("costly = \"allow\"", "costly = \"sometimes\"");
    let (_, message) = toml_error(Profile::from_toml_str(&text));
    assert!(
        message.contains("sometimes") && message.contains("forbid"),
        "{message}"
    );
}

#[test]
fn malformed_toml_reports_its_line() {
    let (line, _) = toml_error(Profile::from_toml_str(
        "name = \"x\"\n[weights\nlatency = 1\n",
    ));
    assert_eq!(line, 2);
}

const SET: &str = r#"now_ms = 10000
peer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"

[power]
battery = 0.5

[[routes]]
addr = "/ip4/192.168.1.2/udp/4001/quic-v1"
medium = "wifi"
rtt_ms = [10.0, 12.0]
dial_successes = 2
failures_at_ms = [9000]
sources = [{ source = "mdns", last_seen_ms = 9500, signed = false }]

[[routes]]
addr = "/ip4/198.51.100.1/tcp/4001"
medium = "lte"
sources = [{ source = "rendezvous", last_seen_ms = 8000, signed = true }]
"#;

#[test]
fn route_set_loads_every_field() {
    let set = RouteSet::from_toml_str(SET).unwrap();
    assert_eq!(set.routes.len(), 2);
    assert_eq!(set.power.battery, Some(0.5));
    let wifi = &set.routes[0];
    assert_eq!(wifi.medium, Medium::Wifi);
    assert_eq!(wifi.rtt.samples(), 2);
    assert_eq!((wifi.dials.successes(), wifi.dials.failures()), (2, 1));
    assert!(wifi.rtt.failure_penalty(set.now) > std::time::Duration::ZERO);
    let lte = &set.routes[1];
    assert!(lte.medium.is_cellular());
    assert!(lte.is_vouched());
    assert_eq!(lte.sightings().next().unwrap().source, Source::Rendezvous);
    // Default conditions: cellular is costly, Wi-Fi free, mains power unset.
    assert!(set.links.get(lte.medium).is_costly());
    assert!(!set.links.get(Medium::Wifi).is_costly());
    assert!(!set.power.charging);
    assert_eq!(set.power.lifecycle, Lifecycle::Foreground);
}

#[test]
fn route_set_reads_conditions_power_and_transport_overrides() {
    let text = SET
        .replace(
            "[power]\nbattery = 0.5\n",
            "[power]\nbattery = 0.5\ncharging = true\nlifecycle = \"background\"\n\n[conditions.wifi]\nmetered = true\n\n[conditions.cellular]\nmetered = false\n",
        )
        .replace("medium = \"lte\"", "medium = \"lte\"\ntransport = \"webrtc\"");
    let set = RouteSet::from_toml_str(&text).unwrap();
    assert!(set.power.charging);
    assert_eq!(set.power.lifecycle, Lifecycle::Background);
    assert_eq!(
        set.links.get(Medium::Wifi),
        NetworkConditions {
            metered: true,
            expensive: false,
            constrained: false
        }
    );
    assert!(
        !set.links
            .get(Medium::Cellular(CellularGeneration::G5))
            .is_costly()
    );
    assert_eq!(set.routes[1].transport, TransportKind::WebRtc);
    assert_eq!(set.routes[0].transport, TransportKind::Quic);
}

#[test]
fn route_set_rejects_overlong_lists() {
    let samples = vec!["1.0"; multidriver_scoring::MAX_LIST_ENTRIES + 1].join(", ");
    let text = SET.replace("rtt_ms = [10.0, 12.0]", &format!("rtt_ms = [{samples}]"));
    let (line, message) = toml_error(RouteSet::from_toml_str(&text));
    assert_eq!(line, line_of(&text, "rtt_ms"));
    assert!(
        message.contains("routes[0].rtt_ms") && message.contains("at most 1024"),
        "{message}"
    );
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn route_set_errors_name_line_and_field() {
    let cases: [(&str, &str, &str, &[&str]); 7] = [
        (
            "medium = \"lte\"",
            "medium = \"fibre\"",
            "fibre",
            &["unknown medium", "wifi"],
        ),
        (
            "battery = 0.5",
            "battery = 1.5",
            "battery",
            &["power.battery", "0..=1"],
        ),
        (
            "rtt_ms = [10.0, 12.0]",
            "rtt_ms = [10.0, -3.0]",
            "rtt_ms",
            &["routes[0].rtt_ms", "-3"],
        ),
        (
            "failures_at_ms = [9000]",
            "failures_at_ms = [19000]",
            "failures_at_ms",
            &["after now_ms"],
        ),
        (
            "/ip4/198.51.100.1/tcp/4001",
            "/ip4/198.51.100.1/udp/4001",
            "udp/4001\"",
            &["routes[1].addr", "names no transport"],
        ),
        (
            "dial_successes = 2",
            "dial_sucesses = 2",
            "dial_sucesses",
            &["dial_sucesses"],
        ),
        (
            "/ip4/198.51.100.1/tcp/4001",
            "/ip4/192.168.1.2/udp/4001/quic-v1",
            "medium = \"lte\"",
            &["duplicates routes[0]"],
        ),
    ];
    for (from, to, at, words) in cases {
        let text = SET.replace(from, to);
        let (line, message) = toml_error(RouteSet::from_toml_str(&text));
        if at.starts_with("medium = \"lte\"") {
            // The duplicate is reported at the second route's address.
            assert_eq!(line, line_of(&text, "medium = \"lte\"") - 1, "{message}");
        } else {
            assert_eq!(line, line_of(&text, at), "{to}: {message}");
        }
        for w in words {
            assert!(message.contains(w), "{to}: `{w}` not in {message}");
        }
    }
}

#[test]
fn route_set_rejects_bad_peer_ids_and_addresses() {
    let (line, message) = toml_error(RouteSet::from_toml_str(&SET.replace("12D3KooW", "nope")));
    assert_eq!(line, 2, "{message}");
    let (line, _) = toml_error(RouteSet::from_toml_str(
        &SET.replace("/ip4/192.168.1.2/", "/ipv9/x/"),
    ));
    assert_eq!(line, line_of(SET, "192.168.1.2"));
}

#[test]
fn route_set_rejects_more_than_max_routes() {
    let mut text = String::from(
        "now_ms = 1\npeer = \"12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA\"\n",
    );
    for i in 0..=multidriver_scoring::MAX_ROUTES {
        text.push_str(&format!(
            "[[routes]]\naddr = \"/ip4/10.0.{}.{}/tcp/1\"\nmedium = \"wifi\"\n",
            i / 250,
            i % 250
        ));
    }
    let (_, message) = toml_error(RouteSet::from_toml_str(&text));
    assert!(message.contains("at most 256"), "{message}");
}
