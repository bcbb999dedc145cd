// Live camera: frames go to /live/ws as JPEGs (a 4-byte frame number first) and come back painted.
// At most WINDOW frames are in flight: the next is captured when an answer (or a "dropped"
// notice) arrives, so the stream runs as fast as the server paints and never builds a queue.
// Uses app.js's globals: $, state, gallery, selectStyle.
"use strict";

const WINDOW = 2;
const CAPTURE_LONG_SIDE = 640; // 640x360 from a 16:9 camera: what the service is sized for
const live = {
  ws: null, stream: null, ready: false, inFlight: 0, next: 0, capturing: false,
  sentAt: new Map(), painted: [], latencies: [], dropped: 0, unpainted: 0, statsTimer: null,
};

function liveUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({
    style: state.style || "", strength: $("strength").value, preserve_color: String($("preserve").checked),
  });
  return `${scheme}://${location.host}/live/ws?${query}`;
}

function showLiveError(message) {
  $("live-error").textContent = message;
  $("live-error").hidden = !message;
}

async function startLive() {
  if (live.ws || live.stream || live.starting) return;
  live.starting = true;
  $("live-start").disabled = true;
  try {
    await openStream();
  } finally {
    live.starting = false;
    $("live-start").disabled = Boolean(live.ws);
  }
}

async function openStream() {
  showLiveError("");
  if (!window.isSecureContext || !navigator.mediaDevices) {
    showLiveError("The camera needs a secure page: open ClipMorph over HTTPS or on localhost.");
    return;
  }
  if (!state.style) { showLiveError("Pick a style first."); return; }
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: false });
  } catch (error) {
    showLiveError(`The camera could not be opened: ${error.message}`);
    return;
  }
  if ($("live-panel").hidden) { stopLive(); return; } // the tab was left while the camera opened
  const camera = $("live-camera");
  camera.srcObject = live.stream;
  await camera.play();
  Object.assign(live, {
    ready: false, inFlight: 0, next: 0, painted: [], latencies: [], dropped: 0, unpainted: 0, paintingAt: null,
  });
  live.sentAt.clear();
  const ws = new WebSocket(liveUrl());
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  ws.onmessage = (event) => {
    if (live.ws !== ws) return; // a stopped stream's late answers
    if (typeof event.data === "string") onNotice(JSON.parse(event.data));
    else onFrame(event.data);
  };
  ws.onclose = (event) => {
    if (live.ws !== ws) return;
    if (event.code !== 1000 || event.reason) showLiveError(event.reason || `the stream ended (code ${event.code})`);
    stopLive();
  };
  $("live-stop").disabled = false;
  $("live-snapshot").disabled = false;
  live.statsTimer = setInterval(showStats, 500);
}

function stopLive() {
  const ws = live.ws;
  live.ws = null;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "stopped");
  if (live.stream) live.stream.getTracks().forEach((track) => track.stop());
  live.stream = null;
  live.ready = false;
  clearInterval(live.statsTimer);
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
}

// "Painting with monet-lite at 480x270": the server picks the network's size by the time a frame takes.
function describe() {
  const size = live.paintingAt ? ` at ${live.paintingAt.join("x")}` : "";
  $("live-note").textContent = `Painting with ${live.style}${size}.`;
}

function onNotice(notice) {
  if (notice.ready) { live.ready = true; live.style = notice.style; describe(); pump(); }
  if (notice.chosen) { live.style = notice.style; describe(); }
  if (notice.painting_at) { live.paintingAt = notice.painting_at; describe(); }
  if (notice.dropped !== undefined) { live.dropped += 1; answered(notice.dropped); }
  if (notice.error) showLiveError(notice.error);
}

function answered(number) {
  const sent = live.sentAt.get(number);
  live.sentAt.delete(number);
  if (sent !== undefined) live.inFlight -= 1;
  pump();
  return sent;
}

async function onFrame(data) {
  const header = new DataView(data, 0, 5);
  const number = header.getUint32(0);
  const painted = header.getUint8(4) === 0;
  const sent = answered(number);
  const now = performance.now();
  if (painted) {
    live.painted.push(now);
    if (sent !== undefined) live.latencies.push(now - sent);
    if (live.latencies.length > 60) live.latencies.shift();
  } else {
    live.unpainted += 1;
  }
  const picture = await createImageBitmap(new Blob([data.slice(5)], { type: "image/jpeg" }));
  // The server answers at the size it painted (smaller when the pace chose so): shown at the camera's.
  const canvas = $("live-painted");
  if (canvas.width !== captureCanvas.width || canvas.height !== captureCanvas.height) {
    canvas.width = captureCanvas.width;
    canvas.height = captureCanvas.height;
  }
  const context = canvas.getContext("2d");
  context.imageSmoothingQuality = "high";
  context.drawImage(picture, 0, 0, canvas.width, canvas.height);
  picture.close();
  canvas.dataset.frames = String(Number(canvas.dataset.frames || 0) + (painted ? 1 : 0));
}

function pump() {
  while (live.ready && live.ws && live.inFlight < WINDOW && !live.capturing) {
    live.capturing = true;
    live.inFlight += 1;
    sendFrame()
      .catch((error) => { live.inFlight -= 1; showLiveError(`a frame could not be sent: ${error.message}`); })
      .finally(() => { live.capturing = false; pump(); });
  }
}

const captureCanvas = document.createElement("canvas");

async function sendFrame() {
  const camera = $("live-camera");
  const scale = Math.min(1, CAPTURE_LONG_SIDE / Math.max(camera.videoWidth, camera.videoHeight, 1));
  captureCanvas.width = Math.max(16, Math.round(camera.videoWidth * scale));
  captureCanvas.height = Math.max(16, Math.round(camera.videoHeight * scale));
  captureCanvas.getContext("2d").drawImage(camera, 0, 0, captureCanvas.width, captureCanvas.height);
  const blob = await new Promise((resolve) => captureCanvas.toBlob(resolve, "image/jpeg", 0.8));
  const ws = live.ws;
  if (!blob || !ws || ws.readyState !== WebSocket.OPEN) { live.inFlight -= 1; return; }
  const number = live.next++;
  const message = new Uint8Array(4 + blob.size);
  new DataView(message.buffer).setUint32(0, number);
  message.set(new Uint8Array(await blob.arrayBuffer()), 4);
  live.sentAt.set(number, performance.now());
  ws.send(message);
}

// What the viewer sees: painted frames per second over the last two seconds, median round trip.
function showStats() {
  const now = performance.now();
  live.painted = live.painted.filter((t) => now - t < 2000);
  const fps = live.painted.length / 2;
  const sorted = [...live.latencies].sort((a, b) => a - b);
  const latency = sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
  const stats = $("live-stats");
  stats.dataset.fps = fps.toFixed(1);
  stats.dataset.latencyMs = Number.isNaN(latency) ? "" : latency.toFixed(0);
  stats.textContent = `${fps.toFixed(1)} frames/s · ${Number.isNaN(latency) ? "–" : latency.toFixed(0)} ms round trip`
    + (live.dropped ? ` · ${live.dropped} dropped` : "") + (live.unpainted ? " · warming up" : "");
  live.unpainted = 0;
}

function send(choice) {
  if (live.ws && live.ws.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify(choice));
}

function snapshot() {
  $("live-painted").toBlob((blob) => {
    const link = $("live-download");
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(blob);
    link.click();
  }, "image/png");
}

// Tabs: the file panels or the live panel; the style gallery serves both. Live picks the fast network
// on a CPU; a GPU paints the full one live.
let onGpu = null;

async function servedOnGpu() {
  if (onGpu === null) {
    try {
      const info = await (await fetch("/info")).json();
      onGpu = String(info.model.device).startsWith("cuda");
    } catch (_) {
      onGpu = false;
    }
  }
  return onGpu;
}

async function showTab(liveTab) {
  $("tab-file").setAttribute("aria-selected", String(!liveTab));
  $("tab-live").setAttribute("aria-selected", String(liveTab));
  $("live-panel").hidden = !liveTab;
  $("input-panel").hidden = liveTab;
  $("go").hidden = liveTab;
  if (liveTab) {
    $("result-panel").dataset.wasShown = String(!$("result-panel").hidden);
    $("result-panel").hidden = true;
    const gpu = await servedOnGpu();
    if (!gpu) { // a painting chosen now or already, even before the gallery has loaded, paints with lite
      $("fast").checked = true;
      if (gallery.painting) selectStyle(gallery.painting);
    }
    $("live-panel").dataset.device = gpu ? "gpu" : "cpu"; // the choice is made (tests wait for it)
  } else {
    stopLive();
    $("result-panel").hidden = $("result-panel").dataset.wasShown !== "true";
  }
}

$("tab-file").addEventListener("click", () => showTab(false));
$("tab-live").addEventListener("click", () => showTab(true));
$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", stopLive);
$("live-snapshot").addEventListener("click", snapshot);
// After app.js's own handlers have chosen the style: tell the stream.
$("gallery").addEventListener("click", () => send({ style: state.style }));
for (const id of ["best", "fast"]) $(id).addEventListener("change", () => send({ style: state.style }));
$("strength").addEventListener("change", () => send({ strength: Number($("strength").value) }));
$("preserve").addEventListener("change", () => send({ preserve_color: $("preserve").checked }));
window.addEventListener("pagehide", stopLive);
