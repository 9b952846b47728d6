"""The Node's whole surface through the generated Python bindings: two
nodes on loopback find each other through a real rendezvous point, the
host's network inputs move routes, lifecycle and battery inputs change the
profile, route memory survives a restart, events arrive in order, and stop
leaves nothing running."""

import asyncio
import os
import time
import unittest

import multidriver_mobile as md
from helpers import (
    CELLULAR, WAIT, WIFI, Recorder, RendezvousPoint, config, is_, lte, threads, wifi,
)

NS = "multidriver-mobile-test"
# Messages the delivery test sends: enough that requests on separate
# streams would overtake one another without the per-peer order.
SENT = 20
REPO = os.path.join(os.path.dirname(__file__), "..", "..")


class Pair:
    """Node `a` advertises, node `b` subscribes, through one point; `b`
    connects to `a` when it finds it."""

    def __init__(self, point, b_networks):
        self.ra, self.rb = Recorder("a"), Recorder("b")
        self.a = md.Node.start(config(rendezvous_points=[point.addr]), self.ra)
        self.b = md.Node.start(config(rendezvous_points=[point.addr]), self.rb)
        self.a.network_available(WIFI, wifi())
        for network, info in b_networks:
            self.b.network_available(network, info)
        self.ra.wait_for("a listening", lambda e: is_(e, "LISTENING"))
        self.rb.wait_for("b listening", lambda e: is_(e, "LISTENING"))
        self.a.advertise(NS)
        self.b.subscribe(NS)
        a_id = self.a.peer_id()
        # Until a's registration has reached the point, a lookup finds
        # nobody: look again every second, as a pull-to-refresh would.
        deadline = time.monotonic() + WAIT
        while not any(e.peer == a_id for e in self.rb.variants("PEER_DISCOVERED")):
            if time.monotonic() > deadline:
                raise AssertionError(f"b never found a: {self.rb.snapshot()}")
            time.sleep(1.0)
            self.b.discover(NS)
        self.b.connect(a_id)
        _, selected = self.rb.wait_for(
            "route to a", lambda e: is_(e, "ROUTE_SELECTED") and e.route.peer == a_id
        )
        self.route = selected.route

    def stop(self):
        self.a.stop()
        self.b.stop()


class NodeTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.point = RendezvousPoint()

    @classmethod
    def tearDownClass(cls):
        cls.point.close()

    def pair(self, b_networks):
        pair = Pair(self.point, b_networks)
        self.addCleanup(pair.stop)
        return pair

    def test_found_through_the_rendezvous_point_and_messages_delivered_in_order(self):
        p = self.pair([(WIFI, wifi())])
        a_id, b_id = p.a.peer_id(), p.b.peer_id()
        self.assertEqual(p.route.medium, "wifi")
        self.assertTrue(p.route.dialled)
        self.assertGreater(p.route.cost_ms, 0.0)
        self.assertTrue(p.route.explanation.startswith("cost "), p.route.explanation)
        self.assertTrue(p.route.addr.startswith("/ip4/127.0.0.1/tcp/"), p.route.addr)
        self.assertEqual(p.b.route(a_id), p.route)
        self.assertIn(p.route, p.b.routes())

        ids = [p.b.send(a_id, f"hello {i}".encode()) for i in range(SENT)]
        self.assertEqual(len(set(ids)), SENT)
        for i in range(SENT):
            p.ra.wait_for(
                f"message {i}",
                lambda e, i=i: is_(e, "MESSAGE_RECEIVED")
                and e.peer == b_id
                and e.data == f"hello {i}".encode(),
            )
        for id_ in ids:
            p.rb.wait_for(
                f"delivery of {id_}", lambda e, id_=id_: is_(e, "MESSAGE_DELIVERED") and e.id == id_
            )
        # Messages arrive in the order they were sent.
        got = [e.data for e in p.ra.variants("MESSAGE_RECEIVED") if e.peer == b_id]
        self.assertEqual(got, [f"hello {i}".encode() for i in range(SENT)])
        # b's events in the order things happened.
        i_listen, _ = p.rb.wait_for("listening", lambda e: is_(e, "LISTENING"))
        i_found, found = p.rb.wait_for(
            "discovery", lambda e: is_(e, "PEER_DISCOVERED") and e.peer == a_id
        )
        i_route, _ = p.rb.wait_for(
            "route", lambda e: is_(e, "ROUTE_SELECTED") and e.route.peer == a_id
        )
        i_sent, _ = p.rb.wait_for(
            "delivery", lambda e: is_(e, "MESSAGE_DELIVERED") and e.id == ids[0]
        )
        self.assertEqual(found.source, "rendezvous")
        self.assertLess(i_listen, i_found)
        self.assertLess(i_found, i_route)
        self.assertLess(i_route, i_sent)
        # One event thread delivers them all, and it is not the test's.
        self.assertEqual(len(p.rb.threads), 1)

    def test_a_losing_input_moves_the_route_to_cellular_before_the_loss(self):
        p = self.pair([(WIFI, wifi()), (CELLULAR, lte())])
        a_id = p.a.peer_id()
        self.assertEqual(p.route.medium, "wifi")
        mark = len(p.rb.snapshot())
        p.b.network_losing(WIFI, None)
        i, switched = p.rb.wait_for(
            "switch", lambda e: is_(e, "ROUTE_SWITCHED") and e.route.peer == a_id, after=mark
        )
        self.assertEqual(switched.reason, "interface_losing")
        self.assertEqual(switched.route.medium, "cellular-4g")
        self.assertEqual(switched.__class__, md.NodeEvent.ROUTE_SWITCHED)
        self.assertEqual(p.b.route(a_id).medium, "cellular-4g")
        # No loss in between: make-before-break.
        lost = [e for e in p.rb.snapshot()[mark:i] if is_(e, "PEER_LOST")]
        self.assertEqual(lost, [])
        mid = p.b.send(a_id, b"over lte")
        p.rb.wait_for("delivery over lte", lambda e: is_(e, "MESSAGE_DELIVERED") and e.id == mid)

    def test_a_lost_input_moves_the_route_at_once(self):
        p = self.pair([(WIFI, wifi()), (CELLULAR, lte())])
        a_id = p.a.peer_id()
        mark = len(p.rb.snapshot())
        p.b.network_lost(WIFI)
        _, switched = p.rb.wait_for(
            "switch", lambda e: is_(e, "ROUTE_SWITCHED") and e.route.peer == a_id, after=mark
        )
        self.assertEqual(switched.reason, "interface_lost")
        self.assertEqual(switched.route.medium, "cellular-4g")

    def test_a_losing_network_whose_time_to_live_passes_is_lost(self):
        # Wi-Fi only: nowhere to move, so the peer stays until the loss.
        p = self.pair([(WIFI, wifi())])
        a_id = p.a.peer_id()
        mark = len(p.rb.snapshot())
        p.b.network_losing(WIFI, None)
        time.sleep(1.5)
        self.assertEqual(
            [e for e in p.rb.snapshot()[mark:] if is_(e, "PEER_LOST")], [],
            "without a time to live the warned network stays until it is lost",
        )
        mark = len(p.rb.snapshot())
        sent = time.monotonic()
        p.b.network_losing(WIFI, 500)
        i, _ = p.rb.wait_for(
            "loss after the TTL", lambda e: is_(e, "PEER_LOST") and e.peer == a_id, after=mark
        )
        self.assertGreaterEqual(p.rb.times[i] - sent, 0.45)

    def test_route_memory_dials_a_known_contact_after_a_restart_without_discovery(self):
        p = self.pair([(WIFI, wifi())])
        a_id, b_id = p.a.peer_id(), p.b.peer_id()
        memory = asyncio.run(p.b.export_memory())
        self.assertGreater(len(memory), 0)
        identity = p.b.identity()
        p.b.stop()
        rb2 = Recorder("b again")
        # No rendezvous point, no mDNS: only the memory knows a.
        b2 = md.Node.start(config(identity=identity, route_memory=memory), rb2)
        self.addCleanup(b2.stop)
        self.assertEqual(b2.peer_id(), b_id)
        _, imported = rb2.wait_for("import", lambda e: is_(e, "MEMORY_IMPORTED"))
        self.assertGreaterEqual(imported.peers, 1)
        self.assertGreaterEqual(imported.routes + imported.waiting, 1)
        b2.network_available(WIFI, wifi())
        b2.connect(a_id)
        _, selected = rb2.wait_for(
            "route to a", lambda e: is_(e, "ROUTE_SELECTED") and e.route.peer == a_id
        )
        self.assertEqual(selected.route.medium, "wifi")
        self.assertEqual(rb2.variants("PEER_DISCOVERED"), [])
        with self.assertRaises(md.MobileError.InvalidInput) as bad:
            b2.import_memory(b"not a memory")
        self.assertEqual(bad.exception.field, "memory")

    def test_lifecycle_and_battery_inputs_change_the_profile(self):
        rec = Recorder("phone")
        node = md.Node.start(config(listen_addrs=[]), rec)
        self.addCleanup(node.stop)
        self.assertEqual(node.profile(), "balanced")

        def battery(level, power_save=False):
            node.set_battery(md.BatteryInfo(level=level, charging=False, power_save=power_save))

        battery(0.8)  # on battery in the foreground: still balanced
        node.set_lifecycle(md.AppLifecycle.BACKGROUND)
        node.set_lifecycle(md.AppLifecycle.FOREGROUND)
        battery(0.9, power_save=True)  # power-saving mode at any level
        battery(0.9)
        battery(0.1)  # low battery
        battery(0.9)
        node.set_lifecycle(md.AppLifecycle.SUSPENDED)
        expected = [
            "background", "balanced", "battery-saver", "balanced",
            "battery-saver", "balanced", "background",
        ]
        rec.wait_for(
            "every profile change",
            lambda e: len(rec.variants("PROFILE_CHANGED")) >= len(expected),
        )
        time.sleep(0.3)
        self.assertEqual([e.name for e in rec.variants("PROFILE_CHANGED")], expected)
        self.assertEqual(node.profile(), "background")
        with self.assertRaises(md.MobileError.InvalidInput) as bad:
            battery(1.5)
        self.assertEqual(bad.exception.field, "level")

    def test_profiles_by_name_or_toml_and_bad_inputs_named(self):
        with open(os.path.join(REPO, "profiles", "performance.toml")) as f:
            text = f.read()
        node = md.Node.start(config(listen_addrs=[], profile=text), Recorder("toml"))
        self.addCleanup(node.stop)
        self.assertEqual(node.profile(), "performance")
        cases = [
            (dict(profile="fastest"), "profile"),
            (dict(profile="name = 3\n"), "profile"),
            (dict(listen_addrs=["/ip4/1.2.3.4/tcpp/1"]), "listen_addrs"),
            (dict(rendezvous_points=["/ip4/127.0.0.1/tcp/4001"]), "rendezvous_points"),
            (dict(identity=b"\x00\x01"), "identity"),
            (dict(route_memory=b"MDRM"), "route_memory"),
            (dict(max_pending_events=0), "max_pending_events"),
        ]
        for fields, field in cases:
            with self.subTest(field=field):
                with self.assertRaises(md.MobileError.InvalidInput) as bad:
                    md.Node.start(config(**fields), Recorder("bad"))
                self.assertEqual(bad.exception.field, field)
        for call, arg, field in [
            (node.connect, "not-a-peer", "peer"),
            (node.advertise, "", "namespace"),
            (node.subscribe, "x" * 10_000, "namespace"),
        ]:
            with self.subTest(field=field, arg=arg[:10]):
                with self.assertRaises(md.MobileError.InvalidInput) as bad:
                    call(arg)
                self.assertEqual(bad.exception.field, field)
                self.assertLess(len(str(bad.exception)), 400)
        with self.assertRaises(md.MobileError.InvalidInput) as bad:
            node.send(node.peer_id(), bytes(64 * 1024 + 1))
        self.assertEqual(bad.exception.field, "data")

    def test_stop_ends_every_thread_and_later_calls_fail(self):
        before = threads()
        rec = Recorder("short-lived")
        node = md.Node.start(config(), rec)
        rec.wait_for("listening", lambda e: is_(e, "LISTENING"))
        self.assertGreaterEqual(threads(), before + 3, "two runtime workers and the event thread")
        node.stop()
        deadline = time.monotonic() + 5
        while threads() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(threads(), before, "stop left threads behind")
        count = len(rec.snapshot())
        with self.assertRaises(md.MobileError.Stopped):
            node.advertise(NS)
        with self.assertRaises(md.MobileError.Stopped):
            node.network_lost(WIFI)
        node.stop()  # a second stop does nothing
        time.sleep(0.3)
        self.assertEqual(len(rec.snapshot()), count, "no event after stop returned")


if __name__ == "__main__":
    unittest.main()
