"""A ground_console process for tests, with a users file, and a small HTTP client for it."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ilrs_robots.console.users import add_user

USERS = {"ops": ("operator", "operator-pass"), "eve": ("viewer", "viewer-pass1")}


def write_users(folder: Path) -> Path:
    """A users file with an operator (ops) and a viewer (eve)."""
    path = folder / "users.yaml"
    for name, (role, password) in USERS.items():
        add_user(path, name, role, password)
    return path


def console_url(log: Path, timeout: float = 60.0) -> str:
    """The console's address, read from its log once it listens (port 0: any free port)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        found = re.search(r"ground console on (http://[\d.]+:\d+)/", text)
        if found:
            return found.group(1)
        if "configuration error" in text:
            raise AssertionError(f"the console did not start:\n{text}")
        time.sleep(0.1)
    raise AssertionError(f"the console did not start in {timeout:.0f} s:\n"
                         + (log.read_text(errors="replace") if log.exists() else "(no log)"))


def request(url: str, method: str = "GET", body: Any = None, token: str | None = None,
            raw: bytes | None = None) -> tuple[int, Any]:
    """(status, JSON body) of one API call."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def login(base: str, user: str) -> str:
    """A token for one of USERS."""
    status, body = request(f"{base}/api/login", "POST",
                           {"user": user, "password": USERS[user][1]})
    assert status == 200, body
    return body["token"]
