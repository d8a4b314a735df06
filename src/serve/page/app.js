// The elbo latent explorer: plain JavaScript, no build step. The server encodes and decodes; this page draws.
'use strict';

const $ = (id) => document.getElementById(id);
// The page's state, on `window` so tests (and the curious) can read it.
const state = {
  info: null, pts: null, z: [], cls: 0,
  hover: -1, sel: -1, a: -1, b: -1,
  decodes: 0, inflight: false, pending: false, reloads: 0,
};
window.elbo = state;
// Where test image i sits from the scatter's centre, in CSS pixels: how tests point at it.
state.offset = (i) => {
  const c = $('scatter');
  const [px, py] = toPx(c, state.pts.x[i], state.pts.y[i]);
  const r = c.getBoundingClientRect();
  return [px * r.width / c.width - r.width / 2, py * r.height / c.height - r.height / 2];
};

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
  '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

function colour(label) {
  const k = state.info.classes.length;
  if (!state.info.labelled) return '#4a6fa5';
  if (k <= PALETTE.length) return PALETTE[label % PALETTE.length];
  return `hsl(${(360 * label) / k}, 65%, 45%)`;
}

function say(msg) { $('status').textContent = msg; }

async function fetchOk(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${(await r.text()).trim()}`);
  return r;
}

// ---- The plane: data extents shared by the scatter and the decode pad. ----
let ext = null;

function extents() {
  const { x, y } = state.pts;
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (let i = 0; i < x.length; i++) {
    x0 = Math.min(x0, x[i]); x1 = Math.max(x1, x[i]);
    y0 = Math.min(y0, y[i]); y1 = Math.max(y1, y[i]);
  }
  const grow = (lo, hi) => {
    const pad = Math.max((hi - lo) * 0.08, 0.5);
    return [lo - pad, hi + pad];
  };
  [x0, x1] = grow(x0, x1);
  [y0, y1] = grow(y0, y1);
  return { x0, x1, y0, y1 };
}

function toPx(canvas, u, v) {
  return [(u - ext.x0) / (ext.x1 - ext.x0) * canvas.width,
    (1 - (v - ext.y0) / (ext.y1 - ext.y0)) * canvas.height];
}

function fromPx(canvas, px, py) {
  return [ext.x0 + px / canvas.width * (ext.x1 - ext.x0),
    ext.y0 + (1 - py / canvas.height) * (ext.y1 - ext.y0)];
}

function project(z) {
  const p = state.info.plane;
  return p.axes.map((a) => z.reduce((s, zj, j) => s + (zj - p.origin[j]) * a[j], 0));
}

function lift(u, v) {
  const p = state.info.plane;
  return p.origin.map((o, j) => o + u * p.axes[0][j] + v * p.axes[1][j]);
}

function mouse(canvas, ev) {
  const r = canvas.getBoundingClientRect();
  return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
}

// ---- The scatter. ----
function drawPoints(canvas, alpha) {
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const { x, y, label } = state.pts;
  ctx.globalAlpha = alpha;
  for (let i = 0; i < x.length; i++) {
    const [px, py] = toPx(canvas, x[i], y[i]);
    ctx.fillStyle = colour(label[i]);
    ctx.fillRect(px - 1.5, py - 1.5, 3, 3);
  }
  ctx.globalAlpha = 1;
  return ctx;
}

function ring(ctx, canvas, i, col, text) {
  if (i < 0) return;
  const [px, py] = toPx(canvas, state.pts.x[i], state.pts.y[i]);
  ctx.strokeStyle = col; ctx.lineWidth = 2;
  ctx.beginPath(); ctx.arc(px, py, 6, 0, 2 * Math.PI); ctx.stroke();
  if (text) { ctx.fillStyle = col; ctx.font = 'bold 13px sans-serif'; ctx.fillText(text, px + 8, py - 8); }
}

function drawScatter() {
  const c = $('scatter');
  const ctx = drawPoints(c, 0.75);
  ring(ctx, c, state.a, '#000', 'A');
  ring(ctx, c, state.b, '#000', 'B');
  ring(ctx, c, state.sel, '#d00', '');
  ring(ctx, c, state.hover, '#555', '');
  c.dataset.drawn = String(state.pts.x.length);
}

function nearest(canvas, px, py, radius) {
  const { x, y } = state.pts;
  let best = -1; let bd = radius * radius;
  for (let i = 0; i < x.length; i++) {
    const [qx, qy] = toPx(canvas, x[i], y[i]);
    const d = (qx - px) ** 2 + (qy - py) ** 2;
    if (d <= bd) { bd = d; best = i; }
  }
  return best;
}

function name(i) {
  const cls = state.info.labelled ? ` (${state.info.classes[state.pts.label[i]] ?? state.pts.label[i]})` : '';
  return `test image ${i}${cls}`;
}

function hover(i) {
  if (i === state.hover) return;
  state.hover = i;
  if (i >= 0) {
    $('hover-img').src = `/api/item/${i}`;
    $('hover-img').dataset.index = String(i);
    $('hover-label').textContent = name(i);
  }
  drawScatter();
}

function select(i) {
  state.sel = i;
  $('sel-img').src = `/api/item/${i}`;
  // Naming the weights: an answer by others (reloaded meanwhile) is refused, never shown as if by these.
  $('sel-rec').src = `/api/reconstruction/${i}?w=${state.info.weights}`;
  $('sel-label').textContent = name(i);
  for (const b of ['encode', 'set-a', 'set-b']) $(b).disabled = false;
  drawScatter();
}

// ---- Decoding: one request in flight; the latest code wins. ----
function zString(z) { return z.map((v) => v.toFixed(5)).join(','); }

function decodeUrl(z) {
  const cls = state.info.conditional ? `&class=${state.cls}` : '';
  return `/api/decode?z=${encodeURIComponent(zString(z))}${cls}`;
}

async function drawPng(url, canvas) {
  const blob = await (await fetchOk(url)).blob();
  const bmp = await createImageBitmap(blob);
  canvas.width = bmp.width; canvas.height = bmp.height;
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(bmp, 0, 0);
}

async function decodeNow() {
  if (state.inflight) { state.pending = true; return; }
  state.inflight = true;
  const z = state.z.slice();
  const zs = zString(z);
  const t0 = performance.now();
  try {
    await drawPng(decodeUrl(z), $('decoded'));
    $('decoded').dataset.z = zs;
    $('decoded').dataset.cls = String(state.cls);
    state.decodes += 1;
    state.lastMs = performance.now() - t0;
    say('');
  } catch (e) {
    say(e.message);
  }
  state.inflight = false;
  if (state.pending) { state.pending = false; decodeNow(); }
}

function setZ(z, from) {
  state.z = z.slice();
  if (from !== 'slider') state.z.forEach((v, j) => showValue(j, v));
  drawPad();
  decodeNow();
}
state.setZ = setZ;

// A value outside a slider's span (Reset to zero under a learned prior whose span leaves 0 out, a point clicked far
// out) cannot be shown by the thumb, which stops at the nearer end: the number stays true, and is marked as outside.
function showValue(j, v) {
  const s = $(`z${j}`);
  if (!s) return;
  const out = $(`z${j}-out`);
  const [lo, hi] = state.info.ranges[j];
  s.value = v;
  // NaN is outside every span; a value just past an end shows enough digits to say so.
  const outside = !(v >= lo && v <= hi);
  const near = v.toFixed(2) === lo.toFixed(2) || v.toFixed(2) === hi.toFixed(2);
  out.textContent = outside && near ? String(Number(v.toPrecision(7))) : v.toFixed(2);
  s.classList.toggle('outside', outside);
  out.classList.toggle('outside', outside);
  out.title = outside
    ? `${out.textContent} lies outside this slider's span, ${lo.toPrecision(7)} to ${hi.toPrecision(7)}: the slider shows its nearer end`
    : '';
}

function drawPad() {
  const c = $('pad');
  const ctx = drawPoints(c, 0.25);
  const [u, v] = project(state.z);
  const [px, py] = toPx(c, u, v);
  ctx.strokeStyle = '#d00'; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(px - 8, py); ctx.lineTo(px + 8, py); ctx.moveTo(px, py - 8); ctx.lineTo(px, py + 8); ctx.stroke();
}

// ---- Sliders. ----
function buildSliders() {
  const box = $('sliders');
  box.title = `Slider spans: ${state.info.ranges_from}`;
  state.info.ranges.forEach(([lo, hi], j) => {
    const label = document.createElement('label');
    label.textContent = `z${j}`; label.htmlFor = `z${j}`;
    const s = document.createElement('input');
    // 'any': a step of (hi − lo)/600 sums past hi in decimal, and the thumb stopped one step short of its end.
    Object.assign(s, { type: 'range', id: `z${j}`, min: lo, max: hi, step: 'any', value: 0 });
    const out = document.createElement('output');
    out.id = `z${j}-out`; out.textContent = '0.00';
    s.addEventListener('input', () => {
      // The browser reports the value to 15 digits, so a thumb at an end can read just past it: take the end.
      const [a, b] = state.info.ranges[j];
      const v = Number(s.value);
      const tol = 1e-12 * Math.max(1, Math.abs(a), Math.abs(b));
      const z = state.z.slice(); z[j] = v >= b - tol ? b : v <= a + tol ? a : v;
      showValue(j, z[j]);
      setZ(z, 'slider');
    });
    // With step 'any' the browser's own arrow-key step is not a fraction of the span (Chrome moves a span of 6 by
    // 1): arrows move a hundredth of it, Page Up/Down a tenth, Home/End to the ends.
    s.addEventListener('keydown', (e) => {
      const [a, b] = state.info.ranges[j];
      const by = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1, PageUp: 10, PageDown: -10 }[e.key];
      let v;
      if (e.key === 'Home') v = a;
      else if (e.key === 'End') v = b;
      else if (by) v = Math.min(b, Math.max(a, Number(s.value) + by * (b - a) / 100));
      else return;
      e.preventDefault();
      s.value = String(v);
      s.dispatchEvent(new Event('input'));
    });
    box.append(label, s, out);
  });
}

function gaussian() {
  const u = 1 - Math.random(); const v = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

// ---- Interpolation, as `elbo interpolate`: straight, or along the great circle. ----
function path(a, b, steps, spherical) {
  const dot = a.reduce((s, x, j) => s + x * b[j], 0);
  const na = Math.hypot(...a); const nb = Math.hypot(...b);
  const omega = na > 0 && nb > 0 ? Math.acos(Math.min(1, Math.max(-1, dot / (na * nb)))) : 0;
  const out = [];
  for (let s = 0; s < steps; s++) {
    const t = steps === 1 ? 0 : s / (steps - 1);
    let wa = 1 - t; let wb = t;
    if (spherical && Math.abs(Math.sin(omega)) > 1e-6) {
      wa = Math.sin((1 - t) * omega) / Math.sin(omega);
      wb = Math.sin(t * omega) / Math.sin(omega);
    }
    out.push(a.map((x, j) => wa * x + wb * b[j]));
  }
  return out;
}

const codes = new Map();
async function code(i) {
  if (!codes.has(i)) codes.set(i, await (await fetchOk(`/api/code/${i}`)).json());
  return codes.get(i);
}

let stripRun = 0;
async function drawStrip() {
  if (state.a < 0 || state.b < 0) return;
  const run = ++stripRun;
  const steps = Math.min(16, Math.max(2, Number($('steps').value) || 8));
  const [a, b] = [(await code(state.a)).z, (await code(state.b)).z];
  const strip = $('strip');
  strip.replaceChildren();
  const zs = path(a, b, steps, $('mode').value === 'spherical');
  for (const z of zs) {
    const c = document.createElement('canvas');
    strip.append(c);
    try {
      await drawPng(decodeUrl(z), c);
    } catch (e) { say(e.message); }
    if (run !== stripRun) return;
  }
  strip.dataset.steps = String(zs.length);
}

// ---- The run's checkpoints: which epoch is shown, and a banner when training has saved another. ----
const POLL_MS = 3000;

function describe(info) {
  $('run').textContent = `${info.run} · ${info.points} test images · ${info.latent}-D latent${info.variational ? '' : ' (autoencoder)'}`;
  $('epoch').textContent = `epoch ${info.epoch}`;
  $('projection').textContent = info.plane.pca
    ? `(PCA: ${(100 * info.plane.explained[0]).toFixed(0)}% + ${(100 * info.plane.explained[1]).toFixed(0)}% of the variance)`
    : (info.latent === 1 ? '(z0)' : '(z0 across, z1 up)');
}

function showSaved(info) {
  let text = '';
  if (info.saved && info.problem) {
    text = `epoch ${info.saved.epoch} is saved but cannot be shown: ${info.problem}`;
  } else if (info.saved) {
    text = `epoch ${info.saved.epoch} is saved:`;
  } else if (info.problem) {
    text = `the run's checkpoint cannot be read: ${info.problem}`;
  }
  $('banner-text').textContent = text;
  $('reload').hidden = !info.saved;
  $('banner').hidden = !text;
}

// Shows the server's current weights: new points, codes, reconstructions and decodings.
async function refresh(info) {
  const old = state.info;
  // What the page was built around (its sliders, buttons and class list) changed: build it again.
  const built = ['latent', 'height', 'width', 'channels', 'conditional', 'variational', 'labelled', 'points'];
  if (built.some((k) => info[k] !== old[k]) || JSON.stringify(info.classes) !== JSON.stringify(old.classes)) {
    window.location.reload();
    return;
  }
  const pts = await (await fetchOk('/api/points')).json();
  state.info = info;
  state.pts = pts;
  codes.clear();
  ext = extents();
  describe(info);
  $('sliders').replaceChildren();
  buildSliders();
  drawScatter();
  if (state.sel >= 0) select(state.sel);
  setZ(state.z, 'button');
  drawStrip();
  showSaved(info);
  state.reloads += 1;
}

// One poll or reload at a time, so two refreshes never interleave.
let checking = false;

async function poll() {
  if (checking) return;
  checking = true;
  try {
    const info = await (await fetchOk('/api/info')).json();
    if (info.weights !== state.info.weights) await refresh(info);
    else showSaved(info);
  } catch (e) {
    say(e.message);
  }
  checking = false;
}

async function reloadWeights() {
  while (checking) await new Promise((r) => { setTimeout(r, 50); });
  checking = true;
  $('reload').disabled = true;
  try {
    const r = await fetch('/api/reload', { method: 'POST' });
    if (!r.ok) throw new Error((await r.text()).trim());
    await refresh(await r.json());
  } catch (e) {
    $('banner-text').textContent = e.message;
  }
  $('reload').disabled = false;
  checking = false;
}

// ---- Start. ----
async function start() {
  state.info = await (await fetchOk('/api/info')).json();
  state.pts = await (await fetchOk('/api/points')).json();
  const info = state.info;
  describe(info);
  showSaved(info);
  ext = extents();
  if (info.labelled) {
    info.classes.forEach((c, k) => {
      const s = document.createElement('span');
      s.textContent = c; s.style.setProperty('--c', colour(k));
      $('legend').append(s);
    });
  }
  if (info.conditional) {
    info.classes.forEach((c, k) => $('class').append(new Option(c, String(k))));
    $('class-row').hidden = false;
    $('class').addEventListener('change', () => { state.cls = Number($('class').value); decodeNow(); drawStrip(); });
  }
  // The decoded canvas keeps the images' proportions.
  const side = 160 / Math.max(info.height, info.width);
  $('decoded').style.width = `${info.width * side}px`;
  $('decoded').style.height = `${info.height * side}px`;
  if (!info.variational) $('random').hidden = true;
  buildSliders();

  const sc = $('scatter');
  sc.addEventListener('mousemove', (ev) => hover(nearest(sc, ...mouse(sc, ev), 8)));
  sc.addEventListener('mouseleave', () => hover(-1));
  sc.addEventListener('click', (ev) => {
    const i = nearest(sc, ...mouse(sc, ev), 8);
    if (i >= 0) select(i);
  });
  const pad = $('pad');
  const move = (ev) => setZ(lift(...fromPx(pad, ...mouse(pad, ev))), 'pad');
  pad.addEventListener('mousemove', move);
  pad.addEventListener('click', move);
  const origin = () => (info.variational ? new Array(info.latent).fill(0) : info.plane.origin.slice());
  $('reset').addEventListener('click', () => setZ(origin(), 'button'));
  // A VAE's random codes come from its prior (learned or N(0, I)), drawn by the server as `elbo sample` draws them.
  $('random').addEventListener('click', async () => {
    if (!info.variational) { setZ(state.z.map(gaussian), 'button'); return; }
    const seed = Math.floor(Math.random() * 2 ** 31);
    setZ((await (await fetchOk(`/api/sample?seed=${seed}`)).json()).z, 'button');
  });
  $('encode').addEventListener('click', async () => {
    const c = await code(state.sel);
    if (info.conditional) { state.cls = c.label; $('class').value = String(c.label); }
    setZ(c.z, 'button');
  });
  $('set-a').addEventListener('click', () => { state.a = state.sel; $('a-name').textContent = name(state.a); drawScatter(); drawStrip(); });
  $('set-b').addEventListener('click', () => { state.b = state.sel; $('b-name').textContent = name(state.b); drawScatter(); drawStrip(); });
  $('steps').addEventListener('change', drawStrip);
  $('mode').addEventListener('change', drawStrip);

  $('reload').addEventListener('click', reloadWeights);

  drawScatter();
  setZ(origin(), 'button');
  say('');
  setInterval(poll, POLL_MS);
  document.body.dataset.ready = '1';
}

start().catch((e) => say(e.message));
