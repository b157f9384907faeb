"""Session tokens and login rate limiting of the ground console.

A token is `<payload>.<signature>`: the payload (base64url JSON: user, role, expiry, nonce)
signed with HMAC-SHA256 under a secret the console draws at start, so tokens die with the
console process, expire after `ttl` seconds, and a forged or altered token fails the check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class AuthError(Exception):
    """A token that is missing, malformed, forged or expired; the message says which."""


@dataclass(frozen=True)
class Claims:
    """Who a valid token speaks for."""

    user: str
    role: str
    expires: float


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues and checks signed, expiring tokens."""

    def __init__(self, ttl: float, secret: bytes | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self._secret = secret if secret is not None else os.urandom(32)
        self._clock = clock

    def _sign(self, payload: str) -> str:
        return _b64e(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, user: str, role: str) -> tuple[str, float]:
        """A new token for `user` and its expiry (epoch seconds)."""
        expires = self._clock() + self.ttl
        body = {"u": user, "r": role, "exp": round(expires, 3), "n": _b64e(os.urandom(9))}
        payload = _b64e(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}", expires

    def check(self, token: object) -> Claims:
        """The claims of a valid token; AuthError otherwise."""
        if not isinstance(token, str) or token.count(".") != 1 or len(token) > 1024:
            raise AuthError("malformed token")
        payload, signature = token.split(".")
        if not hmac.compare_digest(self._sign(payload), signature):
            raise AuthError("invalid token signature")
        try:
            body = json.loads(_b64d(payload))
            claims = Claims(str(body["u"]), str(body["r"]), float(body["exp"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError("malformed token") from exc
        if claims.expires <= self._clock():
            raise AuthError("token expired: log in again")
        return claims


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class LoginLimiter:
    """At most `attempts` failed logins for one user name from one address, and
    `address_attempts` from one address for any names, in `window` s: guesses at one name
    are stopped early without locking the operator out from elsewhere, and an address that
    tries many names is stopped too."""

    def __init__(self, attempts: int = 5, window: float = 60.0, address_attempts: int = 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = {"u": attempts, "a": address_attempts}
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    @staticmethod
    def _keys(user: str, address: str) -> tuple[str, str]:
        return f"u:{user}|{address}", f"a:{address}"

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, user: str, address: str) -> float:
        """Seconds to wait before another attempt is heard; 0 if one may be made now."""
        waits = [0.0]
        for key in self._keys(user, address):
            failures = self._recent(key)
            if len(failures) >= self.limits[key[0]]:
                waits.append(failures[0] + self.window - self._clock())
        return max(waits)

    def failed(self, user: str, address: str) -> None:
        """Record a failed attempt."""
        now = self._clock()
        for key in self._keys(user, address):
            self._recent(key).append(now)
        if len(self._failures) > 10000:  # forget idle keys rather than grow without bound
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]

    def succeeded(self, user: str, address: str) -> None:
        """A right password clears the user's failures there (not the address's)."""
        self._failures.pop(self._keys(user, address)[0], None)
