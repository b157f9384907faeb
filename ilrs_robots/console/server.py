"""The ground console's web server (aiohttp): the page, the HTTP API and the telemetry socket.

    POST /api/login                          {"user", "password"} -> {"token", "role", "expires"}
    GET  /api/robots                         the robots and the link
    POST /api/robots/<robot>/commands        a bounded command -> 202 {"id"}
    GET  /api/robots/<robot>/commands        the robot's recent commands
    GET  /api/robots/<robot>/commands/<id>   one command's life
    POST /api/estop                          estop latched on every robot -> 202 {"ids"}
    GET  /ws                                 telemetry; first message {"type": "auth", "token"}

Every /api call but login needs `Authorization: Bearer <token>`: 401 without a valid one, 403
for a viewer's command. A malformed command is 400 with {"error"} and never reaches a topic.
The server runs its own asyncio loop on a thread; the ROS side talks to it through a `Bridge`
(commands out) and `publish` / `publish_frame` (telemetry in), both thread-safe.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from ilrs_robots.console.auth import AuthError, Claims, LoginLimiter, TokenIssuer, bearer
from ilrs_robots.console.commands import (
    BUILDER_KINDS,
    ROVER_KINDS,
    Command,
    CommandBook,
    CommandError,
    Limits,
    parse_command,
)
from ilrs_robots.console.telemetry import CameraFrame, QualityControl
from ilrs_robots.console.users import UserStore

STATIC_DIR = Path(__file__).resolve().parent / "static"
AUTH_WAIT = 10.0         # s for a new socket to authenticate
MAX_BODY = 64 * 1024     # bytes of a request or socket message
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; style-src 'self'; "
                               "script-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Bridge(Protocol):
    """What the server needs from the ROS side."""

    def robots(self) -> list[dict]:
        """[{"name", "kind"}] of the robots this console commands."""

    def link_state(self) -> dict:
        """The link message (up, delay, ...)."""

    def submit(self, robot: str, kind: str, params: dict, user: str) -> Command:
        """Record a valid command and send it over the link."""


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


class _Viewer:
    """One authenticated socket: the newest message per key waits to be sent."""

    def __init__(self, ws: web.WebSocketResponse, claims: Claims, max_rate: float) -> None:
        self.ws = ws
        self.claims = claims
        self.pending: dict[tuple, Any] = {}
        self.wake = asyncio.Event()
        self.quality = QualityControl(max_rate)

    def offer(self, key: tuple, item: Any) -> None:
        self.pending.pop(key, None)  # re-inserted: the newest goes last
        self.pending[key] = item
        self.wake.set()


class ConsoleServer:
    """The console's HTTP and WebSocket server on its own thread and event loop."""

    def __init__(self, bridge: Bridge, users: UserStore, tokens: TokenIssuer,
                 book: CommandBook, *, host: str = "127.0.0.1", port: int = 8080,
                 limits: Limits | None = None, limiter: LoginLimiter | None = None,
                 camera_rate: float = 10.0, log: Callable[[str], None] = print,
                 static_dir: Path = STATIC_DIR) -> None:
        self.bridge = bridge
        self.users = users
        self.tokens = tokens
        self.book = book
        self.host, self.port = host, port
        self.limits = limits or Limits()
        self.limiter = limiter or LoginLimiter()
        self.camera_rate = camera_rate
        self.log = log
        self.static_dir = static_dir
        self._latest: dict[tuple, Any] = {}
        self._viewers: set[_Viewer] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    # -- life ----------------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> None:
        """Bind and serve; OSError (naming the address) if the port cannot be had."""
        ready: dict[str, Any] = {}
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready, started))
            finally:
                started.set()
                loop.close()

        self._thread = threading.Thread(target=run, name="console-http", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise OSError(f"the console's server did not start within {timeout:.0f} s")
        if "error" in ready:
            raise OSError(f"cannot listen on {self.host}:{self.port}: {ready['error']}")

    async def _serve(self, ready: dict, started: threading.Event) -> None:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._headers])
        app.add_routes([
            web.get("/", self._index),
            web.static("/static", self.static_dir, follow_symlinks=False),
            web.post("/api/login", self._login),
            web.get("/api/robots", self._robots),
            web.post("/api/robots/{robot}/commands", self._post_command),
            web.get("/api/robots/{robot}/commands", self._list_commands),
            web.get("/api/robots/{robot}/commands/{id}", self._get_command),
            web.post("/api/estop", self._estop_all),
            web.get("/ws", self._socket),
        ])
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            ready["error"] = exc.strerror or str(exc)
            await self._runner.cleanup()
            return
        if self._runner.addresses:  # the bound port, when 0 was asked for
            self.port = self._runner.addresses[0][1]
        self._stopped = asyncio.Event()
        started.set()
        await self._stopped.wait()
        for viewer in list(self._viewers):
            with suppress(Exception):
                await viewer.ws.close(code=1001, message=b"console stopping")
        await self._runner.cleanup()

    def stop(self) -> None:
        """Close every socket and stop serving."""
        if self._loop is not None and self._stopped is not None and not self._loop.is_closed():
            with suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    # -- telemetry in (any thread) ---------------------------------------------------------------
    def publish(self, message: dict, key: tuple | None = None) -> None:
        """Send a telemetry message to every viewer (the newest per key, if they lag)."""
        key = key or (message["type"], message.get("robot"), message.get("id"))
        self._post(key, message)

    def publish_frame(self, frame: CameraFrame) -> None:
        """Offer a camera frame; each viewer gets the newest at its own quality."""
        self._post(("camera", frame.robot, None), frame)

    def _post(self, key: tuple, item: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def deliver() -> None:
            self._latest[key] = item
            for viewer in self._viewers:
                viewer.offer(key, item)

        with suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(deliver)

    # -- HTTP ----------------------------------------------------------------------------------
    @web.middleware
    async def _headers(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if request.path.startswith("/api/"):
                response = _error(exc.status, exc.reason)
            else:
                raise
        except Exception as exc:  # noqa: BLE001 - logged; the client gets a JSON 500
            self.log(f"console: {request.method} {request.path} failed: {exc!r}")
            response = _error(500, "internal error (logged by the console)")
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(self.static_dir / "index.html")

    def _claims(self, request: web.Request) -> Claims:
        token = bearer(request.headers.get("Authorization"))
        if token is None:
            raise AuthError("missing bearer token")
        return self.tokens.check(token)

    async def _json(self, request: web.Request) -> Any:
        try:
            return await request.json(loads=json.loads)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"the body is not JSON: {exc}") from exc

    async def _login(self, request: web.Request) -> web.Response:
        address = request.remote or "?"
        try:
            body = await self._json(request)
        except CommandError as exc:
            return _error(400, str(exc))
        user, password = (body.get("user"), body.get("password")) if isinstance(body, dict) \
            else (None, None)
        if not isinstance(user, str) or not isinstance(password, str) or len(password) > 1024:
            return _error(400, "expected {\"user\": string, \"password\": string}")
        wait = self.limiter.retry_after(user, address)
        if wait > 0:
            self.book.audit("login_refused", user=user, address=address, reason="rate limit")
            return _error(429, f"too many failed logins: try again in {wait:.0f} s",
                          **{"Retry-After": str(max(1, round(wait)))})
        found = await asyncio.get_running_loop().run_in_executor(
            None, self.users.authenticate, user, password)
        if found is None:
            self.limiter.failed(user, address)
            self.book.audit("login_failed", user=user, address=address)
            return _error(401, "wrong user or password")
        self.limiter.succeeded(user, address)
        token, expires = self.tokens.issue(found.name, found.role)
        self.book.audit("login", user=found.name, role=found.role, address=address)
        return web.json_response({"token": token, "role": found.role,
                                  "expires": round(expires, 3)})

    def _robot_kinds(self) -> dict[str, tuple[str, ...]]:
        return {r["name"]: ROVER_KINDS if r.get("kind") == "rover" else BUILDER_KINDS
                for r in self.bridge.robots()}

    async def _robots(self, request: web.Request) -> web.Response:
        try:
            self._claims(request)
        except AuthError as exc:
            return _error(401, str(exc))
        return web.json_response({"robots": self.bridge.robots(),
                                  "link": self.bridge.link_state()})

    def _operator(self, request: web.Request) -> Claims | web.Response:
        try:
            claims = self._claims(request)
        except AuthError as exc:
            return _error(401, str(exc))
        if claims.role != "operator":
            self.book.audit("command_forbidden", user=claims.user, role=claims.role,
                            path=request.path)
            return _error(403, f"{claims.user} is a {claims.role}: only operators command")
        return claims

    async def _post_command(self, request: web.Request) -> web.Response:
        claims = self._operator(request)
        if isinstance(claims, web.Response):
            return claims
        robot = request.match_info["robot"]
        kinds = self._robot_kinds()
        try:
            if robot not in kinds:
                raise CommandError(f"unknown robot {robot!r}: one of {sorted(kinds)}")
            kind, params = parse_command(await self._json(request), kinds[robot], self.limits)
        except CommandError as exc:
            self.book.audit("command_refused", user=claims.user, robot=robot, reason=str(exc))
            return _error(400, str(exc))
        command = self.bridge.submit(robot, kind, params, claims.user)
        return web.json_response({"id": command.id}, status=202)

    async def _estop_all(self, request: web.Request) -> web.Response:
        claims = self._operator(request)
        if isinstance(claims, web.Response):
            return claims
        ids = [self.bridge.submit(name, "estop", {}, claims.user).id
               for name in self._robot_kinds()]
        return web.json_response({"ids": ids}, status=202)

    def _viewer_of(self, request: web.Request) -> web.Response | None:
        try:
            self._claims(request)
        except AuthError as exc:
            return _error(401, str(exc))
        if request.match_info["robot"] not in self._robot_kinds():
            return _error(404, f"unknown robot {request.match_info['robot']!r}")
        return None

    async def _list_commands(self, request: web.Request) -> web.Response:
        refused = self._viewer_of(request)
        if refused is not None:
            return refused
        robot = request.match_info["robot"]
        return web.json_response({"commands": [c.to_json() for c in self.book.recent(robot)]})

    async def _get_command(self, request: web.Request) -> web.Response:
        refused = self._viewer_of(request)
        if refused is not None:
            return refused
        command = self.book.get(request.match_info["id"])
        if command is None or command.robot != request.match_info["robot"]:
            return _error(404, "no such command")
        return web.json_response(command.to_json())

    # -- WebSocket -----------------------------------------------------------------------------
    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        try:
            claims = await self._authenticate(ws)
        except (AuthError, asyncio.TimeoutError) as exc:
            reason = str(exc) or "no auth message in time"
            await ws.close(code=4401, message=reason.encode()[:120])
            return ws
        viewer = _Viewer(ws, claims, self.camera_rate)
        await ws.send_json({"type": "hello", "user": claims.user, "role": claims.role,
                            "robots": self.bridge.robots(), "link": self.bridge.link_state(),
                            "expires": claims.expires})
        self._viewers.add(viewer)
        for key, item in self._latest.items():
            viewer.offer(key, item)
        sender = asyncio.create_task(self._send_to(viewer))
        try:
            await self._listen(viewer)
        finally:
            self._viewers.discard(viewer)
            sender.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await sender
        return ws

    async def _authenticate(self, ws: web.WebSocketResponse) -> Claims:
        msg = await asyncio.wait_for(ws.receive(), AUTH_WAIT)
        if msg.type != WSMsgType.TEXT:
            raise AuthError("expected an auth message")
        try:
            body = json.loads(msg.data)
        except ValueError as exc:
            raise AuthError("malformed auth message") from exc
        if not isinstance(body, dict) or body.get("type") != "auth":
            raise AuthError("the first message must be {\"type\": \"auth\", \"token\": ...}")
        return self.tokens.check(body.get("token"))

    async def _listen(self, viewer: _Viewer) -> None:
        """Read the viewer's messages: pings are answered, anything else refused."""
        ws = viewer.ws
        while not ws.closed:
            try:
                msg = await asyncio.wait_for(ws.receive(), 5.0)
            except asyncio.TimeoutError:
                msg = None
            if viewer.claims.expires <= time.time():
                await ws.close(code=4401, message=b"token expired: log in again")
                return
            if msg is None:
                continue
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                return
            if msg.type != WSMsgType.TEXT:
                await ws.send_json({"type": "error", "error": "binary messages are refused"})
                continue
            try:
                body = json.loads(msg.data)
            except ValueError:
                await ws.send_json({"type": "error", "error": "malformed message: not JSON"})
                continue
            if isinstance(body, dict) and body.get("type") == "ping":
                await ws.send_json({"type": "pong", "t": body.get("t")})
                continue
            await ws.send_json({"type": "error", "error": "refused: the socket is read-only "
                                "(commands go through POST /api/robots/<robot>/commands)"})

    async def _send_to(self, viewer: _Viewer) -> None:
        loop = asyncio.get_running_loop()
        ws = viewer.ws
        while not ws.closed:
            await viewer.wake.wait()
            viewer.wake.clear()
            while viewer.pending and not ws.closed:
                key = next(iter(viewer.pending))
                item = viewer.pending.pop(key)
                if isinstance(item, CameraFrame):
                    started = time.monotonic()
                    try:
                        message = await loop.run_in_executor(None, item.message,
                                                             viewer.quality.quality)
                    except ValueError as exc:
                        self.log(f"console: camera frame dropped: {exc}")
                        continue
                    await ws.send_str(json.dumps(message))
                    viewer.quality.sent(time.monotonic() - started)
                else:
                    await ws.send_str(json.dumps(item))
