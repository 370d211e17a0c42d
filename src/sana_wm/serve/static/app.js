// sana-wm serve: the page. One WebSocket per session (protocol: sana_wm/serve/session.py). Frames arrive as JPEG
// binary messages after each chunk's JSON header; they are played at the video's frame rate from a small buffer,
// and the next chunk is asked for when the video left to play falls below the lead mark the server sends with
// each chunk (sana_wm/serve/pacing.py): the server runs only as far ahead of what is shown as a chunk takes to
// make, and reads the keys (sent whenever they change) when the chunk starts, so a key shows as soon as it can.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const tokenQuery = token ? "?token=" + encodeURIComponent(token) : "";
const KEYS = "wasdijkl";
const HELP = {
  current: "w/s forward/back, a/d turn left/right, i/k look up/down, j/l strafe left/right",
  legacy: "w/s forward/back, a/d strafe left/right, i/k look up/down, j/l turn left/right",
};

// Everything the page knows; exposed as window.sanaWM for the browser tests.
const S = {
  fps: 16, chunkFrames: 24, mode: "live", source: null, example: null,
  running: false, finished: false, requested: false, leadS: 1.5,
  header: null, expect: 0, buffer: [], shown: 0, received: 0, chunks: 0,
  held: new Set(), pose: null, path: [], shownTimes: [], rtf: null,
  video: null, sidecar: null, errors: [], closed: null, queued: null, ready: false, limits: null,
};
window.sanaWM = S;

const $ = (id) => document.getElementById(id);
const frameCanvas = $("frame"), frameCtx = frameCanvas.getContext("2d");
const mapCanvas = $("map"), mapCtx = mapCanvas.getContext("2d");

function status(text, isError) {
  $("status").textContent = text;
  $("status").style.color = isError ? "#f77" : "#fc6";
}

const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" + tokenQuery);
ws.binaryType = "blob";
const send = (message) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message)); };

ws.onmessage = (event) => {
  if (typeof event.data !== "string") return onFrame(event.data);
  const m = JSON.parse(event.data);
  if (m.type === "queued") { S.queued = m.position; status(`waiting in the queue: position ${m.position}`); }
  else if (m.type === "ready") { S.ready = true; S.queued = null; setup(m); status("ready: pick a first frame and press Start"); }
  else if (m.type === "started") onStarted(m);
  else if (m.type === "chunk") onChunk(m);
  else if (m.type === "finished") onFinished(m);
  else if (m.type === "uploaded") { choose("upload"); status(`uploaded a ${m.width}x${m.height} ${m.format} image`); }
  else if (m.type === "error") { S.errors.push(m.message); status(m.message, true); }
  else if (m.type === "closed") { S.closed = m.reason; status("session closed: " + m.reason, true); }
};
ws.onclose = () => { if (!S.closed) status("disconnected from the server; reload the page to start again", true); S.running = false; updateButtons(); };

function setup(info) {
  S.limits = info.limits;
  const box = $("examples");
  box.innerHTML = "";
  for (const name of info.examples) {
    const button = document.createElement("button");
    button.dataset.example = name;
    button.innerHTML = `<img alt="${name}" src="api/examples/${encodeURIComponent(name)}.png${tokenQuery}"><span>${name}</span>`;
    button.onclick = () => { S.example = name; choose("example"); };
    box.appendChild(button);
  }
  const preset = $("preset");
  for (const [name, action] of Object.entries(info.presets)) {
    const option = document.createElement("option");
    option.value = name; option.textContent = `${name} (${action})`;
    preset.appendChild(option);
  }
  updateButtons();
}

function choose(source) {
  S.source = source;
  for (const b of document.querySelectorAll("#examples button")) {
    b.classList.toggle("chosen", source === "example" && b.dataset.example === S.example);
  }
  updateButtons();
}

function updateButtons() {
  $("start").disabled = !S.ready || S.running || !S.source;
  $("stop").disabled = !S.running;
}

$("upload").onchange = async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const limit = S.limits ? S.limits.max_upload_bytes : Infinity;
  if (file.size > limit) {  // refused here: the server would close the socket on a message far above its limit
    status(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MiB; the limit is ${(limit / 2 ** 20).toFixed(1)} MiB`, true);
    return;
  }
  ws.send(await file.arrayBuffer());
};
$("mapping").onchange = () => { $("keyhelp").textContent = "Keys: " + HELP[$("mapping").value]; };
$("keyhelp").textContent = "Keys: " + HELP.current;

$("start").onclick = () => {
  const mode = document.querySelector("input[name=mode]:checked").value;
  const message = { type: "start", source: S.source, mode, mapping: $("mapping").value, seed: Number($("seed").value) };
  if (S.source === "example") message.example = S.example;
  if (mode === "preset") message.preset = $("preset").value;
  if (mode === "action") message.action = $("action").value;
  Object.assign(S, { mode, running: true, finished: false, requested: true, buffer: [], path: [], shown: 0,
                     received: 0, chunks: 0, pose: null, video: null, sidecar: null, startClicked: performance.now(),
                     firstFrameS: null });
  $("downloads").hidden = true;
  send(message);
  status("starting...");
  updateButtons();
};
$("stop").onclick = () => { send({ type: "stop" }); status("finishing the video..."); };

function onStarted(m) {
  S.fps = m.fps; S.chunkFrames = m.frames_per_chunk;
  status(m.mode === "live" ? "driving: hold the keys (click the picture first if keys do nothing)" : "playing the " + m.mode);
}

function onChunk(m) {
  S.header = m; S.expect = m.frames; S.requested = false; S.chunks += 1;
  S.leadS = m.lead_s; S.rtf = m.rtf;
  $("rtf").textContent = m.rtf.toFixed(2);
}

function onFrame(blob) {
  if (!S.header || S.expect <= 0) return;
  const k = S.header.frames - S.expect;
  S.expect -= 1; S.received += 1;
  const item = { bitmap: null, pose: S.header.poses[k], held: S.header.held };
  S.buffer.push(item);
  createImageBitmap(blob).then((bitmap) => { item.bitmap = bitmap; });
}

function onFinished(m) {
  S.running = false; S.finished = true; updateButtons();
  if (!m.video) { status(m.message || "stopped"); return; }
  S.video = m.video + tokenQuery; S.sidecar = m.sidecar + tokenQuery;
  $("video-link").href = S.video; $("sidecar-link").href = S.sidecar;
  $("command").textContent = m.command;
  $("downloads").hidden = false;
  status(`finished: ${m.seconds.toFixed(1)} s of video in ${m.compute_seconds.toFixed(1)} s of compute`);
}

// Keys: the set held now, sent when it changes; "next" carries it too.
function keyOf(event) {
  const key = event.key.toLowerCase();
  if (!KEYS.includes(key) || event.target.tagName === "INPUT" || event.ctrlKey || event.metaKey || event.altKey) return null;
  return key;
}
document.addEventListener("keydown", (event) => {
  const key = keyOf(event);
  if (!key || S.held.has(key)) return;
  S.held.add(key); keysChanged();
});
document.addEventListener("keyup", (event) => {
  const key = keyOf(event);
  if (!key) return;
  S.held.delete(key); keysChanged();
});
window.addEventListener("blur", () => { S.held.clear(); keysChanged(); });
function heldText() { return [...S.held].sort().join(""); }
function keysChanged() {
  $("held").textContent = heldText() || "-";
  if (S.running && S.mode === "live") send({ type: "keys", held: heldText() });
}

// Playback: one frame every 1/fps seconds from the buffer; ask for the next chunk below the lead mark.
let nextAt = 0;
function tick(now) {
  requestAnimationFrame(tick);
  if (S.buffer.length && S.buffer[0].bitmap && now >= nextAt) {
    const item = S.buffer.shift();
    frameCtx.drawImage(item.bitmap, 0, 0, frameCanvas.width, frameCanvas.height);
    item.bitmap.close();
    S.shown += 1; S.pose = item.pose; S.path.push(item.pose);
    if (S.firstFrameS === null && S.startClicked) S.firstFrameS = (now - S.startClicked) / 1000;
    S.shownTimes.push(now);
    while (S.shownTimes.length && now - S.shownTimes[0] > 1000) S.shownTimes.shift();
    $("fps").textContent = String(S.shownTimes.length);
    $("seconds").textContent = (S.shown / S.fps).toFixed(1);
    drawMap();
    nextAt = Math.max(nextAt + 1000 / S.fps, now - 1000 / S.fps);
  } else if (!S.buffer.length) {
    nextAt = now;  // stalled: play the next frame as soon as it is here
  }
  const buffered = (S.buffer.length + Math.max(S.expect, 0)) / S.fps;
  if (S.running && !S.requested && S.chunks > 0 && buffered < S.leadS) {
    S.requested = true;
    send({ type: "next", held: heldText() });
  }
}
requestAnimationFrame(tick);

function drawMap() {
  const w = mapCanvas.width, h = mapCanvas.height, pad = 16;
  mapCtx.clearRect(0, 0, w, h);
  if (!S.path.length) return;
  let minX = -1, maxX = 1, minZ = -1, maxZ = 1;
  for (const [x, z] of S.path) { minX = Math.min(minX, x); maxX = Math.max(maxX, x); minZ = Math.min(minZ, z); maxZ = Math.max(maxZ, z); }
  const scale = Math.min((w - 2 * pad) / (maxX - minX), (h - 2 * pad) / (maxZ - minZ));
  const px = (x) => pad + (x - minX) * scale + ((w - 2 * pad) - (maxX - minX) * scale) / 2;
  const pz = (z) => h - pad - (z - minZ) * scale - ((h - 2 * pad) - (maxZ - minZ) * scale) / 2;  // forward is up
  mapCtx.strokeStyle = "#333"; mapCtx.beginPath();
  mapCtx.moveTo(px(0), 0); mapCtx.lineTo(px(0), h); mapCtx.moveTo(0, pz(0)); mapCtx.lineTo(w, pz(0)); mapCtx.stroke();
  mapCtx.strokeStyle = "#6cf"; mapCtx.lineWidth = 2; mapCtx.beginPath();
  S.path.forEach(([x, z], i) => (i ? mapCtx.lineTo(px(x), pz(z)) : mapCtx.moveTo(px(x), pz(z))));
  mapCtx.stroke();
  const [x, z, yaw] = S.path[S.path.length - 1];
  const a = yaw * Math.PI / 180;
  mapCtx.save(); mapCtx.translate(px(x), pz(z)); mapCtx.rotate(a);
  mapCtx.fillStyle = "#fc6"; mapCtx.beginPath();
  mapCtx.moveTo(0, -9); mapCtx.lineTo(6, 6); mapCtx.lineTo(-6, 6); mapCtx.closePath(); mapCtx.fill();
  mapCtx.restore();
}
