"""VC0706 camera figures: time per 640x480 JPEG at 38400 and 115200 baud, from the driver
against the firmware emulator on a pty (paced at the baud), next to the serial ceiling: the
wire time of every byte of the capture (requests, reply framing and JPEG) at 10 bits per byte.

    .venv/bin/python bench/bench_vc0706.py [frames] [chunk_size]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from ilrs_robots.drivers.vc0706 import Vc0706Client, wire_time
from ilrs_robots.protocols.vc0706 import DEFAULT_COMPRESSION, HEADER_LEN
from ilrs_robots.sim.devices.vc0706_emulator import Vc0706Camera

REQUEST_LEN = {"fbuf_ctrl": 5, "get_fbuf_len": 5, "read_fbuf": 16}


def capture_bytes(jpeg_len: int, chunk: int) -> int:
    """Bytes on the wire (both directions) of one capture of a ``jpeg_len`` JPEG."""
    chunks = -(-jpeg_len // chunk)
    stop = resume = REQUEST_LEN["fbuf_ctrl"] + HEADER_LEN
    length = REQUEST_LEN["get_fbuf_len"] + HEADER_LEN + 4
    reads = chunks * (REQUEST_LEN["read_fbuf"] + 2 * HEADER_LEN) + jpeg_len
    return stop + length + reads + resume


def run(baud: int, frames: int, chunk: int, tmp: Path, compression: int) -> str:
    """One baud rate: returns the printed line."""
    with Vc0706Camera(tmp / f"cam{baud}_{compression}", seed=1) as cam, \
            Vc0706Client(str(cam.link), chunk_size=chunk) as host:
        host.set_size(640, 480)
        host.set_compression(compression)
        if baud != host.baud:
            host.set_baud(baud)
        times, sizes = [], []
        for _ in range(frames):
            t0 = time.monotonic()
            sizes.append(len(host.capture()))
            times.append(time.monotonic() - t0)
        assert host.counters.retries == 0
    mean_t = statistics.mean(times)
    mean_len = statistics.mean(sizes)
    ceiling = wire_time(capture_bytes(round(mean_len), chunk), baud)
    jpeg_only = wire_time(round(mean_len), baud)
    return (f"{baud:>6} baud  compression 0x{compression:02X}  JPEG {mean_len / 1024:5.1f} KiB  "
            f"{mean_t:6.2f} s/frame ({1 / mean_t:5.2f} fps)  ceiling {ceiling:6.2f} s "
            f"(JPEG alone {jpeg_only:5.2f} s)  efficiency {ceiling / mean_t:4.0%}")


def main() -> None:
    frames = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    chunk = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    print(f"VC0706 640x480 capture, {frames} frames each, READ_FBUF chunks of {chunk} bytes")
    with tempfile.TemporaryDirectory() as tmp:
        for compression in (DEFAULT_COMPRESSION, 0xC0):
            for baud in (38400, 115200):
                print(run(baud, frames, chunk, Path(tmp), compression), flush=True)


if __name__ == "__main__":
    main()
