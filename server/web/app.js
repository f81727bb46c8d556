// Playbook dashboard: plain JavaScript, no dependencies. Talks to the daemon
// over the same WebSocket JSON-RPC protocol as every other client (ws://HOST/v1).
// The token travels only in the WebSocket handshake, as the subprotocol
// "bearer.<TOKEN>" next to "playbook.v1" (browsers cannot set Authorization on
// a WebSocket); it is kept in sessionStorage for this tab.
"use strict";

(() => {
  const DAY = 86400000;
  const TOKEN_KEY = "playbook.dashboard.token";
  const MAX_TREND_BUCKETS = 26;
  const LIST_MAX = 40;
  const $ = (id) => document.getElementById(id);

  // ---- Errors: everything that goes wrong is listed in #errors ---------------

  const errorsEl = $("errors");
  function describe(v) {
    if (v instanceof Error) return v.message || String(v);
    if (typeof v === "object" && v !== null) {
      try { return JSON.stringify(v); } catch (_) { return String(v); }
    }
    return String(v);
  }
  function reportError(what) {
    const p = document.createElement("p");
    p.textContent = what;
    errorsEl.appendChild(p);
    errorsEl.hidden = false;
  }
  window.addEventListener("error", (e) => {
    reportError("Script error: " + (e.message || "unknown") +
      (e.filename ? " (" + e.filename + ":" + e.lineno + ")" : ""));
  });
  window.addEventListener("unhandledrejection", (e) => reportError("Unhandled: " + describe(e.reason)));
  const consoleError = console.error.bind(console);
  console.error = (...args) => {
    reportError("console.error: " + args.map(describe).join(" "));
    consoleError(...args);
  };

  // ---- JSON-RPC over WebSocket -----------------------------------------------

  class RpcError extends Error {
    constructor(method, err) {
      super(method + ": " + (err.message || "error " + err.code));
      this.code = err.code;
      this.data = err.data || {};
    }
  }

  class Rpc {
    constructor(token) {
      this.token = token;
      this.ws = null;
      this.nextId = 1;
      this.pending = new Map();
      this.onLost = null;
    }

    // Resolves once the upgrade succeeded; rejects when the daemon refused it
    // (unknown token: the browser only sees the connection fail).
    open() {
      return new Promise((resolve, reject) => {
        const protocols = ["playbook.v1"];
        if (this.token) protocols.push("bearer." + this.token);
        const scheme = location.protocol === "https:" ? "wss://" : "ws://";
        let ws;
        try {
          ws = new WebSocket(scheme + location.host + "/v1", protocols);
        } catch (e) {
          reject(new Error("This token cannot be sent from a browser (it may only contain " +
            "letters, digits and !#$%&'*+-.^_`|~)."));
          return;
        }
        this.ws = ws;
        let opened = false;
        ws.onopen = () => { opened = true; resolve(); };
        ws.onmessage = (ev) => this.onMessage(ev.data);
        ws.onclose = (ev) => {
          const err = new Error("the connection closed (code " + ev.code + ")");
          for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(err); }
          this.pending.clear();
          if (!opened) {
            reject(new Error("The daemon refused the connection: unknown token, or the daemon is not reachable."));
          } else if (this.onLost) {
            this.onLost(ev);
          }
        };
      });
    }

    onMessage(text) {
      let msg;
      try { msg = JSON.parse(text); } catch (_) { reportError("The daemon sent a frame that is not JSON."); return; }
      for (const m of Array.isArray(msg) ? msg : [msg]) {
        if (m === null || typeof m !== "object" || !("id" in m)) continue;  // a notification
        const p = this.pending.get(m.id);
        if (!p) continue;
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.error) p.reject(new RpcError(p.method, m.error));
        else p.resolve(m.result);
      }
    }

    call(method, params) {
      return new Promise((resolve, reject) => {
        if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
          reject(new Error(method + ": not connected"));
          return;
        }
        const id = this.nextId++;
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new Error(method + ": no answer within 60 s"));
        }, 60000);
        this.pending.set(id, { method, resolve, reject, timer });
        this.ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params: params || {} }));
      });
    }

    close() {
      if (!this.ws) return;
      this.onLost = null;
      this.ws.onclose = null;
      for (const p of this.pending.values()) clearTimeout(p.timer);
      this.pending.clear();
      this.ws.close(1000);
      this.ws = null;
    }
  }

  // ---- Formatting ------------------------------------------------------------

  const intFmt = new Intl.NumberFormat("en-US");
  const moneyFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  let collator;
  try { collator = new Intl.Collator("zh-Hans-CN-u-co-pinyin", { numeric: true, sensitivity: "base" }); }
  catch (_) { collator = new Intl.Collator(undefined, { numeric: true }); }

  const isNull = (v) => v === null || v === undefined || (typeof v === "number" && !isFinite(v));
  const fmt = {
    int: (v) => isNull(v) ? "—" : intFmt.format(v),
    pct: (v) => isNull(v) ? "—" : (v * 100).toFixed(1) + "%",
    ratio: (v) => isNull(v) ? "—" : v.toFixed(2) + "×",
    money: (v) => isNull(v) ? "—" : moneyFmt.format(v),
    date: (v) => isNull(v) ? "—" : new Date(v).toISOString().slice(0, 10),
    text: (v) => isNull(v) ? "" : String(v),
  };
  const HAN = /[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]/;
  // Marks Chinese text so the browser picks a Chinese font for it.
  function setText(el, text) {
    el.textContent = text;
    if (HAN.test(text)) el.lang = "zh-Hans";
    return el;
  }
  // Shortens to `width` columns, counting CJK characters as two.
  function shorten(text, width) {
    let w = 0;
    let out = "";
    for (const ch of text) {
      const cw = HAN.test(ch) ? 2 : 1;
      if (w + cw > width - 1) return out + "…";
      w += cw;
      out += ch;
    }
    return out;
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) setText(e, text);
    return e;
  }
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, parent, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) setText(e, text);
    if (parent) parent.appendChild(e);
    return e;
  }
  const dayOf = (ms) => Math.floor(ms / DAY) * DAY;
  const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
  const parseDay = (s) => { const t = Date.parse(s + "T00:00:00Z"); return isNaN(t) ? null : t; };

  // ---- The asset table's columns (those of reports.assets) ------------------

  const COLS = [
    { key: "title", label: "Asset", kind: "text" },
    { key: "type", label: "Type", kind: "text" },
    { key: "shown", label: "Shown", kind: "int" },
    { key: "used", label: "Used", kind: "int" },
    { key: "usage_rate", label: "Usage rate", kind: "pct" },
    { key: "viewed", label: "Viewed", kind: "int" },
    { key: "dismissed", label: "Dismissed", kind: "int" },
    { key: "won", label: "Won", kind: "int" },
    { key: "lost", label: "Lost", kind: "int" },
    { key: "win_rate", label: "Win rate", kind: "pct" },
    { key: "lift", label: "Lift", kind: "ratio" },
    { key: "influenced_revenue", label: "Influenced revenue", kind: "money" },
    { key: "last_used", label: "Last used", kind: "date" },
  ];
  const CSV_COLS = ["asset_id", "title", "type", "shown", "used", "usage_rate", "viewed", "dismissed",
    "won", "lost", "win_rate", "lift", "influenced_revenue", "last_used", "deleted"];

  // ---- State -------------------------------------------------------------------

  const state = {
    rpc: null,
    filters: null,     // what the data on screen was loaded with
    rows: [],          // reports.assets rows
    totals: {},
    catalog: [],       // live assets (assets.list)
    sort: { key: "used", dir: -1 },
    limit: 10000,      // asked of reports.assets; null after the daemon refused it
    serverSort: true,  // false after the daemon refused a sort column
    byContent: true,   // false after the daemon refused reports.assets' "by"
    seq: 0,            // of the latest refresh; older answers are dropped
  };

  // ---- Sign in -------------------------------------------------------------------

  function showLogin(message) {
    if (state.rpc) { state.rpc.close(); state.rpc = null; }
    $("dash").hidden = true;
    $("login").hidden = false;
    $("signout").hidden = true;
    $("reconnect").hidden = true;
    setConn("off", "not connected");
    $("login-msg").textContent = message || "";
    document.body.dataset.state = "login";
    $("token-input").focus();
  }

  function setConn(kind, text) {
    $("conn").dataset.conn = kind;
    $("conn").textContent = text;
  }

  async function connect(token) {
    if (state.rpc) state.rpc.close();
    const rpc = new Rpc(token);
    state.rpc = rpc;
    state.stagesAsked = null;
    document.body.dataset.state = "loading";
    setConn("off", "connecting…");
    try {
      await rpc.open();
    } catch (e) {
      if (state.rpc !== rpc) return;
      state.rpc = null;
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(e.message);
      return;
    }
    rpc.onLost = (ev) => {
      if (state.rpc !== rpc) return;
      setConn("bad", "disconnected");
      $("reconnect").hidden = false;
      reportError("The connection to the daemon closed (code " + ev.code + "). Reconnect to go on.");
    };
    setConn("on", "connected to " + location.host);
    $("login").hidden = true;
    $("dash").hidden = false;
    $("signout").hidden = false;
    $("reconnect").hidden = true;
    await refresh();
  }

  // ---- Filters -------------------------------------------------------------------

  function initFilters() {
    const today = dayOf(Date.now());
    $("f-to").value = isoDay(today);
    $("f-from").value = isoDay(today - 83 * DAY);  // twelve whole weeks
    fillSelect($("f-stage"), [], "all stages");
  }

  function readFilters() {
    const from = parseDay($("f-from").value);
    const to = parseDay($("f-to").value);
    if (from === null || to === null || from > to) {
      setStatus("choose a date range (from ≤ to)");
      return null;
    }
    const f = { from, to };
    if ($("f-stage").value) f.stage = $("f-stage").value;
    if ($("f-type").value) f.type = $("f-type").value;
    const rep = $("f-rep").value.trim();
    if (rep) f.rep_id = rep;
    return f;
  }

  function fillSelect(select, values, allLabel) {
    const keep = select.value;
    select.textContent = "";
    select.appendChild(new Option(allLabel, ""));
    for (const v of values) select.appendChild(new Option(v, v));
    if (keep && !values.includes(keep)) select.appendChild(new Option(keep, keep));
    select.value = keep;
  }

  function setStatus(text) { $("status").textContent = text; }

  // ---- Loading -------------------------------------------------------------------

  async function refresh() {
    const f = readFilters();
    if (!f || !state.rpc) return;
    const seq = ++state.seq;
    state.filters = f;
    document.body.dataset.state = "loading";
    setStatus("loading…");
    const current = () => seq === state.seq;
    const parts = [
      Promise.all([loadReport(f), loadCatalog(f), loadStages()]).then(([report, catalog, stages]) => {
        if (!current()) return;
        state.rows = report.rows || [];
        state.totals = report.totals || {};
        state.catalog = catalog;
        state.stages = stages;
        updateChoices();
        renderSummary();
        renderTable();
        renderScatter();
      }),
      loadUnused(f).then((u) => { if (current()) renderUnused(u); }),
      loadTrend(f).then((buckets) => { if (current()) renderTrend(buckets); }),
      loadDismissals(f).then((d) => { if (current()) renderDismissals(d); }),
      loadExperiment(f).then((x) => { if (current()) renderExperiment(x); }),
    ];
    const results = await Promise.allSettled(parts);
    if (!current()) return;
    for (const r of results) {
      if (r.status !== "rejected") continue;
      if (r.reason instanceof RpcError && r.reason.code === -32001) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin("This token may not read reports: use a marketing or admin token.");
        return;
      }
      reportError(describe(r.reason));
    }
    setStatus("updated " + new Date().toLocaleTimeString("en-GB"));
    document.body.dataset.state = "ready";
  }

  async function reportsAssets(params) {
    const p = Object.assign({}, params);
    if (state.limit !== null && p.limit === undefined) p.limit = state.limit;
    try {
      return await state.rpc.call("reports.assets", p);
    } catch (e) {
      // A daemon with other limits or sort columns: fall back to its defaults.
      if (e instanceof RpcError && e.code === -32602 && e.data.field === "limit" && "limit" in p) {
        state.limit = null;
        delete params.limit;
        return reportsAssets(params);
      }
      if (e instanceof RpcError && e.code === -32602 && e.data.field === "by" && "by" in p) {
        state.byContent = false;  // a daemon without content items: a row per asset
        const q = Object.assign({}, params);
        delete q.by;
        return reportsAssets(q);
      }
      if (e instanceof RpcError && e.code === -32602 && e.data.field === "sort" && "sort" in p) {
        state.serverSort = false;
        const q = Object.assign({}, params);
        delete q.sort;
        return reportsAssets(q);
      }
      throw e;
    }
  }

  function loadReport(f) {
    const params = Object.assign({}, f);
    const col = COLS.find((c) => c.key === state.sort.key);
    if (state.serverSort && col && col.kind !== "text") params.sort = col.key;
    // Translations as one: a row per content item (reports.assets by "content").
    if ($("f-content").checked && state.byContent) params.by = "content";
    return reportsAssets(params);
  }

  // Live assets, for the stage and type choices and for content never shown.
  async function loadCatalog(f) {
    const out = [];
    let cursor = null;
    for (let page = 0; page < 20; ++page) {
      const params = { limit: 1000 };
      if (cursor) params.cursor = cursor;
      const res = await state.rpc.call("assets.list", params);
      out.push(...(res.assets || []));
      cursor = res.next_cursor;
      if (!cursor) break;
    }
    void f;
    return out;
  }

  // The stages configured in the daemon ([funnel] stages), in funnel order:
  // reports.funnel has one row per configured stage. Asked once per connection.
  async function loadStages() {
    if (!state.stagesAsked) {
      state.stagesAsked = state.rpc.call("reports.funnel", { from: 0, to: 0 })
        .then((res) => (res.stages || []).map((s) => String(s.stage)))
        .catch((e) => { state.stagesAsked = null; throw e; });
    }
    return state.stagesAsked;
  }

  // One reports.trend call: weekly buckets (a few weeks each on long ranges).
  async function loadTrend(f) {
    const days = Math.round((f.to - f.from) / DAY) + 1;
    const weeks = Math.ceil(days / 7);
    const span = 7 * Math.ceil(weeks / MAX_TREND_BUCKETS);
    const params = Object.assign({}, f, { bucket_days: span });
    const res = await state.rpc.call("reports.trend", params);
    return (res.buckets || []).map((b) => ({
      from: Number(b.from), to: Number(b.to), span,
      used: Number(b.used) || 0, shown: Number(b.shown) || 0,
    }));
  }

  // The server's definition of unused content (its min_shown and max_usage_rate defaults).
  function loadUnused(f) {
    const params = { from: f.from, to: f.to };
    if (f.stage) params.stage = f.stage;
    if (f.type) params.type = f.type;
    return state.rpc.call("reports.unused", params);
  }

  // A report this daemon may not offer yet: null rather than the -32601 error.
  async function callIfOffered(method, params) {
    try {
      return await state.rpc.call(method, params);
    } catch (e) {
      if (e instanceof RpcError && e.code === -32601) return null;
      throw e;
    }
  }

  function loadDismissals(f) {
    const params = { from: f.from, to: f.to };
    if (f.stage) params.stage = f.stage;
    return callIfOffered("reports.dismissals", params);
  }

  function loadExperiment(f) {
    return callIfOffered("reports.experiment", { from: f.from, to: f.to });
  }

  function updateChoices() {
    const stages = (state.stages || []).slice();
    const types = new Set();
    for (const a of state.catalog) {
      if (a.type) types.add(a.type);
    }
    for (const r of state.rows) if (r.type) types.add(r.type);
    fillSelect($("f-stage"), stages, "all stages");
    fillSelect($("f-type"), [...types].sort(), "all types");
  }

  // ---- Rendering -------------------------------------------------------------------

  // The rows on screen: the report's, narrowed by the title filter, sorted.
  function visibleRows() {
    const q = $("f-q").value.trim().toLowerCase();
    let rows = state.rows;
    if (q) {
      rows = rows.filter((r) => String(r.title).toLowerCase().includes(q) ||
        String(r.asset_id).toLowerCase().includes(q));
    }
    const { key, dir } = state.sort;
    const col = COLS.find((c) => c.key === key) || COLS[3];
    return rows.slice().sort((a, b) => {
      const x = a[key];
      const y = b[key];
      if (isNull(x) && isNull(y)) return collator.compare(String(a.title), String(b.title));
      if (isNull(x)) return 1;  // nulls last, either direction
      if (isNull(y)) return -1;
      const c = col.kind === "text" ? collator.compare(String(x), String(y)) : x - y;
      return c !== 0 ? c * dir : collator.compare(String(a.title), String(b.title));
    });
  }

  function renderSummary() {
    const t = state.totals;
    const cards = [
      ["Assets with activity", fmt.int(t.assets)],
      ["Shown", fmt.int(t.shown)],
      ["Used", fmt.int(t.used)],
      ["Usage rate", fmt.pct(t.usage_rate)],
      ["Viewed", fmt.int(t.viewed)],
      ["Dismissed", fmt.int(t.dismissed)],
      ["Won / lost (asset credits)", fmt.int(t.won) + " / " + fmt.int(t.lost)],
      ["Lead win rate", fmt.pct("leads_win_rate" in t ? t.leads_win_rate : t.win_rate)],
      ["Influenced revenue", fmt.money(t.influenced_revenue)],
    ];
    const box = $("summary");
    box.textContent = "";
    for (const [k, v] of cards) {
      const c = el("div", "card");
      c.appendChild(el("div", "k", k));
      c.appendChild(el("div", "v", v));
      box.appendChild(c);
    }
  }

  function renderTable() {
    const head = $("assets-head");
    head.textContent = "";
    for (const c of COLS) {
      const th = el("th", c.kind === "text" ? "" : "num", c.label);
      th.dataset.col = c.key;
      th.scope = "col";
      if (state.sort.key === c.key) th.setAttribute("aria-sort", state.sort.dir < 0 ? "descending" : "ascending");
      th.addEventListener("click", () => onSort(c));
      head.appendChild(th);
    }
    const rows = visibleRows();
    const body = $("assets-body");
    body.textContent = "";
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.dataset.asset = r.asset_id;
      for (const c of COLS) {
        const td = document.createElement("td");
        td.dataset.col = c.key;
        if (c.key === "title") {
          td.className = "title";
          const t = el("div", "t", String(r.title));
          t.title = String(r.title);
          td.appendChild(t);
          const id = el("div", "id", String(r.asset_id));
          if (r.deleted) id.appendChild(el("span", "badge deleted", "deleted"));
          td.appendChild(id);
          if (Array.isArray(r.variants) && r.variants.length > 1) {  // a content item: its translations
            td.appendChild(el("div", "id variants", variantsText(r)));
          }
        } else if (c.key === "type") {
          td.appendChild(el("span", "type", fmt.text(r.type)));
        } else {
          td.className = "num" + (isNull(r[c.key]) ? " null" : "");
          td.textContent = fmt[c.kind](r[c.key]);
          if (c.kind === "date" && !isNull(r[c.key])) td.title = new Date(r[c.key]).toISOString();
        }
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = el("td", "na", state.rows.length ? "No asset matches the title filter." : "No asset activity in this range.");
      td.colSpan = COLS.length;
      tr.appendChild(td);
      body.appendChild(tr);
    }
    const foot = $("assets-foot");
    foot.textContent = "";
    const t = state.totals;
    const tr = document.createElement("tr");
    for (const c of COLS) {
      const td = document.createElement("td");
      td.dataset.col = c.key;
      if (c.key === "title") td.textContent = "All matching assets";
      else if (c.key !== "type" && c.key !== "lift" && c.key !== "last_used" && c.key in t) {
        td.className = "num";
        td.textContent = fmt[c.kind](t[c.key]);
      }
      tr.appendChild(td);
    }
    foot.appendChild(tr);
    const items = "content_items" in t;  // rows are content items (translations as one)
    const matching = Number(items ? t.content_items : t.assets);
    let note = rows.length + (items ? (rows.length === 1 ? " content item" : " content items")
      : (rows.length === 1 ? " asset" : " assets"));
    if (matching > state.rows.length) note += " (the top " + state.rows.length + " of " + intFmt.format(matching) + ")";
    note += " · click a column to sort · UTC days";
    $("rows-note").textContent = note;
  }

  function onSort(col) {
    if (state.sort.key === col.key) state.sort.dir = -state.sort.dir;
    else state.sort = { key: col.key, dir: col.kind === "text" ? 1 : -1 };
    // The daemon returned every matching row unless it was cut at the limit:
    // then ask again, sorted by the new column.
    if (Number(state.totals.assets) > state.rows.length && col.kind !== "text") {
      refresh();
      return;
    }
    renderTable();
  }

  function niceMax(v, steps) {
    for (const s of steps) if (v <= s) return s;
    return steps[steps.length - 1];
  }

  function renderScatter() {
    const box = $("scatter");
    box.textContent = "";
    const W = 560, H = 400;
    const m = { l: 70, r: 18, t: 10, b: 98 };
    const x0 = m.l, x1 = W - m.r, y0 = m.t, y1 = H - m.b;  // plot area
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "usage rate against win rate per asset" }, box);
    const rows = visibleRows().filter((r) => !r.deleted);
    const t = state.totals;
    const maxUsage = Math.max(0, ...rows.map((r) => Number(r.usage_rate) || 0), Number(t.usage_rate) || 0);
    const xMax = niceMax(maxUsage * 1.02, [0.05, 0.1, 0.2, 0.25, 0.5, 1]);
    const pad = 12;  // keeps dots at 0% and 100% off the axes
    const X = (v) => x0 + pad + (Math.min(v, xMax) / xMax) * (x1 - x0 - 2 * pad);
    const Y = (v) => y1 - pad - v * (y1 - y0 - 2 * pad);
    // The quadrants split at the overall usage rate and the overall win rate.
    const xs = Number(t.usage_rate) || 0;
    const wr = "leads_win_rate" in t ? t.leads_win_rate : t.win_rate;
    const ys = isNull(wr) ? 0.5 : Number(wr);
    const tint = (xa, xb, ya, yb, cls) => {
      const e = svg("rect", { x: xa, y: ya, width: Math.max(0, xb - xa), height: Math.max(0, yb - ya), "fill-opacity": "0.07" }, root);
      e.style.fill = `var(--${cls})`;
    };
    tint(X(xs), x1, y0, Y(ys), "good");
    tint(X(xs), x1, Y(ys), y1, "bad");
    tint(x0, X(xs), y0, Y(ys), "warn");
    tint(x0, X(xs), Y(ys), y1, "idle");
    for (let i = 0; i <= 5; ++i) {
      const v = (xMax * i) / 5;
      svg("line", { x1: X(v), x2: X(v), y1: y0, y2: y1, class: "grid" }, root);
      svg("text", { x: X(v), y: y1 + 14, "text-anchor": "middle" }, root, Math.round(v * 100) + "%");
      const w = i / 5;
      svg("line", { x1: x0, x2: x1, y1: Y(w), y2: Y(w), class: "grid" }, root);
      svg("text", { x: x0 - 6, y: Y(w) + 4, "text-anchor": "end" }, root, Math.round(w * 100) + "%");
    }
    svg("line", { x1: x0, x2: x1, y1: y1, y2: y1, class: "axis" }, root);
    svg("line", { x1: x0, x2: x0, y1: y0, y2: y1, class: "axis" }, root);
    svg("line", { x1: X(xs), x2: X(xs), y1: y0, y2: y1, class: "split" }, root);
    svg("line", { x1: x0, x2: x1, y1: Y(ys), y2: Y(ys), class: "split" }, root);
    svg("text", { x: 12, y: (y0 + y1) / 2, transform: `rotate(-90 12 ${(y0 + y1) / 2})`, "text-anchor": "middle" }, root, "win rate (won ÷ closed) →");
    // Assets without a won or lost deal sit in a strip under the axis.
    const yNone = y1 + 38;
    svg("line", { x1: x0, x2: x1, y1: yNone, y2: yNone, class: "grid" }, root);
    svg("text", { x: x0 - 6, y: yNone + 4, "text-anchor": "end" }, root, "no deal");
    svg("text", { x: (x0 + x1) / 2, y: y1 + 68, "text-anchor": "middle" }, root, "usage rate (used ÷ shown) →");
    // The legend.
    const legend = [["q-works", "used & works"], ["q-fails", "used, no wins"],
      ["q-hidden", "unused, works"], ["q-idle", "neither"], ["none", "no deal yet"]];
    let lx = x0 - 40;
    for (const [cls, text] of legend) {
      svg("circle", { cx: lx + 5, cy: H - 8, r: 5, class: "dot " + cls }, root);
      svg("text", { x: lx + 14, y: H - 4 }, root, text);
      lx += 26 + text.length * 6.4;
    }
    const maxShown = Math.max(1, ...rows.map((r) => Number(r.shown) || 0));
    const ordered = rows.slice().sort((a, b) => (b.shown || 0) - (a.shown || 0));
    const labelled = new Set(ordered.filter((r) => !isNull(r.win_rate)).slice(0, 5).map((r) => r.asset_id));
    const placed = [];
    for (const r of ordered.slice().reverse()) {  // big dots first, small on top
      const u = Number(r.usage_rate) || 0;
      const hasWin = !isNull(r.win_rate);
      const cx = X(u);
      const cy = hasWin ? Y(r.win_rate) : yNone;
      const rad = 3 + 9 * Math.sqrt((Number(r.shown) || 0) / maxShown);
      let q = "none";
      if (hasWin) q = u >= xs ? (r.win_rate >= ys ? "q-works" : "q-fails") : (r.win_rate >= ys ? "q-hidden" : "q-idle");
      const dot = svg("circle", { cx: cx.toFixed(1), cy: cy.toFixed(1), r: rad.toFixed(1), class: "dot " + q }, root);
      dot.dataset.asset = r.asset_id;
      svg("title", {}, dot, `${r.title}\n${r.asset_id} · ${r.type}\nshown ${fmt.int(r.shown)}, used ${fmt.int(r.used)} (${fmt.pct(r.usage_rate)})\nwon ${fmt.int(r.won)}, lost ${fmt.int(r.lost)} (win rate ${fmt.pct(r.win_rate)})`);
      dot.addEventListener("click", () => flashRow(r.asset_id));
      if (labelled.has(r.asset_id)) {
        // Labels the most shown assets, skipping a label that would overlap one placed.
        const text = shorten(String(r.title), 22);
        let width = 0;
        for (const ch of text) width += HAN.test(ch) ? 11 : 6.2;
        const right = cx < (x0 + x1) / 2;
        const lx0 = right ? cx + rad + 3 : cx - rad - 3 - width;
        const box = { a: lx0, b: lx0 + width, c: cy - 8, d: cy + 6 };
        if (!placed.some((p) => p.a < box.b && box.a < p.b && p.c < box.d && box.c < p.d)) {
          placed.push(box);
          svg("text", { x: (right ? cx + rad + 3 : cx - rad - 3).toFixed(1), y: (cy + 4).toFixed(1), "text-anchor": right ? "start" : "end", class: "label" }, root, text);
        }
      }
    }
    if (rows.length === 0) svg("text", { x: (x0 + x1) / 2, y: (y0 + y1) / 2, "text-anchor": "middle", class: "empty" }, root, "no asset activity in this range");
  }

  function flashRow(assetId) {
    for (const tr of $("assets-body").querySelectorAll("tr")) {
      if (tr.dataset.asset !== assetId) continue;
      tr.scrollIntoView({ block: "center", behavior: "smooth" });
      tr.classList.add("flash");
      setTimeout(() => tr.classList.remove("flash"), 1500);
    }
  }

  function renderTrend(buckets) {
    const box = $("trend");
    box.textContent = "";
    const span = buckets.length ? buckets[0].span : 7;
    $("trend-hint").textContent = span === 7 ? "assets used per week" : `assets used per ${span / 7} weeks`;
    const W = 560, H = 400;
    const m = { l: 52, r: 18, t: 18, b: 62 };
    const x0 = m.l, x1 = W - m.r, y0 = m.t, y1 = H - m.b;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "assets used over time" }, box);
    const max = Math.max(0, ...buckets.map((b) => b.used));
    const raw = max <= 4 ? 4 : max;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const yMax = niceMax(raw / mag, [1, 2, 2.5, 4, 5, 8, 10]) * mag;
    const Y = (v) => y1 - (v / yMax) * (y1 - y0);
    for (let i = 0; i <= 4; ++i) {
      const v = (yMax * i) / 4;
      svg("line", { x1: x0, x2: x1, y1: Y(v), y2: Y(v), class: "grid" }, root);
      svg("text", { x: x0 - 6, y: Y(v) + 4, "text-anchor": "end" }, root, fmt.int(Math.round(v * 100) / 100));
    }
    svg("line", { x1: x0, x2: x1, y1: y1, y2: y1, class: "axis" }, root);
    const n = Math.max(1, buckets.length);
    const slot = (x1 - x0) / n;
    const every = Math.ceil(n / 8);
    buckets.forEach((b, i) => {
      const x = x0 + i * slot;
      const bar = svg("rect", { x: (x + slot * 0.15).toFixed(1), y: Y(b.used).toFixed(1), width: (slot * 0.7).toFixed(1), height: (y1 - Y(b.used)).toFixed(1), class: "bar" }, root);
      svg("title", {}, bar, `${isoDay(b.from)} … ${isoDay(b.to)}: used ${fmt.int(b.used)}, shown ${fmt.int(b.shown)}` +
        (b.shown ? ` (${fmt.pct(b.used / b.shown)})` : ""));
      if (b.used > 0) svg("text", { x: x + slot / 2, y: Y(b.used) - 4, "text-anchor": "middle", class: "label" }, root, fmt.int(b.used));
      if (i % every === 0) {
        svg("text", { x: x + slot / 2, y: y1 + 14, "text-anchor": "end", transform: `rotate(-40 ${x + slot / 2} ${y1 + 14})` }, root, isoDay(b.from).slice(5));
      }
    });
    svg("text", { x: (x0 + x1) / 2, y: H - 6, "text-anchor": "middle" }, root, "week starting (UTC, month-day)");
  }

  function listItem(title, note, extraCls) {
    const li = document.createElement("li");
    const t = el("span", "t", title);
    t.title = title;
    li.appendChild(t);
    li.appendChild(el("span", "n" + (extraCls ? " " + extraCls : ""), note));
    return li;
  }

  // reports.unused as the server defines it: never_used split into shown and never shown.
  function renderUnused(u) {
    const box = $("unused");
    box.textContent = "";
    const never = u.never_used || [];
    const shownUnused = never.filter((r) => Number(r.shown) > 0);
    const idle = never.filter((r) => !(Number(r.shown) > 0));
    const rare = u.rarely_used || [];

    const section = (heading, items, render) => {
      box.appendChild(el("div", "sublist-h", `${heading} (${items.length})`));
      if (!items.length) { box.appendChild(el("div", "na", "none")); return; }
      const ul = el("ul", "plain");
      for (const it of items.slice(0, LIST_MAX)) ul.appendChild(render(it));
      if (items.length > LIST_MAX) ul.appendChild(listItem(`… and ${items.length - LIST_MAX} more`, ""));
      box.appendChild(ul);
    };
    section("Shown, never used", shownUnused, (r) => listItem(String(r.title), `shown ${fmt.int(r.shown)} · used 0`));
    section("Shown often, rarely used", rare, (r) => listItem(String(r.title), `shown ${fmt.int(r.shown)} · used ${fmt.int(r.used)} (${fmt.pct(r.usage_rate)})`));
    section("Never shown in this range", idle, (r) => listItem(String(r.title), r.type || ""));
  }

  function renderDismissals(d) {
    const box = $("dismissals");
    box.textContent = "";
    if (d === null) {
      box.appendChild(el("div", "na", "Not available: this daemon does not offer reports.dismissals yet."));
      return;
    }
    const reasons = (d.reasons || []).slice().sort((a, b) => b.count - a.count);
    if (!reasons.length) {
      box.appendChild(el("div", "na", "No dismissals in this range."));
      return;
    }
    const max = Math.max(...reasons.map((r) => r.count));
    const bars = el("div", "bars");
    for (const r of reasons.slice(0, 15)) {
      const row = el("div", "row");
      const name = el("span", "name", r.reason ? String(r.reason) : "(no reason given)");
      name.title = name.textContent;
      row.appendChild(name);
      const track = el("div", "track");
      const fill = el("div", "fill");
      fill.style.width = ((100 * r.count) / max).toFixed(1) + "%";
      track.appendChild(fill);
      row.appendChild(track);
      row.appendChild(el("span", "n", fmt.int(r.count)));
      bars.appendChild(row);
    }
    box.appendChild(bars);
    const byAsset = (d.by_asset || []).slice().sort((a, b) => b.count - a.count);
    if (byAsset.length) {
      box.appendChild(el("div", "sublist-h", "Most dismissed"));
      const ul = el("ul", "plain");
      for (const a of byAsset.slice(0, 10)) {
        ul.appendChild(listItem(String(a.title || a.asset_id), `${a.reason ? a.reason : "(no reason)"} × ${fmt.int(a.count)}`));
      }
      box.appendChild(ul);
    }
  }

  // "Is it working?": the two win rates, the difference and its interval, and
  // how many more closed leads a conclusive answer needs (reports.experiment).
  function renderExperiment(x) {
    const box = $("experiment");
    box.textContent = "";
    if (x === null) {
      box.appendChild(el("div", "na", "Not available: this daemon does not offer reports.experiment yet."));
      return;
    }
    const arms = x.arms || {};
    const t = arms.treatment || {};
    const h = arms.holdout || {};
    if (!(Number(t.leads) + Number(h.leads) > 0)) {
      box.appendChild(el("div", "na", Number(x.holdout_fraction) > 0
        ? "No lead was first recommended in this range yet."
        : "The holdout is off: set [experiment] holdout_fraction (for example 0.1) in the daemon's config to measure it (docs/experiment.md)."));
      return;
    }
    const rate = (a) => isNull(a.win_rate) ? "—" : fmt.pct(a.win_rate);
    const leads = (n) => `${fmt.int(n)} lead${Number(n) === 1 ? "" : "s"}`;
    const ci = (c, f) => Array.isArray(c) ? `${f(c[0])} to ${f(c[1])}` : "—";
    const pts = (v) => isNull(v) ? "—" : (v >= 0 ? "+" : "") + (100 * v).toFixed(1);
    const cards = el("div", "cards exp");
    const card = (id, label, value, note) => {
      const c = el("div", "card");
      c.id = id;
      c.appendChild(el("div", "k", label));
      c.appendChild(el("div", "v", value));
      c.appendChild(el("div", "n", note));
      cards.appendChild(c);
    };
    card("exp-treatment", "With Playbook's recommendations", rate(t),
      `won ${fmt.int(t.won)} of ${fmt.int(t.closed)} closed · 95% CI ${ci(t.win_rate_ci, fmt.pct)} · ${leads(t.leads)}`);
    card("exp-holdout", "Holdout (baseline ranking)", rate(h),
      `won ${fmt.int(h.won)} of ${fmt.int(h.closed)} closed · 95% CI ${ci(h.win_rate_ci, fmt.pct)} · ${leads(h.leads)}`);
    const d = x.difference || {};
    card("exp-difference", "Difference", isNull(d.win_rate) ? "—" : pts(d.win_rate) + " points",
      `95% CI ${ci(d.ci, pts)} points` + (isNull(d.p_value) ? "" : ` · p = ${Number(d.p_value).toPrecision(2)}`));
    card("exp-needed", x.conclusive ? "Conclusive" : "Closed leads still needed",
      x.conclusive ? "yes" : (isNull(x.closed_leads_needed) ? "—" : fmt.int(x.closed_leads_needed)),
      x.conclusive ? "the interval excludes 0" : "for a conclusive answer at the observed rates");
    box.appendChild(cards);
    const note = el("p", "exp-note", String(x.note || ""));
    note.id = "exp-note";
    box.appendChild(note);
  }

  // ---- CSV of what is on screen ---------------------------------------------------

  function csvCell(v) {
    if (isNull(v)) return "";
    let s = String(v);
    // Spreadsheets run cells starting with = + - @ as formulas: not for text.
    if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = "'" + s;
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  // A content item's variants: "en-x (en), zh-x (zh)".
  function variantsText(r) {
    if (!Array.isArray(r.variants)) return "";
    return r.variants.map((v) => String(v.asset_id) + (v.language ? " (" + v.language + ")" : "")).join(", ");
  }

  function downloadCsv() {
    if (!state.filters) return;
    const items = "content_items" in state.totals;
    const cols = items ? CSV_COLS.concat(["variants"]) : CSV_COLS;
    const lines = [cols.join(",")];
    for (const r of visibleRows()) {
      lines.push(cols.map((k) => csvCell(k === "last_used" && !isNull(r[k]) ? new Date(r[k]).toISOString()
        : k === "variants" ? variantsText(r) : r[k])).join(","));
    }
    // A BOM so spreadsheet programs read the UTF-8 (Chinese titles) right.
    const blob = new Blob(["\ufeff" + lines.join("\r\n") + "\r\n"], { type: "text/csv;charset=utf-8" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `playbook-assets-${isoDay(state.filters.from)}-to-${isoDay(state.filters.to)}.csv`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  // ---- Start -----------------------------------------------------------------------

  function start() {
    initFilters();
    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const token = $("token-input").value.trim();
      $("token-input").value = "";
      sessionStorage.setItem(TOKEN_KEY, token);
      connect(token);
    });
    $("filters").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
    for (const id of ["f-from", "f-to", "f-stage", "f-type"]) $(id).addEventListener("change", () => refresh());
    $("f-rep").addEventListener("change", () => refresh());
    $("f-content").addEventListener("change", () => refresh());
    $("f-q").addEventListener("input", () => { renderTable(); renderScatter(); });
    $("csv").addEventListener("click", downloadCsv);
    $("signout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(""); });
    $("reconnect").addEventListener("click", () => connect(sessionStorage.getItem(TOKEN_KEY) || ""));

    // A link may carry the token in the fragment (/#token=...), which never
    // leaves the browser; it is moved to sessionStorage and wiped from the URL.
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token !== null) connect(token);
    else showLogin("");
  }

  start();
})();
