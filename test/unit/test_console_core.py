"""The ground console's pure parts: users, tokens, login limits, command validation and
life, the link model, and telemetry encoding."""

from __future__ import annotations

import json
import math
import random
from types import SimpleNamespace as Ns

import cv2
import numpy as np
import pytest

from ilrs_robots.console.auth import AuthError, LoginLimiter, TokenIssuer, bearer
from ilrs_robots.console.commands import (
    BUILDER_KINDS,
    ROVER_KINDS,
    CommandBook,
    CommandError,
    Limits,
    parse_command,
)
from ilrs_robots.console.link import DelayLine, LinkModel, LinkProfile
from ilrs_robots.console.telemetry import (
    CameraFrame,
    QualityControl,
    costmap_message,
    dose_map_message,
    pose_message,
)
from ilrs_robots.console.users import UsersFileError, UserStore, add_user, check_password


# -- users ---------------------------------------------------------------------------------------
def test_users_are_stored_with_salted_hashes_and_checked(tmp_path):
    path = tmp_path / "users.yaml"
    add_user(path, "ops", "operator", "correct horse")
    add_user(path, "eve", "viewer", "correct horse")
    text = path.read_text()
    assert "correct horse" not in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    store = UserStore.load(path)
    a, b = store.users["ops"].password, store.users["eve"].password
    assert a != b, "the same password must hash differently (salt)"
    assert store.authenticate("ops", "correct horse").role == "operator"
    assert store.authenticate("eve", "correct horse").role == "viewer"
    assert store.authenticate("ops", "wrong horse") is None
    assert store.authenticate("nobody", "correct horse") is None
    add_user(path, "ops", "viewer", "another secret")  # replaces
    assert UserStore.load(path).authenticate("ops", "another secret").role == "viewer"


@pytest.mark.parametrize("text, fault", [
    ("users: {}", "at least one user"),
    ("users: {ops: {role: admin, password: 'scrypt$1$1$1$a$b'}}", "role 'admin'"),
    ("users: {ops: {role: viewer, password: plain}}", "not a scrypt hash"),
    ("users: [", "cannot read"),
])
def test_a_malformed_users_file_is_refused_naming_the_fault(tmp_path, text, fault):
    path = tmp_path / "users.yaml"
    path.write_text(text)
    with pytest.raises(UsersFileError, match=fault):
        UserStore.load(path)
    with pytest.raises(UsersFileError, match="add-user"):
        UserStore.load(tmp_path / "missing.yaml")


def test_add_user_refuses_short_passwords_bad_roles_and_names(tmp_path):
    with pytest.raises(UsersFileError, match="at least"):
        add_user(tmp_path / "u.yaml", "ops", "operator", "short")
    with pytest.raises(UsersFileError, match="role"):
        add_user(tmp_path / "u.yaml", "ops", "root", "long enough")
    with pytest.raises(UsersFileError, match="user name"):
        add_user(tmp_path / "u.yaml", "a b", "viewer", "long enough")
    assert not (tmp_path / "u.yaml").exists()
    assert not check_password("x", "garbage")


# -- tokens and logins ---------------------------------------------------------------------------
def test_tokens_carry_their_user_expire_and_cannot_be_forged():
    now = [1000.0]
    issuer = TokenIssuer(ttl=60.0, secret=b"k" * 32, clock=lambda: now[0])
    token, expires = issuer.issue("ops", "operator")
    assert expires == 1060.0
    claims = issuer.check(token)
    assert (claims.user, claims.role) == ("ops", "operator")
    payload, signature = token.split(".")
    body = json.loads(__import__("base64").urlsafe_b64decode(payload + "=="))
    body["r"] = "operator"
    body["u"] = "eve"
    forged = __import__("base64").urlsafe_b64encode(json.dumps(body).encode()).decode()
    with pytest.raises(AuthError, match="signature"):
        issuer.check(f"{forged.rstrip('=')}.{signature}")
    with pytest.raises(AuthError, match="signature"):
        TokenIssuer(60.0, secret=b"j" * 32, clock=lambda: now[0]).check(token)
    for junk in (None, "", "abc", "a.b.c", 42, "x" * 2000):
        with pytest.raises(AuthError):
            issuer.check(junk)
    now[0] = 1060.5
    with pytest.raises(AuthError, match="expired"):
        issuer.check(token)
    assert bearer("Bearer abc") == "abc" and bearer("Basic abc") is None and bearer(None) is None


def test_failed_logins_are_limited_per_user_and_address():
    now = [0.0]
    limiter = LoginLimiter(attempts=3, window=60.0, address_attempts=5,
                           clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("ops", "1.2.3.4") == 0
        limiter.failed("ops", "1.2.3.4")
    assert limiter.retry_after("ops", "1.2.3.4") == pytest.approx(60.0)
    assert limiter.retry_after("ops", "5.6.7.8") == 0, "guesses elsewhere lock nobody out"
    assert limiter.retry_after("eve", "1.2.3.4") == 0, "other names from there: not yet"
    limiter.failed("eve", "1.2.3.4")
    limiter.failed("bob", "1.2.3.4")
    assert limiter.retry_after("carol", "1.2.3.4") > 0, "an address trying many names"
    now[0] = 61.0
    assert limiter.retry_after("ops", "1.2.3.4") == 0


# -- commands ------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, fault", [
    ({"kind": "fly"}, "unknown kind"),
    ({"distance": 2.0}, "unknown kind"),
    ([1, 2], "JSON object"),
    ({"kind": "drive"}, "needs \\['distance'\\]"),
    ({"kind": "drive", "distance": "2"}, "must be a number"),
    ({"kind": "drive", "distance": True}, "must be a number"),
    ({"kind": "drive", "distance": float("nan")}, "finite"),
    ({"kind": "drive", "distance": float("inf")}, "finite"),
    ({"kind": "drive", "distance": 50.0}, "out of range"),
    ({"kind": "drive", "distance": 0.0}, "out of range"),
    ({"kind": "drive", "distance": 2.0, "speed": 3.0}, "speed 3 m/s is out of range"),
    ({"kind": "drive", "distance": 2.0, "extra": 1}, "unknown field"),
    ({"kind": "turn", "angle_deg": 720}, "out of range"),
    ({"kind": "goto", "x": 1.0}, "needs \\['y'\\]"),
    ({"kind": "velocity", "linear": 0.2, "angular": 0.0, "duration": 60}, "duration"),
    ({"kind": "velocity", "linear": 2.0, "angular": 0.0, "duration": 1}, "linear"),
])
def test_malformed_commands_are_refused_with_a_reason(body, fault):
    with pytest.raises(CommandError, match=fault):
        parse_command(body, ROVER_KINDS, Limits())


def test_valid_commands_parse_to_their_numbers():
    assert parse_command({"kind": "drive", "distance": 2}, ROVER_KINDS, Limits()) == \
        ("drive", {"distance": 2.0})
    assert parse_command({"kind": "turn", "angle_deg": -90}, ROVER_KINDS, Limits())[1] == \
        {"angle_deg": -90.0}
    assert parse_command({"kind": "estop"}, BUILDER_KINDS, Limits()) == ("estop", {})
    with pytest.raises(CommandError, match="takes no 'drive'"):
        parse_command({"kind": "drive", "distance": 1}, BUILDER_KINDS, Limits())


def test_a_command_moves_only_forwards_and_everything_is_audited(tmp_path):
    changes = []
    book = CommandBook(tmp_path / "audit.jsonl", on_change=lambda c: changes.append(c.state))
    c = book.create("rover1", "drive", {"distance": 2.0}, "ops")
    assert book.update(c.id, "executing") is not None
    assert book.update(c.id, "received") is None, "a late 'received' must not go back"
    assert book.update(c.id, "done") is not None
    assert book.update(c.id, "failed", "late") is None, "a terminal state is final"
    assert [s for s, _ in c.history] == ["sent", "executing", "done"]
    assert changes == ["sent", "executing", "done"]
    events = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["command", "state", "state"]
    assert events[0]["user"] == "ops" and events[0]["params"] == {"distance": 2.0}
    assert book.get(c.id).to_json()["history"][-1]["state"] == "done"


# -- the link ------------------------------------------------------------------------------------
def test_the_link_delays_loses_and_blacks_out_as_profiled():
    model = LinkModel(LinkProfile(delay=1.3, jitter=0.2, loss=0.3, blackout_period=100.0,
                                  blackout_duration=10.0), start=0.0, rng=random.Random(1))
    arrivals = [model.telemetry_arrival(5.0) for _ in range(2000)]
    got = [a for a in arrivals if a is not None]
    assert 0.6 < len(got) / len(arrivals) < 0.8, "about 30 % lost"
    assert all(6.3 <= a <= 6.5 for a in got)
    assert model.telemetry_arrival(95.0) is None, "blackout from 90 to 100 s"
    assert model.blackout_ends(95.0) == pytest.approx(100.0)
    commands = [model.command_arrival(5.0) for _ in range(500)]
    assert min(commands) >= 6.3 and max(commands) > 8.0, "lost commands are resent"
    assert min(model.command_arrival(95.0) for _ in range(50)) >= 101.3, "held to the end"
    ordered = LinkModel(LinkProfile(delay=1.3, jitter=0.5), start=0.0, rng=random.Random(2))
    arrivals = [ordered.command_arrival(10.0 + 0.01 * i) for i in range(200)]
    assert arrivals == sorted(arrivals), "reliable messages arrive in the order sent"
    assert not model.state(95.0)["up"] and model.state(5.0)["up"]
    with pytest.raises(ValueError, match="loss"):
        LinkProfile(loss=1.0)
    with pytest.raises(ValueError, match="shorter"):
        LinkProfile(blackout_period=10.0, blackout_duration=10.0)


def test_the_delay_line_runs_callbacks_in_time_order():
    import threading
    import time

    done = threading.Event()
    seen: list[int] = []
    line = DelayLine()
    now = time.time()
    line.at(now + 0.3, lambda: (seen.append(3), done.set()))
    line.at(now + 0.1, lambda: seen.append(1))
    line.at(now + 0.2, lambda: 1 / 0)  # a failing delivery does not end the line
    line.at(now + 0.15, lambda: seen.append(2))
    assert done.wait(10.0)
    line.stop()
    assert seen == [1, 2, 3]


# -- telemetry -----------------------------------------------------------------------------------
def test_pose_and_costmap_messages():
    odom = Ns(header=Ns(frame_id="map"), pose=Ns(pose=Ns(
        position=Ns(x=1.23456, y=-2.0, z=0.0),
        orientation=Ns(x=0.0, y=0.0, z=math.sin(0.25), w=math.cos(0.25)))))
    m = pose_message("rover1", odom, 12.0)
    assert (m["x"], m["y"], m["yaw"]) == (1.235, -2.0, pytest.approx(0.5, abs=1e-3))
    data = np.zeros((4, 6), np.int8)
    data[0, 0] = 100  # lowest row (y0): lethal
    data[3, 5] = -1   # top row: unknown
    grid = Ns(info=Ns(width=6, height=4, resolution=0.5, origin=Ns(position=Ns(x=-1.0, y=2.0))),
              data=data.ravel().tolist())
    c = costmap_message("rover1", grid)
    assert (c["width"], c["height"], c["origin"]) == (6, 4, [-1.0, 2.0])
    png = __import__("base64").b64decode(c["image"].split(",", 1)[1])
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img.shape == (4, 6, 4)
    assert img[3, 0, 3] > 0 and img[3, 0, 2] > 200, "lethal drawn red at the bottom left"
    assert img[0, 5, 3] > 0 and img[1, 1, 3] == 0, "unknown drawn, free transparent"


def test_a_dose_map_cloud_becomes_a_picture_over_its_rectangle():
    """radiation_mapper's PointCloud2 (one point per cell, row by row): a PNG, hot cells
    red and cold ones green, with the grid's origin and resolution; a cloud that is not a
    grid is refused."""
    from ilrs_robots.nodes.messages import point_cloud
    xs, ys = np.arange(3) * 2.0 + 1.0, np.arange(2) * 2.0 - 3.0  # cells of 2 m
    gx, gy = np.meshgrid(xs, ys)
    dose = np.array([[0.1, 1.0, 1000.0], [0.1, 10.0, 100.0]])
    fields = ("x", "y", "z", "dose_rate", "dose_rate_stddev")
    cloud = point_cloud(None, "map", np.column_stack(
        [gx.ravel(), gy.ravel(), np.zeros(6), dose.ravel(), 0.1 * dose.ravel()]), fields)
    m = dose_map_message("rover1", cloud)
    assert (m["width"], m["height"], m["resolution"]) == (3, 2, 2.0)
    assert m["origin"] == [0.0, -4.0] and m["max"] == pytest.approx(1000.0)
    png = __import__("base64").b64decode(m["image"].split(",", 1)[1])
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img.shape == (2, 3, 4)
    hot, cold = img[1, 2], img[1, 0]  # the bottom row is the lowest y
    assert hot[2] > 200 and hot[1] < 80 and cold[1] > 200 and cold[2] < 80
    assert np.all(img[:, :, 3] > 0)
    partial = point_cloud(None, "map", np.column_stack(
        [gx.ravel()[:5], gy.ravel()[:5], np.zeros(5), dose.ravel()[:5], dose.ravel()[:5]]),
        fields)
    with pytest.raises(ValueError, match="not a full grid"):
        dose_map_message("rover1", partial)
    with pytest.raises(ValueError, match="needs float32 fields"):
        dose_map_message("rover1", point_cloud(None, "map", np.zeros((4, 3))))


def test_camera_frames_are_reencoded_per_quality_and_quality_adapts():
    pixels = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    jpeg = cv2.imencode(".jpg", pixels)[1].tobytes()
    frame = CameraFrame("rover1", jpeg, 1.0)
    low, high = frame.message(25), frame.message(85)
    assert len(low["image"]) < len(high["image"])
    assert frame.message(25) is low, "each quality is encoded once"
    with pytest.raises(ValueError, match="not a JPEG"):
        CameraFrame("rover1", b"junk", 1.0).message(50)
    q = QualityControl(max_rate=10.0)
    start = q.quality
    q.sent(0.2)
    assert q.quality < start, "a slow send lowers the quality"
    for _ in range(10):
        q.sent(0.001)
    assert q.quality == 85
