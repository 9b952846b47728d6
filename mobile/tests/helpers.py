"""Shared pieces of the mobile bindings' tests: an event recorder, a real
rendezvous point process, and network inputs as a phone's OS reports
them. Every wait is bounded."""

import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time

import multidriver_mobile as md

WAIT = 30.0  # seconds; the longest any single expectation waits

WIFI = 1  # the host's network handles (Android: Network.getNetworkHandle())
CELLULAR = 2


def wifi():
    return md.NetworkInfo(transport=md.NetworkTransport.WIFI(), validated=True)


def lte():
    return md.NetworkInfo(
        transport=md.NetworkTransport.CELLULAR(generation=4), metered=True, validated=True
    )


def describe(event):
    """An event with its fields (the generated classes print only their
    variant's name)."""
    fields = {k: v for k, v in vars(event).items() if not k.startswith("_")}
    if "route" in fields:
        r = fields.pop("route")
        fields["route"] = f"{r.peer[-6:]} {r.addr} {r.medium}"
    for k in ("peer", "data"):
        if k in fields:
            fields[k] = fields[k][-6:]
    return f"{type(event).__name__} {fields}"


def is_(event, variant):
    return isinstance(event, getattr(md.NodeEvent, variant))


class Recorder(md.NodeListener):
    """Keeps every event with the time it arrived; waits for one."""

    def __init__(self, name):
        self.name = name
        self.events = []
        self.times = []
        self.threads = set()
        self._cond = threading.Condition()

    def on_event(self, event):
        with self._cond:
            self.events.append(event)
            self.times.append(time.monotonic())
            self.threads.add(threading.get_ident())
            self._cond.notify_all()

    def snapshot(self):
        with self._cond:
            return list(self.events)

    def wait_for(self, what, pred, timeout=WAIT, after=0):
        """The index and event of the first event at or after `after`
        that satisfies `pred`; fails naming `what` after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(after, len(self.events)):
                    if pred(self.events[i]):
                        return i, self.events[i]
                left = deadline - time.monotonic()
                if left <= 0:
                    shown = "\n  ".join(describe(e) for e in self.events[-40:])
                    raise AssertionError(
                        f"{self.name}: no {what} within {timeout} s; last events:\n  {shown}"
                    )
                self._cond.wait(left)

    def variants(self, variant):
        return [e for e in self.snapshot() if is_(e, variant)]


def binary():
    path = os.environ.get("MULTIDRIVER_BIN")
    if not path or not os.path.exists(path):
        raise RuntimeError(
            "MULTIDRIVER_BIN must name the built `multidriver` binary (mobile/tests/run.sh sets it)"
        )
    return path


class RendezvousPoint:
    """`multidriver rendezvous run` as a real process on loopback."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="md-mobile-rdv-")
        key = os.path.join(self.dir, "key")
        subprocess.run(
            [binary(), "rendezvous", "genkey", "--out", key], check=True, capture_output=True
        )
        self.proc = subprocess.Popen(
            [
                binary(), "rendezvous", "run", "--key", key,
                "--db", os.path.join(self.dir, "db.sqlite"),
                "--listen", "/ip4/127.0.0.1/tcp/0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(l) for l in self.proc.stdout], daemon=True
        ).start()
        peer = listen = None
        seen = []
        deadline = time.monotonic() + WAIT
        while peer is None or listen is None:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic())).strip()
            except queue.Empty:
                self.close()
                raise AssertionError(f"the rendezvous point did not start: {seen}")
            seen.append(line)
            if line.startswith("peer id: "):
                peer = line.split(": ", 1)[1]
            elif line.startswith("listening on /ip4/127.0.0.1/tcp/"):
                listen = line.split("listening on ", 1)[1]
        self.addr = f"{listen}/p2p/{peer}"

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def config(**fields):
    fields.setdefault("listen_addrs", ["/ip4/127.0.0.1/tcp/0"])
    return md.NodeConfig(**fields)


def threads():
    """This process's threads, native ones included."""
    return len(os.listdir("/proc/self/task"))
