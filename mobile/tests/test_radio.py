"""A ProximityRadio written in Python carries a connection: two nodes with
no IP listener find each other by their advertisements and connect, send
and receive over links the Python "ether" carries, as a host's BLE stack
would (sightings, links opened, bytes in order, links closed)."""

import queue
import threading
import time
import unittest

import multidriver_mobile as md
from helpers import WAIT, Recorder, config, is_

NS = "multidriver-mobile-radio"


class Ether:
    """Radios in range of each other. Deliveries run on one thread in
    order, as a BLE stack's callbacks would, never inside the node's call
    into the radio."""

    def __init__(self):
        self.radios = {}
        self.pairs = {}  # (address, link) -> (other radio, other link)
        self.lock = threading.Lock()
        self.jobs = queue.Queue(maxsize=10_000)
        self.running = True
        self.opened = 0
        self.refused = 0
        self.worker = threading.Thread(target=self._deliver, daemon=True)
        self.worker.start()
        self.ticker = threading.Thread(target=self._advertisements, daemon=True)
        self.ticker.start()

    def close(self):
        self.running = False
        self.jobs.put(None)
        self.worker.join(5)
        self.ticker.join(5)

    def post(self, job):
        self.jobs.put(job, timeout=5)

    def _deliver(self):
        while True:
            job = self.jobs.get()
            if job is None:
                return
            job()

    def _advertisements(self):
        # Every 100 ms each scanning radio hears each advertiser.
        while self.running:
            with self.lock:
                radios = list(self.radios.values())
            for scanner in radios:
                if not scanner.scanning or scanner.node is None:
                    continue
                for other in radios:
                    if other is scanner or other.token is None:
                        continue
                    try:
                        scanner.node.radio_sighting(other.token, other.address, -60)
                    except md.MobileError.Stopped:
                        pass
            time.sleep(0.1)


class Radio(md.ProximityRadio):
    def __init__(self, ether, address):
        self.ether = ether
        self.address = address
        self.node = None
        self.token = None
        self.scanning = False
        self.next_link = address * 1_000_000
        self.sent_bytes = 0
        ether.radios[address] = self

    def new_link(self):
        with self.ether.lock:
            self.next_link += 1
            return self.next_link

    def local_address(self):
        return self.address

    def advertise(self, token):
        if len(token) != 16:
            raise md.RadioError.Failed(f"a token is 16 bytes, got {len(token)}")
        self.token = bytes(token)

    def stop_advertising(self):
        self.token = None

    def start_scan(self):
        self.scanning = True

    def stop_scan(self):
        self.scanning = False

    def open_link(self, address):
        target = self.ether.radios.get(address)
        if target is None or target.node is None:
            raise md.RadioError.Failed(f"no device {address} in range")
        mine, theirs = self.new_link(), target.new_link()
        with self.ether.lock:
            self.ether.pairs[(self.address, mine)] = (target, theirs)
            self.ether.pairs[(target.address, theirs)] = (self, mine)
            self.ether.opened += 1

        def accept():
            try:
                target.node.radio_link_opened(theirs, self.address)
            except md.MobileError.Link:
                self.ether.refused += 1
                self.node.radio_link_closed(mine)

        self.ether.post(accept)
        return mine

    def send(self, link, data):
        with self.ether.lock:
            pair = self.ether.pairs.get((self.address, link))
        if pair is None:
            raise md.RadioError.Failed(f"link {link} is closed")
        target, theirs = pair
        data = bytes(data)
        self.sent_bytes += len(data)

        def deliver():
            deadline = time.monotonic() + 5
            while True:
                try:
                    target.node.radio_link_data(theirs, data)
                    return
                except md.MobileError.Link as e:
                    # A full buffer: the stack holds the data and retries
                    # (L2CAP credits). An unknown link was closed: drop it.
                    if "no such link" in e.reason or time.monotonic() > deadline:
                        return
                    time.sleep(0.005)
                except md.MobileError.Stopped:
                    return

        self.ether.post(deliver)

    def close_link(self, link):
        with self.ether.lock:
            pair = self.ether.pairs.pop((self.address, link), None)
            if pair is not None:
                self.ether.pairs.pop((pair[0].address, pair[1]), None)
        if pair is not None:
            target, theirs = pair
            self.ether.post(lambda: target.node.radio_link_closed(theirs))


class RadioTests(unittest.TestCase):
    def test_a_python_radio_carries_discovery_and_a_connection(self):
        ether = Ether()
        self.addCleanup(ether.close)
        ra, rb = Recorder("a"), Recorder("b")
        radio_a, radio_b = Radio(ether, 1), Radio(ether, 2)
        # No IP listener: the radio's links are the only way in.
        a = md.Node.start(config(listen_addrs=[]), ra, radio_a)
        self.addCleanup(a.stop)
        radio_a.node = a
        b = md.Node.start(config(listen_addrs=[]), rb, radio_b)
        self.addCleanup(b.stop)
        radio_b.node = b
        ra.wait_for("a on its radio", lambda e: is_(e, "LISTENING") and e.addr == "/memory/1")
        self.assertIn("/memory/1", a.listen_addrs())
        a.advertise(NS)
        b.subscribe(NS)
        a_id, b_id = a.peer_id(), b.peer_id()
        _, found = rb.wait_for("a found", lambda e: is_(e, "PEER_DISCOVERED") and e.peer == a_id)
        self.assertEqual(found.source, "proximity")
        b.connect(a_id)
        _, selected = rb.wait_for(
            "route to a", lambda e: is_(e, "ROUTE_SELECTED") and e.route.peer == a_id
        )
        self.assertEqual(selected.route.medium, "bluetooth")
        self.assertEqual(selected.route.addr, "/memory/1")
        self.assertEqual(b.route(a_id).addr, "/memory/1")

        payload = bytes(range(256)) * 64  # 16 KiB: several link writes
        mid = b.send(a_id, payload)
        ra.wait_for(
            "the message over the radio",
            lambda e: is_(e, "MESSAGE_RECEIVED") and e.peer == b_id and e.data == payload,
        )
        rb.wait_for("its delivery", lambda e: is_(e, "MESSAGE_DELIVERED") and e.id == mid)
        self.assertGreater(radio_b.sent_bytes, len(payload))
        self.assertGreaterEqual(ether.opened, 2, "a resolution link, then the connection")
        self.assertGreaterEqual(b.radio_links(), 1)

        # The host's stack drops the link while a is still in range: the
        # engine dials it again over the radio, and messages flow again.
        mark = len(rb.snapshot())
        with ether.lock:
            links = [k for k in ether.pairs if k[0] == 2]
        for _, link in links:
            b.radio_link_closed(link)
        _, again = rb.wait_for(
            "a new link", lambda e: is_(e, "ROUTE_SWITCHED") and e.route.peer == a_id, after=mark
        )
        self.assertEqual(again.reason, "connection_closed")
        self.assertEqual(again.route.medium, "bluetooth")
        mid = b.send(a_id, b"still here")
        rb.wait_for("delivery again", lambda e: is_(e, "MESSAGE_DELIVERED") and e.id == mid)

    def test_radio_inputs_that_are_wrong_are_refused(self):
        ether = Ether()
        self.addCleanup(ether.close)
        radio = Radio(ether, 7)
        node = md.Node.start(config(listen_addrs=[]), Recorder("n"), radio)
        self.addCleanup(node.stop)
        radio.node = node
        with self.assertRaises(md.MobileError.InvalidInput) as bad:
            node.radio_sighting(b"short", 9, -50)
        self.assertEqual(bad.exception.field, "token")
        with self.assertRaises(md.MobileError.Link):
            node.radio_link_data(424242, b"x")


if __name__ == "__main__":
    unittest.main()
