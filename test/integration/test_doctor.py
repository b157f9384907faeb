"""`ilrs doctor` on real devices: a missing port is named, a port the user may not open is
named (checked on a pseudo-terminal's character device, both by mode bits for a given user
and by the kernel's own access check in a process that dropped to `nobody`), a port held by
another process names it, and the DDS and clock checks say what is wrong."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ilrs_robots.resources import config_path
from ilrs_robots.runner import cli, doctor
from ilrs_robots.runner.stacks import load_stack

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def pty_port() -> Iterator[str]:
    """A pseudo-terminal's slave device (a real character device), root:root 0600."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)
    try:
        yield path
    finally:
        os.close(slave)
        os.close(master)


def _stack(tmp_path: Path, port: str) -> Path:
    f = tmp_path / "bench.yaml"
    f.write_text(f"namespace: rover9\nnodes:\n  - executable: base_driver\n"
                 f"    modes: [real]\n    parameters: {{port: {port}}}\n")
    return f


def _doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(["doctor", "--no-ros", "--no-clock", *argv])
    return code, capsys.readouterr().out


def test_missing_port_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "ttyACM7")
    code, out = _doctor(capsys, "--stack", str(_stack(tmp_path, missing)))
    assert code == 1
    line = next(ln for ln in out.splitlines() if missing in ln)
    assert "[FAIL]" in line and "rover9/base_driver.port" in line and "does not exist" in line
    assert "99-ilrs.rules" in out  # and how to fix it


def test_a_usable_port_passes(tmp_path: Path, pty_port: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _doctor(capsys, "--stack", str(_stack(tmp_path, pty_port)))
    assert f"[  OK] port rover9/base_driver.port={pty_port}" in out
    assert not [ln for ln in out.splitlines() if ln.startswith("[FAIL]")]
    assert code == 0


def test_wrong_permission_is_named_for_the_user(pty_port: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _doctor(capsys, "--stack", "", "--port", pty_port, "--user", "nobody")
    assert code == 1
    line = next(ln for ln in out.splitlines() if pty_port in ln)
    assert "[FAIL]" in line and "permission denied for user 'nobody'" in line
    assert "crw-------" in line
    # group read/write for nobody's group makes it usable
    os.chown(pty_port, 0, NOBODY.pw_gid)
    os.chmod(pty_port, 0o660)
    code, out = _doctor(capsys, "--stack", "", "--port", pty_port, "--user", "nobody")
    assert f"[  OK] port --port.port={pty_port}" in out and code == 0


def _check_as_nobody(path: str) -> dict[str, str]:
    """check_device in a forked child that dropped to nobody (the kernel's access check)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            f = doctor.check_device(doctor.DeviceRef("bench", "port", path))
            os.write(w, json.dumps({"status": f.status, "message": f.message}).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_wrong_permission_as_an_unprivileged_process(pty_port: str) -> None:
    result = _check_as_nobody(pty_port)
    assert result["status"] == doctor.FAIL and "permission denied" in result["message"]
    os.chmod(pty_port, 0o666)
    assert _check_as_nobody(pty_port)["status"] == doctor.OK


def test_not_a_character_device(tmp_path: Path) -> None:
    f = tmp_path / "port"
    f.write_text("")
    result = doctor.check_device(doctor.DeviceRef("bench", "port", str(f)))
    assert result.status == doctor.FAIL and "regular file, not a character device" in \
        result.message


def test_port_held_by_another_process_names_it(pty_port: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(30)\n",
         pty_port], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = doctor.check_device(doctor.DeviceRef("bench", "port", pty_port))
        assert result.status == doctor.FAIL and f"pid {holder.pid}" in result.message
    finally:
        holder.kill()
        holder.wait()


def test_stack_devices_are_found() -> None:
    ports, cameras = doctor.devices_of_stack(load_stack("rover", "real"))
    assert ("rover1/base_driver", "port") in {(p.node, p.parameter) for p in ports}
    assert all(c.path.startswith("/dev/v4l/by-id/") for c in cameras) and len(cameras) == 3


def test_dds_settings(tmp_path: Path) -> None:
    good = doctor.check_dds({"FASTDDS_DEFAULT_PROFILES_FILE": str(config_path("fastdds.xml")),
                             "ROS_DOMAIN_ID": "42"})
    assert all(f.status == doctor.OK for f in good), good
    bad_xml = tmp_path / "profile.xml"
    bad_xml.write_text("<dds><profiles>")
    found = {f.check: f for f in doctor.check_dds({
        "FASTDDS_DEFAULT_PROFILES_FILE": str(bad_xml), "ROS_DOMAIN_ID": "rover",
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"})}
    assert found["dds: profile"].status == doctor.FAIL
    assert "not valid XML" in found["dds: profile"].message
    assert found["dds: ROS_DOMAIN_ID"].status == doctor.FAIL
    assert found["dds: discovery range"].status == doctor.WARN
    missing = doctor.check_dds({"FASTDDS_DEFAULT_PROFILES_FILE": str(tmp_path / "nope.xml")})
    assert missing[0].status == doctor.FAIL and "does not exist" in missing[0].message


def test_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.shutil, "which", lambda name: "/usr/bin/timedatectl")

    def answer(value: str):
        return lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=f"{value}\n")

    assert doctor.check_clock(answer("yes"))[0].status == doctor.OK
    unsynced = doctor.check_clock(answer("no"))[0]
    assert unsynced.status == doctor.WARN and "set-ntp" in unsynced.fix
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    assert doctor.check_clock(answer("yes"))[0].status == doctor.SKIP


def test_ros_check_reports_rmw() -> None:
    found = {f.check: f for f in doctor.check_ros({})}
    assert found["ros: rclpy"].status == doctor.OK
    assert found["ros: RMW"].message == "rmw_fastrtps_cpp"
    wrong = {f.check: f for f in doctor.check_ros({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"})}
    assert wrong["ros: RMW"].status == doctor.FAIL
