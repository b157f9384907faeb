"""`ilrs doctor`: check a rover's set-up and say what is wrong and how to fix it.

Checks the serial ports the stack names (exists, a character device, readable and writable
by the user that runs the stack, not held by another process), the ROS 2 installation
(rclpy importable, the distribution, the RMW), the clock (NTP through timedatectl where it
exists), the DDS settings (Fast DDS profile file, ROS_DOMAIN_ID, discovery range) and the
camera devices (stable /dev/v4l names, the video group). Every finding is OK, WARN, FAIL or
SKIP with a one-line reason and, for WARN and FAIL, a fix. :func:`exit_code` is 1 when
something FAILed (or, strictly, WARNed).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ilrs_robots.runner.stacks import Stack

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"
PORT_PARAMETERS = ("port",)
CAMERA_PARAMETERS = ("source", "source_right")
DISCOVERY_RANGES = ("SUBNET", "LOCALHOST", "OFF", "SYSTEM_DEFAULT")


@dataclass(frozen=True)
class Finding:
    """One result: which check, its status, what was found, how to fix it."""

    check: str
    status: str
    message: str
    fix: str = ""

    def render(self) -> str:
        """Human-readable lines: ``[FAIL] check: message`` and an indented fix."""
        text = f"[{self.status:>4}] {self.check}: {self.message}"
        if self.fix and self.status in (WARN, FAIL):
            text += f"\n       fix: {self.fix}"
        return text


@dataclass(frozen=True)
class Identity:
    """The user the stack runs as: uid and group ids (for permission checks by mode bits)."""

    name: str
    uid: int
    gids: frozenset[int]

    @classmethod
    def of_user(cls, name: str) -> Identity:
        """The identity of a user from the password and group databases."""
        pw = pwd.getpwnam(name)
        return cls(name, pw.pw_uid, frozenset(os.getgrouplist(name, pw.pw_gid)))

    @classmethod
    def current(cls) -> Identity:
        """This process's user and groups."""
        uid = os.geteuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return cls(name, uid, frozenset({os.getegid(), *os.getgroups()}))


@dataclass
class DeviceRef:
    """A device named by a stack: node, parameter, path."""

    node: str
    parameter: str
    path: str
    kind: str = "port"  # "port" or "camera"


@dataclass
class DoctorOptions:
    """What to check; by default the current process's user and environment."""

    ports: list[DeviceRef] = field(default_factory=list)
    cameras: list[DeviceRef] = field(default_factory=list)
    identity: Identity | None = None  # None: os.access() of this process
    environ: dict[str, str] | None = None
    check_ros: bool = True
    check_clock: bool = True


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _node_parameters(node: Any) -> dict[str, Any]:
    """The parameters a stack node gets: its parameter files, then the stack's values."""
    merged: dict[str, Any] = {}
    for f in node.params_files:
        try:
            data = yaml.safe_load(Path(f).read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for section in data.values():
            if isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
                merged.update(section["ros__parameters"])
    merged.update(node.parameters)
    return merged


def devices_of_stack(stack: Stack) -> tuple[list[DeviceRef], list[DeviceRef]]:
    """(serial ports, camera devices) the stack's nodes name: ``port`` parameters, and
    ``source``/``source_right`` parameters that are device paths."""
    ports, cameras = [], []
    for node in stack.nodes:
        where = f"{node.namespace}/{node.name}".lstrip("/")
        params = _node_parameters(node)
        for key in PORT_PARAMETERS:
            if isinstance(params.get(key), str) and params[key]:
                ports.append(DeviceRef(where, key, params[key]))
        for key in CAMERA_PARAMETERS:
            v = params.get(key)
            if isinstance(v, str) and v.startswith("/dev/"):
                cameras.append(DeviceRef(where, key, v, "camera"))
    return ports, cameras


def _can_read_write(path: str, st: os.stat_result, who: Identity | None) -> bool:
    if who is None:
        return os.access(path, os.R_OK | os.W_OK)
    if who.uid == 0:
        return True
    mode = st.st_mode
    if who.uid == st.st_uid:
        need = stat.S_IRUSR | stat.S_IWUSR
    elif st.st_gid in who.gids:
        need = stat.S_IRGRP | stat.S_IWGRP
    else:
        need = stat.S_IROTH | stat.S_IWOTH
    return mode & need == need


def check_device(ref: DeviceRef, who: Identity | None = None) -> Finding:
    """Exists, is a character device, is readable and writable, is not held by another."""
    label = f"{ref.kind} {ref.node}.{ref.parameter}={ref.path}"
    user = who.name if who else Identity.current().name
    try:
        st = os.stat(ref.path)
    except FileNotFoundError:
        if ref.kind == "camera":
            fix = ("plug the camera in; list the stable names with `ls -l /dev/v4l/by-id/` "
                   "and set the node's parameter to one (deploy/README.md)")
        else:
            fix = ("plug the device in (USB), install deploy/udev/99-ilrs.rules for stable "
                   "names (/dev/ilrs/roboclaw, /dev/ilrs/gmc); `ls -l /dev/serial/by-id/` "
                   f"lists what is connected; or set '{ref.parameter}' of {ref.node} to the "
                   "right port")
        return Finding(label, FAIL, "does not exist", fix)
    except OSError as exc:
        return Finding(label, FAIL, f"cannot be examined: {exc.strerror}",
                       "check the path and the permissions of its directory")
    if not stat.S_ISCHR(st.st_mode):
        what = "a directory" if stat.S_ISDIR(st.st_mode) else "a regular file" \
            if stat.S_ISREG(st.st_mode) else "not a device"
        return Finding(label, FAIL, f"is {what}, not a character device",
                       "name the device node (/dev/ttyACM*, /dev/ttyUSB*, /dev/ilrs/*, "
                       "/dev/v4l/by-id/*), not a file")
    if not _can_read_write(ref.path, st, who):
        group = _group_name(st.st_gid)
        mode = stat.filemode(st.st_mode)
        fix = (f"add the user to its group: `sudo usermod -aG {group} {user}` and log in again"
               if group not in ("root", str(st.st_gid)) else
               "install deploy/udev/99-ilrs.rules (GROUP dialout/video, MODE 0660) and "
               f"`sudo usermod -aG {'video' if ref.kind == 'camera' else 'dialout'} {user}`")
        return Finding(label, FAIL, f"permission denied for user '{user}' ({mode}, owner "
                                    f"{st.st_uid}, group {group})", fix)
    if ref.kind == "port":
        from ilrs_robots.drivers.serial_port import port_holders

        holders = port_holders(ref.path)
        if holders:
            who_holds = ", ".join(f"pid {pid} ({cmd})" for pid, cmd in holders)
            return Finding(label, FAIL, f"is in use by {who_holds}",
                           "stop that program (a second driver, ModemManager, a serial "
                           "console) or run `sudo systemctl stop ilrs-rover` first")
    if ref.kind == "camera" and not ref.path.startswith(("/dev/v4l/by-id/", "/dev/v4l/by-path/")):
        return Finding(label, WARN, "ok, but /dev/videoN numbers change with the plug order",
                       "name the camera by /dev/v4l/by-id/... (or by-path for identical "
                       "cameras)")
    return Finding(label, OK, "character device, read/write, free")


def check_camera_access(cameras: Sequence[DeviceRef], who: Identity | None) -> list[Finding]:
    """Membership of the video group when the stack names cameras."""
    if not cameras:
        return []
    try:
        video = grp.getgrnam("video").gr_gid
    except KeyError:
        return [Finding("cameras: video group", SKIP, "this system has no 'video' group")]
    ident = who or Identity.current()
    if ident.uid == 0 or video in ident.gids:
        return [Finding("cameras: video group", OK, f"user '{ident.name}' may open cameras")]
    return [Finding("cameras: video group", WARN,
                    f"user '{ident.name}' is not in the 'video' group",
                    f"`sudo usermod -aG video {ident.name}` and log in again")]


def check_ros(environ: dict[str, str]) -> list[Finding]:
    """rclpy importable, its distribution, and the RMW implementation."""
    out = []
    try:
        import rclpy  # noqa: F401
        from rclpy.utilities import get_rmw_implementation_identifier
    except ImportError as exc:
        return [Finding("ros: rclpy", FAIL, f"cannot import rclpy ({exc})",
                        "source /opt/ros/<distro>/setup.bash, or run ./scripts/setup and use "
                        ".venv/bin/ilrs")]
    try:
        from importlib.metadata import version

        rclpy_version = version("ros-rclpy") if _has_dist("ros-rclpy") else version("rclpy")
    except Exception:  # noqa: BLE001 - a ROS install without Python metadata
        rclpy_version = "?"
    distro = environ.get("ROS_DISTRO", "")
    out.append(Finding("ros: rclpy", OK, f"rclpy {rclpy_version}, ROS_DISTRO="
                                         f"{distro or '(unset: PyPI wheels)'}"))
    wanted = environ.get("RMW_IMPLEMENTATION", "")
    try:
        rmw = get_rmw_implementation_identifier()
    except Exception as exc:  # noqa: BLE001 - RMW library missing or broken
        return out + [Finding("ros: RMW", FAIL, f"no usable RMW ({exc})",
                              "install rmw_fastrtps_cpp (pip: ros-rmw-fastrtps-cpp; apt: "
                              "ros-$ROS_DISTRO-rmw-fastrtps-cpp) or unset RMW_IMPLEMENTATION")]
    if wanted and wanted != rmw:
        out.append(Finding("ros: RMW", FAIL, f"RMW_IMPLEMENTATION={wanted} but rclpy loads {rmw}",
                           "install that RMW or unset RMW_IMPLEMENTATION"))
    elif rmw != "rmw_fastrtps_cpp":
        out.append(Finding("ros: RMW", WARN, f"{rmw}: the stack is tuned for Fast DDS "
                                             "(config/fastdds.xml)",
                           "export RMW_IMPLEMENTATION=rmw_fastrtps_cpp"))
    else:
        out.append(Finding("ros: RMW", OK, rmw))
    return out


def _has_dist(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution(name)
        return True
    except PackageNotFoundError:
        return False


def check_clock(run: Any = subprocess.run) -> list[Finding]:
    """NTP synchronisation as timedatectl reports it (SKIP where there is no timedatectl)."""
    if shutil.which("timedatectl") is None:
        return [Finding("clock: NTP", SKIP, "no timedatectl (not a systemd system)")]
    try:
        r = run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Finding("clock: NTP", SKIP, f"timedatectl failed: {exc}")]
    value = r.stdout.strip()
    if r.returncode != 0 or value not in ("yes", "no"):
        return [Finding("clock: NTP", SKIP, "timedatectl cannot tell (no systemd-timedated)")]
    if value == "yes":
        return [Finding("clock: NTP", OK, "synchronised")]
    return [Finding("clock: NTP", WARN, "not synchronised: stamps disagree with the ground "
                                        "station's and other robots'",
                    "enable time sync: `sudo timedatectl set-ntp true` (chrony on Jetson), "
                    "or a local NTP server on the station network")]


def check_dds(environ: dict[str, str]) -> list[Finding]:
    """The Fast DDS profile, ROS_DOMAIN_ID and the discovery range."""
    out = []
    profile = environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
    if not profile:
        out.append(Finding("dds: profile", WARN, "FASTDDS_DEFAULT_PROFILES_FILE is not set: "
                                                 "Fast DDS's 512 KB shared memory drops "
                                                 "camera images",
                           "export FASTDDS_DEFAULT_PROFILES_FILE=<share>/config/fastdds.xml "
                           "(the ilrs runner and the launch files set it by default)"))
    else:
        try:
            root = ET.parse(profile).getroot()
        except FileNotFoundError:
            out.append(Finding("dds: profile", FAIL, f"{profile} does not exist",
                               "point FASTDDS_DEFAULT_PROFILES_FILE at an existing profile"))
        except (ET.ParseError, OSError) as exc:
            out.append(Finding("dds: profile", FAIL, f"{profile} is not valid XML ({exc})",
                               "fix the XML (compare config/fastdds.xml)"))
        else:
            tag = root.tag.rsplit("}", 1)[-1]
            if tag not in ("dds", "profiles"):
                out.append(Finding("dds: profile", FAIL, f"{profile}: root element <{tag}> "
                                                         "is not a Fast DDS profile",
                                   "the root must be <dds> or <profiles>"))
            else:
                out.append(Finding("dds: profile", OK, profile))
    domain = environ.get("ROS_DOMAIN_ID", "")
    if domain and (not domain.isdigit() or not 0 <= int(domain) <= 232):
        out.append(Finding("dds: ROS_DOMAIN_ID", FAIL, f"{domain!r} is not a domain id",
                           "use an integer 0..101 (or 215..232), the same on the rover and "
                           "the ground station"))
    else:
        out.append(Finding("dds: ROS_DOMAIN_ID", OK, domain or "0 (unset)"))
    rng = environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "")
    if rng and rng not in DISCOVERY_RANGES:
        out.append(Finding("dds: discovery range", FAIL, f"ROS_AUTOMATIC_DISCOVERY_RANGE={rng}",
                           f"one of {', '.join(DISCOVERY_RANGES)}"))
    elif rng in ("LOCALHOST", "OFF"):
        out.append(Finding("dds: discovery range", WARN, f"{rng}: the ground station and "
                                                         "other robots cannot see this rover",
                           "ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET on a rover that talks to "
                           "the station (and the radio's interface in the profile)"))
    else:
        out.append(Finding("dds: discovery range", OK, rng or "SUBNET (unset)"))
    if environ.get("ROS_LOCALHOST_ONLY"):
        out.append(Finding("dds: ROS_LOCALHOST_ONLY", WARN, "set, but ignored by this Fast "
                                                            "DDS (deprecated since Jazzy)",
                           "use ROS_AUTOMATIC_DISCOVERY_RANGE instead"))
    return out


def run_checks(opts: DoctorOptions) -> list[Finding]:
    """Every check; the findings in order."""
    env = dict(os.environ if opts.environ is None else opts.environ)
    findings: list[Finding] = []
    if not opts.ports:
        findings.append(Finding("ports", SKIP, "the stack names no serial port"))
    findings += [check_device(ref, opts.identity) for ref in opts.ports]
    findings += [check_device(ref, opts.identity) for ref in opts.cameras]
    findings += check_camera_access(opts.cameras, opts.identity)
    if opts.check_ros:
        findings += check_ros(env)
    if opts.check_clock:
        findings += check_clock()
    findings += check_dds(env)
    return findings


def exit_code(findings: Iterable[Finding], strict: bool = False) -> int:
    """1 when a check failed (or, with ``strict``, warned), else 0."""
    bad = {FAIL, WARN} if strict else {FAIL}
    return 1 if any(f.status in bad for f in findings) else 0
