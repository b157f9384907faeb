"""Firmware emulator of a GQ GMC-320 Geiger counter (GQ-RFC1201), served on a pty.

Counts: every ``interval`` wall seconds (1 s, as the firmware; shorter runs the counter
faster than real time, for tests) the counter records the counts of one second of exposure,
drawn by :class:`~ilrs_robots.sim.radiation.CountGenerator` (Poisson, non-paralysable dead
time, seeded) at the true rate dose / ``usv_per_cpm``. The dose rate (uSv/h) comes from, in
this order of precedence:

* ``field`` and ``position``: the simulated radiation field at the sensor's current world
  position (``position()`` returns (x, y, z); this is how the simulator embeds it:
  :meth:`GmcCounter.from_world`);
* ``dose``: a number, or a callable of the seconds since start (a scripted dose).

What is modelled: ``<GETVER>>`` (14 bytes, ``GMC-320Re 4.26`` by default), ``<GETCPM>>`` (the
sum of the last 60 one-second counts; the ring is filled at start as if the counter had been
on for a minute), ``<GETCPS>>``, ``<HEARTBEAT1>>`` / ``<HEARTBEAT0>>`` (the second's counts,
sent at each tick while on), ``<GETVOLT>>`` (one byte, volts x 10), ``<GETSERIAL>>``. The reply
width of counts follows the firmware (2 bytes up to 4.xx, 4 bytes from GMC-320 firmware 5.xx,
see :func:`ilrs_robots.protocols.gmc.cpm_width`); 2-byte heartbeats carry 14 bits (saturating
at 16383 counts per second) and, with ``reserved_bits``, bits 15..14 set as some units do.
Replies are paced at ``baud`` (10 bits per byte). Unknown commands get no reply.

Faults: :meth:`babble` (random bytes now), :meth:`noise_next` (random bytes before the next
replies, heartbeats included), :meth:`short_next` (the next replies lose their last byte),
:meth:`silence` (stop answering and stop the heartbeat, as a hung unit), :meth:`vanish` /
:meth:`reappear` (the USB device unplugged: the link is unlinked; on return the heartbeat is
off, as after a power cycle). Standalone, ``--garbage-probability`` and
``--short-probability`` inject them at random.

Run standalone::

    gmc_emulator --link /tmp/x/gmc --dose 0.5
    gmc_emulator --link /tmp/x/gmc --dose-script 0:0.1,30:5,60:0.1 --loop
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ilrs_robots.protocols import gmc
from ilrs_robots.sim.devices.pty_device import PtyDevice, serve_until_signalled
from ilrs_robots.sim.radiation import (
    DEAD_TIME_S,
    M4011_USV_PER_CPM,
    CountGenerator,
    RadiationField,
)

if TYPE_CHECKING:
    from ilrs_robots.core.terrain import Heightmap
    from ilrs_robots.sim.world import World

Position = Callable[[], Sequence[float]]
DoseScript = Callable[[float], float]

_log = logging.getLogger(__name__)

DEFAULT_MODEL = "GMC-320"
DEFAULT_FIRMWARE = "4.26"
DEFAULT_SERIAL = bytes.fromhex("F4880B54248900")


class GmcCounter(PtyDevice):
    """An emulated GMC-320 on a pty at ``link`` (see the module docstring).

    Counters: ``commands`` (served), ``ignored`` (while silent), ``unknown``,
    ``heartbeats_sent``, ``replies_shortened``, ``noise_bytes``, ``ticks``, ``tick_failures``
    (the dose source raised: that second is not counted, no heartbeat is sent).
    """

    def __init__(self, link: str | os.PathLike[str], *, dose: float | DoseScript = 0.1,
                 field: RadiationField | None = None, position: Position | None = None,
                 usv_per_cpm: float = M4011_USV_PER_CPM, dead_time: float = DEAD_TIME_S,
                 seed: int | None = None, model: str = DEFAULT_MODEL,
                 firmware: str = DEFAULT_FIRMWARE, volts: float = 4.1,
                 baud: int | None = gmc.DEFAULT_BAUD, interval: float = 1.0,
                 reserved_bits: int = 0) -> None:
        if usv_per_cpm <= 0:
            raise ValueError(f"usv_per_cpm must be positive, got {usv_per_cpm}")
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if (field is None) != (position is None):
            raise ValueError("field and position go together")
        super().__init__(link, baud)
        self.version_reply = gmc.encode_version(model, firmware)
        self.width = gmc.cpm_width(gmc.decode_version(self.version_reply))
        self.dose = dose
        self.field = field
        self.position = position
        self.usv_per_cpm = usv_per_cpm
        self.volts = volts
        self.interval = interval
        self.reserved_bits = reserved_bits
        self.serial_number = DEFAULT_SERIAL
        self.lock = threading.RLock()
        self.generator = CountGenerator(seed, dead_time)
        self._rng = random.Random(seed)
        self._parser = gmc.CommandParser()
        self._ring: deque[int] = deque(maxlen=60)
        self._heartbeat = False
        self._silent = False
        self._noise, self._noise_bytes = 0, 0
        self._short = 0
        self._garbage_p = 0.0
        self._short_p = 0.0
        self._t0 = time.monotonic()
        self._ticker: threading.Thread | None = None
        self._stop_ticks = threading.Event()
        self.last_dose = 0.0  # uSv/h behind the latest tick
        self.history: deque[tuple[float, float, int]] = deque(maxlen=3600)  # (t, dose, counts)
        self.commands = 0
        self.ignored = 0
        self.unknown = 0
        self.heartbeats_sent = 0
        self.replies_shortened = 0
        self.noise_bytes = 0
        self.ticks = 0
        self.tick_failures = 0

    @classmethod
    def from_world(cls, link: str | os.PathLike[str], world: World, position: Position,
                   heightmap: Heightmap | None = None, *, background: float | None = None,
                   **kw) -> GmcCounter:
        """A counter in ``world``'s radiation field; ``position()`` gives the sensor's world
        (x, y, z) (heights as the heightmap's; without one, above the pads)."""
        extra = {} if background is None else {"background": background}
        field = RadiationField.from_world(world, heightmap, **extra)
        return cls(link, field=field, position=position, **kw)

    # -- observables -------------------------------------------------------------------------
    def dose_rate(self) -> float:
        """The dose rate (uSv/h) the counter is in now."""
        if self.field is not None and self.position is not None:
            return self.field.dose_rate(self.position())
        if callable(self.dose):
            return float(self.dose(time.monotonic() - self._t0))
        return float(self.dose)

    def expected_cpm(self) -> float:
        """True count rate (per minute, before dead time) at the current dose rate."""
        return max(0.0, self.dose_rate()) / self.usv_per_cpm

    @property
    def heartbeat(self) -> bool:
        """True while the heartbeat is on."""
        return self._heartbeat

    def cpm(self) -> int:
        """What GETCPM answers now: the counts of the last 60 s."""
        with self.lock:
            return sum(self._ring)

    def cps(self) -> int:
        """What GETCPS answers now: the counts of the last second."""
        with self.lock:
            return self._ring[-1] if self._ring else 0

    # -- fault injection ---------------------------------------------------------------------
    def babble(self, nbytes: int) -> None:
        """Send ``nbytes`` random bytes now."""
        data = self._rng.randbytes(nbytes)
        with self.lock:
            self.noise_bytes += nbytes
        self.write(data)

    def noise_next(self, n: int, nbytes: int = 3) -> None:
        """Send ``nbytes`` random bytes before each of the next ``n`` replies / heartbeats."""
        with self.lock:
            self._noise, self._noise_bytes = max(0, int(n)), max(1, int(nbytes))

    def short_next(self, n: int) -> None:
        """Drop the last byte of each of the next ``n`` replies / heartbeats."""
        with self.lock:
            self._short = max(0, int(n))

    def random_faults(self, garbage: float = 0.0, short: float = 0.0) -> None:
        """From now on, prefix a reply with garbage / cut its last byte with these
        probabilities (0 turns them off)."""
        for name, p in (("garbage", garbage), ("short", short)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} probability must be in 0..1, got {p}")
        with self.lock:
            self._garbage_p, self._short_p = garbage, short

    def silence(self, on: bool = True) -> None:
        """Stop (or resume) answering anything, heartbeats included."""
        with self.lock:
            self._silent = on
            self._parser.reset()

    def reappear(self) -> None:
        """A fresh pty under the same link; the unit was power-cycled (heartbeat off)."""
        with self.lock:
            self._heartbeat = False
            self._silent = False
            self._parser.reset()
        super().reappear()

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> GmcCounter:
        """Serve the pty and start counting (the last minute is pre-filled)."""
        if self._ticker is None:
            with self.lock:
                self._t0 = time.monotonic()
                try:
                    rate = self.expected_cpm() / 60.0
                except Exception:  # noqa: BLE001 - a position source not ready yet
                    _log.exception("%s: no dose rate at start; the last minute is empty",
                                   self.link)
                    rate = 0.0
                self._ring.clear()
                for _ in range(60):
                    self._ring.append(self.generator.counts(rate, 1.0))
            self._stop_ticks.clear()
            self._ticker = threading.Thread(target=self._tick_loop, name=f"gmc:{self.link.name}",
                                            daemon=True)
            self._ticker.start()
        super().start()
        return self

    def stop(self) -> None:
        """Stop counting and serving (idempotent)."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            self._stop_ticks.set()
            ticker.join(timeout=5.0)
        super().stop()

    def tick(self) -> int:
        """Record one interval's counts (and send the heartbeat if on); returns the counts."""
        dose = self.dose_rate()
        rate_cps = max(0.0, dose) / self.usv_per_cpm / 60.0
        counts = self.generator.counts(rate_cps, 1.0)
        with self.lock:
            self._ring.append(counts)
            self.ticks += 1
            self.last_dose = dose
            self.history.append((time.monotonic(), dose, counts))
            send = self._heartbeat and not self._silent
        if send:
            self._reply(gmc.encode_heartbeat(counts, self.width, self.reserved_bits))
            with self.lock:
                self.heartbeats_sent += 1
        return counts

    def _tick_loop(self) -> None:
        next_tick = time.monotonic() + self.interval
        failing = False
        while not self._stop_ticks.wait(max(0.0, next_tick - time.monotonic())):
            next_tick += self.interval
            if next_tick < time.monotonic():  # fell behind (a loaded machine): skip ahead
                next_tick = time.monotonic() + self.interval
            try:
                self.tick()
                failing = False
            except Exception:  # noqa: BLE001 - a failing position source must not end counting
                self.tick_failures += 1
                if not failing:  # once per run of failures
                    _log.exception("%s: tick failed (no counts until it works)", self.link)
                failing = True

    # -- firmware ----------------------------------------------------------------------------
    def on_bytes(self, data: bytes, now: float) -> None:
        """Parse commands and answer them, like the firmware."""
        with self.lock:
            if self._silent:
                self.ignored += len(data)
                return
            commands = self._parser.feed(data, now)
        for command in commands:
            self._serve(command)

    def _serve(self, command: str) -> None:
        with self.lock:
            self.commands += 1
            if command == gmc.GETVER:
                reply = self.version_reply
            elif command == gmc.GETCPM:
                reply = gmc.encode_count(sum(self._ring), self.width)
            elif command == gmc.GETCPS:
                last = self._ring[-1] if self._ring else 0
                reply = gmc.encode_heartbeat(last, self.width, self.reserved_bits)
            elif command == gmc.HEARTBEAT1:
                self._heartbeat, reply = True, b""
            elif command == gmc.HEARTBEAT0:
                self._heartbeat, reply = False, b""
            elif command == gmc.GETVOLT:
                reply = gmc.encode_volt(self.volts)
            elif command == gmc.GETSERIAL:
                reply = self.serial_number
            else:
                self.unknown += 1
                reply = b""
        self._reply(reply)

    def _reply(self, reply: bytes) -> None:
        if not reply:
            return
        with self.lock:
            if self._short > 0 or (self._short_p and self._rng.random() < self._short_p):
                self._short = max(0, self._short - 1)
                self.replies_shortened += 1
                reply = reply[:-1]
            if self._noise > 0 or (self._garbage_p and self._rng.random() < self._garbage_p):
                self._noise = max(0, self._noise - 1)
                noise = self._rng.randbytes(self._noise_bytes or 3)
                self.noise_bytes += len(noise)
                reply = noise + reply
        self.write(reply)


def parse_dose_script(text: str, loop: bool = False) -> DoseScript:
    """``T:DOSE,T:DOSE,...`` (seconds since start, uSv/h; piecewise constant, the last value
    held, or repeated with ``loop``) as a callable of time."""
    points = []
    for item in text.split(","):
        try:
            t, d = (float(v) for v in item.split(":"))
        except ValueError:
            raise ValueError(f"dose script item {item!r} is not T:DOSE") from None
        if t < 0 or d < 0:
            raise ValueError(f"dose script item {item!r} has a negative value")
        points.append((t, d))
    points.sort()
    if not points or points[0][0] != 0.0:
        raise ValueError("a dose script starts at time 0")
    period = points[-1][0]

    def dose(t: float) -> float:
        if loop and period > 0:
            t = t % period
        value = points[0][1]
        for start, d in points:
            if t >= start:
                value = d
        return value
    return dose


def main(argv: list[str] | None = None) -> int:
    """Serve an emulated GMC-320 until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--link", required=True, help="symlink path to publish the pty under")
    parser.add_argument("--dose", type=float, default=0.1, help="dose rate, uSv/h")
    parser.add_argument("--dose-script", help="T:DOSE,... piecewise-constant dose (s, uSv/h)")
    parser.add_argument("--loop", action="store_true", help="repeat the dose script")
    parser.add_argument("--seed", type=int, default=None, help="seed of the counts")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model in the version reply")
    parser.add_argument("--firmware", default=DEFAULT_FIRMWARE,
                        help="firmware in the version reply (5.xx and later: 4-byte CPM)")
    parser.add_argument("--baud", type=int, default=gmc.DEFAULT_BAUD, help="reply pacing")
    parser.add_argument("--usv-per-cpm", type=float, default=M4011_USV_PER_CPM)
    parser.add_argument("--dead-time", type=float, default=DEAD_TIME_S, help="s")
    parser.add_argument("--garbage-probability", type=float, default=0.0,
                        help="random bytes before a reply with this probability")
    parser.add_argument("--short-probability", type=float, default=0.0,
                        help="a reply loses its last byte with this probability")
    args = parser.parse_args(argv)
    try:
        dose: float | DoseScript = args.dose
        if args.dose_script:
            dose = parse_dose_script(args.dose_script, args.loop)
        counter = GmcCounter(args.link, dose=dose, seed=args.seed, model=args.model,
                             firmware=args.firmware, baud=args.baud,
                             usv_per_cpm=args.usv_per_cpm, dead_time=args.dead_time)
        counter.random_faults(args.garbage_probability, args.short_probability)
    except ValueError as exc:
        parser.error(str(exc))
    return serve_until_signalled(counter)


if __name__ == "__main__":
    sys.exit(main())
