"""Typed, described, validated ROS parameters, and the common `main()` of every node."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from ilrs_robots.core.drive_config import ParameterError

T = TypeVar("T")

__all__ = ["ParameterError", "declare", "run_node"]


def declare(node: Node, name: str, default: T, description: str,
            check: Callable[[T], bool] | None = None, requirement: str = "") -> T:
    """Declare a typed parameter with a description and return its value, validated.

    `check` returns False for a bad value; `requirement` says what a good one is, and the
    ParameterError raised names the parameter, the requirement and the value.
    """
    descriptor = ParameterDescriptor(description=description)
    try:
        value = node.declare_parameter(name, default, descriptor).value
    except (InvalidParameterTypeException, InvalidParameterValueException,
            ParameterUninitializedException) as exc:
        raise ParameterError(name, f"has the wrong type: {exc}") from exc
    if isinstance(default, list | tuple) and value is not None:
        value = list(value)
    if check is not None and not check(value):
        raise ParameterError(name, f"must be {requirement} (got {value!r})")
    return value


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """rclpy.init, build the node, spin until shutdown; a bad parameter exits with code 2."""
    rclpy.init(args=args)
    node: Any = None
    code = 0
    try:
        node = factory()
        rclpy.spin(node)
    except ParameterError as exc:
        name = getattr(node, "get_name", lambda: factory.__name__)()
        print(f"[{name}] configuration error: {exc}", file=sys.stderr, flush=True)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # Ctrl-C or SIGTERM while the node was still being built: a clean stop, not a crash

    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code
