"""radiation_sensor: a GQ GMC-320 Geiger counter on a serial port, published as
`radiation/reading` (ilrs_interfaces/RadiationReading) and on /diagnostics.

Two ways of reading the counter (`mode`, read-only):

* `heartbeat` (default): the counter sends each second's counts (`<HEARTBEAT1>>`); a reading
  is published at most every `period` s, over the seconds received in the last `window` s:
  counts_per_minute as recorded, dose_rate = CPM x `usv_per_cpm` (dead-time corrected when
  `dead_time` > 0), dose_rate_stddev from Poisson statistics of the counts in the window.
* `cpm`: `<GETCPM>>` polled every `period` s: the counter's own count of the last minute
  (its stddev is that of a 60 s count, whatever `window` says).

Stamp: the node's clock (sim time under `use_sim_time`) at the end of the counting interval
(the arrival of the newest second, less its age). A lost port, a unit that stops answering or
garbage on the line are logged (throttled) and reported on /diagnostics (ERROR while no
reading can be made, WARN while replies are being dropped), and the port is reopened with
backoff; the node does not exit. A port another process holds is named on /diagnostics
(ERROR, with the holder) and tried again with backoff: two hosts must not share a counter.

Live parameters: `usv_per_cpm`, `dead_time`, `window`, `period`, `frame_id`.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import asdict

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from ilrs_interfaces.msg import RadiationReading
from ilrs_robots.core.dosimetry import CountWindow, DoseEstimate, estimate
from ilrs_robots.drivers.camera import clock_stamp
from ilrs_robots.drivers.gmc import GmcClient, LinkLost, NoReply, PortBusy
from ilrs_robots.drivers.roboclaw import FaultLog
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.params import declare, run_node
from ilrs_robots.protocols import gmc

MODES = ("heartbeat", "cpm")
RECENT_S = 10.0  # dropped replies within this long make the status WARN


class RadiationSensor(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("radiation_sensor")
        d = self
        port = declare(d, "port", "/dev/ttyUSB0", "Serial port of the GMC counter", bool,
                       "a device path", read_only=True)
        baud = declare(d, "baud", gmc.DEFAULT_BAUD, "Baud rate of the counter (factory 115200)",
                       lambda b: b in gmc.BAUDS, f"one of {list(gmc.BAUDS)}", read_only=True)
        self.mode = declare(d, "mode", "heartbeat", "heartbeat: per-second counts summed over "
                            "`window`; cpm: GETCPM polled (the counter's 60 s count)",
                            lambda m: m in MODES, f"one of {list(MODES)}", read_only=True)
        self.usv_per_cpm = declare(d, "usv_per_cpm", 0.0065, "Tube calibration, uSv/h per "
                                   "count per minute (M4011 of the GMC-320: 0.0065)",
                                   range=(1e-6, 1.0))
        self.dead_time = declare(d, "dead_time", 0.0, "Non-paralysable dead time of the tube to "
                                 "correct for (s); 0: none, as the counter displays",
                                 range=(0.0, 1e-3))
        self.window = declare(d, "window", 10.0, "Counting window of a reading (s, heartbeat "
                              "mode)", range=(1.0, 600.0))
        self.period = declare(d, "period", 1.0, "Seconds between readings at most (heartbeat) "
                              "or between GETCPM polls (cpm)", range=(0.2, 3600.0))
        self.frame_id = declare(d, "frame_id", "radiation_sensor_link", "Frame of the readings",
                                bool, "non-empty")
        timeout = declare(d, "request_timeout", 0.25, "Base wait for a reply (s)",
                          range=(0.01, 5.0), read_only=True)
        silence = declare(d, "heartbeat_timeout", 3.0, "No heartbeat for this long: the counter "
                          "is taken as not answering and the port reopened (s)",
                          range=(1.5, 60.0), read_only=True)
        self.pub = self.create_publisher(RadiationReading, "radiation/reading", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.client = GmcClient(port, baud, timeout, heartbeat_timeout=silence)
        self.faults = FaultLog(self._log_fault, period=5.0)
        self.counts = CountWindow(self.window)
        self._lock = threading.Lock()  # guards counts, latest, state
        self.latest: DoseEstimate | None = None
        self.published = 0
        self.unpublished = 0  # readings made before sim time started
        self._last_publish = 0.0
        self._last_data = 0.0
        self._recent: list[tuple[float, int]] = []  # (time, dropped-reply total)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gmc", daemon=True)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # diagnostics go on if sim time stops
        self.create_timer(1.0, self._diagnostics, clock=steady)
        self._thread.start()
        self.get_logger().info(f"GMC counter on {port} at {baud} baud, {self.mode} mode")

    def on_parameters_set(self, changed: dict) -> None:
        """Apply accepted live changes (params.py validated them)."""
        with self._lock:
            if "usv_per_cpm" in changed:
                self.usv_per_cpm = float(changed["usv_per_cpm"])
            if "dead_time" in changed:
                self.dead_time = float(changed["dead_time"])
            if "window" in changed:
                self.window = self.counts.window = float(changed["window"])
            if "period" in changed:
                self.period = float(changed["period"])
            if "frame_id" in changed:
                self.frame_id = str(changed["frame_id"])

    def _log_fault(self, level: str, message: str) -> None:
        logger = self.get_logger()  # rclpy ties a severity to its call site: one per level
        if level == "info":
            logger.info(message)
        elif level == "warning":
            logger.warning(message)
        else:
            logger.error(message)

    # -- the counter's thread ----------------------------------------------------------------
    def _run(self) -> None:
        client = self.client
        while not self._stop.is_set():
            try:
                if not client.is_open:
                    if not client.ensure_open():
                        if client.last_error:
                            self.faults.report("error", "link", client.last_error)
                        self._stop.wait(0.1)
                        continue
                    v = client.version
                    self.faults.clear("link")
                    self.faults.clear("silent")
                    self.get_logger().info(f"connected to {v.model} firmware {v.firmware} on "
                                           f"{client.port} ({client.width}-byte counts)")
                    if self.mode == "heartbeat":
                        client.start_heartbeat()
                if self.mode == "heartbeat":
                    self._read_heartbeats()
                else:
                    self._poll_cpm()
                self._note_drops()
            except PortBusy as exc:
                self.faults.report("error", "link", f"{exc}: refusing to share it")
                self._stop.wait(0.1)
            except LinkLost as exc:
                self.faults.report("error", "link", str(exc))
            except NoReply as exc:
                # a hung counter: reopen, which identifies it again before trusting it
                self.faults.report("error", "silent", f"{exc}; reopening the port")
                client.close()
            except Exception as exc:  # noqa: BLE001 - the thread must survive anything
                self.faults.report("error", "internal", f"reading the counter failed: {exc!r}")
                client.close()
                self._stop.wait(0.5)
        client.close()

    def _read_heartbeats(self) -> None:
        seconds = self.client.read_heartbeats(0.25)
        now = time.monotonic()
        with self._lock:
            for s in seconds:
                self.counts.add(s.received, s.counts)
                self._last_data = s.received
            newest = self.counts.newest
            due = newest is not None and newest > self._last_publish and \
                now - self._last_publish >= self.period - 0.05
            if not due:
                return
            e = self.counts.estimate(now, self.usv_per_cpm, self.dead_time)
            self._last_publish = now
        if e is not None:
            self._publish(e, newest)

    def _poll_cpm(self) -> None:
        cpm = self.client.read_cpm()
        now = time.monotonic()
        with self._lock:
            e = estimate(cpm, 60.0, self.usv_per_cpm, self.dead_time)
            self._last_data = now
        self._publish(e, now)
        self._stop.wait(self.period)

    def _note_drops(self) -> None:
        c = self.client.counters
        dropped = c.timeouts + c.bad_replies + c.bad_bursts
        now = time.monotonic()
        with self._lock:
            if self._recent and dropped > self._recent[-1][1]:
                self.faults.report("warning", "garbage", f"dropped replies from the counter "
                                   f"({self.client.last_error}); {dropped} so far")
            if not self._recent or dropped != self._recent[-1][1]:
                self._recent.append((now, dropped))
            self._recent = [r for r in self._recent if now - r[0] < RECENT_S] or \
                self._recent[-1:]

    def _publish(self, e: DoseEstimate, end: float) -> None:
        with self._lock:
            self.latest = e
        now = self.get_clock().now().nanoseconds
        if now == 0:
            self.unpublished += 1
            return
        msg = RadiationReading(counts_per_minute=float(e.cpm), dose_rate=float(e.dose_rate),
                               dose_rate_stddev=float(e.dose_rate_stddev))
        msg.header.stamp = messages.stamp_of(max(0.0, clock_stamp(now * 1e-9, end)))
        msg.header.frame_id = self.frame_id
        try:
            self.pub.publish(msg)
            self.published += 1
        except Exception:  # noqa: BLE001 - the context may end under the counter's thread
            if self.context.ok():
                raise

    # -- diagnostics -------------------------------------------------------------------------
    def _status(self) -> tuple[str, str]:
        client = self.client
        now = time.monotonic()
        if not client.is_open:
            return "ERROR", client.last_error or "connecting"
        v = client.version
        name = f"{v.model} {v.firmware}" if v else "GMC"
        with self._lock:
            stale = now - self._last_data if self._last_data else None
            drops = len(self._recent) > 1 and now - self._recent[-1][0] < RECENT_S
            latest = self.latest
        if stale is None:
            return "WARN", f"{name} connected, no reading yet"
        if stale > client.heartbeat_timeout + self.period:
            return "ERROR", f"{name}: no data for {stale:.0f} s ({client.last_error})"
        if latest is not None and latest.saturated:
            return "WARN", f"{name}: tube saturated, dose rate is a lower bound"
        if drops:
            return "WARN", f"{name}: replies dropped ({client.last_error})"
        return "OK", f"{name}: reading"

    def _diagnostics(self) -> None:
        level, message = self._status()
        latest = self.latest
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        ns = self.get_namespace().strip("/") or "robot"
        values: list[tuple[str, object]] = [("mode", self.mode), ("published", self.published)]
        if latest is not None:
            values += [("cpm", f"{latest.cpm:.1f}"), ("dose_rate", f"{latest.dose_rate:.4g}"),
                       ("dose_rate_stddev", f"{latest.dose_rate_stddev:.3g}")]
        values += list(asdict(self.client.counters).items())
        values.append(("last_error", self.client.last_error))
        array.status.append(messages.diagnostic(
            f"{self.get_name()}: gmc", f"{ns}/gmc@{self.client.port}", level, message, values))
        try:
            self.diag_pub.publish(array)
        except Exception:  # noqa: BLE001 - at shutdown
            if self.context.ok():
                raise

    def close(self) -> None:
        """Stop the counter's thread (the heartbeat is switched off, the port closed)."""
        self._stop.set()
        self._thread.join(timeout=5.0)


def main(args: list[str] | None = None) -> None:
    """Console script `radiation_sensor`."""
    code = run_node(RadiationSensor, args)
    raise SystemExit(code)


if __name__ == "__main__":
    sys.exit(main())
