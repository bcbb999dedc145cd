// ClipMorph web page: plain JavaScript, no build step, no CDN (works offline).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, kind: null, style: null, job: null, polling: null };
const HISTORY_KEY = "clipmorph.history";

async function api(path, body) {
  const response = await fetch(path, body instanceof FormData
    ? { method: "POST", body }
    : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body || {}) });
  if (!response.ok) throw new Error(await errorText(response));
  return response;
}

async function errorText(response) {
  const text = await response.text();
  try {
    const data = JSON.parse(text);
    const item = Array.isArray(data) ? data[0] : data;
    return `${response.status}: ${item.error || text}`;
  } catch (_) {
    return `${response.status}: ${text}`;
  }
}

// A catalogue painting comes as two styles: "<id>" (the full network) and "<id>-lite" (the fast,
// narrower one). The gallery shows each painting once; a quality choice picks the network.
const LITE = "-lite";
const gallery = { paintings: new Map(), painting: null };

function paintings(styles) {
  const byId = new Map(styles.map((style) => [style.id, style]));
  const found = new Map();
  for (const style of styles) {
    if (style.id.endsWith(LITE) && byId.has(style.id.slice(0, -LITE.length))) continue;
    found.set(style.id, { style, lite: byId.get(style.id + LITE) || null });
  }
  return found;
}

async function loadStyles() {
  const styles = await (await api("/styles")).json();
  gallery.paintings = paintings(styles);
  const tiles = $("gallery");
  tiles.replaceChildren();
  $("no-styles").hidden = styles.length > 0;
  for (const [id, { style }] of gallery.paintings) {
    const tile = document.createElement("button");
    tile.className = "style";
    tile.type = "button";
    tile.dataset.style = id;
    tile.setAttribute("role", "option");
    tile.setAttribute("aria-selected", "false");
    tile.title = [style.display_name, style.artist, style.year].filter(Boolean).join(", ");
    const img = document.createElement("img");
    img.src = style.thumbnail_url;
    img.alt = style.display_name;
    img.loading = "lazy";
    const label = document.createElement("span");
    label.textContent = style.display_name;
    tile.append(img, label);
    if (style.artist && !style.display_name.includes(style.artist.split(" ").pop())) {
      const artist = document.createElement("small");
      artist.textContent = style.artist;
      tile.append(artist);
    }
    tile.addEventListener("click", () => selectStyle(id));
    tiles.append(tile);
  }
  if (gallery.paintings.size) selectStyle(gallery.paintings.keys().next().value);
}

// ``id``: a painting's id (at the quality chosen), or one network's own style id (that quality).
function selectStyle(id) {
  let painting = id;
  if (!gallery.paintings.has(id) && id.endsWith(LITE)) {
    painting = id.slice(0, -LITE.length);
    $("fast").checked = true;
  }
  gallery.painting = painting;
  const entry = gallery.paintings.get(painting);
  $("quality").hidden = !(entry && entry.lite);
  state.style = entry && entry.lite && $("fast").checked ? entry.lite.id : painting;
  for (const tile of document.querySelectorAll(".style")) {
    tile.setAttribute("aria-selected", String(tile.dataset.style === painting));
  }
  updateButton();
}

function updateButton() {
  $("go").disabled = !(state.file && state.style) || state.polling !== null;
}

function chooseFile(file) {
  if (!file) return;
  state.file = file;
  state.kind = file.type.startsWith("video/") ? "video" : "image";
  $("drop-text").textContent = `${file.name} (${(file.size / 1e6).toFixed(1)} MB)`;
  const preview = document.createElement(state.kind === "video" ? "video" : "img");
  preview.src = URL.createObjectURL(file);
  if (state.kind === "video") preview.muted = true;
  $("preview").replaceChildren(preview);
  updateButton();
}

function resetResult() {
  $("result-panel").hidden = false;
  for (const id of ["compare", "split", "video", "error", "download", "progress"]) $(id).hidden = true;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function form(fileField) {
  const data = new FormData();
  data.append(fileField, state.file, state.file.name);
  data.append("style", state.style);
  data.append("strength", $("strength").value);
  data.append("preserve_color", $("preserve").checked ? "true" : "false");
  if ($("brush").value) data.append("max_side", $("brush").value);  // none: the server's paint side
  return data;
}

async function stylizeImage() {
  const data = form("image");
  data.append("output_format", "png");
  const blob = await (await api("/stylize", data)).blob();
  const url = URL.createObjectURL(blob);
  $("after").src = url;
  $("before").src = URL.createObjectURL(state.file);
  $("after").onload = () => {
    $("before").style.width = `${$("after").clientWidth}px`;
    $("before").style.height = `${$("after").clientHeight}px`;
  };
  $("compare").hidden = false;
  $("split").hidden = false;
  offerDownload(url, `clipmorph-${state.style}.png`);
  remember({ kind: "image", style: state.style, thumb: await thumbnail(url) });
}

async function stylizeVideo() {
  const submitted = await (await api("/video_job/submit", form("video"))).json();
  state.job = submitted.job_id;
  $("progress").hidden = false;
  $("bar").value = 0;
  $("progress-text").textContent = "queued…";
  await new Promise((resolve) => {
    state.polling = setInterval(async () => {
      try {
        if (await pollJob()) { stopPolling(); resolve(); }
      } catch (error) {
        stopPolling(); showError(error.message); resolve();
      }
    }, 500);
  });
}

async function pollJob() {
  const response = await fetch(`/jobs/${state.job}`);
  if (response.status === 404) return false; // not started yet
  const job = await response.json();
  if (job.total) $("bar").value = job.done / job.total;
  const eta = job.eta_seconds != null ? `, ${Math.ceil(job.eta_seconds)} s left` : "";
  $("progress-text").textContent = job.state === "queued" && job.position
    ? `queued: ${job.position === 1 ? "next" : `number ${job.position}`} in line`
    : `${job.state}: ${job.done || 0} / ${job.total || "?"} frames, ${job.fps || 0} frames/s${eta}`;
  if (job.state === "succeeded") {
    $("progress").hidden = true;
    const url = `/jobs/${state.job}/result`;
    $("video").src = url;
    $("video").hidden = false;
    offerDownload(url, `clipmorph-${state.style}.mp4`);
    remember({ kind: "video", style: state.style, url });
    return true;
  }
  if (job.state === "failed" || job.state === "cancelled") {
    $("progress").hidden = true;
    showError(job.state === "cancelled" ? "Cancelled." : `Failed: ${job.error}`);
    return true;
  }
  return false;
}

function stopPolling() {
  clearInterval(state.polling);
  state.polling = null;
  updateButton();
}

function offerDownload(url, name) {
  $("download").href = url;
  $("download").download = name;
  $("download").hidden = false;
}

async function thumbnail(url) {
  const img = new Image();
  img.src = url;
  await img.decode();
  const canvas = document.createElement("canvas");
  const scale = 120 / Math.max(img.width, img.height);
  canvas.width = Math.round(img.width * scale);
  canvas.height = Math.round(img.height * scale);
  canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL("image/jpeg", 0.7);
}

function remember(entry) {
  const items = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
  items.unshift({ ...entry, when: new Date().toLocaleString() });
  localStorage.setItem(HISTORY_KEY, JSON.stringify(items.slice(0, 12)));
  renderHistory();
}

function renderHistory() {
  const items = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
  $("history").replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    if (item.thumb) {
      const img = document.createElement("img");
      img.src = item.thumb;
      img.alt = item.style;
      li.append(img);
    } else if (item.url) {
      const link = document.createElement("a");
      link.href = item.url;
      link.textContent = "video result";
      li.append(link);
    }
    li.append(document.createTextNode(` ${item.style} · ${item.when}`));
    return li;
  }));
}

$("file").addEventListener("change", (event) => chooseFile(event.target.files[0]));
$("drop").addEventListener("dragover", (event) => { event.preventDefault(); $("drop").classList.add("over"); });
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (event) => {
  event.preventDefault();
  $("drop").classList.remove("over");
  chooseFile(event.dataTransfer.files[0]);
});
$("strength").addEventListener("input", () => { $("strength-value").textContent = Number($("strength").value).toFixed(2); });
$("split").addEventListener("input", () => { $("before-wrap").style.width = `${$("split").value}%`; });
$("cancel").addEventListener("click", () => state.job && fetch(`/jobs/${state.job}/cancel`, { method: "POST" }));
$("clear-history").addEventListener("click", () => { localStorage.removeItem(HISTORY_KEY); renderHistory(); });
$("go").addEventListener("click", async () => {
  resetResult();
  $("go").disabled = true;
  try {
    if (state.kind === "video") await stylizeVideo(); else await stylizeImage();
  } catch (error) {
    showError(error.message);
  } finally {
    updateButton();
  }
});

renderHistory();
for (const id of ["best", "fast"]) $(id).addEventListener("change", () => selectStyle(gallery.painting));
loadStyles().catch((error) => showError(`Could not load styles: ${error.message}`));

// "Fine" paints at the server's largest size (its limit, from /info); offered only once known.
async function loadBrush() {
  const limits = (await (await api("/info")).json()).limits;
  const bold = $("brush").options[0];
  bold.value = Math.min(Number(bold.value), Number(limits.max_side));  // never over the server's cap
  if (Number(limits.max_side) > Number(limits.paint_side)) {
    $("brush-fine").value = limits.max_side;
    $("brush-fine").hidden = false;
  }
}
loadBrush().catch(() => {});  // without /info the page keeps Bold and Painterly

// --- create your own style: a training job on the server ---

const creation = { job: null, ownerKey: null, timer: null };

async function pollCreation() {
  const response = await fetch(`/jobs/${creation.job}`);
  if (!response.ok) return;
  const job = await response.json();
  if (job.steps) $("create-bar").value = job.step / job.steps;
  const eta = job.eta_seconds != null ? `, ${Math.ceil(job.eta_seconds)} s left` : "";
  const phase = job.phase === "evaluating" ? " (evaluating)" : "";
  $("create-text").textContent = `${job.state}: step ${job.step || 0} / ${job.steps || "?"}${eta}${phase}`;
  if (job.preview_url) {
    $("create-preview").src = job.preview_url;
    $("create-training").hidden = false;
  }
  if (["succeeded", "failed", "cancelled"].includes(job.state)) {
    clearInterval(creation.timer);
    creation.timer = null;
    $("create-progress").hidden = true;
    $("create").disabled = false;
    if (job.state === "succeeded") {
      $("create-done").textContent = `Style "${job.result.style}" is ready: pick it in the gallery.`;
      $("create-preview-caption").textContent = "Your trained style: photo | new style";
      $("create-done").hidden = false;
      await loadStyles();
      selectStyle(job.result.style);
    } else {
      $("create-error").textContent = job.state === "cancelled" ? "Cancelled." : `Failed: ${job.error}`;
      $("create-error").hidden = false;
    }
  }
}

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("create-error").hidden = true;
  $("create-done").hidden = true;
  $("create-training").hidden = true;
  $("create-instant").hidden = true;
  $("create").disabled = true;
  try {
    const form = new FormData($("create-form"));
    if (state.file && state.kind === "image") form.append("photo", state.file);  // the instant preview's photo
    const job = await (await api("/create_style", form)).json();
    if (job.instant_preview_url) {
      $("create-instant-img").src = job.instant_preview_url;
      $("create-instant").hidden = false;
    }
    creation.job = job.job_id;
    creation.ownerKey = job.owner_key;
    $("create-bar").value = 0;
    $("create-text").textContent = "queued…";
    $("create-progress").hidden = false;
    creation.timer = setInterval(pollCreation, 700);
  } catch (error) {
    $("create-error").textContent = error.message;
    $("create-error").hidden = false;
    $("create").disabled = false;
  }
});

$("create-cancel").addEventListener("click", () => creation.job && fetch(`/jobs/${creation.job}/cancel`, {
  method: "POST", headers: { "X-Owner-Key": creation.ownerKey || "" },
}));
