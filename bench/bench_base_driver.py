"""Base driver figures: cmd_vel-to-serial latency through the node, and the control loop rate.

Targets (issue: foundation): p99 latency under 5 ms; loop at 50 Hz or more with 3 RoboClaws
at 115200 baud, within 80 % of the serial ceiling computed from the bytes of one cycle.

    .venv/bin/python bench/bench_base_driver.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ilrs_robots.runner.environment import ros_environment

os.environ.update(ros_environment(domain_id=90 + os.getpid() % 10))
# The emulator's reader thread stamps arrivals: let it preempt this process's other threads
# as promptly as the node's threads do theirs (see nodes/base_driver.py).
sys.setswitchinterval(0.0005)

from geometry_msgs.msg import Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402

from ilrs_robots.core.drive_config import DEFAULT_CHANNELS, DEFAULT_WHEELS, parse_wheels  # noqa: E402,E501
from ilrs_robots.core.kinematics import DriveLimits, SkidSteerGeometry  # noqa: E402
from ilrs_robots.drivers.roboclaw import RoboClawBus as Host  # noqa: E402
from ilrs_robots.drivers.skid_steer_base import SkidSteerBase  # noqa: E402
from ilrs_robots.protocols.roboclaw import Cmd  # noqa: E402
from ilrs_robots.runner.processes import NodeProcess, ros_arguments  # noqa: E402
from ilrs_robots.runner.ros_client import RosClient, wait_until  # noqa: E402
from ilrs_robots.sim.devices.roboclaw_emulator import RoboClawBus  # noqa: E402

BAUD = 115200
ADDRESSES = [128, 129, 130]
# bytes on the wire per controller and cycle: both encoders (cmd 78) and both speeds
# (cmd 108), each 2 out and 4+4+2 back, and one mixed speed command (2 + 12 + 2 out, 1 ack)
BYTES_PER_CYCLE = len(ADDRESSES) * (2 * (2 + 10) + (16 + 1))
# plus the health poll, one controller at a time, every controller each HEALTH_PERIOD:
# battery (2 + 2+2), temperature (2 + 2+2), currents (2 + 4+2), status (2 + 4+2)
HEALTH_PERIOD = 0.5
HEALTH_BYTES_PER_S = len(ADDRESSES) * (6 + 6 + 8 + 8) / HEALTH_PERIOD


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def latency(tmp: Path, count: int = 300) -> list[float]:
    """Publish distinct cmd_vel values; time until the first controller receives each."""
    emu = RoboClawBus(tmp / "roboclaw", ADDRESSES, baud=BAUD).start()
    arrivals: dict[int, float] = {}
    lock = threading.Lock()

    def seen(request, now: float) -> None:
        if request.address == 128 and request.cmd == Cmd.SPEED_ACCEL_MIXED:
            with lock:
                arrivals.setdefault(request.args[1], now)

    emu.on_request = seen
    node = NodeProcess("base_driver", dict(os.environ), tmp / "base_driver.log",
                       ros_arguments(namespace="bench", parameters={
                           "port": str(emu.link), "cmd_timeout": 5.0})).start()
    results = []
    try:
        with RosClient("bench") as ros:
            pub = ros.publisher(Twist, "/bench/cmd_vel", wait_for_subscribers=20)
            odom = ros.subscribe(Odometry, "/bench/odom")
            if not odom.wait_for(timeout=20):
                sys.exit("base_driver did not start:\n" + node.output())
            for i in range(count):
                v = 0.05 + 0.0005 * i  # a new speed each time, so each arrival is told apart
                expected = round(v / 0.25 * 8192 / (2 * 3.141592653589793))
                msg = Twist()
                msg.linear.x = v
                t0 = time.monotonic()
                pub.publish(msg)
                got = wait_until(lambda e=expected: arrivals.get(e), 1.0, period=0.0002)
                if got:
                    results.append((got - t0) * 1000)
                time.sleep(0.02)
    finally:
        node.stop()
        emu.stop()
    return results


def loop_rate(tmp: Path, seconds: float = 5.0) -> float:
    """Cycles per second of the control loop running flat out against the emulator."""
    # the emulator in its own process, as the controllers are on their own chips
    link = tmp / "roboclaw_rate"
    emu = subprocess.Popen([sys.executable, "-m", "ilrs_robots.sim.devices.roboclaw_emulator",
                            "--link", str(link), "--baud", str(BAUD)], stdout=subprocess.PIPE)
    emu.stdout.readline()  # the link path, once it is served
    bus = Host(str(link), BAUD)
    base = SkidSteerBase(bus, parse_wheels(DEFAULT_WHEELS, DEFAULT_CHANNELS, [1] * 6, ADDRESSES),
                         SkidSteerGeometry(0.25, 1.2, 8192), DriveLimits(0.5, 0.8, 0.6, 0.5, 1.5),
                         cmd_timeout=3600.0, health_period=HEALTH_PERIOD)
    bus.open()  # identifies the controllers and sets their serial timeout
    base.cycle()  # the first cycle of a connection holds the wheels until a command
    base.command(0.3, 0.1)  # only sets the targets: cycle() writes them
    end = time.monotonic() + seconds
    cycles = 0
    while time.monotonic() < end:
        base.cycle()  # polls 3 controllers and sends each its speed command
        cycles += 1
    rate = cycles / seconds
    base.stop()
    emu.terminate()
    emu.wait()
    return rate


def main() -> None:
    """Print the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        lat = latency(Path(tmp))
        rate = loop_rate(Path(tmp))
    ceiling = (BAUD / 10 - HEALTH_BYTES_PER_S) / BYTES_PER_CYCLE
    print("base_driver benchmark (3 RoboClaw emulators on one pty bus, 115200 baud paced)")
    if lat:
        print(f"  cmd_vel -> serial write latency: n={len(lat)} "
              f"p50={statistics.median(lat):.2f} ms p99={percentile(lat, 99):.2f} ms "
              f"max={max(lat):.2f} ms   (target p99 < 5 ms)")
    else:
        print("  cmd_vel -> serial write latency: no command arrived")
    print(f"  control loop: {rate:.1f} Hz sustained; serial ceiling {ceiling:.1f} Hz "
          f"({BYTES_PER_CYCLE} bytes/cycle + {HEALTH_BYTES_PER_S:.0f} bytes/s of health "
          f"polls) = {100 * rate / ceiling:.0f} % of ceiling   "
          f"(target >= 50 Hz and >= 80 %)")


if __name__ == "__main__":
    main()
