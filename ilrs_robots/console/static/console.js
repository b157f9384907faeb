// ILRS ground console: the page. Plain ES2020, no framework, no build, no outside request.
//
// Talks to its own server only: POST /api/login, GET /api/robots, POST /api/robots/<r>/commands,
// POST /api/estop, GET /api/robots/<r>/commands/<id>, and the WebSocket /ws (auth first).
// Everything the server sends is data: it is written with textContent, never as HTML, and only
// data:image URLs are put into images.

"use strict";

const $ = (id) => document.getElementById(id);

const FINAL_STATES = new Set(["done", "refused", "failed", "cancelled", "rejected"]);
const LEVELS = ["OK", "WARN", "ERROR", "STALE"];
const LEVEL_RANK = { 2: 0, 3: 1, 1: 2, 0: 3 }; // worst first: ERROR, STALE, WARN, OK
const PALETTE = ["#4fc3f7", "#ffb74d", "#ba68c8", "#81c784", "#f06292", "#a1887f"];
// what the console lets each kind of robot do from the command panel (the server's lists)
const PANEL_KINDS = { rover: ["drive", "turn", "goto", "velocity", "waypoints", "inspect"],
  builder: ["print"] };
const BUTTONS = { rover: ["cmd-stop", "cmd-cancel"], builder: ["cmd-pause", "cmd-resume",
  "cmd-cancel"] };
const FOOTPRINTS = { rover: [1.6, 1.3], builder: [2.2, 1.8] }; // length, width in metres
const TRACK_MAX = 6000; // points kept per robot
const DOSE_MAX = 4000; // dose samples kept per robot
const COMMANDS_MAX = 200; // rows kept in the command list
const SESSION_KEY = "ilrs.console.session";

// ---------------------------------------------------------------------------------------------
// State

const S = {
  token: null,
  user: null,
  role: null,
  expires: null, // ms since epoch, or null
  expiryTimer: null,
  robots: new Map(), // name -> robot record (see ensureRobot)
  selected: null,
  link: null,
  ws: null,
  wsAttempt: 0,
  wsState: "offline",
  wsLastMessage: 0,
  wsRtt: null, // ms of the last ping to the console (not the robots' link)
  reconnectAt: 0,
  reconnectTimer: null,
  commands: new Map(), // id -> command record
  diagnostics: new Map(), // status name -> {name, level, message, hardware_id, seen}
  view: { cx: 0, cy: 0, scale: 40, fitted: false, w: 0, h: 0, dpr: 1 },
  sending: false,
  waypoints: [], // [[x, y], ...] of the waypoints command being prepared
};

function ensureRobot(name, kind) {
  let r = S.robots.get(name);
  if (!r) {
    r = {
      name,
      kind: kind || "rover",
      color: PALETTE[S.robots.size % PALETTE.length],
      pose: null,
      poseSeen: 0,
      track: [],
      plan: [],
      costmap: null,
      costmapSeq: 0,
      doseMap: null,
      doseMapSeq: 0,
      camera: null,
      cameraTimes: [],
      base: null,
      radiation: null,
      doses: [],
    };
    S.robots.set(name, r);
    robotsChanged();
  } else if (kind && r.kind !== kind) {
    r.kind = kind;
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const now = () => Date.now() / 1000;
const finite = (v) => typeof v === "number" && Number.isFinite(v);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function fmtClock(t) {
  // t: seconds since epoch -> "HH:MM:SS.d" (UTC)
  if (!finite(t)) return "?";
  const d = new Date(t * 1000);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}` +
    `.${Math.floor(d.getUTCMilliseconds() / 100)}`;
}

function fmtAge(s) {
  if (!finite(s)) return "?";
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  return `${Math.round(s / 60)} min`;
}

function fmtNum(v, digits = 2) {
  return finite(v) ? fixed(v, digits) : "?";
}

// toFixed without a "-0" for what rounds to zero
function fixed(v, digits) {
  const s = v.toFixed(digits);
  return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s;
}

const deg = (rad) => (rad * 180) / Math.PI;
const rad = (d) => (d * Math.PI) / 180;
const wrap = (a) => Math.atan2(Math.sin(a), Math.cos(a));

function isImageData(s, types) {
  return typeof s === "string" && types.some((t) => s.startsWith(`data:image/${t};base64,`));
}

function parseExpiry(v) {
  if (finite(v)) return v > 1e12 ? v : v * 1000; // ms or s since epoch
  if (typeof v === "string" && v) {
    const n = Number(v);
    if (Number.isFinite(n)) return parseExpiry(n);
    const t = Date.parse(v);
    if (Number.isFinite(t)) return t;
  }
  return null;
}

function doseColor(rate) {
  // µSv/h on a log scale: 0.1 green .. 1000 red
  if (!finite(rate)) return "#777";
  const f = Math.min(1, Math.max(0, (Math.log10(Math.max(rate, 1e-3)) + 1) / 4));
  return `hsl(${Math.round(120 - 120 * f)}, 85%, 55%)`;
}

function showBanner(text, kind = "info", seconds = 6) {
  const b = $("banner");
  b.textContent = text;
  b.className = `banner-${kind}`;
  b.hidden = false;
  clearTimeout(showBanner.timer);
  if (seconds > 0) showBanner.timer = setTimeout(() => { b.hidden = true; }, seconds * 1000);
}

// ---------------------------------------------------------------------------------------------
// HTTP API

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (S.token) headers.Authorization = `Bearer ${S.token}`;
  const init = { method, headers, cache: "no-store", credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    return { status: 0, ok: false, data: { error: `cannot reach the console (${err.message})` } };
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (res.status === 401 && S.token && path !== "/api/login") {
    logout("Your session has expired or is no longer valid: log in again.");
  }
  return { status: res.status, ok: res.ok, data, headers: res.headers };
}

function errorText(r) {
  const e = r.data && typeof r.data.error === "string" ? r.data.error : "";
  if (r.status === 0) return e;
  if (r.status === 403) return e || "refused: your role may not command";
  return e ? `${e} (HTTP ${r.status})` : `HTTP ${r.status}`;
}

// ---------------------------------------------------------------------------------------------
// Session

async function onLogin(ev) {
  ev.preventDefault();
  const user = $("login-user").value.trim();
  const password = $("login-password").value;
  const err = $("login-error");
  if (!user || !password) {
    err.textContent = "Enter a user and a password.";
    return;
  }
  $("login-submit").disabled = true;
  err.textContent = "";
  const r = await api("POST", "/api/login", { user, password });
  $("login-submit").disabled = false;
  $("login-password").value = "";
  if (r.status === 200 && r.data && typeof r.data.token === "string") {
    startSession({ token: r.data.token, role: r.data.role, expires: r.data.expires, user });
  } else if (r.status === 401) {
    err.textContent = "Wrong user or password.";
  } else if (r.status === 429) {
    const after = r.headers && r.headers.get("Retry-After");
    err.textContent = "Too many login attempts: wait" + (after ? ` ${after} s` : " a while") +
      " and try again.";
  } else {
    err.textContent = `Login failed: ${errorText(r)}`;
  }
}

function startSession(sess) {
  S.token = sess.token;
  S.user = sess.user || null;
  setRole(sess.role);
  try {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({
      token: S.token, role: S.role, expires: S.expires, user: S.user,
    }));
  } catch {
    /* storage off: the token stays in memory only */
  }
  setExpiry(sess.expires);
  $("login-error").textContent = "";
  $("login-view").hidden = true;
  $("app").hidden = false;
  document.body.classList.remove("logged-out");
  $("user-name").textContent = S.user || "";
  resizeMap();
  loadRobots();
  connect();
}

function setExpiry(value) {
  const at = parseExpiry(value);
  if (!at) return;
  S.expires = at;
  clearTimeout(S.expiryTimer);
  S.expiryTimer = setTimeout(() => logout("Your session has expired: log in again."),
    Math.max(0, Math.min(at - Date.now(), 2 ** 31 - 1)));
}

function setRole(role) {
  S.role = role === "operator" ? "operator" : "viewer";
  const op = S.role === "operator";
  document.body.classList.toggle("role-operator", op);
  document.body.classList.toggle("role-viewer", !op);
  for (const e of document.querySelectorAll(".operator-only")) e.hidden = !op;
  for (const e of document.querySelectorAll(".viewer-only")) e.hidden = op;
  for (const e of document.querySelectorAll(".operator-only button, .operator-only input," +
    " .operator-only select, button.operator-only")) e.disabled = !op;
  $("role").textContent = S.role;
  $("role").className = `pill role-${S.role}`;
  updatePreview();
}

function logout(message) {
  const ws = S.ws;
  S.token = null;
  S.ws = null;
  if (ws) ws.close(1000, "logout");
  clearTimeout(S.reconnectTimer);
  clearTimeout(S.expiryTimer);
  try {
    sessionStorage.removeItem(SESSION_KEY);
  } catch {
    /* nothing stored */
  }
  S.robots.clear();
  S.commands.clear();
  S.diagnostics.clear();
  S.selected = null;
  S.view.fitted = false;
  $("commands").replaceChildren();
  $("diagnostics").replaceChildren();
  $("robots").tBodies[0].replaceChildren();
  $("robot-select").replaceChildren();
  $("camera").removeAttribute("src");
  $("app").hidden = true;
  $("login-view").hidden = false;
  document.body.classList.add("logged-out");
  $("login-error").textContent = message || "";
  setWsState("offline");
  $("login-user").focus();
}

async function loadRobots() {
  const r = await api("GET", "/api/robots");
  if (!r.ok || !r.data) return;
  setRobots(r.data.robots);
  if (r.data.link) setLink(r.data.link);
}

function setRobots(list) {
  if (!Array.isArray(list)) return;
  for (const item of list) {
    if (typeof item === "string") ensureRobot(item);
    else if (item && typeof item.name === "string") ensureRobot(item.name, item.kind);
  }
  robotsChanged();
}

// ---------------------------------------------------------------------------------------------
// WebSocket telemetry

function connect() {
  clearTimeout(S.reconnectTimer);
  if (!S.token) return;
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  let ws;
  try {
    ws = new WebSocket(url);
  } catch {
    scheduleReconnect();
    return;
  }
  S.ws = ws;
  setWsState("connecting");
  ws.onopen = () => {
    if (ws === S.ws) ws.send(JSON.stringify({ type: "auth", token: S.token }));
    S.wsLastMessage = Date.now();
  };
  ws.onmessage = (ev) => {
    if (ws !== S.ws || typeof ev.data !== "string") return;
    let m;
    try {
      m = JSON.parse(ev.data);
    } catch {
      return;
    }
    S.wsLastMessage = Date.now();
    try {
      handle(m);
    } catch (err) {
      console.error("console: bad message", m && m.type, err);
    }
  };
  ws.onclose = (ev) => {
    if (ws !== S.ws) return;
    S.ws = null;
    if (!S.token) return;
    if (ev.code === 4401) {
      logout("The console refused the session (expired or invalid): log in again.");
      return;
    }
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  const delay = Math.min(10, 0.5 * 2 ** S.wsAttempt) * (0.8 + 0.4 * Math.random());
  S.wsAttempt += 1;
  S.reconnectAt = Date.now() + delay * 1000;
  setWsState("reconnecting");
  S.reconnectTimer = setTimeout(connect, delay * 1000);
}

function setWsState(state) {
  S.wsState = state;
  renderWsState();
}

function renderWsState() {
  const e = $("ws-state");
  let text = "telemetry offline";
  let cls = "err";
  if (S.wsState === "live") {
    const quiet = (Date.now() - S.wsLastMessage) / 1000;
    text = quiet > 5 ? `telemetry quiet ${fmtAge(quiet)}` : "telemetry live";
    cls = quiet > 5 ? "warn" : "ok";
  } else if (S.wsState === "connecting") {
    text = "telemetry connecting…";
    cls = "warn";
  } else if (S.wsState === "reconnecting") {
    const s = Math.max(0, (S.reconnectAt - Date.now()) / 1000);
    text = `telemetry lost · retry in ${s.toFixed(0)} s`;
  }
  e.textContent = text;
  e.className = `pill ${cls}`;
  e.dataset.state = S.wsState;
  e.title = "Telemetry connection to the console" +
    (S.wsRtt !== null ? ` · ping ${S.wsRtt} ms` : "");
}

function handle(m) {
  if (!m || typeof m !== "object") return;
  const r = typeof m.robot === "string" && m.robot ? ensureRobot(m.robot) : null;
  switch (m.type) {
    case "hello":
      S.wsAttempt = 0;
      if (typeof m.user === "string") {
        S.user = m.user;
        $("user-name").textContent = m.user;
      }
      if (m.role && m.role !== S.role) setRole(m.role);
      if (m.expires) setExpiry(m.expires);
      setRobots(m.robots);
      if (m.link) setLink(m.link);
      setWsState("live");
      refreshOpenCommands();
      break;
    case "pose":
      if (r) onPose(r, m);
      break;
    case "plan":
      if (r && Array.isArray(m.points)) {
        r.plan = m.points.filter((p) => Array.isArray(p) && finite(p[0]) && finite(p[1]));
        markDirty();
      }
      break;
    case "costmap":
      if (r) onCostmap(r, m);
      break;
    case "dose_map":
      if (r) onDoseMap(r, m);
      break;
    case "camera":
      if (r) onCamera(r, m);
      break;
    case "diagnostics":
      onDiagnostics(m.statuses);
      break;
    case "base":
      if (r) {
        r.base = { estop: m.estop, link_ok: m.link_ok, command_timed_out: m.command_timed_out,
          battery: m.battery_voltage, seen: now() };
        scheduleRobotsTable();
      }
      break;
    case "radiation":
      if (r) onRadiation(r, m);
      break;
    case "link":
      setLink(m);
      break;
    case "command":
      if (typeof m.id === "string" || typeof m.id === "number") upsertCommand(m, true);
      break;
    case "pong":
      if (finite(m.t)) S.wsRtt = Date.now() - m.t;
      break;
    case "error":
      showBanner(`Console: ${m.error || "error"}`, "warn");
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// Telemetry handlers

function onPose(r, m) {
  if (!finite(m.x) || !finite(m.y)) return;
  const yaw = finite(m.yaw) ? m.yaw : 0;
  r.pose = { x: m.x, y: m.y, yaw, stamp: finite(m.stamp) ? m.stamp : now() };
  r.poseSeen = now();
  const last = r.track[r.track.length - 1];
  if (!last || Math.hypot(m.x - last[0], m.y - last[1]) >= 0.05) {
    r.track.push([m.x, m.y]);
    if (r.track.length > TRACK_MAX) r.track.splice(0, r.track.length - TRACK_MAX);
  }
  if (!S.view.fitted && r.name === S.selected) {
    S.view.cx = m.x;
    S.view.cy = m.y;
    S.view.fitted = true;
  }
  markDirty();
  scheduleRobotsTable();
  if (r.name === S.selected) updatePreview();
}

/**
 * Loads a grid picture (costmap, dose map) into r[slot] as { img, x0, y0, w, h, max } and
 * calls then(r) once it has loaded; a picture overtaken by a newer one for the same slot is
 * dropped. Malformed messages are ignored.
 */
function loadOverlay(r, m, slot, then) {
  const { width, height, resolution, origin } = m;
  if (!isImageData(m.image, ["png"]) || !finite(width) || !finite(height) ||
    !finite(resolution) || !Array.isArray(origin)) return;
  const seqKey = `${slot}Seq`;
  const seq = ++r[seqKey];
  const img = new Image();
  img.onload = () => {
    if (seq !== r[seqKey]) return; // a newer one is on its way
    r[slot] = {
      img, x0: origin[0], y0: origin[1], w: width * resolution, h: height * resolution,
      max: m.max,
    };
    then(r);
    markDirty();
  };
  img.src = m.image;
}

function onCostmap(r, m) {
  loadOverlay(r, m, "costmap", () => {
    const cm = r.costmap;
    if (!S.view.fitted && r.name === S.selected && !r.pose) {
      S.view.cx = cm.x0 + cm.w / 2;
      S.view.cy = cm.y0 + cm.h / 2;
    }
  });
}

function onDoseMap(r, m) {
  // radiation_mapper's dose map: a picture over its rectangle, drawn under the readings
  loadOverlay(r, m, "doseMap", showDosePeak);
}

function showDosePeak() {
  const r = S.robots.get(S.selected);
  const dm = r && r.doseMap;
  $("dose-peak").textContent = dm && finite(dm.max)
    ? `dose map peak ${dm.max.toFixed(dm.max < 10 ? 2 : 0)} µSv/h` : "";
}

function onCamera(r, m) {
  if (!isImageData(m.image, ["jpeg", "jpg", "png"])) return;
  r.camera = m;
  const t = Date.now();
  r.cameraTimes.push(t);
  while (r.cameraTimes.length && t - r.cameraTimes[0] > 3000) r.cameraTimes.shift();
  if (r.name === S.selected) showCamera(r);
}

function showCamera(r) {
  const img = $("camera");
  if (r && r.camera) {
    img.src = r.camera.image;
    img.dataset.robot = r.name;
    img.dataset.stamp = String(r.camera.stamp);
    img.dataset.frames = String((Number(img.dataset.frames) || 0) + 1); // frames shown
    $("camera-none").hidden = true;
  } else {
    img.removeAttribute("src");
    delete img.dataset.robot;
    $("camera-none").hidden = false;
  }
  renderCameraInfo();
}

function renderCameraInfo() {
  const r = S.robots.get(S.selected);
  const info = $("camera-info");
  if (!r || !r.camera) {
    info.textContent = r ? `${r.name}: waiting for the camera` : "";
    return;
  }
  const c = r.camera;
  const times = r.cameraTimes;
  const span = times.length > 1 ? times[times.length - 1] - times[0] : 0;
  // over at least a second: a burst on connecting is not a rate
  const fps = span >= 1000 ? ((times.length - 1) * 1000) / span : null;
  const age = finite(c.stamp) ? now() - c.stamp : NaN;
  const parts = [`${r.name}`];
  if (finite(c.width) && finite(c.height)) parts.push(`${c.width}×${c.height}`);
  if (finite(c.quality)) parts.push(`q ${c.quality}`);
  parts.push(fps === null ? "… fps" : `${fps.toFixed(1)} fps`);
  parts.push(`frame ${fmtClock(c.stamp)} (${fmtAge(age)} ago)`);
  info.textContent = parts.join(" · ");
  info.classList.toggle("stale", age > 5);
}

function onDiagnostics(statuses) {
  if (!Array.isArray(statuses)) return;
  const t = now();
  for (const s of statuses) {
    if (!s || typeof s.name !== "string") continue;
    S.diagnostics.set(s.name, {
      name: s.name,
      level: finite(s.level) ? s.level : 3,
      message: typeof s.message === "string" ? s.message : "",
      hardware_id: typeof s.hardware_id === "string" ? s.hardware_id : "",
      seen: t,
    });
  }
  scheduleDiagnostics();
}

function onRadiation(r, m) {
  r.radiation = { dose_rate: m.dose_rate, cpm: m.cpm, seen: now() };
  if (r.pose && finite(m.dose_rate)) {
    const last = r.doses[r.doses.length - 1];
    if (!last || Math.hypot(r.pose.x - last.x, r.pose.y - last.y) >= 0.2) {
      r.doses.push({ x: r.pose.x, y: r.pose.y, rate: m.dose_rate });
      if (r.doses.length > DOSE_MAX) r.doses.splice(0, r.doses.length - DOSE_MAX);
      markDirty();
    }
  }
  scheduleRobotsTable();
}

function setLink(m) {
  if (!m || typeof m !== "object") return;
  S.link = { ...m, seen: now() };
  const e = $("link-state");
  let text;
  let cls;
  if (m.blackout) {
    text = "link BLACKOUT · relay out of view";
    cls = "err";
  } else if (m.up === false) {
    text = "link DOWN";
    cls = "err";
  } else {
    const parts = ["link up"];
    if (finite(m.delay)) {
      parts.push(`${m.delay.toFixed(2)} s each way` +
        (finite(m.jitter) && m.jitter > 0 ? ` ±${m.jitter.toFixed(2)}` : ""));
    }
    if (finite(m.loss) && m.loss > 0) parts.push(`loss ${(m.loss * 100).toFixed(0)} %`);
    text = parts.join(" · ");
    cls = finite(m.delay) && m.delay > 0.5 ? "warn" : "ok";
  }
  e.textContent = text;
  e.className = `pill ${cls}`;
  e.dataset.up = String(m.up !== false && !m.blackout);
  const hint = $("delay-hint");
  hint.textContent = finite(m.delay) && m.delay > 0
    ? `· round trip ≥ ${(2 * m.delay).toFixed(1)} s: a command is answered that late` : "";
}

// ---------------------------------------------------------------------------------------------
// Robots: selection and table

function robotsChanged() {
  const sel = $("robot-select");
  const names = [...S.robots.keys()];
  const current = [...sel.options].map((o) => o.value);
  if (names.join("\n") !== current.join("\n")) {
    sel.replaceChildren(...names.map((n) => {
      const o = el("option", null, `${n} (${S.robots.get(n).kind})`);
      o.value = n;
      return o;
    }));
  }
  if (!S.selected || !S.robots.has(S.selected)) {
    let stored = null;
    try {
      stored = sessionStorage.getItem("ilrs.console.robot");
    } catch {
      stored = null;
    }
    selectRobot(stored && S.robots.has(stored) ? stored : names[0] || null);
  } else {
    sel.value = S.selected;
  }
  scheduleRobotsTable();
}

function selectRobot(name) {
  S.selected = name;
  if (name) {
    $("robot-select").value = name;
    try {
      sessionStorage.setItem("ilrs.console.robot", name);
    } catch {
      /* not kept */
    }
    const r = S.robots.get(name);
    if (r && r.pose) {
      S.view.cx = r.pose.x;
      S.view.cy = r.pose.y;
      S.view.fitted = true;
    }
  }
  showCamera(S.robots.get(name));
  showDosePeak();
  updatePreview();
  scheduleRobotsTable();
  markDirty();
}

let robotsTableTimer = null;
function scheduleRobotsTable() {
  if (robotsTableTimer) return;
  robotsTableTimer = setTimeout(() => {
    robotsTableTimer = null;
    renderRobotsTable();
  }, 200);
}

function renderRobotsTable() {
  const body = $("robots").tBodies[0];
  const t = now();
  const rows = [];
  for (const r of S.robots.values()) {
    const tr = el("tr");
    tr.dataset.robot = r.name;
    if (r.name === S.selected) tr.className = "selected";
    if (r.pose) { // for scripts and tests: the pose as the page knows it
      tr.dataset.x = String(r.pose.x);
      tr.dataset.y = String(r.pose.y);
      tr.dataset.yaw = String(r.pose.yaw);
    }
    const name = el("td");
    const dot = el("span", "dot");
    dot.style.background = r.color;
    name.append(dot, document.createTextNode(r.name));
    const b = r.base;
    const estop = el("td", "estop");
    if (!b) estop.textContent = "?";
    else if (b.estop) {
      estop.textContent = "LATCHED";
      estop.classList.add("err");
    } else {
      estop.textContent = "clear";
      estop.classList.add("ok");
    }
    estop.dataset.estop = b ? String(Boolean(b.estop)) : "unknown";
    const link = el("td", "link");
    if (!b) link.textContent = "?";
    else if (!b.link_ok) {
      link.textContent = "LOST";
      link.classList.add("err");
    } else {
      link.textContent = "ok";
      link.classList.add("ok");
      // the base's cmd_vel watchdog: wheels stopped for want of a fresh command (idle)
      link.title = b.command_timed_out ? "motor controllers answering; wheels stopped, no " +
        "fresh cmd_vel (idle)" : "motor controllers answering; following cmd_vel";
    }
    const dose = el("td", "dose");
    if (r.radiation && finite(r.radiation.dose_rate)) {
      dose.textContent = fmtNum(r.radiation.dose_rate, r.radiation.dose_rate < 10 ? 2 : 1);
      dose.style.color = doseColor(r.radiation.dose_rate);
      if (finite(r.radiation.cpm)) dose.title = `${r.radiation.cpm} CPM`;
    } else dose.textContent = "–";
    const batt = el("td", "battery");
    batt.textContent = b && finite(b.battery) ? b.battery.toFixed(1) : "–";
    const pose = el("td", "pose mono");
    if (r.pose) {
      const age = t - r.poseSeen;
      pose.textContent = `${fixed(r.pose.x, 1)}, ${fixed(r.pose.y, 1)}, ` +
        `${fixed(deg(r.pose.yaw), 0)}°` + (age > 5 ? ` (${fmtAge(age)} old)` : "");
      if (age > 5) pose.classList.add("warn");
    } else pose.textContent = "no pose yet";
    tr.append(name, estop, link, dose, batt, pose);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

// ---------------------------------------------------------------------------------------------
// Command panel

function numberOf(id) {
  const v = $(id).value.trim();
  return v === "" ? NaN : Number(v);
}

function currentKind() {
  return $("cmd-kind").value;
}

// The command being prepared: {body} or {error}.
function preparedCommand() {
  const kind = currentKind();
  const need = (id, label) => {
    const v = numberOf(id);
    if (!Number.isFinite(v)) throw new Error(`${label}: enter a number`);
    return v;
  };
  try {
    if (kind === "drive") {
      const body = { kind, distance: need("cmd-distance", "distance") };
      const speed = numberOf("cmd-speed");
      if ($("cmd-speed").value.trim() !== "") {
        if (!Number.isFinite(speed) || speed <= 0) throw new Error("speed: a positive number or blank");
        body.speed = speed;
      }
      if (body.distance === 0) throw new Error("distance: not zero");
      return { body };
    }
    if (kind === "turn") {
      const a = need("cmd-angle", "angle");
      if (a === 0) throw new Error("angle: not zero");
      return { body: { kind, angle_deg: a } };
    }
    if (kind === "goto") return { body: { kind, x: need("cmd-x", "x"), y: need("cmd-y", "y") } };
    if (kind === "velocity") {
      const body = {
        kind,
        linear: need("cmd-linear", "linear"),
        angular: need("cmd-angular", "angular"),
        duration: need("cmd-duration", "duration"),
      };
      if (body.duration <= 0) throw new Error("duration: more than 0 s");
      return { body };
    }
    if (kind === "waypoints") {
      if (!S.waypoints.length) throw new Error("waypoints: click the map to add points");
      return { body: { kind, points: S.waypoints.map((p) => [p[0], p[1]]) } };
    }
    if (kind === "inspect") {
      const round = $("cmd-round").value.trim();
      if (!round) throw new Error("round: enter the name of an inspection round");
      return { body: { kind, round } };
    }
    if (kind === "print") {
      const design = $("cmd-design").value.trim();
      if (!design) throw new Error("design: enter the name of a design");
      const body = { kind, design };
      if ($("cmd-layer").value.trim() !== "") body.layer_height = need("cmd-layer", "layer");
      return { body };
    }
    return { error: `unknown command ${kind}` };
  } catch (err) {
    return { error: err.message };
  }
}

// Predicted path of a command from a pose: {points, dashed, arc, end, text}.
function predict(body, pose) {
  const { x, y, yaw } = pose;
  if (body.kind === "drive") {
    const d = body.distance;
    const end = { x: x + d * Math.cos(yaw), y: y + d * Math.sin(yaw), yaw };
    let text = `drive ${d.toFixed(2)} m ${d < 0 ? "backwards " : ""}→ ends at ` +
      `(${fixed(end.x, 2)}, ${fixed(end.y, 2)}), heading ${fixed(deg(yaw), 0)}°`;
    if (body.speed) text += ` · ≈ ${(Math.abs(d) / body.speed).toFixed(0)} s at ${body.speed} m/s`;
    return { points: [[x, y], [end.x, end.y]], end, text };
  }
  if (body.kind === "turn") {
    const a = rad(body.angle_deg);
    const end = { x, y, yaw: wrap(yaw + a) };
    const dir = body.angle_deg > 0 ? "left (counter-clockwise)" : "right (clockwise)";
    return {
      points: [], arc: { from: yaw, to: yaw + a }, end,
      text: `turn ${Math.abs(body.angle_deg).toFixed(0)}° ${dir} in place → heading ` +
        `${fixed(deg(end.yaw), 0)}°`,
    };
  }
  if (body.kind === "goto") {
    const dist = Math.hypot(body.x - x, body.y - y);
    const bearing = Math.atan2(body.y - y, body.x - x);
    return {
      points: [[x, y], [body.x, body.y]], dashed: true,
      end: { x: body.x, y: body.y, yaw: bearing },
      text: `go to (${fixed(body.x, 2)}, ${fixed(body.y, 2)}): ${dist.toFixed(1)} m in a ` +
        `straight line, bearing ${fixed(deg(bearing), 0)}° (the rover plans its own path ` +
        "around hazards)",
    };
  }
  if (body.kind === "velocity") {
    const { linear: v, angular: w, duration: T } = body;
    const n = Math.max(2, Math.min(200, Math.ceil(Math.abs(w * T) / 0.05) + 1, 200));
    const points = [];
    for (let i = 0; i <= n; i++) {
      const t = (T * i) / n;
      if (Math.abs(w) < 1e-6) points.push([x + v * t * Math.cos(yaw), y + v * t * Math.sin(yaw)]);
      else {
        points.push([
          x + (v / w) * (Math.sin(yaw + w * t) - Math.sin(yaw)),
          y - (v / w) * (Math.cos(yaw + w * t) - Math.cos(yaw)),
        ]);
      }
    }
    const last = points[points.length - 1];
    const end = { x: last[0], y: last[1], yaw: wrap(yaw + w * T) };
    return {
      points, end, arc: Math.abs(v) < 1e-6 && Math.abs(w) > 1e-6 ? { from: yaw, to: yaw + w * T } : null,
      text: `${v.toFixed(2)} m/s, ${w.toFixed(2)} rad/s for ${T.toFixed(1)} s → ` +
        `${Math.abs(v * T).toFixed(2)} m, turns ${fixed(deg(w * T), 0)}°, ends at ` +
        `(${fixed(end.x, 2)}, ${fixed(end.y, 2)}); stops by itself after ${T.toFixed(1)} s`,
    };
  }
  if (body.kind === "waypoints") {
    const points = [[x, y], ...body.points];
    let length = 0;
    for (let i = 1; i < points.length; i++) {
      length += Math.hypot(points[i][0] - points[i - 1][0], points[i][1] - points[i - 1][1]);
    }
    const [lx, ly] = points[points.length - 1];
    const [px, py] = points[points.length - 2];
    return {
      points, dashed: true, marks: body.points, end: { x: lx, y: ly, yaw: Math.atan2(ly - py, lx - px) },
      text: `${body.points.length} waypoint${body.points.length > 1 ? "s" : ""}, ` +
        `${length.toFixed(1)} m in straight lines (the rover plans each leg around hazards)`,
    };
  }
  if (body.kind === "inspect") {
    return { points: [], text: `inspection round ${body.round}: the rover drives its legs and ` +
      "measures; its findings come back as the command's progress" };
  }
  if (body.kind === "print") {
    return { points: [], text: `print ${body.design}` +
      (body.layer_height ? ` in ${(body.layer_height * 1000).toFixed(0)} mm layers` : "") };
  }
  return null;
}

let prediction = null; // what the map draws for the command being prepared

function updatePreview() {
  const r0 = S.robots.get(S.selected);
  const allowed0 = PANEL_KINDS[r0 ? r0.kind : "rover"] || [];
  for (const o of $("cmd-kind").options) o.hidden = !allowed0.includes(o.value);
  if (allowed0.length && !allowed0.includes($("cmd-kind").value)) $("cmd-kind").value = allowed0[0];
  const kind = currentKind();
  $("cmd-waypoints").textContent = S.waypoints.length
    ? S.waypoints.map((p) => `(${p[0].toFixed(1)}, ${p[1].toFixed(1)})`).join(" → ")
    : "no point yet";
  for (const f of document.querySelectorAll("#cmd-form .fields")) f.hidden = f.dataset.kind !== kind;
  const out = $("cmd-preview");
  const r = S.robots.get(S.selected);
  const prep = preparedCommand();
  prediction = null;
  let ok = false;
  const allowed = PANEL_KINDS[r ? r.kind : "rover"] || [];
  const mover = allowed.length > 0;
  for (const f of document.querySelectorAll("#cmd-form .fields input, #cmd-form .fields button")) {
    f.disabled = S.role !== "operator" || !mover;
  }
  $("cmd-kind").disabled = S.role !== "operator" || !mover;
  const buttons = BUTTONS[r ? r.kind : "rover"] || [];
  for (const id of ["cmd-stop", "cmd-pause", "cmd-resume", "cmd-cancel"]) {
    $(id).hidden = !buttons.includes(id);
    $(id).disabled = S.role !== "operator";
  }
  if (!mover) {
    out.textContent = `${r.name} (${r.kind}) takes no command from this panel: e-stop and ` +
      "release only";
    out.className = "mono small warn";
  } else if (prep.error) {
    out.textContent = prep.error;
    out.className = "mono small err";
  } else if (!r) {
    out.textContent = "no robot selected";
    out.className = "mono small warn";
  } else if (!r.pose) {
    out.textContent = `${r.name}: no pose yet, no prediction`;
    out.className = "mono small warn";
    ok = true;
  } else {
    prediction = predict(prep.body, r.pose);
    out.textContent = `${r.name}: ${prediction.text}`;
    out.className = "mono small";
    ok = true;
  }
  out.dataset.kind = kind;
  $("cmd-send").disabled = S.role !== "operator" || !ok || S.sending;
  markDirty();
}

async function sendCommand(robot, body) {
  const r = await api("POST", `/api/robots/${encodeURIComponent(robot)}/commands`, body);
  if (r.status === 202 && r.data && (typeof r.data.id === "string" || typeof r.data.id === "number")) {
    const params = { ...body };
    delete params.kind;
    upsertCommand({
      id: r.data.id, robot, kind: body.kind, params, user: S.user, state: "sent",
      reason: "", history: [{ state: "sent", t: now() }],
    }, false);
  }
  return r;
}

async function onSend(ev) {
  ev.preventDefault();
  const prep = preparedCommand();
  const robot = S.selected;
  const err = $("cmd-error");
  if (prep.error || !robot) {
    err.textContent = prep.error || "no robot selected";
    return;
  }
  S.sending = true;
  updatePreview();
  err.textContent = "";
  const r = await sendCommand(robot, prep.body);
  S.sending = false;
  updatePreview();
  if (r.status !== 202) err.textContent = `Not sent: ${errorText(r)}`;
}

async function simpleCommand(kind) {
  const robot = S.selected;
  const err = $("cmd-error");
  if (!robot) return;
  const r = await sendCommand(robot, { kind });
  if (r.status !== 202) {
    err.textContent = `${kind} not sent: ${errorText(r)}`;
    if (kind === "estop") showBanner(`E-STOP OF ${robot} NOT SENT: ${errorText(r)}`, "err", 0);
  }
}

async function onEstopAll() {
  const btn = $("estop-all");
  btn.classList.add("pressed");
  const r = await api("POST", "/api/estop");
  btn.classList.remove("pressed");
  if (r.status === 202) {
    const ids = r.data && Array.isArray(r.data.ids) ? r.data.ids : [];
    const t = now();
    for (const id of ids) {
      upsertCommand({
        id, robot: "all robots", kind: "estop", params: {}, user: S.user, state: "sent",
        reason: "", history: [{ state: "sent", t }],
      }, false);
    }
    showBanner(`Emergency stop sent to every robot (${ids.length} command` +
      `${ids.length === 1 ? "" : "s"}); it arrives after the link delay.`, "err", 10);
  } else {
    showBanner(`EMERGENCY STOP NOT SENT: ${errorText(r)}`, "err", 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Commands list

function upsertCommand(m, fromServer) {
  const id = String(m.id);
  const old = S.commands.get(id);
  if (old && !fromServer) return; // the server's record already arrived: it wins
  const rec = {
    id,
    robot: typeof m.robot === "string" ? m.robot : old ? old.robot : "?",
    kind: typeof m.kind === "string" ? m.kind : old ? old.kind : "?",
    params: m.params && typeof m.params === "object" ? m.params : old ? old.params : {},
    user: typeof m.user === "string" ? m.user : old ? old.user : "",
    state: typeof m.state === "string" ? m.state : old ? old.state : "sent",
    reason: typeof m.reason === "string" ? m.reason : old ? old.reason : "",
    detail: typeof m.detail === "string" ? m.detail : old ? old.detail : "",
    history: Array.isArray(m.history) ? m.history.filter((h) => h && typeof h.state === "string")
      : old ? old.history : [],
    first: old ? old.first : now(),
    fromServer: fromServer || (old ? old.fromServer : false),
  };
  if (rec.history.length && finite(rec.history[0].t)) rec.first = rec.history[0].t;
  S.commands.set(id, rec);
  renderCommand(rec);
  if (S.commands.size > COMMANDS_MAX) {
    const oldest = [...S.commands.values()].sort((a, b) => a.first - b.first);
    for (const c of oldest.slice(0, S.commands.size - COMMANDS_MAX)) {
      S.commands.delete(c.id);
      const row = rowOf(c.id);
      if (row) row.remove();
    }
  }
}

function rowOf(id) {
  for (const row of $("commands").children) if (row.dataset.commandId === id) return row;
  return null;
}

function paramsText(kind, p) {
  if (!p) return "";
  const n = (v, d = 2) => (finite(v) ? v.toFixed(d) : "?");
  if (kind === "drive") return `${n(p.distance)} m` + (finite(p.speed) ? ` at ${n(p.speed)} m/s` : "");
  if (kind === "turn") return `${n(p.angle_deg, 0)}°`;
  if (kind === "goto") return `(${n(p.x)}, ${n(p.y)})`;
  if (kind === "velocity") return `${n(p.linear)} m/s, ${n(p.angular)} rad/s, ${n(p.duration, 1)} s`;
  if (kind === "waypoints" && Array.isArray(p.points)) return `${p.points.length} points`;
  if (kind === "inspect" && typeof p.round === "string") return p.round;
  if (kind === "print" && typeof p.design === "string") {
    return p.design + (finite(p.layer_height) ? ` (${n(p.layer_height, 3)} m layers)` : "");
  }
  return "";
}

function waitingText(rec) {
  const t = now();
  const h = rec.history;
  const since = h.length && finite(h[h.length - 1].t) ? t - h[h.length - 1].t : t - rec.first;
  const delay = S.link && finite(S.link.delay) ? S.link.delay : null;
  if (rec.state === "queued") {
    return `queued on the ground for ${fmtAge(since)}: the relay is out of view, it goes when ` +
      "the link is back";
  }
  if (rec.state === "sent") {
    let s = `sent ${fmtAge(since)} ago · waiting for the robot`;
    if (delay) s += ` (it arrives ${delay.toFixed(1)} s after sending, its answer as late again)`;
    if (S.link && (S.link.blackout || S.link.up === false)) s += " · LINK DOWN: held until the link is back";
    return s;
  }
  if (rec.state === "received") {
    if (rec.kind === "estop" || rec.kind === "release") {
      return `the robot took it · waiting for its base to confirm (${fmtAge(since)})`;
    }
    return `received by the robot · waiting to start (${fmtAge(since)})`;
  }
  if (rec.state === "executing") {
    return `executing for ${fmtAge(since)}` +
      (delay ? ` · what you see is ${delay.toFixed(1)} s old` : "");
  }
  return "";
}

function renderCommand(rec) {
  const list = $("commands");
  let row = rowOf(rec.id);
  if (!row) {
    row = el("li", "command");
    row.dataset.commandId = rec.id;
    // newest first: insert before the first row that started earlier
    let before = null;
    for (const other of list.children) {
      const o = S.commands.get(other.dataset.commandId);
      if (o && o.first <= rec.first) {
        before = other;
        break;
      }
    }
    list.insertBefore(row, before);
  }
  row.dataset.state = rec.state;
  row.dataset.robot = rec.robot;
  row.className = `command state-${rec.state}`;

  const head = el("div", "cmd-head");
  head.append(
    el("span", "cmd-robot", rec.robot),
    el("span", "cmd-kind", rec.kind),
    el("span", "cmd-params mono", paramsText(rec.kind, rec.params)),
    el("span", `badge state-${rec.state}`, rec.state),
  );
  if (rec.user) head.append(el("span", "cmd-user", rec.user));

  const hist = el("div", "cmd-history mono small");
  const t0 = rec.history.length && finite(rec.history[0].t) ? rec.history[0].t : null;
  rec.history.forEach((h, i) => {
    const step = el("span", `step state-${h.state}`);
    step.dataset.state = h.state;
    if (i === 0 || t0 === null || !finite(h.t)) step.textContent = `${h.state} ${fmtClock(h.t)}`;
    else step.textContent = `${h.state} +${(h.t - t0).toFixed(1)} s`;
    if (finite(h.t)) step.title = `${h.state} at ${fmtClock(h.t)} UTC`;
    hist.append(step);
  });

  const children = [head, hist];
  if (rec.reason) children.push(el("div", "cmd-reason", rec.reason));
  if (rec.detail) children.push(el("div", "cmd-detail small", rec.detail));
  if (!FINAL_STATES.has(rec.state)) children.push(el("div", "cmd-wait small", waitingText(rec)));
  row.replaceChildren(...children);
}

function tickCommands() {
  for (const row of $("commands").children) {
    const rec = S.commands.get(row.dataset.commandId);
    if (!rec || FINAL_STATES.has(rec.state)) continue;
    const w = row.querySelector(".cmd-wait");
    if (w) w.textContent = waitingText(rec);
  }
}

// After a reconnection, ask for the commands still under way (their changes may have been missed).
async function refreshOpenCommands() {
  for (const rec of [...S.commands.values()]) {
    if (FINAL_STATES.has(rec.state) || !S.robots.has(rec.robot)) continue;
    const r = await api("GET", `/api/robots/${encodeURIComponent(rec.robot)}/commands/` +
      `${encodeURIComponent(rec.id)}`);
    if (r.ok && r.data && typeof r.data === "object") {
      upsertCommand({ ...r.data, id: rec.id, robot: r.data.robot || rec.robot }, true);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Diagnostics

let diagTimer = null;
function scheduleDiagnostics() {
  if (diagTimer) return;
  diagTimer = setTimeout(() => {
    diagTimer = null;
    renderDiagnostics();
  }, 250);
}

function renderDiagnostics() {
  const t = now();
  const items = [...S.diagnostics.values()].sort((a, b) =>
    (LEVEL_RANK[a.level] ?? 1) - (LEVEL_RANK[b.level] ?? 1) || a.name.localeCompare(b.name));
  const counts = [0, 0, 0, 0];
  const rows = items.map((s) => {
    const lvl = Math.max(0, Math.min(3, s.level | 0));
    counts[lvl] += 1;
    const li = el("li", `diag level-${lvl}`);
    li.dataset.level = String(lvl);
    li.dataset.name = s.name;
    const age = t - s.seen;
    li.append(
      el("span", `badge level-${lvl}`, LEVELS[lvl]),
      el("span", "diag-name", s.name),
      el("span", "diag-msg", s.message),
    );
    if (age > 10) {
      li.append(el("span", "diag-age small", `${fmtAge(age)} ago`));
      li.classList.add("old");
    }
    if (s.hardware_id) li.title = `hardware id: ${s.hardware_id}`;
    return li;
  });
  $("diagnostics").replaceChildren(...rows);
  const sum = [];
  if (counts[2]) sum.push(`${counts[2]} error${counts[2] > 1 ? "s" : ""}`);
  if (counts[3]) sum.push(`${counts[3]} stale`);
  if (counts[1]) sum.push(`${counts[1]} warn`);
  sum.push(`${counts[0]} ok`);
  $("diag-summary").textContent = items.length ? `· ${sum.join(", ")}` : "· none yet";
}

// ---------------------------------------------------------------------------------------------
// Map

let dirty = false;
function markDirty() {
  if (dirty) return;
  dirty = true;
  requestAnimationFrame(() => {
    dirty = false;
    drawMap();
  });
}

function resizeMap() {
  const c = $("map");
  const rect = c.getBoundingClientRect();
  const v = S.view;
  v.dpr = window.devicePixelRatio || 1;
  v.w = Math.max(1, rect.width);
  v.h = Math.max(1, rect.height);
  c.width = Math.round(v.w * v.dpr);
  c.height = Math.round(v.h * v.dpr);
  markDirty();
}

function toScreen(x, y) {
  const v = S.view;
  return [v.w / 2 + (x - v.cx) * v.scale, v.h / 2 - (y - v.cy) * v.scale];
}

function toWorld(px, py) {
  const v = S.view;
  return [v.cx + (px - v.w / 2) / v.scale, v.cy - (py - v.h / 2) / v.scale];
}

function polyline(ctx, pts) {
  ctx.beginPath();
  pts.forEach((p, i) => {
    const [sx, sy] = toScreen(p[0], p[1]);
    if (i === 0) ctx.moveTo(sx, sy);
    else ctx.lineTo(sx, sy);
  });
  ctx.stroke();
}

function drawGrid(ctx) {
  const v = S.view;
  const steps = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
  const step = steps.find((s) => s * v.scale >= 60) || 1000;
  const [x0, y1] = toWorld(0, 0);
  const [x1, y0] = toWorld(v.w, v.h);
  ctx.lineWidth = 1;
  ctx.strokeStyle = "rgba(255,255,255,0.06)";
  ctx.beginPath();
  for (let x = Math.ceil(x0 / step) * step; x <= x1; x += step) {
    const [sx] = toScreen(x, 0);
    ctx.moveTo(Math.round(sx) + 0.5, 0);
    ctx.lineTo(Math.round(sx) + 0.5, v.h);
  }
  for (let y = Math.ceil(y0 / step) * step; y <= y1; y += step) {
    const [, sy] = toScreen(0, y);
    ctx.moveTo(0, Math.round(sy) + 0.5);
    ctx.lineTo(v.w, Math.round(sy) + 0.5);
  }
  ctx.stroke();
  // axes through the map origin
  ctx.strokeStyle = "rgba(255,255,255,0.18)";
  const [ox, oy] = toScreen(0, 0);
  ctx.beginPath();
  ctx.moveTo(ox, 0);
  ctx.lineTo(ox, v.h);
  ctx.moveTo(0, oy);
  ctx.lineTo(v.w, oy);
  ctx.stroke();
  // scale bar
  const len = step * v.scale;
  ctx.strokeStyle = "#ccc";
  ctx.fillStyle = "#ccc";
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(12, v.h - 14);
  ctx.lineTo(12 + len, v.h - 14);
  ctx.moveTo(12, v.h - 19);
  ctx.lineTo(12, v.h - 9);
  ctx.moveTo(12 + len, v.h - 19);
  ctx.lineTo(12 + len, v.h - 9);
  ctx.stroke();
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(`${step} m`, 16 + len, v.h - 10);
}

// Length of a robot's footprint on screen, in pixels (never under 14 px, to stay visible).
function footprintPx(r) {
  const [L] = FOOTPRINTS[r.kind] || FOOTPRINTS.rover;
  return Math.max(S.view.scale * L, 14);
}

function drawFootprint(ctx, r, pose, style) {
  const [L, W] = FOOTPRINTS[r.kind] || FOOTPRINTS.rover;
  const k = footprintPx(r) / L; // pixels per metre of the drawn footprint
  const [sx, sy] = toScreen(pose.x, pose.y);
  ctx.save();
  ctx.translate(sx, sy);
  ctx.rotate(-pose.yaw);
  ctx.scale(k, k); // x forward, screen y is the robot's right
  ctx.lineWidth = 1.5 / k;
  ctx.beginPath();
  ctx.rect(-L / 2, -W / 2, L, W);
  if (style.ghost) {
    ctx.setLineDash([4 / k, 3 / k]);
    ctx.strokeStyle = style.color;
    ctx.stroke();
  } else {
    ctx.fillStyle = style.fill;
    ctx.fill();
    ctx.strokeStyle = style.color;
    ctx.stroke();
  }
  // heading nose
  ctx.setLineDash([]);
  ctx.beginPath();
  ctx.moveTo(L / 2 + 0.35 * L, 0);
  ctx.lineTo(L / 2 - 0.05 * L, -W / 3);
  ctx.lineTo(L / 2 - 0.05 * L, W / 3);
  ctx.closePath();
  ctx.fillStyle = style.color;
  ctx.fill();
  ctx.restore();
}

function drawArc(ctx, r, pose, from, to, color) {
  const radius = footprintPx(r) * 0.75 + 10; // outside the footprint
  const [sx, sy] = toScreen(pose.x, pose.y);
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.arc(sx, sy, radius, -from, -to, to > from); // screen angles run clockwise
  ctx.stroke();
  // arrowhead at the end, along the direction of rotation
  const ex = sx + radius * Math.cos(-to);
  const ey = sy + radius * Math.sin(-to);
  const tangent = -to + (to > from ? -Math.PI / 2 : Math.PI / 2);
  ctx.fillStyle = color;
  ctx.beginPath();
  ctx.moveTo(ex + 9 * Math.cos(tangent), ey + 9 * Math.sin(tangent));
  ctx.lineTo(ex + 5 * Math.cos(tangent + 2.2), ey + 5 * Math.sin(tangent + 2.2));
  ctx.lineTo(ex + 5 * Math.cos(tangent - 2.2), ey + 5 * Math.sin(tangent - 2.2));
  ctx.closePath();
  ctx.fill();
}

function drawMap() {
  const c = $("map");
  const ctx = c.getContext("2d");
  const v = S.view;
  const sel = S.robots.get(S.selected);
  if ($("map-follow").checked && sel && sel.pose) {
    v.cx = sel.pose.x;
    v.cy = sel.pose.y;
  }
  ctx.setTransform(v.dpr, 0, 0, v.dpr, 0, 0);
  ctx.fillStyle = "#0d1117";
  ctx.fillRect(0, 0, v.w, v.h);

  const robots = [...S.robots.values()];
  const others = robots.filter((r) => r !== sel);
  const ordered = sel ? [...others, sel] : others;

  if ($("map-costmap").checked) {
    ctx.imageSmoothingEnabled = false;
    for (const r of ordered) {
      const cm = r.costmap;
      if (!cm) continue;
      const [sx, sy] = toScreen(cm.x0, cm.y0 + cm.h); // row 0 is the top (highest y)
      ctx.globalAlpha = r === sel ? 0.75 : 0.4;
      ctx.drawImage(cm.img, sx, sy, cm.w * v.scale, cm.h * v.scale);
    }
    ctx.globalAlpha = 1;
  }
  drawGrid(ctx);

  if ($("map-dose").checked) {
    ctx.imageSmoothingEnabled = true;
    for (const r of ordered) {
      const dm = r.doseMap;
      if (!dm) continue;
      const [sx, sy] = toScreen(dm.x0, dm.y0 + dm.h); // row 0 is the top (highest y)
      ctx.globalAlpha = 0.8;
      ctx.drawImage(dm.img, sx, sy, dm.w * v.scale, dm.h * v.scale);
    }
    ctx.globalAlpha = 1;
    const rpx = Math.max(2, Math.min(6, 0.25 * v.scale));
    for (const r of ordered) {
      for (const d of r.doses) {
        const [sx, sy] = toScreen(d.x, d.y);
        if (sx < -10 || sy < -10 || sx > v.w + 10 || sy > v.h + 10) continue;
        ctx.fillStyle = doseColor(d.rate);
        ctx.fillRect(sx - rpx / 2, sy - rpx / 2, rpx, rpx);
      }
    }
  }

  ctx.lineJoin = "round";
  ctx.lineCap = "round";
  for (const r of ordered) {
    if (r.track.length > 1) {
      ctx.strokeStyle = r.color;
      ctx.globalAlpha = r === sel ? 0.9 : 0.5;
      ctx.lineWidth = 2;
      polyline(ctx, r.pose ? [...r.track, [r.pose.x, r.pose.y]] : r.track);
      ctx.globalAlpha = 1;
    }
    if (r.plan.length > 1) {
      ctx.strokeStyle = "#00e5ff";
      ctx.lineWidth = r === sel ? 2 : 1;
      ctx.setLineDash([]);
      polyline(ctx, r.plan);
      const [gx, gy] = toScreen(...r.plan[r.plan.length - 1]);
      ctx.beginPath();
      ctx.arc(gx, gy, 5, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  // the command being prepared, before it is sent
  if (prediction && sel && sel.pose && S.role === "operator") {
    const p = prediction;
    const color = "#ffd54f";
    ctx.strokeStyle = color;
    ctx.lineWidth = 2.5;
    ctx.setLineDash(p.dashed ? [8, 6] : []);
    if (p.points.length > 1) polyline(ctx, p.points);
    ctx.setLineDash([]);
    if (p.arc) drawArc(ctx, sel, sel.pose, p.arc.from, p.arc.to, color);
    if (p.marks) {
      ctx.fillStyle = color;
      ctx.font = "11px system-ui, sans-serif";
      p.marks.forEach((m, i) => {
        const [mx, my] = toScreen(m[0], m[1]);
        ctx.beginPath();
        ctx.arc(mx, my, 4, 0, 2 * Math.PI);
        ctx.fill();
        ctx.fillText(String(i + 1), mx + 6, my - 6);
      });
    }
    if (p.end) drawFootprint(ctx, sel, p.end, { ghost: true, color });
    if (currentKind() === "goto") {
      const [tx, ty] = toScreen(p.end.x, p.end.y);
      ctx.beginPath();
      ctx.moveTo(tx - 8, ty);
      ctx.lineTo(tx + 8, ty);
      ctx.moveTo(tx, ty - 8);
      ctx.lineTo(tx, ty + 8);
      ctx.stroke();
    }
  }

  ctx.font = "12px system-ui, sans-serif";
  for (const r of ordered) {
    if (!r.pose) continue;
    const stale = now() - r.poseSeen > 5;
    drawFootprint(ctx, r, r.pose, {
      color: stale ? "#888" : r.color,
      fill: r === sel ? "rgba(255,255,255,0.28)" : "rgba(255,255,255,0.12)",
    });
    if (r.base && r.base.estop) {
      const [sx, sy] = toScreen(r.pose.x, r.pose.y);
      ctx.strokeStyle = "#ff1744";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(sx, sy, Math.max(16, 1.3 * v.scale), 0, 2 * Math.PI);
      ctx.stroke();
    }
    const [lx, ly] = toScreen(r.pose.x, r.pose.y);
    ctx.fillStyle = stale ? "#888" : "#e6edf3";
    const off = footprintPx(r) * 0.6 + 4;
    ctx.fillText(r.name + (stale ? " (stale)" : ""), lx + off, ly - off);
  }
}

function setupMap() {
  const c = $("map");
  new ResizeObserver(resizeMap).observe(c);
  let drag = null;
  c.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0) return;
    drag = { x: ev.clientX, y: ev.clientY, cx: S.view.cx, cy: S.view.cy, moved: false };
    c.setPointerCapture(ev.pointerId);
  });
  c.addEventListener("pointermove", (ev) => {
    const rect = c.getBoundingClientRect();
    const [wx, wy] = toWorld(ev.clientX - rect.left, ev.clientY - rect.top);
    $("map-cursor").textContent = `x ${wx.toFixed(2)}  y ${wy.toFixed(2)} m`;
    if (!drag) return;
    const dx = ev.clientX - drag.x;
    const dy = ev.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) > 4) {
      drag.moved = true;
      $("map-follow").checked = false;
    }
    if (drag.moved) {
      S.view.cx = drag.cx - dx / S.view.scale;
      S.view.cy = drag.cy + dy / S.view.scale;
      markDirty();
    }
  });
  c.addEventListener("pointerup", (ev) => {
    if (!drag) return;
    const click = !drag.moved;
    drag = null;
    const sel = S.robots.get(S.selected);
    if (!click || S.role !== "operator" || (sel && sel.kind !== "rover")) return;
    const rect = c.getBoundingClientRect();
    const [wx, wy] = toWorld(ev.clientX - rect.left, ev.clientY - rect.top);
    if (currentKind() === "waypoints") {
      if (S.waypoints.length < 50) S.waypoints.push([Number(wx.toFixed(2)), Number(wy.toFixed(2))]);
    } else {
      $("cmd-kind").value = "goto";
      $("cmd-x").value = wx.toFixed(2);
      $("cmd-y").value = wy.toFixed(2);
    }
    updatePreview();
  });
  c.addEventListener("pointercancel", () => {
    drag = null;
  });
  c.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const rect = c.getBoundingClientRect();
    const px = ev.clientX - rect.left;
    const py = ev.clientY - rect.top;
    const [wx, wy] = toWorld(px, py);
    const v = S.view;
    v.scale = Math.min(400, Math.max(0.3, v.scale * Math.exp(-ev.deltaY * 0.0015)));
    // keep the point under the cursor where it is
    v.cx = wx - (px - v.w / 2) / v.scale;
    v.cy = wy + (py - v.h / 2) / v.scale;
    markDirty();
  }, { passive: false });
  c.addEventListener("keydown", (ev) => {
    const v = S.view;
    const stepM = 60 / v.scale;
    const moves = { ArrowLeft: [-stepM, 0], ArrowRight: [stepM, 0], ArrowUp: [0, stepM],
      ArrowDown: [0, -stepM] };
    if (moves[ev.key]) {
      v.cx += moves[ev.key][0];
      v.cy += moves[ev.key][1];
      $("map-follow").checked = false;
    } else if (ev.key === "+" || ev.key === "=") v.scale = Math.min(400, v.scale * 1.25);
    else if (ev.key === "-") v.scale = Math.max(0.3, v.scale / 1.25);
    else return;
    ev.preventDefault();
    markDirty();
  });
  $("map-center").addEventListener("click", () => {
    const r = S.robots.get(S.selected);
    if (r && r.pose) {
      S.view.cx = r.pose.x;
      S.view.cy = r.pose.y;
      markDirty();
    }
  });
  for (const id of ["map-follow", "map-costmap", "map-dose"]) $(id).addEventListener("change", markDirty);
  $("map-clear-track").addEventListener("click", () => {
    for (const r of S.robots.values()) {
      r.track = r.pose ? [[r.pose.x, r.pose.y]] : [];
      r.doses = [];
    }
    markDirty();
  });
}

// ---------------------------------------------------------------------------------------------
// Start

// Keep the socket honest: a ping every 10 s; a socket silent for 30 s is dropped and remade
// (the console sends the link state every second, so silence means a dead connection).
function pingSocket() {
  const ws = S.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || S.wsState !== "live") return;
  if (Date.now() - S.wsLastMessage > 30000) {
    S.ws = null;
    ws.close(4000, "silent");
    scheduleReconnect();
    return;
  }
  ws.send(JSON.stringify({ type: "ping", t: Date.now() }));
}

function tick() {
  const d = new Date();
  $("clock").textContent = `${d.toISOString().slice(11, 19)} UTC`;
  if (!S.token) return;
  renderWsState();
  tickCommands();
  renderCameraInfo();
  renderRobotsTable();
  if (S.diagnostics.size) renderDiagnostics();
  markDirty(); // stale markers
}

function init() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", () => logout(""));
  $("robot-select").addEventListener("change", (ev) => selectRobot(ev.target.value));
  $("robots").addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr[data-robot]");
    if (tr) selectRobot(tr.dataset.robot);
  });
  $("cmd-kind").addEventListener("change", updatePreview);
  $("cmd-form").addEventListener("input", updatePreview);
  $("cmd-form").addEventListener("submit", onSend);
  // Enter in a field does not send: a command to a robot 1.3 s away goes by the Send button only
  $("cmd-form").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && ev.target.tagName === "INPUT") ev.preventDefault();
  });
  $("cmd-stop").addEventListener("click", () => simpleCommand("stop"));
  $("cmd-pause").addEventListener("click", () => simpleCommand("pause"));
  $("cmd-resume").addEventListener("click", () => simpleCommand("resume"));
  $("cmd-cancel").addEventListener("click", () => simpleCommand("cancel"));
  $("cmd-waypoints-clear").addEventListener("click", () => {
    S.waypoints = [];
    updatePreview();
  });
  $("cmd-estop").addEventListener("click", () => simpleCommand("estop"));
  $("release").addEventListener("click", () => simpleCommand("release"));
  $("estop-all").addEventListener("click", onEstopAll);
  setupMap();
  setInterval(tick, 1000);
  setInterval(pingSocket, 10000);
  tick();

  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch {
    saved = null;
  }
  if (saved && typeof saved.token === "string" && (!saved.expires || saved.expires > Date.now())) {
    startSession(saved);
  } else {
    $("login-user").focus();
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
