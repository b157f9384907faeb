"""Console users: a YAML file of names, roles and salted scrypt password hashes.

    users:
      alice: {role: operator, password: "scrypt$16384$8$1$<salt b64>$<hash b64>"}

Viewers watch; operators command. `ilrs console add-user NAME --role ROLE --users FILE` adds
or replaces a user (the password read from stdin); the file is written atomically, mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

ROLES = ("viewer", "operator")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB and tens of ms per guess
MIN_PASSWORD = 8


class UsersFileError(ValueError):
    """A users file that cannot be read or is malformed; the message names the fault."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A salted scrypt hash of `password`, with its parameters, as one string."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """Whether `password` matches a hash made by hash_password (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt, validate=True),
                             n=int(n), r=int(r), p=int(p), dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@dataclass(frozen=True)
class User:
    """One console user."""

    name: str
    role: str
    password: str  # the stored hash, never the password


_DUMMY_HASH = hash_password("not a password", salt=b"\0" * 16)


class UserStore:
    """The users of a console, loaded from their YAML file."""

    def __init__(self, users: dict[str, User]) -> None:
        self.users = users

    @classmethod
    def load(cls, path: str | Path) -> UserStore:
        """Read and check a users file; UsersFileError names what is wrong."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise UsersFileError(
                f"no users file at {path}: create one with `ilrs console add-user NAME "
                f"--role operator --users {path}`")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsersFileError(f"{path}: cannot read it: {exc}") from exc
        entries = data.get("users") if isinstance(data, dict) else None
        if not isinstance(entries, dict) or not entries:
            raise UsersFileError(f"{path}: expected a mapping `users:` with at least one user")
        users = {}
        for name, entry in entries.items():
            if not isinstance(entry, dict):
                raise UsersFileError(f"{path}: user {name!r}: expected role and password")
            role, stored = entry.get("role"), entry.get("password")
            if role not in ROLES:
                raise UsersFileError(f"{path}: user {name!r}: role {role!r} is not one of "
                                     f"{list(ROLES)}")
            if not isinstance(stored, str) or not stored.startswith("scrypt$"):
                raise UsersFileError(f"{path}: user {name!r}: password is not a scrypt hash "
                                     "(use `ilrs console add-user`)")
            users[str(name)] = User(str(name), role, stored)
        return cls(users)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is right, else None (as slow for unknown names)."""
        user = self.users.get(name)
        if user is None:
            check_password(password, _DUMMY_HASH)
            return None
        return user if check_password(password, user.password) else None


def add_user(path: str | Path, name: str, role: str, password: str) -> None:
    """Add or replace a user in a users file (created if missing), atomically, mode 0600."""
    if role not in ROLES:
        raise UsersFileError(f"role {role!r} is not one of {list(ROLES)}")
    if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise UsersFileError(f"user name {name!r}: use letters, digits, '-', '_' and '.'")
    if len(password) < MIN_PASSWORD:
        raise UsersFileError(f"the password must have at least {MIN_PASSWORD} characters")
    path = Path(path).expanduser()
    entries: dict = {}
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UsersFileError(f"{path}: cannot read it: {exc}") from exc
        entries = dict(data.get("users") or {}) if isinstance(data, dict) else {}
    entries[name] = {"role": role, "password": hash_password(password)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump({"users": entries}, out, sort_keys=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
