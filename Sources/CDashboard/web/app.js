// Pilot's dashboard: one page, hash routes (#/, #/host/NAME, #/alerts),
// reading only /api/v1/ (docs/API.md). No framework; Chart.js 3 for the
// host charts. Everything from the API is escaped before it meets HTML.
'use strict';
(() => {
const $ = (sel, root = document) => root.querySelector(sel);
const main = $('#main');
const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (s) => (s == null ? '' : String(s)).replace(/[&<>"']/g, (c) => ESC[c]);
const isNum = (v) => typeof v === 'number' && isFinite(v);
const TOKEN_KEY = 'pilot-admin-token';

// ---- time ----------------------------------------------------------
let skew = 0; // server's clock minus ours, in seconds
const serverNow = () => Date.now() / 1000 + skew;
const pad = (n) => (n < 10 ? '0' : '') + n;
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
function fmtAbs(sec) {
  if (!isNum(sec)) return '';
  const d = new Date(sec * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
const hhmm = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;
const dayDate = (d) => `${DAYS[d.getDay()]} ${d.getDate()} ${MONTHS[d.getMonth()]}`;
function fmtDur(s, precise) {
  if (!isNum(s)) return '–';
  s = Math.max(0, Math.floor(s));
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (precise && m < 10 && s % 60) return `${m}m ${s % 60}s`;
  if (m < 60) return m + 'm';
  if (h < 10) return `${h}h ${m % 60}m`;
  if (h < 24) return h + 'h';
  if (d < 10) return `${d}d ${h % 24}h`;
  return d + 'd';
}
function relText(t, f) {
  const diff = serverNow() - t;
  if (f === 'dur') return fmtDur(diff);
  return diff >= 0 ? fmtDur(diff) + ' ago' : 'in ' + fmtDur(-diff);
}
// A <time> the ticker keeps current: f = 'dur' ("3m") or 'ago' ("3m ago").
function timeHtml(t, f = 'ago') {
  if (!isNum(t)) return '–';
  return `<time class="rel" data-t="${t}" data-f="${f}" title="${esc(fmtAbs(t))}">${esc(relText(t, f))}</time>`;
}

// ---- numbers -------------------------------------------------------
const trim = (x, digits) => {
  const a = Math.abs(x);
  return String(+x.toFixed(a >= 100 || digits === 0 ? 0 : a >= 10 ? 1 : digits));
};
function humanBytes(v, base, suffix) {
  const units = base === 1024 ? ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] : ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (Math.abs(v) >= base && i < units.length - 1) { v /= base; i++; }
  return trim(v, i ? 2 : 0) + ' ' + units[i] + suffix;
}
// The unit a metric's name tells.
const UNITS = [[/_pct$/, '%'], [/bytes_ps$/, 'B/s'], [/_ps$/, '/s'], [/_ms$/, 'ms'], [/_kb$/, 'kB'], [/_bytes$/, 'B'], [/_(s|sec|seconds)$/, 's'], [/^check_ok$/, 'ok']];
const unitOf = (metric) => (UNITS.find(([re]) => re.test(metric)) || [0, ''])[1];
function fmtVal(v, unit) {
  if (!isNum(v)) return '–';
  switch (unit) {
    case '%': return trim(v, 1) + '%';
    case 'B/s': return humanBytes(v, 1000, '/s');
    case 'B': return humanBytes(v, 1024, '');
    case 'kB': return humanBytes(v * 1024, 1024, '');
    case 'ms': return trim(v, 1) + ' ms';
    case 's': return fmtDur(v);
    case '/s': return trim(v, 1) + '/s';
    case 'ok': return v >= 1 ? 'ok' : v <= 0 ? 'failing' : trim(v, 2);
    default: return Math.abs(v) >= 1e6 ? v.toExponential(2) : trim(v, 2);
  }
}
const LEVELS = { cpu: [90, 95], mem: [85, 90], disk: [90, 95] };
const lvl = (k, v) => (!isNum(v) ? '' : v >= LEVELS[k][1] ? ' crit' : v >= LEVELS[k][0] ? ' warn' : '');

// ---- connection indicator and the ticker ---------------------------
let lastOk = 0, lost = false;
const conn = $('#conn');
function paintConn() {
  let text, cls;
  if (lost) { text = 'connection lost'; cls = 'conn lost'; }
  else if (lastOk) { text = `updated ${Math.max(0, Math.round((Date.now() - lastOk) / 1000))}s ago`; cls = 'conn ok'; }
  else { text = 'connecting…'; cls = 'conn'; }
  if (conn.textContent !== text) conn.textContent = text;
  if (conn.className !== cls) conn.className = cls;
}
let ticks = 0;
setInterval(() => {
  paintConn();
  if (++ticks % 5) return;
  for (const el of main.querySelectorAll('time.rel')) {
    const text = relText(+el.dataset.t, el.dataset.f);
    if (el.textContent !== text) el.textContent = text;
  }
}, 1000);

// ---- fetching ------------------------------------------------------
const aborted = (e) => e && e.name === 'AbortError';
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}
async function api(url, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (opts.token) headers.Authorization = 'Bearer ' + opts.token;
  const init = { credentials: 'same-origin', headers, signal: opts.signal };
  if (opts.body) { init.method = 'POST'; init.body = opts.body; }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    if (aborted(e)) throw e;
    lost = true; paintConn();
    throw new ApiError(0, 'connection lost');
  }
  let data = null;
  try { data = await res.json(); } catch (e) { if (aborted(e)) throw e; }
  if (res.status === 401 && !opts.token) {
    location.href = '/login';
    throw new ApiError(401, 'sign in first');
  }
  if (!res.ok) {
    if (res.status >= 500 && res.status !== 503) { lost = true; paintConn(); }
    throw new ApiError(res.status, (data && data.error) || `${res.status} ${res.statusText}`);
  }
  lastOk = Date.now(); lost = false; paintConn();
  if (data && isNum(data.now)) skew = data.now - Date.now() / 1000;
  return data || {};
}

// ---- counts in the top bar -----------------------------------------
function setCounts(c) {
  if (!c) return;
  for (const k of ['hosts', 'up', 'down', 'alerting']) {
    const el = document.getElementById('count-' + k);
    const text = isNum(c[k]) ? String(c[k]) : '–';
    if (el && el.textContent !== text) el.textContent = text;
  }
  $('#counts').classList.remove('unknown');
  $('#counts').classList.toggle('has-down', c.down > 0);
  $('#counts').classList.toggle('has-alerting', c.alerting > 0);
}

// Labels but the host, as "mount=/var".
const labelText = (labels) => Object.keys(labels || {}).filter((k) => k !== 'host').map((k) => `${k}=${labels[k]}`).join(' ');
const labelHtml = (labels) => Object.keys(labels || {}).filter((k) => k !== 'host')
  .map((k) => `<span class="lbl">${esc(k)}=${esc(labels[k])}</span>`).join('');
const hostHref = (name) => '#/host/' + encodeURIComponent(name);
const stateHtml = (state) => `<span class="st st-${esc(state)}">${esc(state || 'unknown')}</span>`;
const SEV_RANK = { critical: 2, warning: 1 };
const sevHtml = (sev) => `<span class="sev sev-${esc(sev)}">${esc(sev || '–')}</span>`;

// ===================================================================
// Fleet
// ===================================================================
const STATE_RANK = { offline: 0, silent: 1, online: 2 };
const coll = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
const COLS = [
  ['host', 'Host', 1], ['address', 'Address', 1], ['tags', 'Tags', 1], ['state', 'State', 1], ['cpu', 'CPU', -1],
  ['mem', 'Memory', -1], ['disk', 'Disk', -1], ['checks', 'Checks', -1], ['alerts', 'Alerts', -1],
];
const failing = (h) => h.checks.filter((c) => c.status !== 'ok');
const alertScore = (h) => h.alerts.reduce((m, a) => Math.max(m, SEV_RANK[a.severity] || 0), 0) * 1000 + h.alerts.length;
const numCmp = (k) => (a, b, d) => (isNum(a[k]) ? (isNum(b[k]) ? d * (a[k] - b[k]) : -1) : isNum(b[k]) ? 1 : 0);
const SORTS = {
  host: (a, b, d) => d * coll.compare(a.host, b.host),
  address: (a, b, d) => d * coll.compare(a.address || '', b.address || ''),
  tags: (a, b, d) => d * coll.compare(a.tags.join(' '), b.tags.join(' ')),
  state: (a, b, d) => d * ((STATE_RANK[a.state] ?? 3) - (STATE_RANK[b.state] ?? 3)),
  cpu: numCmp('cpu'), mem: numCmp('mem'), disk: numCmp('disk'),
  checks: (a, b, d) => d * (failing(a).length - failing(b).length || a.checks.length - b.checks.length),
  alerts: (a, b, d) => d * (alertScore(a) - alertScore(b)),
};
const fleet = { hosts: new Map(), rows: new Map(), sort: { key: 'state', dir: 1 }, q: '', match: null, now: 0 };
let fleetMarked = false;

function prepHost(h) {
  h.tags = Array.isArray(h.tags) ? h.tags : [];
  h.checks = Array.isArray(h.checks) ? h.checks : [];
  h.alerts = Array.isArray(h.alerts) ? h.alerts : [];
  h._s = [h.host, h.address || ''].concat(h.tags).join('\n').toLowerCase();
  return h;
}

function compileFilter(q) {
  const tests = q.trim().split(/\s+/).filter(Boolean).map((tok) => {
    const low = tok.toLowerCase();
    if (low.startsWith('tag:')) { const t = tok.slice(4); return (h) => h.tags.includes(t); }
    if (low.startsWith('state:')) {
      const s = low.slice(6);
      return s === 'down' ? (h) => h.state === 'silent' || h.state === 'offline' : (h) => h.state === s;
    }
    if (low === 'alerting') return (h) => h.alerts.length > 0;
    return (h) => h._s.includes(low);
  });
  return tests.length ? (h) => tests.every((t) => t(h)) : null;
}

// Spark slots merged by time (slot time = start + i*step), newest
// winning, the last 60 minutes before `now` kept.
function mergeSpark(old, add, now) {
  if (!add) return old;
  if (!old || old.step !== add.step) old = null;
  const step = add.step || 60, lo = now - 3600;
  const srcs = old ? [old, add] : [add];
  const keys = new Set();
  let first = Infinity, last = -Infinity;
  for (const s of srcs) {
    for (const k of Object.keys(s)) {
      if (!Array.isArray(s[k]) || !s[k].length) continue;
      keys.add(k);
      first = Math.min(first, s.start);
      last = Math.max(last, s.start + (s[k].length - 1) * step);
    }
  }
  if (!keys.size) return add;
  if (first <= lo) first += (Math.floor((lo - first) / step) + 1) * step;
  const n = Math.min(1440, Math.max(0, Math.floor((last - first) / step) + 1));
  const out = { start: first, step };
  for (const k of keys) {
    const arr = new Array(n).fill(null);
    for (const s of srcs) {
      const src = s[k];
      if (!Array.isArray(src)) continue;
      for (let i = 0; i < src.length; i++) {
        const j = Math.round((s.start + i * step - first) / step);
        if (j >= 0 && j < n && src[i] != null) arr[j] = src[i];
      }
    }
    out[k] = arr;
  }
  return out;
}

// Sparklines: slot x 0..60, value y 0..100 as tenths (0..1000, top
// down); one polyline per run without nulls. Strings from tables: number
// formatting is what costs with 1,000 rows.
const SY = Array.from({ length: 1001 }, (_, i) => ',' + (1000 - i));
const SX = Array.from({ length: 62 }, (_, i) => ' ' + i);
const SVG0 = '<svg class="spark" viewBox="0 0 60 1000" preserveAspectRatio="none" aria-hidden="true">';
function sparkLines(sp, key, now) {
  const arr = sp && sp[key];
  let out = '';
  if (Array.isArray(arr) && isNum(sp.start)) {
    const step = sp.step || 60, base = (sp.start - (now - 3600)) / step;
    let pts = '', n = 0;
    for (let i = 0; i <= arr.length; i++) {
      const v = arr[i];
      const x = Math.round(base + i * step / 60);
      if (typeof v !== 'number' || x < 0 || x > 61) {
        if (n) out += `<polyline points="${n === 1 ? pts + pts : pts}"/>`;
        pts = ''; n = 0;
        continue;
      }
      pts += SX[x] + SY[v >= 100 ? 1000 : v <= 0 ? 0 : Math.round(v * 10)];
      n++;
    }
  }
  return out;
}

function metricCell(h, k, lazy) {
  const v = h[k];
  const title = k === 'disk' && h.disk_mount ? ` title="fullest mount: ${esc(h.disk_mount)}"` : '';
  return `<td class="c-m c-${k}"${title}><span class="v${lvl(k, v)}">${isNum(v) ? esc(v.toFixed(1)) + '%' : '–'}</span>${lazy ? '' : SVG0 + sparkLines(h.spark, k, fleet.now) + '</svg>'}</td>`;
}

// lazy: the sparklines are drawn a moment later (fillSparks), so that a
// big fleet's first rows are in the DOM at once.
function rowHtml(h, lazy) {
  const name = esc(h.host);
  const tags = h.tags.map((t) => `<button type="button" class="tag" data-tag="${esc(t)}">${esc(t)}</button>`).join('');
  let checks = '–';
  if (h.checks.length) {
    const bad = failing(h);
    checks = bad.length
      ? `<span class="chk bad" title="${esc(bad.map((c) => `${c.name}: ${c.status}${c.message ? ' – ' + c.message : ''}`).join('\n'))}">${bad.length} failing</span> <span class="names">${esc(bad.map((c) => c.name).join(', '))}</span>`
      : `<span class="chk ok">${h.checks.length} ok</span>`;
  }
  let alerts = '–';
  if (h.alerts.length) {
    const worst = h.alerts.reduce((w, a) => ((SEV_RANK[a.severity] || 0) > (SEV_RANK[w] || 0) ? a.severity : w), h.alerts[0].severity);
    const title = h.alerts.map((a) => `${a.metric} ${labelText(a.labels)} (${a.severity})`).join('\n');
    alerts = `<a class="sev sev-${esc(worst)}" href="#/alerts" title="${esc(title)}">${h.alerts.length} ${esc(worst)}</a>`;
  }
  return `<tr data-host="${name}" data-state="${esc(h.state)}">` +
    `<td class="c-host"><a href="${esc(hostHref(h.host))}">${name}</a></td>` +
    `<td class="c-addr"><span class="mono" title="${esc(h.endpoint || '')}">${esc(h.address || '–')}</span></td>` +
    `<td class="c-tags">${tags}</td>` +
    `<td class="c-state">${stateHtml(h.state)} ${timeHtml(h.since, 'dur')}</td>` +
    metricCell(h, 'cpu', lazy) + metricCell(h, 'mem', lazy) + metricCell(h, 'disk', lazy) +
    `<td class="c-checks">${checks}</td><td class="c-alerts">${alerts}</td></tr>`;
}

function fleetPage(params) {
  window.pilotView = { page: 'fleet' };
  const s = fleet.sort;
  main.innerHTML = `<section class="fleet"><div class="toolbar">` +
    `<input id="filter" type="search" autocomplete="off" spellcheck="false" aria-label="Filter hosts" placeholder="Filter: name  tag:X  state:down  alerting">` +
    `<span id="shown" class="muted"></span></div>` +
    `<table class="hosts"><thead><tr>${COLS.map(([k, label]) => `<th class="${k === 'address' ? 'c-addr' : /^(cpu|mem|disk)$/.test(k) ? 'c-m c-' + k : 'c-' + k}" data-sort="${k}"><button type="button">${label}</button></th>`).join('')}</tr></thead>` +
    `<tbody id="hosts"></tbody></table><p id="fleet-msg" class="empty">Loading…</p></section>`;
  const tbody = $('#hosts'), input = $('#filter'), shown = $('#shown'), msg = $('#fleet-msg');
  let stopped = false, timer = 0, ctrl = null, loaded = false;
  fleet.rows = new Map();
  fleet.seq = fleet.epoch = undefined;

  function paintSort() {
    for (const th of main.querySelectorAll('th[data-sort]')) {
      if (th.dataset.sort === s.key) th.setAttribute('aria-sort', s.dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
  }
  function setQuery(q, fromHash) {
    fleet.q = q;
    fleet.match = compileFilter(q);
    if (input.value !== q) input.value = q;
    if (!fromHash) {
      const enc = encodeURIComponent(q.trim()).replace(/%3A/gi, ':').replace(/%20/g, '+');
      history.replaceState(null, '', q.trim() ? '#/?q=' + enc : '#/');
    }
    if (loaded) renderOrder();
  }

  function renderOrder() {
    const cmp = SORTS[s.key] || SORTS.state;
    const list = [];
    for (const h of fleet.hosts.values()) if (!fleet.match || fleet.match(h)) list.push(h);
    list.sort((a, b) => cmp(a, b, s.dir) || coll.compare(a.host, b.host));
    const missing = list.filter((h) => !fleet.rows.has(h.host));
    if (missing.length && !tbody.firstChild && missing.length === list.length) {
      // First render: one string; beyond the first screens the sparklines follow.
      const eager = list.length > 200 ? 80 : list.length;
      tbody.innerHTML = list.map((h, i) => rowHtml(h, i >= eager)).join('');
      let i = 0;
      for (const tr of tbody.children) fleet.rows.set(list[i++].host, tr);
      lazy = list.slice(eager).map((h) => [h.host, fleet.rows.get(h.host)]);
      if (lazy.length) setTimeout(fillSparks, 0);
    } else {
      if (missing.length) {
        const tpl = document.createElement('template');
        tpl.innerHTML = missing.map((h) => rowHtml(h)).join('');
        let i = 0;
        for (const tr of Array.from(tpl.content.children)) fleet.rows.set(missing[i++].host, tr);
      }
      const kids = tbody.children;
      let same = kids.length === list.length;
      for (let i = 0; same && i < list.length; i++) same = kids[i] === fleet.rows.get(list[i].host);
      if (!same) tbody.replaceChildren(...list.map((h) => fleet.rows.get(h.host)));
    }
    const total = fleet.hosts.size;
    shown.textContent = fleet.match ? `${list.length} of ${total} hosts` : `${total} host${total === 1 ? '' : 's'}`;
    msg.hidden = list.length > 0;
    if (!list.length) msg.textContent = total ? `No host matches “${fleet.q.trim()}”.` : 'No host has published yet.';
  }

  let lazy = [];
  function fillSparks() {
    if (stopped) return;
    for (const [name, tr] of lazy.splice(0, 150)) {
      const h = fleet.hosts.get(name);
      if (!h || fleet.rows.get(name) !== tr) continue; // re-rendered meanwhile
      for (const k of ['cpu', 'mem', 'disk']) {
        const td = tr.querySelector('td.c-' + k);
        if (td && !td.querySelector('svg')) td.insertAdjacentHTML('beforeend', SVG0 + sparkLines(h.spark, k, fleet.now) + '</svg>');
      }
    }
    if (lazy.length) setTimeout(fillSparks, 0);
  }

  function replaceRows(changed) {
    const have = changed.filter((h) => fleet.rows.has(h.host));
    if (!have.length) return;
    const tpl = document.createElement('template');
    tpl.innerHTML = have.map((h) => rowHtml(h)).join('');
    const fresh = Array.from(tpl.content.children);
    have.forEach((h, i) => {
      const old = fleet.rows.get(h.host);
      if (old.parentNode) old.replaceWith(fresh[i]);
      fleet.rows.set(h.host, fresh[i]);
    });
  }

  function apply(d) {
    fleet.now = isNum(d.now) ? d.now : serverNow();
    setCounts(d.counts);
    const incoming = Array.isArray(d.hosts) ? d.hosts : [];
    if (d.full || fleet.seq === undefined) {
      fleet.hosts = new Map();
      for (const h of incoming) fleet.hosts.set(h.host, prepHost(h));
      fleet.rows = new Map();
      tbody.textContent = '';
    } else {
      for (const h of incoming) {
        const old = fleet.hosts.get(h.host);
        h.spark = mergeSpark(old && old.spark, h.spark, fleet.now);
        fleet.hosts.set(h.host, prepHost(h));
      }
      replaceRows(incoming);
    }
    fleet.seq = d.seq;
    fleet.epoch = d.epoch;
    loaded = true;
    renderOrder();
    if (!fleetMarked) { fleetMarked = true; performance.mark('pilot-fleet-drawn'); }
  }

  async function poll() {
    if (stopped) return;
    ctrl = new AbortController();
    // Changes carry the newest five minutes of sparkline: after a longer
    // gap (a tab in the background), ask for everything again.
    const stale = fleet.seq === undefined || Date.now() - (fleet.heardAt || 0) > 240000;
    const url = stale ? '/api/v1/hosts'
      : `/api/v1/hosts?since=${encodeURIComponent(fleet.seq)}&epoch=${encodeURIComponent(fleet.epoch)}`;
    try {
      const answer = await api(url, { signal: ctrl.signal });
      if (stale) answer.full = true;
      apply(answer);
      fleet.heardAt = Date.now();
    } catch (e) {
      if (aborted(e) || stopped) return;
      if (!loaded) { msg.hidden = false; msg.textContent = 'Cannot load the fleet: ' + e.message; }
    }
    if (!stopped) timer = setTimeout(poll, 2000);
  }

  main.querySelector('thead').addEventListener('click', (ev) => {
    const th = ev.target.closest('th[data-sort]');
    if (!th) return;
    const k = th.dataset.sort;
    if (s.key === k) s.dir = -s.dir;
    else { s.key = k; s.dir = COLS.find((c) => c[0] === k)[2]; }
    paintSort();
    renderOrder();
  });
  tbody.addEventListener('click', (ev) => {
    const tag = ev.target.closest('button.tag');
    if (tag) setQuery('tag:' + tag.dataset.tag);
  });
  let typing = 0;
  input.addEventListener('input', () => {
    clearTimeout(typing);
    if (fleet.hosts.size > 300) typing = setTimeout(() => setQuery(input.value), 120); // big fleets: when typing pauses
    else setQuery(input.value);
  });
  input.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') setQuery(''); });
  setQuery(params.get('q') || '', true);
  paintSort();
  poll();
  return {
    name: 'fleet',
    setQuery: (q) => setQuery(q, true),
    stop() { stopped = true; clearTimeout(timer); if (ctrl) ctrl.abort(); },
  };
}

// ===================================================================
// Host
// ===================================================================
const RANGES = { '1h': [3600, 0], '6h': [21600, 60], '24h': [86400, 300], '7d': [604800, 1800], '30d': [2592000, 7200] };
const GROUPS = [
  ['cpu', 'CPU', ['cpu_pct', 'user_pct', 'system_pct', 'iowait_pct', 'steal_pct'], 100],
  ['load', 'Load', ['load', 'load1', 'load5', 'load15']],
  ['memory', 'Memory', ['mem_pct'], 100],
  ['swap', 'Swap', ['swap_pct']],
  ['disk', 'Disk usage', ['disk_pct'], 100],
  ['inodes', 'Inodes', ['inodes_pct']],
  ['network', 'Network', ['rx_bytes_ps', 'tx_bytes_ps']],
  ['diskio', 'Disk I/O', ['read_bytes_ps', 'write_bytes_ps']],
  ['diskbusy', 'Disk busy', ['util_pct']],
  ['latency', 'Check latency', ['latency_ms']],
  ['checks', 'Checks ok', ['check_ok']],
];
const GROUP_OF = {};
for (const g of GROUPS) for (const m of g[2]) GROUP_OF[m] = g;

let chartReadyResolve;
const chartReady = new Promise((r) => { chartReadyResolve = r; });
if (window.Chart) chartReadyResolve();
else {
  document.addEventListener('DOMContentLoaded', chartReadyResolve, { once: true });
  window.addEventListener('load', chartReadyResolve, { once: true });
}

function palette() {
  const cs = getComputedStyle(document.documentElement);
  const v = (n) => cs.getPropertyValue(n).trim();
  const pal = [];
  for (let i = 1; i <= 8; i++) pal.push(v('--c' + i) || '#3b7ddd');
  return { pal, grid: v('--grid'), muted: v('--muted'), text: v('--text'), panel: v('--panel'), border: v('--border') };
}
function alpha(hex, a) {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  return m ? `rgba(${parseInt(m[1], 16)},${parseInt(m[2], 16)},${parseInt(m[3], 16)},${a})` : hex;
}
const seriesKey = (s) => s.metric + '\u0000' + JSON.stringify(s.labels || {});
const toXY = (pts) => (Array.isArray(pts) ? pts.map((p) => ({ x: p[0], y: p[1] })) : []);

// Series into chart groups: the known groups in order, then one chart
// for each other metric.
function groupSeries(series) {
  const groups = new Map();
  for (const g of GROUPS) groups.set(g[0], { key: g[0], title: g[1], metrics: g[2], max: g[3], items: [] });
  const taken = new Set(GROUPS.map((g) => g[0]));
  for (const s of series) {
    const g = GROUP_OF[s.metric];
    let key = g ? g[0] : s.metric;
    if (!g && taken.has(key) && !groups.get(key).other) key = 'm-' + key;
    if (!groups.has(key)) groups.set(key, { key, title: s.metric, metrics: [s.metric], items: [], other: true });
    groups.get(key).items.push(s);
  }
  return [...groups.values()].filter((g) => g.items.length);
}

function chartTicks(scale) {
  const min = scale.min, max = scale.max, span = max - min;
  if (!(span > 0)) return;
  const room = Math.max(2, Math.floor((scale.width || 600) / 78));
  const M = 60000, H = 60 * M, D = 24 * H;
  const steps = span <= D + H ? [M, 2 * M, 5 * M, 10 * M, 15 * M, 30 * M, H, 2 * H, 3 * H, 6 * H, 12 * H] : [D, 2 * D, 3 * D, 7 * D, 14 * D];
  const iv = steps.find((st) => span / st <= room) || steps[steps.length - 1];
  const off = -new Date(min).getTimezoneOffset() * M;
  const ticks = [];
  for (let t = Math.ceil((min + off) / iv) * iv - off; t <= max && ticks.length < 100; t += iv) ticks.push({ value: t });
  scale.ticks = ticks;
}

function chartConfig(g, view, colors) {
  const unit = unitOf(g.metrics[0]);
  const multi = g.metrics.length > 1;
  const datasets = [];
  g.items.forEach((s, i) => {
    const c = colors.pal[i % colors.pal.length];
    const lt = labelText(s.labels);
    const label = (multi || !lt ? s.metric.replace(/_pct$/, '') : '') + (multi && lt ? ' ' : '') + lt.replace(/^[a-z]+=/, '').replace(/ [a-z]+=/g, ' ');
    const common = { pilotMetric: s.metric, pilotLabels: s.labels, pilotKey: seriesKey(s), pointRadius: 0, spanGaps: false, stepped: s.metric === 'check_ok' };
    datasets.push({ ...common, label, data: toXY(s.points), pilotRole: 'avg', borderColor: c, backgroundColor: c, borderWidth: 1.5, pointHoverRadius: 3, fill: false });
    if (Array.isArray(s.min) && Array.isArray(s.max)) {
      datasets.push({ ...common, label: label + ' min', data: toXY(s.min), pilotRole: 'min', borderWidth: 0, borderColor: 'transparent', backgroundColor: 'transparent', pointHoverRadius: 0, fill: false });
      datasets.push({ ...common, label: label + ' max', data: toXY(s.max), pilotRole: 'max', borderWidth: 0, borderColor: 'transparent', backgroundColor: alpha(c, 0.16), pointHoverRadius: 0, fill: '-1' });
    }
  });
  const long = view.range > 86400 + 3600;
  const y = { beginAtZero: true, grid: { color: colors.grid }, border: { display: false }, ticks: { color: colors.muted, maxTicksLimit: 5, callback: (v) => fmtVal(v, unit) } };
  if (g.max) { y.min = 0; y.max = g.max; }
  if (unit === 'ok') { y.min = 0; y.max = 1; y.ticks = { color: colors.muted, stepSize: 1, callback: (v) => (v >= 1 ? 'ok' : v <= 0 ? 'fail' : '') }; }
  return {
    type: 'line',
    data: { datasets },
    options: {
      animation: false, parsing: false, normalized: true, responsive: true, maintainAspectRatio: false,
      interaction: { mode: 'index', intersect: false },
      elements: { point: { radius: 0 }, line: { tension: 0 } },
      scales: {
        x: {
          type: 'linear', min: view.from * 1000, max: view.to * 1000, grid: { color: colors.grid },
          afterBuildTicks: chartTicks,
          ticks: { color: colors.muted, maxRotation: 0, autoSkipPadding: 12, callback: (v) => { const d = new Date(v); return long ? dayDate(d) : hhmm(d); } },
        },
        y,
      },
      plugins: {
        legend: {
          display: g.items.length > 1, position: 'bottom', align: 'start',
          labels: { boxWidth: 10, boxHeight: 2, padding: 8, color: colors.text, filter: (it, data) => data.datasets[it.datasetIndex].pilotRole === 'avg' },
          onClick(e, it, legend) {
            const ch = legend.chart, key = ch.data.datasets[it.datasetIndex].pilotKey, vis = !ch.isDatasetVisible(it.datasetIndex);
            ch.data.datasets.forEach((d, i) => { if (d.pilotKey === key) ch.setDatasetVisibility(i, vis); });
            ch.update('none');
          },
        },
        tooltip: {
          filter: (it) => it.dataset.pilotRole === 'avg',
          backgroundColor: colors.panel, titleColor: colors.text, bodyColor: colors.text, borderColor: colors.border, borderWidth: 1,
          boxWidth: 8, boxHeight: 8,
          callbacks: {
            title: (items) => (items.length ? (() => { const d = new Date(items[0].parsed.x); return `${dayDate(d)} ${hhmm(d)}:${pad(d.getSeconds())}`; })() : ''),
            label: (it) => {
              const ds = it.dataset, all = it.chart.data.datasets, i = it.datasetIndex;
              let text = `${ds.label || ds.pilotMetric}: ${fmtVal(it.parsed.y, unitOf(ds.pilotMetric))}`;
              const lo = all[i + 1], hi = all[i + 2];
              if (lo && hi && lo.pilotRole === 'min' && lo.pilotKey === ds.pilotKey) {
                const a = lo.data[it.dataIndex], b = hi.data[it.dataIndex];
                if (a && b && a.x === it.parsed.x && isNum(a.y) && isNum(b.y)) text += ` (${fmtVal(a.y, unitOf(ds.pilotMetric))} – ${fmtVal(b.y, unitOf(ds.pilotMetric))})`;
              }
              return text;
            },
          },
        },
      },
    },
  };
}

function hostHeadHtml(h) {
  const f = (label, value, cls = '') => `<div class="kv${cls}"><dt>${label}</dt><dd>${value}</dd></div>`;
  const tags = h.tags.map((t) => `<a class="tag" href="#/?q=${esc(encodeURIComponent('tag:' + t).replace(/%3A/gi, ':'))}">${esc(t)}</a>`).join('') || '–';
  const pct = (k) => `<span class="v${lvl(k, h[k])}">${isNum(h[k]) ? esc(h[k].toFixed(1)) + '%' : '–'}</span>`;
  return `<div class="head-top"><h1>${esc(h.host)}</h1>${stateHtml(h.state)}<span class="muted">since ${timeHtml(h.since, 'ago')}</span></div>` +
    `<dl class="facts">` +
    f('Address', `<span class="mono">${esc(h.address || '–')}</span>`) +
    f('Endpoint', `<span class="mono">${esc(h.endpoint || '–')}</span>`) +
    f('Tags', tags) +
    f('Uptime', esc(isNum(h.uptime_s) ? fmtDur(h.uptime_s) : '–')) +
    f('Last seen', timeHtml(h.last_seen, 'ago')) +
    f('CPU', pct('cpu')) + f('Memory', pct('mem')) +
    f('Disk', `${pct('disk')}${h.disk_mount ? ` <span class="muted">${esc(h.disk_mount)}</span>` : ''}`) +
    f('Load', esc(isNum(h.load1) ? h.load1.toFixed(2) : '–')) +
    `</dl>`;
}

function checksHtml(h) {
  if (!h.checks.length) return '<p class="empty">No checks run on this host.</p>';
  const latest = h.latest || {};
  const SKIP = new Set(['host', 'check', 'status', 'ok', 'message', 'ts', 'latency_ms']);
  return `<table class="list checks"><thead><tr><th>Check</th><th>Status</th><th class="num">Latency</th><th>Last output</th></tr></thead><tbody>` +
    h.checks.map((c) => {
      const full = latest['health/' + c.name] || {};
      const message = typeof full.message === 'string' ? full.message : c.message || '';
      const extra = Object.keys(full).filter((k) => !SKIP.has(k) && typeof full[k] !== 'object').map((k) => `${k}=${full[k]}`).join(' ');
      return `<tr data-check="${esc(c.name)}"><td>${esc(c.name)}</td><td><span class="cs cs-${esc(c.status)}">${esc(c.status)}</span></td>` +
        `<td class="num">${esc(fmtVal(c.latency_ms, 'ms'))}</td><td class="out"><span class="msg" title="${esc(message)}">${esc(message || '–')}</span>` +
        (extra ? `<span class="muted extra">${esc(extra)}</span>` : '') + `</td></tr>`;
    }).join('') + '</tbody></table>';
}

// Value against threshold; a resolve's value is the last one seen.
function alertValueHtml(a) {
  const done = a.status === 'resolved';
  if (a.metric === 'host_down') return done ? 'heard from again' : `silent ${esc(fmtDur(a.value, true))} <span class="muted">(limit ${esc(fmtDur(a.threshold, true))})</span>`;
  if (a.metric === 'health') return done ? 'ok again' : 'check failing';
  const u = unitOf(a.metric);
  const op = a.comparison === 'below' ? '<' : a.comparison === 'above' ? '>' : 'vs';
  return `${esc(fmtVal(a.value, u))} <span class="muted">${done ? '(rule ' : ''}${op} ${esc(fmtVal(a.threshold, u))}${done ? ')' : ''}</span>`;
}

function historyHtml(list) {
  if (!Array.isArray(list) || !list.length) return '<p class="empty">No alert notices for this host since the aggregator started.</p>';
  return '<ol class="history">' + list.map((n) => `<li data-fingerprint="${esc(n.fingerprint)}"><span class="when">${timeHtml(n.ts ?? n.starts_at)}</span>` +
    `<span class="an an-${esc(n.status)}">${esc(n.status)}</span>${sevHtml(n.severity)}<span class="metric">${esc(n.metric)} ${labelHtml(n.labels)}</span>` +
    `<span class="val">${alertValueHtml(n)}</span></li>`).join('') + '</ol>';
}

function hostPage(name, params) {
  const rangeKey = RANGES[params.get('range')] ? params.get('range') : '1h';
  const [rangeSec, step] = RANGES[rangeKey];
  const pinned = /^\d+$/.test(params.get('to') || '') ? parseInt(params.get('to'), 10) : null;
  window.pilotView = { page: 'host', host: name, range: rangeSec, rangeName: rangeKey };
  main.innerHTML = `<section class="host"><header id="host-head" class="panel head"><div class="head-top"><h1>${esc(name)}</h1></div><p class="muted">Loading…</p></header>` +
    `<div id="host-body" hidden><div class="two"><section class="panel"><h2>Checks</h2><div id="host-checks"></div></section>` +
    `<section class="panel"><h2>Alert history</h2><div id="host-history"></div></section></div>` +
    `<div class="rangebar" id="rangebar"></div><div id="host-charts"></div></div></section>`;
  let stopped = false, timer = 0, ctrl = null, charts = [], view = null, drawn = false;
  const href = (r, to) => `${hostHref(name)}?range=${r}${to ? '&to=' + to : ''}`;
  const mark = () => { if (!drawn) { drawn = true; performance.mark('pilot-host-drawn'); } };

  function rangebar(now) {
    const to = view.to, back = to - Math.round(rangeSec / 2), fwd = to + Math.round(rangeSec / 2);
    $('#rangebar').innerHTML = `<div class="seg" role="group" aria-label="Range">` +
      Object.keys(RANGES).map((r) => `<a href="${esc(href(r, pinned))}" data-range="${r}"${r === rangeKey ? ' class="on" aria-current="true"' : ''}>${r}</a>`).join('') + '</div>' +
      `<div class="seg"><a href="${esc(href(rangeKey, back))}" title="Earlier" aria-label="Earlier">◀</a>` +
      `<a href="${esc(href(rangeKey, fwd < now ? fwd : null))}" title="Later" aria-label="Later">▶</a>` +
      `<a href="${esc(href(rangeKey, null))}"${pinned ? '' : ' class="on"'}>live</a></div>` +
      `<span class="muted window">${esc(fmtAbs(view.from).slice(0, 16))} – ${esc(fmtAbs(view.to).slice(0, 16))}${pinned ? ' (pinned)' : ''}</span>`;
  }

  function drawCharts(series) {
    const colors = palette();
    const groups = groupSeries(series);
    const card = (g) => `<figure class="chart panel${g.key === 'checks' ? ' short' : ''}"><figcaption>${esc(g.title)}</figcaption><div class="box"><canvas data-chart="${esc(g.key)}" role="img" aria-label="${esc(g.title)}"></canvas></div></figure>`;
    const mains = groups.filter((g) => !g.other), others = groups.filter((g) => g.other);
    const box = $('#host-charts');
    box.innerHTML = (groups.length ? '' : '<p class="empty panel">The store holds no series for this host in this window.</p>') +
      `<div class="charts">${mains.map(card).join('')}</div>` +
      (others.length ? `<h2 class="sub">Other metrics</h2><div class="charts small">${others.map(card).join('')}</div>` : '');
    const canvases = box.querySelectorAll('canvas');
    const byKey = new Map(groups.map((g) => [g.key, g]));
    charts = [];
    for (const cv of canvases) charts.push(new window.Chart(cv, chartConfig(byKey.get(cv.dataset.chart), view, colors)));
    charts.count = series.length;
  }

  // Refresh in place when the same series come back; else redraw.
  function updateCharts(series) {
    if (!charts.length || charts.count !== series.length) return false;
    const byKey = new Map(series.map((s) => [seriesKey(s), s]));
    for (const ch of charts) {
      for (const ds of ch.data.datasets) {
        const s = byKey.get(ds.pilotKey);
        const pts = s && (ds.pilotRole === 'avg' ? s.points : s[ds.pilotRole]);
        if (!Array.isArray(pts)) return false;
      }
    }
    for (const ch of charts) {
      for (const ds of ch.data.datasets) {
        const s = byKey.get(ds.pilotKey);
        ds.data = toXY(ds.pilotRole === 'avg' ? s.points : s[ds.pilotRole]);
      }
      ch.options.scales.x.min = view.from * 1000;
      ch.options.scales.x.max = view.to * 1000;
      ch.update('none');
    }
    return true;
  }

  function destroyCharts() { for (const ch of charts) ch.destroy(); charts = []; }

  async function load(first) {
    ctrl = new AbortController();
    // The host and its history at once: the series answer names its own
    // window (the server's now when not pinned), so it need not wait.
    const seriesP = api(`/api/v1/series?host=${encodeURIComponent(name)}&range=${rangeSec}&step=${step}${pinned ? '&to=' + pinned : ''}`, { signal: ctrl.signal });
    seriesP.catch(() => {}); // handled below, or unused (no store, unknown host)
    let d;
    try {
      d = await api('/api/v1/hosts/' + encodeURIComponent(name), { signal: ctrl.signal });
    } catch (e) {
      if (aborted(e) || stopped) return;
      if (first) {
        $('#host-head').innerHTML = `<div class="head-top"><h1>${esc(name)}</h1></div><p class="${e.status === 404 ? 'empty' : 'error'}">` +
          (e.status === 404 ? `Unknown host: no host named “${esc(name)}” has published to this aggregator.` : `Cannot load this host: ${esc(e.message)}`) + '</p>';
        if (e.status === 404) { mark(); return; }
      }
      schedule();
      return;
    }
    const h = prepHost(d.host || {});
    const now = isNum(d.now) ? d.now : Math.floor(serverNow());
    const to = pinned ?? now;
    view = { page: 'host', host: name, from: to - rangeSec, to, step, range: rangeSec, rangeName: rangeKey };
    window.pilotView = view;
    $('#host-head').innerHTML = hostHeadHtml(h);
    $('#host-checks').innerHTML = checksHtml(h);
    $('#host-history').innerHTML = historyHtml(h.alert_history);
    $('#host-body').hidden = false;
    rangebar(now);
    const box = $('#host-charts');
    if (d.features && d.features.history === false) {
      destroyCharts();
      box.innerHTML = `<p class="empty panel nohistory">No store runs on this aggregator's node, so there is no history here. <code>pilot up</code> runs one; or run the store on the hub's node.</p>`;
      mark();
      schedule();
      return;
    }
    let sd;
    try {
      sd = await seriesP;
      await chartReady;
      if (isNum(sd.from) && isNum(sd.to)) {
        view.from = sd.from;
        view.to = sd.to;
        rangebar(now);
      }
    } catch (e) {
      if (aborted(e) || stopped) return;
      if (first || !charts.length) { destroyCharts(); box.innerHTML = `<p class="error panel">Cannot load the history: ${esc(e.message)}</p>`; mark(); }
      schedule();
      return;
    }
    if (stopped) return;
    const series = Array.isArray(sd.series) ? sd.series : [];
    if (!window.Chart) {
      box.innerHTML = '<p class="error panel">Chart.js did not load (/assets/chart.min.js).</p>';
    } else if (!updateCharts(series)) {
      destroyCharts();
      drawCharts(series);
    }
    mark();
    schedule();
  }
  function schedule() { if (!stopped && pinned === null) timer = setTimeout(() => load(false), 30000); }

  load(true);
  return { name: 'host', stop() { stopped = true; clearTimeout(timer); if (ctrl) ctrl.abort(); destroyCharts(); } };
}

// ===================================================================
// Alerts
// ===================================================================
function alertsPage() {
  window.pilotView = { page: 'alerts' };
  main.innerHTML = `<section class="alerts">` +
    `<section class="panel"><h2>Firing <span id="firing-count" class="count"></span></h2><div id="firing"><p class="muted">Loading…</p></div></section>` +
    `<section class="panel"><h2>Silences</h2><div id="silences"></div>` +
    `<form id="silence-form" class="wform" hidden autocomplete="off">` +
    `<label class="grow">Matchers<input name="matchers" id="sf-matchers" required placeholder="host=web-01 metric=disk_pct" spellcheck="false"></label>` +
    `<label>Duration<input name="duration" id="sf-duration" required value="2h" size="6" spellcheck="false"></label>` +
    `<label class="grow">Comment<input name="comment" id="sf-comment" placeholder="why"></label>` +
    `<label>By<input name="created_by" id="sf-by" size="10" placeholder="you"></label>` +
    `<button type="submit">Add silence</button></form>` +
    `<form id="token-form" class="wform token-form" hidden><input type="text" autocomplete="username" value="admin" hidden><label>Admin token<input type="password" id="admin-token" autocomplete="current-password" required></label>` +
    `<button type="submit">Continue</button><button type="button" id="token-cancel" class="plain">Cancel</button>` +
    `<span class="muted">Kept in this tab only (sessionStorage).</span></form>` +
    `<p id="write-error" class="error" role="alert" hidden></p><p id="write-ok" class="okmsg" hidden></p></section>` +
    `<section class="panel"><h2>Recently resolved</h2><div id="resolved"></div></section></section>`;
  let stopped = false, timer = 0, ctrl = null, last = {}, features = {}, pendingToken = null, routerless = false;
  const form = $('#silence-form'), tokenForm = $('#token-form'), werr = $('#write-error'), wok = $('#write-ok');

  function firingHtml(list) {
    if (!list.length) return '<p class="empty good">Nothing fires.</p>';
    const groups = new Map();
    for (const a of list) { if (!groups.has(a.host)) groups.set(a.host, []); groups.get(a.host).push(a); }
    const worst = (as) => Math.max(...as.map((a) => SEV_RANK[a.severity] || 0));
    const hosts = [...groups.keys()].sort((x, y) => worst(groups.get(y)) - worst(groups.get(x)) || coll.compare(x, y));
    return `<table class="list firing"><thead><tr><th>Alert</th><th>Severity</th><th>Value</th><th>Since</th><th></th></tr></thead>` +
      hosts.map((host) => `<tbody><tr class="grp"><th colspan="5"><a href="${esc(hostHref(host))}">${esc(host)}</a></th></tr>` +
        groups.get(host).sort((a, b) => (SEV_RANK[b.severity] || 0) - (SEV_RANK[a.severity] || 0) || coll.compare(a.metric, b.metric)).map((a) => {
          const m = `host=${a.host} ${a.metric === 'host_down' ? 'metric=host_down' : 'metric=' + a.metric}${labelText(a.labels) ? ' ' + labelText(a.labels) : ''}`;
          return `<tr data-fingerprint="${esc(a.fingerprint)}" data-host="${esc(a.host)}"${a.silenced ? ' class="is-silenced"' : ''}>` +
            `<td class="metric">${esc(a.metric)} ${labelHtml(a.labels)}</td><td>${sevHtml(a.severity)}</td><td class="val">${alertValueHtml(a)}</td>` +
            `<td>${timeHtml(a.since)}</td><td class="act">${a.silenced ? '<span class="badge silenced">silenced</span>' : ''}` +
            (features.write && !a.silenced && !routerless ? `<button type="button" class="plain small" data-silence="${esc(m)}">silence…</button>` : '') + '</td></tr>';
        }).join('') + '</tbody>').join('') + '</table>';
  }
  function resolvedHtml(list) {
    if (!list.length) return '<p class="empty">No resolves since the aggregator started.</p>';
    return `<table class="list resolved"><thead><tr><th>Host</th><th>Alert</th><th>Severity</th><th>Value</th><th>Resolved</th><th class="num">Lasted</th></tr></thead><tbody>` +
      list.map((n) => `<tr data-fingerprint="${esc(n.fingerprint)}"><td><a href="${esc(hostHref(n.host))}">${esc(n.host)}</a></td>` +
        `<td class="metric">${esc(n.metric)} ${labelHtml(n.labels)}</td><td>${sevHtml(n.severity)}</td><td class="val">${alertValueHtml(n)}</td>` +
        `<td>${timeHtml(n.ends_at ?? n.ts)}</td><td class="num">${isNum(n.ends_at) && isNum(n.starts_at) ? esc(fmtDur(n.ends_at - n.starts_at)) : '–'}</td></tr>`).join('') +
      '</tbody></table>';
  }
  function silencesHtml(list) {
    if (list === null) return '<p class="empty">No alert router runs on this node, so there are no silences.</p>';
    const note = features.write ? '' : '<p class="muted note">Read-only: start the aggregator with <code>--http-admin-token @FILE</code> to add silences here.</p>';
    if (!list.length) return '<p class="empty">No silences.</p>' + note;
    return `<table class="list silences"><thead><tr><th>ID</th><th>Matchers</th><th>Until</th><th>Comment</th><th>By</th><th>Active</th><th></th></tr></thead><tbody>` +
      list.map((s) => `<tr data-silence-id="${esc(s.id)}"${s.active ? '' : ' class="inactive"'}><td class="mono">${esc(String(s.id).slice(0, 8))}</td>` +
        `<td>${(Array.isArray(s.matchers) ? s.matchers : []).map((m) => `<code class="matcher">${esc(m)}</code>`).join(' ')}</td>` +
        `<td>${timeHtml(s.ends_at)}</td><td>${esc(s.comment || '')}</td><td>${esc(s.created_by || '')}</td>` +
        `<td>${s.active ? '<span class="badge active">active</span>' : '<span class="muted">no</span>'}</td>` +
        `<td class="act">${features.write && s.active ? `<button type="button" class="plain small" data-expire="${esc(s.id)}">expire</button>` : ''}</td></tr>`).join('') +
      '</tbody></table>' + note;
  }

  function apply(d) {
    features = d.features || {};
    const firing = Array.isArray(d.firing) ? d.firing : [];
    const parts = { firing, resolved: Array.isArray(d.resolved) ? d.resolved : [], silences: d.silences === undefined ? null : d.silences, write: !!features.write };
    const put = (id, key, html) => {
      const j = JSON.stringify([parts[key], parts.write, parts.silences === null]);
      if (last[key] !== j) { last[key] = j; $(id).innerHTML = html(); }
    };
    routerless = parts.silences === null;
    put('#firing', 'firing', () => firingHtml(firing));
    put('#resolved', 'resolved', () => resolvedHtml(parts.resolved));
    put('#silences', 'silences', () => silencesHtml(parts.silences));
    $('#firing-count').textContent = firing.length ? String(firing.length) : '';
    form.hidden = !(features.write && parts.silences !== null);
  }
  async function poll() {
    if (stopped) return;
    clearTimeout(timer);
    ctrl = new AbortController();
    try { apply(await api('/api/v1/alerts', { signal: ctrl.signal })); } catch (e) {
      if (aborted(e) || stopped) return;
      if (!last.firing) $('#firing').innerHTML = `<p class="error">Cannot load the alerts: ${esc(e.message)}</p>`;
    }
    if (!stopped) timer = setTimeout(poll, 5000);
  }

  // The admin token: asked for at the first write, kept for the tab.
  const settle = (t) => { tokenForm.hidden = true; const r = pendingToken; pendingToken = null; if (r) r(t); };
  const askToken = () => new Promise((resolve) => {
    pendingToken = resolve;
    tokenForm.hidden = false;
    $('#admin-token').value = '';
    $('#admin-token').focus();
  });
  tokenForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('#admin-token').value.trim();
    if (!t) return;
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch { /* private mode: used once */ }
    settle(t);
  });
  $('#token-cancel').addEventListener('click', () => settle(null));

  async function write(url, fields, done) {
    werr.hidden = wok.hidden = true;
    let token = null;
    try { token = sessionStorage.getItem(TOKEN_KEY); } catch { /* none */ }
    if (!token) token = await askToken();
    if (!token || stopped) return false;
    try {
      await api(url, { body: new URLSearchParams(fields), token });
    } catch (e) {
      if (e.status === 401 || e.status === 403) try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* none */ }
      werr.textContent = e.message;
      werr.hidden = false;
      return false;
    }
    wok.textContent = done;
    wok.hidden = false;
    poll();
    return true;
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const fields = {};
    for (const [k, v] of new FormData(form)) fields[k] = String(v).trim();
    if (await write('/api/v1/silences', fields, 'Silence added.')) { $('#sf-matchers').value = ''; $('#sf-comment').value = ''; }
  });
  main.firstChild.addEventListener('click', (ev) => {
    const ex = ev.target.closest('button[data-expire]');
    if (ex) { write(`/api/v1/silences/${encodeURIComponent(ex.dataset.expire)}/expire`, {}, 'Silence expired.'); return; }
    const si = ev.target.closest('button[data-silence]');
    if (si) { $('#sf-matchers').value = si.dataset.silence; $('#sf-duration').focus(); $('#sf-duration').select(); }
  });
  poll();
  return { name: 'alerts', stop() { stopped = true; clearTimeout(timer); if (ctrl) ctrl.abort(); settle(null); } };
}

// ===================================================================
// Routing
// ===================================================================
let current = null;
function route() {
  let h = location.hash.replace(/^#/, '');
  if (!h.startsWith('/')) h = '/' + h;
  const qi = h.indexOf('?');
  const path = qi < 0 ? h : h.slice(0, qi);
  const params = new URLSearchParams(qi < 0 ? '' : h.slice(qi + 1));
  let name = 'missing', arg = '';
  if (path === '/') name = 'fleet';
  else if (path === '/alerts' || path === '/alerts/') name = 'alerts';
  else if (path.startsWith('/host/') && path.length > 6) {
    name = 'host';
    try { arg = decodeURIComponent(path.slice(6)); } catch (e) { arg = path.slice(6); }
  }
  if (current && current.name === 'fleet' && name === 'fleet') { current.setQuery(params.get('q') || ''); return; }
  if (current) current.stop();
  current = null;
  for (const a of document.querySelectorAll('[data-nav]')) {
    const on = a.dataset.nav === name;
    a.classList.toggle('on', on);
    if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  document.body.dataset.page = name;
  window.scrollTo(0, 0);
  if (name === 'fleet') current = fleetPage(params);
  else if (name === 'host') current = hostPage(arg, params);
  else if (name === 'alerts') current = alertsPage();
  else {
    window.pilotView = { page: 'missing' };
    main.innerHTML = '<p class="empty panel">No such page. <a href="#/">Back to the fleet</a>.</p>';
  }
  document.title = name === 'host' ? `${arg} · pilot` : name === 'alerts' ? 'Alerts · pilot' : 'pilot';
}
window.addEventListener('hashchange', route);
document.addEventListener('keydown', (ev) => {
  if (ev.key === '/' && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName)) {
    const f = $('#filter');
    if (f) { ev.preventDefault(); f.focus(); }
  }
});
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => { if (current && current.name === 'host') { current.stop(); current = null; route(); } });
chartReady.then(() => {
  const C = window.Chart;
  if (!C) return;
  const cs = getComputedStyle(document.documentElement);
  C.defaults.font.family = cs.getPropertyValue('--font').trim() || 'system-ui, sans-serif';
  C.defaults.font.size = 11;
  C.defaults.color = cs.getPropertyValue('--muted').trim();
  C.defaults.borderColor = cs.getPropertyValue('--grid').trim();
});
route();
paintConn();
})();
