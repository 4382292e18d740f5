// The page: open a photo, paint the hole on a mask of the photo's size, send both to the server's job
// API, show its per-level progress, and take the result as the new photo (to download or fill again).
"use strict";

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
const ui = {
  file: byTestId("file-input"), canvas: byTestId("canvas"), size: byTestId("brush-size"),
  fill: byTestId("fill-button"), undo: byTestId("undo"), redo: byTestId("redo"),
  progress: byTestId("progress"), download: byTestId("download"), error: byTestId("error"),
  bar: document.getElementById("bar"), status: document.getElementById("status"),
  sizeValue: document.getElementById("size-value"), brush: document.getElementById("brush"),
  eraser: document.getElementById("eraser"), original: document.getElementById("original"),
  cancel: document.getElementById("cancel"), viewport: document.getElementById("viewport"),
  hint: document.getElementById("hint"),
};
const HOLE_TINT = "rgb(255, 40, 90)";
const HOLE_OPACITY = 0.5;
const MAX_ZOOM = 32;

const state = {
  file: null,        // the photo's bytes as sent to the server (a File or Blob)
  name: "photo",     // the photo's file name, for the server's result name
  photo: null,       // the photo as shown (ImageBitmap, upright)
  original: null,    // the photo as opened, before any fill
  mask: null,        // canvas of the photo's size: white where the hole is painted
  tinted: null,      // the same strokes in the hole's colour, for display
  strokes: [],       // {erase, size, points: [{x, y}]} in photo pixels, in painting order
  undone: [],        // strokes taken back by undo, the last first to come back
  stroke: null,      // the stroke being painted
  erasing: false,
  view: { scale: 1, x: 0, y: 0 },  // screen = photo * scale + (x, y), in CSS pixels
  pan: null,         // {x, y} of the pointer where the pan started, while panning
  spaceHeld: false,
  showOriginal: false,
  pointer: null,     // the pointer over the canvas (CSS pixels), for the brush outline
  job: null,         // {id, events: EventSource} of the running fill
  resultUrl: null,   // object URL of the last result (the download link's href)
};

// ---- Opening a photo

async function openFile(file) {
  if (!file) return;
  clearError();
  if (state.job) return showError("A fill is running: wait for it or cancel it before opening another photo.");
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (err) {
    return showError(`${file.name || "The file"}: not an image this browser can open (PNG, JPEG, WebP, GIF or BMP).`);
  }
  setDownload(null);
  state.original = bitmap;
  setPhoto(file, file.name || "pasted.png", bitmap);
  const side = Math.min(bitmap.width, bitmap.height);
  ui.size.max = Math.max(8, Math.round(side / 2));
  setBrushSize(Math.max(4, Math.round(side / 20)));
  fitView();
  ui.hint.hidden = true;
}

function setPhoto(blob, name, bitmap) {
  state.file = blob;
  state.name = name;
  state.photo = bitmap;
  state.mask = blankCanvas(bitmap.width, bitmap.height);
  state.tinted = blankCanvas(bitmap.width, bitmap.height);
  state.strokes = [];
  state.undone = [];
  updateButtons();
  render();
}

function blankCanvas(width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

ui.file.addEventListener("change", () => {
  openFile(ui.file.files[0]);
  ui.file.value = "";  // choosing the same file again opens it again
});
window.addEventListener("dragover", (e) => { e.preventDefault(); ui.viewport.classList.add("dragging"); });
window.addEventListener("dragleave", () => ui.viewport.classList.remove("dragging"));
window.addEventListener("drop", (e) => {
  e.preventDefault();
  ui.viewport.classList.remove("dragging");
  openFile(e.dataTransfer.files[0]);
});
document.addEventListener("paste", (e) => {
  const item = [...e.clipboardData.items].find((i) => i.kind === "file" && i.type.startsWith("image/"));
  if (item) openFile(item.getAsFile());
});

// ---- Painting the hole

function paint(stroke, from) {
  // Draws points[from - 1 ..] of the stroke (all of it when from is 0) on the mask and its tinted twin.
  for (const [canvas, colour] of [[state.mask, "#fff"], [state.tinted, HOLE_TINT]]) {
    const ctx = canvas.getContext("2d");
    ctx.save();
    ctx.globalCompositeOperation = stroke.erase ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = colour;
    ctx.lineWidth = stroke.size;
    ctx.lineCap = ctx.lineJoin = "round";
    const points = stroke.points.slice(Math.max(0, from - 1));
    ctx.beginPath();
    if (points.length === 1) {
      ctx.arc(points[0].x, points[0].y, stroke.size / 2, 0, 2 * Math.PI);
      ctx.fill();
    } else {
      ctx.moveTo(points[0].x, points[0].y);
      for (const p of points.slice(1)) ctx.lineTo(p.x, p.y);
      ctx.stroke();
    }
    ctx.restore();
  }
}

function repaint() {
  for (const canvas of [state.mask, state.tinted]) canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  for (const stroke of state.strokes) paint(stroke, 0);
  updateButtons();
  render();
}

function undo() {
  if (!state.strokes.length || state.job) return;
  state.undone.push(state.strokes.pop());
  repaint();
}

function redo() {
  if (!state.undone.length || state.job) return;
  state.strokes.push(state.undone.pop());
  repaint();
}

function toPhoto(e) {
  const rect = ui.canvas.getBoundingClientRect();
  const { scale, x, y } = state.view;
  return { x: (e.clientX - rect.left - x) / scale, y: (e.clientY - rect.top - y) / scale };
}

ui.canvas.addEventListener("pointerdown", (e) => {
  if (!state.photo) return;
  ui.canvas.setPointerCapture(e.pointerId);
  if (state.spaceHeld || e.button === 1) {
    state.pan = { x: e.clientX, y: e.clientY };
    return;
  }
  if (e.button !== 0 || state.job) return;
  state.stroke = { erase: state.erasing, size: Number(ui.size.value), points: [toPhoto(e)] };
  paint(state.stroke, 0);
  render();
});
ui.canvas.addEventListener("pointermove", (e) => {
  const rect = ui.canvas.getBoundingClientRect();
  state.pointer = { x: e.clientX - rect.left, y: e.clientY - rect.top };
  if (state.pan) {
    state.view.x += e.clientX - state.pan.x;
    state.view.y += e.clientY - state.pan.y;
    state.pan = { x: e.clientX, y: e.clientY };
  } else if (state.stroke) {
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    const from = state.stroke.points.length;
    for (const ev of events.length ? events : [e]) state.stroke.points.push(toPhoto(ev));
    paint(state.stroke, from);
  }
  render();
});
function endPointer() {
  state.pan = null;
  if (!state.stroke) return;
  state.strokes.push(state.stroke);
  state.undone = [];
  state.stroke = null;
  updateButtons();
}
ui.canvas.addEventListener("pointerup", endPointer);
ui.canvas.addEventListener("pointercancel", endPointer);
ui.canvas.addEventListener("pointerleave", () => { state.pointer = null; render(); });

// ---- Brush, zoom and pan

function setBrushSize(size) {
  const value = Math.min(Number(ui.size.max), Math.max(Number(ui.size.min), Math.round(size)));
  ui.size.value = value;
  ui.sizeValue.textContent = value;
  render();
}
ui.size.addEventListener("input", () => setBrushSize(Number(ui.size.value)));

function setTool(erasing) {
  state.erasing = erasing;
  ui.brush.setAttribute("aria-pressed", String(!erasing));
  ui.eraser.setAttribute("aria-pressed", String(erasing));
}
ui.brush.addEventListener("click", () => setTool(false));
ui.eraser.addEventListener("click", () => setTool(true));

function fittedScale() {
  // The whole photo in view with a margin, never enlarged past its own pixels.
  const rect = ui.canvas.getBoundingClientRect();
  return Math.min(rect.width / state.photo.width, rect.height / state.photo.height, 1) * 0.96;
}

function fitView() {
  const rect = ui.canvas.getBoundingClientRect();
  const scale = fittedScale();
  state.view = { scale, x: (rect.width - state.photo.width * scale) / 2, y: (rect.height - state.photo.height * scale) / 2 };
  render();
}

ui.canvas.addEventListener("wheel", (e) => {
  if (!state.photo) return;
  e.preventDefault();
  const rect = ui.canvas.getBoundingClientRect();
  const cx = e.clientX - rect.left, cy = e.clientY - rect.top;
  const { scale, x, y } = state.view;
  const next = Math.min(MAX_ZOOM, Math.max(fittedScale() / 4, scale * Math.exp(-e.deltaY * 0.0015)));
  // The photo point under the pointer stays under it.
  state.view = { scale: next, x: cx - (cx - x) * next / scale, y: cy - (cy - y) * next / scale };
  render();
}, { passive: false });

// ---- Drawing the view

let frameRequested = false;
function render() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => { frameRequested = false; draw(); });
}

function draw() {
  const canvas = ui.canvas, dpr = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * dpr), height = Math.round(canvas.clientHeight * dpr);
  if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, width, height);
  canvas.classList.toggle("panning", state.spaceHeld || Boolean(state.pan));
  if (!state.photo) return;
  const { scale, x, y } = state.view;
  ctx.setTransform(dpr * scale, 0, 0, dpr * scale, dpr * x, dpr * y);
  ctx.imageSmoothingEnabled = scale < 1;  // zoomed in, each photo pixel shows as a square
  if (state.showOriginal) {
    ctx.drawImage(state.original, 0, 0);
    return;
  }
  ctx.drawImage(state.photo, 0, 0);
  ctx.globalAlpha = HOLE_OPACITY;
  ctx.drawImage(state.tinted, 0, 0);
  ctx.globalAlpha = 1;
  if (state.pointer && !state.spaceHeld && !state.pan) {
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.beginPath();
    ctx.arc(state.pointer.x, state.pointer.y, Math.max(1, Number(ui.size.value) * scale / 2), 0, 2 * Math.PI);
    ctx.strokeStyle = state.erasing ? "#fff" : HOLE_TINT;
    ctx.lineWidth = 1.5;
    ctx.stroke();
  }
}
new ResizeObserver(render).observe(ui.canvas);

// ---- Filling

function maskBlob() {
  const canvas = blankCanvas(state.mask.width, state.mask.height);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(state.mask, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

async function problem(response) {
  // The server's one-line reason ({"detail": ...}), or the HTTP status when there is none.
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
  } catch (err) { /* not JSON */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

async function fill() {
  if (!state.photo || state.job || !state.strokes.length) return;
  clearError();
  state.job = { id: null, events: null };  // before any await: a second Enter or click starts nothing
  updateButtons();
  setProgress("running", 0, "sending");
  const form = new FormData();
  form.append("image", state.file, state.name);
  form.append("mask", await maskBlob(), "mask.png");
  let job;
  try {
    const response = await fetch("api/v1/jobs", { method: "POST", body: form });
    if (!response.ok) throw new Error(await problem(response));
    job = await response.json();
  } catch (err) {
    return finish("failed", err.message === "Failed to fetch" ? "Cannot reach the server." : err.message);
  }
  const events = new EventSource(job.events);
  state.job = { id: job.id, events };
  events.addEventListener("progress", (e) => {
    const { fraction, label } = JSON.parse(e.data);
    setProgress("running", fraction, label);
  });
  events.addEventListener("done", () => { events.close(); takeResult(job.result); });
  events.addEventListener("failed", (e) => { events.close(); finish("failed", JSON.parse(e.data).detail); });
  events.addEventListener("cancelled", () => { events.close(); finish("cancelled"); });
  events.onerror = () => {
    if (events.readyState !== EventSource.CLOSED) { events.close(); finish("failed", "Lost the connection to the server."); }
  };
}

async function takeResult(url) {
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(await problem(response));
    const blob = await response.blob();
    const name = resultName(response.headers.get("Content-Disposition")) || state.name;
    const bitmap = await createImageBitmap(blob);
    setPhoto(blob, state.name, bitmap);
    setDownload(blob, name);
    finish("done");
  } catch (err) {
    finish("failed", err.message);
  }
}

function resultName(disposition) {
  const match = /filename\*=UTF-8''([^;]+)/i.exec(disposition || "");
  return match ? decodeURIComponent(match[1]) : null;
}

function finish(outcome, message) {
  state.job = null;
  setProgress(outcome, outcome === "done" ? 1 : Number(ui.bar.value), message && outcome === "failed" ? "failed" : outcome);
  if (message) showError(message);
  updateButtons();
}

function cancel() {
  if (state.job && state.job.id) fetch(`api/v1/jobs/${state.job.id}`, { method: "DELETE" });
}

function setProgress(phase, fraction, label) {
  ui.progress.dataset.state = phase;
  ui.bar.value = fraction;
  ui.status.textContent = label;
}

function setDownload(blob, name) {
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = blob ? URL.createObjectURL(blob) : null;
  if (blob) {
    ui.download.href = state.resultUrl;
    ui.download.download = name;
    ui.download.setAttribute("aria-disabled", "false");
  } else {
    ui.download.removeAttribute("href");
    ui.download.setAttribute("aria-disabled", "true");
  }
}

ui.fill.addEventListener("click", fill);
ui.cancel.addEventListener("click", cancel);
ui.undo.addEventListener("click", undo);
ui.redo.addEventListener("click", redo);

// ---- Seeing the original

function holdOriginal(on) {
  state.showOriginal = on && Boolean(state.original);
  render();
}
ui.original.addEventListener("pointerdown", () => holdOriginal(true));
for (const type of ["pointerup", "pointerleave", "pointercancel"]) ui.original.addEventListener(type, () => holdOriginal(false));

// ---- Keys

window.addEventListener("keydown", (e) => {
  const key = e.key.toLowerCase(), ctrl = e.ctrlKey || e.metaKey;
  if (ctrl && key === "z") e.shiftKey ? redo() : undo();
  else if (ctrl && key === "y") redo();
  else if (ctrl) return;
  else if (e.key === "[") setBrushSize(Number(ui.size.value) / 1.2 - 1);
  else if (e.key === "]") setBrushSize(Number(ui.size.value) * 1.2 + 1);
  else if (e.key === "Enter") fill();
  else if (e.key === "Escape") cancel();
  else if (e.key === " ") {
    if (document.activeElement instanceof HTMLButtonElement) document.activeElement.blur();  // space would click it
    state.spaceHeld = true;
    render();
  }
  else if (key === "o" && !e.repeat) holdOriginal(true);
  else if (key === "b") setTool(false);
  else if (key === "e") setTool(true);
  else return;
  e.preventDefault();
});
window.addEventListener("keyup", (e) => {
  if (e.key === " ") { state.spaceHeld = false; render(); }
  if (e.key.toLowerCase() === "o") holdOriginal(false);
});
window.addEventListener("blur", () => { state.spaceHeld = false; holdOriginal(false); });

// ---- Messages and buttons

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.textContent = "";
  ui.error.hidden = true;
}

function updateButtons() {
  const busy = Boolean(state.job);
  ui.fill.disabled = busy || !state.photo || !state.strokes.length;
  ui.undo.disabled = busy || !state.strokes.length;
  ui.redo.disabled = busy || !state.undone.length;
  ui.original.disabled = !state.photo;
  ui.cancel.hidden = !busy;
}
