"""The log bridge: nothing is installed until the host asks; then records
reach the host's sink at the level it sets, and a new level holds at
once. (Logcat and os_log are the same bridge with another output layer,
built only for Android and Apple targets.)"""

import threading
import time
import unittest

import multidriver_mobile as md
from helpers import WAIT, Recorder, config, is_

ORDER = [md.LogLevel.ERROR, md.LogLevel.WARN, md.LogLevel.INFO, md.LogLevel.DEBUG, md.LogLevel.TRACE]


class Sink(md.LogSink):
    def __init__(self):
        self.records = []
        self.lock = threading.Lock()

    def log(self, level, target, message):
        with self.lock:
            self.records.append((level, target, message))

    def take(self):
        with self.lock:
            out, self.records = self.records, []
            return out


class LoggingTests(unittest.TestCase):
    def test_records_reach_the_sink_at_the_level_the_host_sets(self):
        with self.assertRaises(md.MobileError.Logging):
            md.set_log_level(md.LogLevel.DEBUG)  # before init_logging
        sink = Sink()
        md.init_logging(md.LogLevel.DEBUG, sink)
        rec = Recorder("logged")
        node = md.Node.start(config(), rec)
        rec.wait_for("listening", lambda e: is_(e, "LISTENING"))
        node.subscribe("multidriver-mobile-logs")
        node.stop()
        records = sink.take()
        self.assertTrue(records, "no record at DEBUG")
        self.assertTrue(
            any(t.startswith("multidriver") for _, t, _ in records),
            f"no record of ours: {records[:5]}",
        )
        self.assertTrue(all(ORDER.index(l) <= ORDER.index(md.LogLevel.DEBUG) for l, _, _ in records))

        md.set_log_level(md.LogLevel.ERROR)
        node = md.Node.start(config(), Recorder("quiet"))
        node.subscribe("multidriver-mobile-logs")
        time.sleep(0.5)
        node.stop()
        self.assertEqual([r for r in sink.take() if r[0] != md.LogLevel.ERROR], [])
        # A second init only changes the level; the sink stays.
        md.init_logging(md.LogLevel.ERROR, None)


if __name__ == "__main__":
    unittest.main()
