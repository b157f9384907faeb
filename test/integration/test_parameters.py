"""nodes/params.py over the real parameter services: ranges in descriptors, integer literals
for doubles, read-only parameters, live validation with a reason, applied changes, and
overrides that no parameter takes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from ilrs_robots.nodes.params import ParameterError, check_overrides, declare
from ilrs_robots.runner.ros_client import RosClient


class Probe(Node):
    """A node declaring parameters the way every node of ours does."""

    def __init__(self, context: Context, overrides: list[Parameter] | None = None) -> None:
        super().__init__("probe", context=context, parameter_overrides=overrides or [])
        self.applied: list[dict] = []
        self.speed = declare(self, "speed", 0.5, "Speed (m/s)", range=(0.0, 2.0))
        self.count = declare(self, "count", 3, "Count", range=(1, 10))
        self.gains = declare(self, "gains", [1.0, 2.0], "Gains", lambda g: len(g) == 2,
                             "2 values", range=(0.0, 100.0))
        self.mode = declare(self, "mode", "fast", "Mode", lambda m: m in ("fast", "slow"),
                            "fast or slow")
        self.port = declare(self, "port", "/dev/ttyACM0", "Port", bool, "a path",
                            read_only=True)

    def on_parameters_set(self, changed: dict) -> None:
        self.applied.append(changed)


@pytest.fixture
def probe() -> Iterator[Probe]:
    context = Context()
    rclpy.init(context=context)
    node = Probe(context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    executor.shutdown()
    thread.join(5.0)
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def _call(ros: RosClient, future_of) -> object:
    client = AsyncParameterClient(ros.node, "/probe")
    assert client.wait_for_services(timeout_sec=30.0), "parameter services never appeared"
    future = future_of(client)
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    assert done.wait(30.0), "parameter service did not answer"
    return future.result()


def _set(ros: RosClient, *parameters: Parameter) -> list:
    return _call(ros, lambda c: c.set_parameters(list(parameters))).results


def test_live_set_is_validated_applied_and_reasoned(ros: RosClient, probe: Probe) -> None:
    ok = _set(ros, Parameter("speed", Parameter.Type.INTEGER, 1))
    assert ok[0].successful, ok[0].reason
    assert probe.get_parameter("speed").value == 1.0
    assert probe.get_parameter("speed").type_ == Parameter.Type.DOUBLE
    assert {"speed": 1.0} in probe.applied

    too_fast = _set(ros, Parameter("speed", Parameter.Type.DOUBLE, 5.0))[0]
    assert not too_fast.successful
    assert "speed" in too_fast.reason and "2" in too_fast.reason
    assert probe.get_parameter("speed").value == 1.0

    nan = _set(ros, Parameter("speed", Parameter.Type.DOUBLE, float("nan")))[0]
    assert not nan.successful
    bad_mode = _set(ros, Parameter("mode", Parameter.Type.STRING, "warp"))[0]
    assert not bad_mode.successful and "fast or slow" in bad_mode.reason
    bad_gains = _set(ros, Parameter("gains", Parameter.Type.DOUBLE_ARRAY, [1.0]))[0]
    assert not bad_gains.successful and "gains" in bad_gains.reason
    fixed = _set(ros, Parameter("port", Parameter.Type.STRING, "/dev/ttyUSB0"))[0]
    assert not fixed.successful and "read-only" in fixed.reason
    assert probe.get_parameter("port").value == "/dev/ttyACM0"
    assert all("mode" not in a and "port" not in a for a in probe.applied)


def test_ranges_are_in_the_descriptors(ros: RosClient, probe: Probe) -> None:
    described = _call(ros, lambda c: c.describe_parameters(["speed", "count", "port"]))
    speed, count, port = described.descriptors
    assert (speed.floating_point_range[0].from_value,
            speed.floating_point_range[0].to_value) == (0.0, 2.0)
    assert (count.integer_range[0].from_value, count.integer_range[0].to_value) == (1, 10)
    assert port.read_only and not speed.read_only
    assert speed.description == "Speed (m/s)"


def _build(overrides: list[Parameter]) -> Probe:
    context = Context()
    rclpy.init(context=context)
    node = None
    try:
        node = Probe(context, overrides)
        check_overrides(node)
        return node
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_start_up_overrides() -> None:
    node = _build([Parameter("speed", Parameter.Type.INTEGER, 2),
                   Parameter("gains", Parameter.Type.INTEGER_ARRAY, [3, 4])])
    assert node.speed == 2.0 and node.gains == [3.0, 4.0]
    with pytest.raises(ParameterError, match=r"'speed' must be in \[0, 2\]"):
        _build([Parameter("speed", Parameter.Type.DOUBLE, 1e300)])
    with pytest.raises(ParameterError, match=r"'speed' must be in \[0, 2\].*-1"):
        _build([Parameter("speed", Parameter.Type.INTEGER, -1)])
    with pytest.raises(ParameterError, match="'count'"):
        _build([Parameter("count", Parameter.Type.DOUBLE, 2.5)])
    with pytest.raises(ParameterError, match="'prot'.*did you mean 'port'"):
        _build([Parameter("prot", Parameter.Type.STRING, "/dev/null")])
    _build([Parameter("use_sim_time", Parameter.Type.BOOL, True)])


INTERRUPTED_NODE = """
import sys, time
from rclpy.node import Node
from ilrs_robots.nodes.params import run_node

class Interrupted(Node):
    def __init__(self):
        super().__init__("interrupted")
        self.ticks = 0
        self.create_timer(0.001, self.tick)  # a busy spin, as a driver's is

    def tick(self):
        self.ticks += 1
        if self.ticks == 1:
            print("ready", flush=True)  # spinning, so built: close() is owed

    def close(self):
        time.sleep(0.2)
        print("closed", flush=True)

sys.exit(run_node(Interrupted, sys.argv))
"""


def _run_until_exit(script: str, sigint_gaps: tuple[float, ...]):
    """Run `script`; once it says "ready", send one SIGINT per gap (sleeping the gap after
    each); (process, stdout, stderr) once it has exited."""
    proc = subprocess.Popen([sys.executable, "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for gap in sigint_gaps:
            proc.send_signal(signal.SIGINT)
            time.sleep(gap)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, out, err


def test_a_burst_of_interrupts_never_cuts_the_shutdown_short() -> None:
    """A terminal's Ctrl-C and launch's own SIGINT arrive microseconds to milliseconds apart:
    whatever the gap, the node closes (its motors' stop) and exits 0 without a traceback."""
    for attempt in range(8):
        proc, out, err = _run_until_exit(INTERRUPTED_NODE,
                                         (0.0, 0.0005 * attempt, 0.002 * attempt))
        assert proc.returncode == 0, f"attempt {attempt}: exit {proc.returncode}\n{err}"
        assert "closed" in out, f"attempt {attempt}: close() cut short\n{err}"
        assert "Traceback" not in err, f"attempt {attempt}:\n{err}"


READY_LINE = """            print("ready", flush=True)  # spinning, so built: close() is owed
"""
CONVERTED_INTERRUPT_NODE = INTERRUPTED_NODE.replace(READY_LINE, READY_LINE + """\
            from ilrs_robots.nodes import params
            try:  # our SIGINT handler runs before rclpy's own has shut the context down ...
                params._interrupt_and_ignore_the_rest(2, None)
            except KeyboardInterrupt:  # ... inside a message conversion, where pybind11 says:
                raise RuntimeError("Unable to convert call argument '0'") from None
""")


def test_an_interrupt_that_rclpy_turned_into_an_error_is_still_a_clean_stop() -> None:
    """A Ctrl-C that lands inside rclpy's C++ while it converts a taken message, before rclpy has
    shut its context down, comes out of the spin as a RuntimeError (seen under `ros2 launch` on
    a loaded machine): the node still closes and exits 0 without a traceback."""
    assert CONVERTED_INTERRUPT_NODE != INTERRUPTED_NODE
    proc, out, err = _run_until_exit(CONVERTED_INTERRUPT_NODE, ())
    assert proc.returncode == 0, f"exit {proc.returncode}\n{err}"
    assert "closed" in out, f"close() cut short\n{err}"
    assert "Traceback" not in err, err


INTERRUPTED_IN_INIT = """
import os, signal, sys, time
import rclpy
from rclpy.node import Node
from ilrs_robots.nodes.params import run_node

real_init = rclpy.init

def init(**kwargs):  # a Ctrl-C that lands while rclpy is starting (its participant is up)
    manager = real_init(**kwargs)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1.0)  # the handler raises here, inside rclpy.init as seen by run_node
    return manager

rclpy.init = init

class NeverBuilt(Node):
    def __init__(self):
        print("built", flush=True)
        super().__init__("never_built")

sys.exit(run_node(NeverBuilt, sys.argv))
"""


def test_an_interrupt_while_rclpy_starts_is_a_clean_stop() -> None:
    """SIGINT while rclpy.init runs (a runner stopping a node that is still starting): exit 0,
    no traceback, nothing built. It escaped main as a KeyboardInterrupt before, which Python
    ends by SIGINT (exit -2): seen once in CI."""
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED_IN_INIT], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr}"
    assert "built" not in proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr


HALF_BUILT_NODE = """
import sys
from rclpy.node import Node
from std_msgs.msg import String
from ilrs_robots.nodes.params import ParameterError, run_node

class HalfBuilt(Node):
    def __init__(self):
        super().__init__("half_built")
        self.create_publisher(String, "out", 10)
        self.create_subscription(String, "in", print, 10)
        self.create_timer(0.1, lambda: None)
        print("half built", end="", flush=False)  # ends up on stdout though not flushed
        raise ParameterError("gain", "must be in [0, 1] (got 7)")

    def destroy_node(self):
        print("destroyed", flush=True)
        super().destroy_node()

    def close(self):
        print("close() of a node that was never built", flush=True)

code = run_node(HalfBuilt, sys.argv)
print(f"run_node returned {code}", flush=True)
sys.exit(code)
"""


def test_a_node_that_fails_to_build_ends_the_process_at_once() -> None:
    """A bad parameter found part-way through a node's __init__ (after it made publishers,
    subscriptions and timers): exit 2 with the reason, its output flushed, and nothing torn
    down: the node never ran and holds nothing a peer needs. Destroying it crashed twice in
    CI with SIGSEGV after the reason was printed: once left to the garbage collector after
    the shutdown, once inside rcl_node_fini (Fast DDS's discovery still running)."""
    buffered = {**os.environ, "PYTHONUNBUFFERED": ""}  # stdout a pipe, flushed when full
    proc = subprocess.run([sys.executable, "-c", HALF_BUILT_NODE], capture_output=True,
                          text=True, timeout=60, env=buffered)
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr}"
    assert "[half_built] configuration error: parameter 'gain' must be in" in proc.stderr
    assert proc.stdout == "half built", proc.stdout  # not destroyed, not closed, no return
    assert "Traceback" not in proc.stderr, proc.stderr


STUCK_TEARDOWN_NODE = INTERRUPTED_NODE.replace('''    def close(self):
        time.sleep(0.2)
        print("closed", flush=True)
''', '''    def close(self):
        print("closing", flush=True)
        while True:  # as rclpy's destroy_node spinning on a handle it believes in use
            pass
''').replace("sys.exit(run_node(", "params.TEARDOWN_TIMEOUT = 2\nsys.exit(run_node(").replace(
    "from ilrs_robots.nodes.params import run_node",
    "from ilrs_robots.nodes import params\nfrom ilrs_robots.nodes.params import run_node")


def test_a_teardown_that_never_ends_is_ended_by_the_alarm() -> None:
    """SIGTERM (what an orphaned node gets when its runner is SIGKILLed) to a node whose
    teardown spins for ever: the process still ends, by SIGALRM, TEARDOWN_TIMEOUT (2 s
    here) after the teardown began, instead of spinning on as an orphan."""
    assert STUCK_TEARDOWN_NODE.count("TEARDOWN_TIMEOUT = 2") == 1
    proc = subprocess.Popen([sys.executable, "-c", STUCK_TEARDOWN_NODE],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline().strip() == "closing"
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGALRM
