"""Typed, described, ranged, validated ROS parameters, applied live; the common `main()`.

`declare()` declares one parameter with a description, a range (copied into the descriptor's
`floating_point_range` / `integer_range`, so `ros2 param describe` shows it), a check, and
`read_only` for what cannot change while the node runs. A bad value at start-up raises
`ParameterError` naming the parameter; `run_node` turns that into exit code 2 and one line.

Live changes follow Nav2's dynamic parameters: the first `declare()` on a node installs

- a pre-set callback (Jazzy on) that turns an integer into a double for a double parameter,
  so `ros2 param set ... max_linear 1` works as ROS users type it (start-up overrides too);
- a set callback that only validates, with the same check as at start-up, and refuses with a
  `reason` naming the parameter and what a good value is;
- a post-set callback (Jazzy on; Humble: after validation) calling the node's
  `on_parameters_set(changed: dict[str, value])`, if it has one, to apply accepted values.

`check_overrides()` (called by `run_node` once the node is built) refuses an override, from a
parameter file or the command line, that no parameter of the node takes: a misspelt `prot:` is
an error, not a silently ignored line.
"""

from __future__ import annotations

import difflib
import faulthandler
import math
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import rclpy
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from ilrs_robots.core.interrupts import ignore_sigint

T = TypeVar("T")

__all__ = ["ParameterError", "check_overrides", "declare", "ignore_interrupts", "interrupt_once",
           "run_node"]

# Parameters rclpy or the ROS tools may set on any node.
GENERIC_PARAMETERS = ("use_sim_time", "start_type_description_service")
#: s a node's teardown (close(), executor, node, context) may take before SIGALRM ends the
#: process: rclpy's destroy_node can spin for ever, holding the GIL, on a handle it believes
#: in use (a base_driver orphaned by a SIGKILLed runner spun at 70 % CPU for 20 minutes)
TEARDOWN_TIMEOUT = 15
GENERIC_PREFIXES = ("qos_overrides.",)


class ParameterError(ValueError):
    """A parameter with a bad value; the message names it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"parameter '{name}' {problem}")
        self.name = name


class _Rules:
    """What the callbacks of one node know of its parameters."""

    def __init__(self) -> None:
        self.checks: dict[str, tuple[Callable[[Any], bool] | None, str]] = {}
        self.declaring = False


def _rules(node: Node) -> _Rules:
    rules = getattr(node, "_ilrs_parameter_rules", None)
    if rules is None:
        rules = _Rules()
        node._ilrs_parameter_rules = rules  # type: ignore[attr-defined]
        if hasattr(node, "add_pre_set_parameters_callback"):
            node.add_pre_set_parameters_callback(lambda ps: _widen_integers(node, ps))
        node.add_on_set_parameters_callback(lambda ps: _validate(node, rules, ps))
        if hasattr(node, "add_post_set_parameters_callback"):
            node.add_post_set_parameters_callback(lambda ps: _apply(node, rules, ps))
    return rules


def _as_double(parameter: Parameter) -> Parameter:
    """An integer (or integer array) parameter as a double one; anything else unchanged."""
    if parameter.type_ == Parameter.Type.INTEGER:
        return Parameter(parameter.name, Parameter.Type.DOUBLE, float(parameter.value))
    if parameter.type_ == Parameter.Type.INTEGER_ARRAY:
        return Parameter(parameter.name, Parameter.Type.DOUBLE_ARRAY,
                         [float(v) for v in parameter.value])
    return parameter


def _wants_double(node: Node, name: str) -> bool:
    if not node.has_parameter(name):
        return False
    kind = node.describe_parameter(name).type
    return kind in (ParameterType.PARAMETER_DOUBLE, ParameterType.PARAMETER_DOUBLE_ARRAY)


def _widen_integers(node: Node, parameters: list[Parameter]) -> list[Parameter]:
    return [_as_double(p) if _wants_double(node, p.name) else p for p in parameters]


def _problem(check: Callable[[Any], bool] | None, requirement: str, value: Any) -> str | None:
    if check is None:
        return None
    try:
        good = check(value)
    except (TypeError, ValueError):
        good = False
    return None if good else f"must be {requirement} (got {value!r})"


def _validate(node: Node, rules: _Rules, parameters: list[Parameter]) -> SetParametersResult:
    reasons = []
    for p in parameters:
        if p.name not in rules.checks:
            continue
        check, requirement = rules.checks[p.name]
        value = list(p.value) if isinstance(p.value, list | tuple) else p.value
        problem = _problem(check, requirement, value)
        if problem is not None:
            reasons.append(f"parameter '{p.name}' {problem}")
    if reasons:
        return SetParametersResult(successful=False, reason="; ".join(reasons))
    if not hasattr(node, "add_post_set_parameters_callback"):  # Humble: apply now
        _apply(node, rules, parameters)
    return SetParametersResult(successful=True)


def _apply(node: Node, rules: _Rules, parameters: list[Parameter]) -> None:
    if rules.declaring:
        return
    apply = getattr(node, "on_parameters_set", None)
    if apply is None:
        return
    changed = {p.name: (list(p.value) if isinstance(p.value, list | tuple) else p.value)
               for p in parameters}
    try:
        apply(changed)
    except Exception as exc:  # noqa: BLE001 - a failed apply must not take the node down
        node.get_logger().error(f"applying {sorted(changed)} failed: {exc}")


def _descriptor(default: Any, description: str, requirement: str, read_only: bool,
                bounds: tuple[float, float] | None) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=description, read_only=read_only,
                                     additional_constraints=requirement)
    if bounds is not None:
        lo, hi = bounds
        sample = default[0] if isinstance(default, list | tuple) and default else default
        if isinstance(sample, bool) or not isinstance(sample, int | float):
            raise TypeError(f"a range needs a numeric default, not {default!r}")
        if isinstance(sample, float):
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        else:
            descriptor.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi),
                                                     step=1)]
    return descriptor


def _in_bounds(bounds: tuple[float, float]) -> Callable[[Any], bool]:
    lo, hi = bounds

    def check(value: Any) -> bool:
        values = value if isinstance(value, list) else [value]
        return all(isinstance(v, int | float) and math.isfinite(v) and lo <= v <= hi
                   for v in values)
    return check


def _both(first: Callable[[Any], bool], second: Callable[[Any], bool]
          ) -> Callable[[Any], bool]:
    return lambda value: first(value) and second(value)


def declare(node: Node, name: str, default: T, description: str,
            check: Callable[[T], bool] | None = None, requirement: str = "", *,
            range: tuple[float, float] | None = None,  # noqa: A002 - as in the descriptor
            read_only: bool = False) -> T:
    """Declare a typed parameter with a description and return its value, validated.

    `range` (inclusive, numbers or numeric lists) goes into the descriptor and is checked;
    `check` returns False for any other bad value and `requirement` says what a good one is.
    The ParameterError raised names the parameter, the requirement and the value. Unless
    `read_only`, later sets are validated the same way and handed to `on_parameters_set`.
    """
    rules = _rules(node)
    if range is not None:
        in_bounds = _in_bounds(range)
        text = f"in [{range[0]:g}, {range[1]:g}]"
        if check is None:
            check, requirement = in_bounds, text
        else:
            check = _both(in_bounds, check)
            requirement = f"{text} and {requirement}" if requirement else text
    descriptor = _descriptor(default, description, requirement, read_only, range)
    overrides = node._parameter_overrides  # noqa: SLF001 - rclpy keeps them only there
    if name in overrides and isinstance(default, float | list) and (
            not isinstance(default, list) or (default and isinstance(default[0], float))):
        overrides[name] = _as_double(overrides[name])
    if name in overrides:
        given = overrides[name].value
        given = list(given) if isinstance(given, list | tuple) else given
        problem = _problem(check, requirement, given) if _same_kind(given, default) else None
        if problem is not None:
            raise ParameterError(name, problem)
    rules.declaring = True
    try:
        value = node.declare_parameter(name, default, descriptor).value
    except (InvalidParameterTypeException, ParameterUninitializedException) as exc:
        raise ParameterError(name, f"must be of the type of {default!r}: {exc}") from exc
    except InvalidParameterValueException as exc:
        raise ParameterError(name, f"must be {requirement}: {exc}") from exc
    finally:
        rules.declaring = False
    if isinstance(default, list | tuple) and value is not None:
        value = list(value)
    problem = _problem(check, requirement, value)
    if problem is not None:
        raise ParameterError(name, problem)
    rules.checks[name] = (check, requirement)
    return value


def _same_kind(value: Any, default: Any) -> bool:
    """True when `value` has the parameter type of `default` (so a check can judge it)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, list):
        return isinstance(value, list)
    return isinstance(value, type(default)) or (isinstance(default, float)
                                                and isinstance(value, int))


def check_overrides(node: Node) -> None:
    """Raise ParameterError for an override that no declared parameter of `node` takes."""
    declared = set(node._parameters)  # noqa: SLF001 - rclpy has no public list of these
    for name in sorted(node._parameter_overrides):  # noqa: SLF001
        if name in declared or name in GENERIC_PARAMETERS or name.startswith(GENERIC_PREFIXES):
            continue
        close = difflib.get_close_matches(name, sorted(declared), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ParameterError(name, f"is set for {node.get_fully_qualified_name()} but that node "
                             f"has no such parameter{hint}")


def destroy_safely(node: Node) -> None:
    """Destroy `node`, also one whose __init__ failed part-way (some or none of its handles
    made: rclpy's own __init__ may not have run at all)."""
    if not hasattr(node, "handle"):  # rclpy's Node.__init__ did not get that far
        return
    try:
        node.destroy_node()
    except Exception as exc:  # noqa: BLE001 - a half-built node: say so, exit as decided
        print(f"[{type(node).__name__}] destroying the node failed: {exc!r}", file=sys.stderr,
              flush=True)


def run_node(factory: Callable[[], Node], args: list[str] | None = None,
             threads: int = 0) -> int:
    """rclpy.init, build the node, spin until shutdown, and return the exit code.

    A bad parameter does not return: it prints one line and ends the process with code 2
    (`exit_now`), the node's `close()` called first if it was built.

    `threads` > 0 spins a MultiThreadedExecutor of that many threads, for nodes whose action
    goals block their own callback while services, cancel and estop must still be served.
    """
    # a crash in C (rclpy, the DDS) prints every thread's Python stack to stderr, the node's log
    faulthandler.enable(all_threads=True)
    interrupt_once()
    try:
        # rclpy's handler chains to the one interrupt_once installed
        context = rclpy.init(args=args).context
    except BaseException as exc:
        if not (isinstance(exc, KeyboardInterrupt) or _INTERRUPTED.is_set()):
            raise
        # Ctrl-C while rclpy was starting (its participant up, nothing built): a clean stop,
        # not a KeyboardInterrupt out of main (which Python ends by SIGINT, exit -2)
        ignore_interrupts()
        rclpy.try_shutdown()
        return 0
    node: Any = None
    built = False
    executor: Any = None
    code = 0
    try:
        if threads > 0:
            executor = MultiThreadedExecutor(num_threads=threads)
        if isinstance(factory, type):
            # bound before __init__ runs: a node whose construction fails other than by a bad
            # parameter is destroyed below, before the context's shutdown; left to the garbage
            # collector, its handles went after it and the process died of SIGSEGV (seen once)
            node = factory.__new__(factory)
            node.__init__()
        else:
            node = factory()
        built = True
        check_overrides(node)
        if executor is None:
            rclpy.spin(node)
        else:
            executor.add_node(node)
            executor.spin()
    except ParameterError as exc:
        name = node.get_name() if hasattr(node, "handle") else factory.__name__
        print(f"[{name}] configuration error: {exc}", file=sys.stderr, flush=True)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok() and not _INTERRUPTED.is_set():
            raise
        # Ctrl-C or SIGTERM while the node was being built, or a KeyboardInterrupt that landed
        # inside rclpy's C++ (pybind11 turns it into a RuntimeError while it converts a taken
        # message): a clean stop, not a crash
    finally:
        ignore_interrupts()  # a second Ctrl-C must not cut the motors' stop short
        # the kernel's default action for SIGALRM ends the process even while a thread
        # holds the GIL in C++, where no Python watchdog could run
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(TEARDOWN_TIMEOUT)
        try:
            if built:
                close = getattr(node, "close", None)
                if close is not None:
                    close()
            if code == 2:
                exit_now(code)
            if executor is not None:
                executor.shutdown(timeout_sec=2.0)
            if node is not None:
                destroy_safely(node)
        finally:
            rclpy.try_shutdown()  # drops the default context, but the node still holds it
            ignore_interrupts()  # rclpy's shutdown may have put its handlers back
            # the DDS participant is deleted here, under the alarm, rather than whenever the
            # interpreter's exit collects the last reference, where the DDS's own threads and
            # static objects race it (two nodes died of SIGSEGV after a clean configuration
            # error, exit code 2 already decided)
            context.destroy()
    return code


def exit_now(code: int) -> None:
    """End the process at once with `code`, its output flushed, nothing torn down.

    For a node that never spun (a configuration error): it drives nothing and holds nothing a
    peer needs released, but destroying its DDS participant during Fast DDS's discovery
    crashed in rcl_node_fini (SIGSEGV after the error was printed, seen in CI). The OS frees
    what the process held; peers drop the participant when its lease runs out.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def interrupt_once() -> None:
    """Let the first SIGINT raise KeyboardInterrupt and ignore every later one.

    The handler switches SIGINT off before it raises, so a second Ctrl-C arriving before the
    `finally` of the spin has reached `ignore_interrupts()` cannot interrupt the shutdown.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt_and_ignore_the_rest)


_INTERRUPTED = threading.Event()


def _interrupt_and_ignore_the_rest(signum: int, frame: object) -> None:
    ignore_sigint()
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def ignore_interrupts() -> None:
    """Ignore SIGINT from here on, in the main thread (elsewhere Python cannot set it).

    Under `ros2 launch` a terminal's Ctrl-C reaches a node twice: the terminal sends SIGINT to
    the whole process group, then launch sends its own. The first ends the spin; the second
    would raise KeyboardInterrupt inside `close()` (before the motors are stopped) and print a
    traceback. The process is ending anyway: SIGTERM and SIGKILL still end it.
    """
    ignore_sigint()
