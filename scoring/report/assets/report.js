// Saiten report page (1/2): data, language, filters and the gallery / table / summary views.
// Every visible string comes from the i18n table (#i18n) through t(); every text from the data
// is set with textContent, never parsed as HTML. cull.js adds ratings, keys and the big view,
// then calls S.start().
"use strict";
(() => {
const $ = (id) => document.getElementById(id);
const D = JSON.parse($("data").textContent);
const T = JSON.parse($("i18n").textContent);
const E = D.entries;
const S = (window.saitenReport = { D, E, T, list: [], cur: 0, hooks: [] });

// ---- language -------------------------------------------------------------------------------
function pickLang() {
  let saved = null;
  try { saved = localStorage.getItem("saiten-lang"); } catch (_) { /* storage blocked */ }
  if (saved && T[saved]) return saved;
  for (const l of navigator.languages || [navigator.language || "en"]) {
    const base = String(l).toLowerCase().split("-")[0];
    if (T[base]) return base;
  }
  return "en";
}
S.lang = pickLang();
function t(key, params) {
  const s = (T[S.lang] && T[S.lang][key]) ?? T.en[key] ?? key;
  return params ? s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m)) : s;
}
const nf = {};
function num(v, digits = 0, least = digits) { // least < digits: no trailing zeros
  if (v === null || v === undefined || Number.isNaN(v)) return "";
  const k = `${S.lang}${digits}.${least}`;
  nf[k] ??= new Intl.NumberFormat(S.lang, { minimumFractionDigits: least,
                                             maximumFractionDigits: digits });
  return nf[k].format(v);
}
function runText(r) { // what the run did, from its numbers
  if (!r || typeof r.images !== "number") return "";
  const parts = [t("run.scored", { n: num(r.scored) }), t("run.reused", { n: num(r.reused) })];
  for (const [k, key] of [["from_png", "run.fromPng"], ["unreadable", "run.unreadable"],
                          ["frees", "run.frees"], ["waited", "run.waited"]])
    if (r[k] > 0) parts.push(t(key, { n: num(r[k]) }));
  return `${t("run.images", { n: num(r.images) })} ${parts.join(t("list.sep"))}${t("sentence.end")}`;
}
function ruleText(r) { // a filter rule in the reader's words (its own text when it has no terms)
  if (!r || typeof r.axis !== "string") return r ? r.rule || "" : "";
  const axis = axisName(r.axis);
  let text = typeof r.top_k === "number" ? t("rule.top", { k: num(r.top_k), axis })
    : t("rule.threshold", { axis, threshold: num(r.threshold, 2, 0) });
  if (r.min_confidence > 0) text += ", " + t("rule.confidence", { min: num(r.min_confidence, 2, 0) });
  if (r.character) text += ", " + t("rule.character");
  if (r.publish) text += ", " + t("rule.publish");
  return text;
}
const axisName = (a) => (T.en["axis." + a] ? t("axis." + a) : a);
const kindName = (k) => (T.en["kind." + k] ? t("kind." + k) : k);
const statusName = (s) => t("st." + s);
function el(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined && text !== null) n.textContent = text;
  return n;
}
Object.assign(S, { $, t, num, el, axisName, kindName, statusName, ruleText });

// ---- the static labels ----------------------------------------------------------------------
function label() {
  document.documentElement.lang = S.lang;
  for (const n of document.querySelectorAll("[data-i18n]")) n.textContent = t(n.dataset.i18n);
  for (const n of document.querySelectorAll("[data-i18n-ph]")) n.placeholder = t(n.dataset.i18nPh);
  for (const n of document.querySelectorAll("[data-i18n-title]")) n.title = t(n.dataset.i18nTitle);
  $("lang").value = S.lang;
  $("lang").setAttribute("aria-label", t("lang.label"));
  $("title").textContent = D.title;
  const counts = { passed: 0, "needs work": 0, rejected: 0, unscored: 0 };
  for (const e of E) counts[e.st]++;
  $("intro").textContent = t("intro", { n: num(E.length), passed: num(counts.passed),
    rejected: num(counts.rejected), unscored: num(counts.unscored),
    rules: D.rules.map(ruleText).join("; ") || "–" })
    + (counts["needs work"] ? " " + t("intro.needsWork", { n: num(counts["needs work"]) }) : "");
  $("note").textContent = [runText(D.run), D.note].filter(Boolean).join(" ");
  $("written").textContent = D.written ? t("written", { date: new Intl.DateTimeFormat(S.lang,
    { dateStyle: "medium", timeStyle: "short" }).format(new Date(D.written)) }) : "";
  const axis = $("axis"), chosen = axis.value || "overall";
  axis.replaceChildren(...D.axes.map((a) => {
    const o = el("option", "", axisName(a));
    o.value = a;
    return o;
  }));
  axis.value = chosen;
}

// ---- filters --------------------------------------------------------------------------------
const val = (e, a) => e.a[a] ?? null;
function shown() {
  const a = $("axis").value, lo = parseFloat($("lo").value), hi = parseFloat($("hi").value);
  const q = $("q").value.trim().toLowerCase(), st = $("status").value, mine = $("mine").value;
  return E.filter((e) => {
    const v = val(e, a);
    if (!Number.isNaN(lo) && (v === null || v < lo)) return false;
    if (!Number.isNaN(hi) && (v === null || v > hi)) return false;
    if (st && e.st !== st) return false;
    if (q && !((e.p || "").toLowerCase().includes(q) || e.n.toLowerCase().includes(q))) return false;
    return !mine || !S.mineFilter || S.mineFilter(e, mine);
  });
}
function order(list) {
  const a = $("axis").value;
  if ($("mine").value === "next" && S.suggestion)
    return list.map((e) => [S.suggestion(e), e]).sort((x, y) => y[0] - x[0]).map((p) => p[1]);
  return [...list].sort((x, y) => (val(y, a) ?? -1) - (val(x, a) ?? -1) || x.i - y.i);
}

// ---- gallery --------------------------------------------------------------------------------
S.tiles = new Map(); // entry index → its tile, made once per language
function tile(e) {
  const n = el("div", "tile " + e.st.replace(" ", "-"));
  n.title = e.p || "";
  n.dataset.i = e.i;
  const im = el("img");
  im.loading = "lazy";
  im.alt = "";
  if (e.t) im.src = e.t;
  n.append(im, el("span", "b"), el("span", "my"), el("div", "nm", e.n));
  if (e.st !== "passed") n.append(el("div", "mark", statusName(e.st)));
  if (e.seed !== null && e.seed !== undefined) n.append(el("div", "", t("tile.seed", { seed: e.seed })));
  if (S.mark) S.mark(e, n);
  return n;
}
function gallery() {
  const a = $("axis").value, f = document.createDocumentFragment();
  for (const e of S.list) {
    let n = S.tiles.get(e.i);
    if (!n) S.tiles.set(e.i, (n = tile(e)));
    if (n.dataset.axis !== a) {
      const v = val(e, a);
      n.dataset.axis = a;
      n.children[1].textContent = v === null ? "–" : num(v);
    }
    f.appendChild(n);
  }
  $("gallery").replaceChildren(f);
}

// ---- histogram ------------------------------------------------------------------------------
function hist(list) {
  const out = D.axes.map((a) => {
    const b = new Array(10).fill(0);
    let u = 0;
    for (const e of list) {
      const v = val(e, a);
      if (v === null) u++;
      else b[Math.min(9, Math.floor(v / 10))]++;
    }
    const m = Math.max(1, u, ...b), box = el("div", "hist"), bars = el("div", "bars");
    b.forEach((n, k) => {
      const bar = el("div");
      bar.title = t("hist.bar", { lo: k * 10, hi: k * 10 + 10, n: num(n) });
      bar.style.height = `${(60 * n) / m}px`;
      bars.append(bar);
    });
    const ub = el("div", "u");
    ub.title = t("hist.unscored", { n: num(u) });
    ub.style.height = `${(60 * u) / m}px`;
    bars.append(ub);
    box.append(el("b", "", axisName(a)), bars, el("span", "", "0 … 100 · "),
               el("span", "", t("hist.unscored", { n: num(u) })));
    return box;
  });
  $("hist").replaceChildren(...out);
}

// ---- summaries ------------------------------------------------------------------------------
function table(head, body) {
  const tb = el("table", "sum"), h = tb.createTHead().insertRow();
  for (const x of head) h.appendChild(el("th", "", x));
  const b = tb.createTBody();
  for (const r of body) {
    const row = b.insertRow();
    r.forEach((x, k) => { const c = row.insertCell(); c.textContent = x; if (k) c.className = "n"; });
  }
  return tb;
}
function summary(id, list, key, name, none) {
  const g = new Map();
  for (const e of list) {
    const k = e[key];
    if (k === null || k === undefined || k === "") continue;
    if (!g.has(k)) g.set(k, []);
    g.get(k).push(e);
  }
  const rows = [...g].map(([k, es]) => {
    const sc = es.filter((e) => e.s !== null);
    const best = sc.reduce((b, e) => (b && b.s >= e.s ? b : e), null);
    return { k, n: es.length, m: sc.length ? sc.reduce((s, e) => s + e.s, 0) / sc.length : null,
             best, pass: es.filter((e) => e.st === "passed").length };
  }).sort((x, y) => (y.m ?? -1) - (x.m ?? -1)).slice(0, 300);
  const box = $(id);
  if (!rows.length) { box.replaceChildren(el("p", "", t(none))); return; }
  box.replaceChildren(table([t(name), t("sum.images"), t("sum.mean"), t("sum.best"), t("sum.passed")],
    rows.map((x) => [String(x.k), num(x.n), num(x.m, 1),
                     x.best ? `${num(x.best.s, 1)} ${x.best.n}` : "", num(x.pass)])));
}

// ---- the table (every card behind each verdict) ---------------------------------------------
function cardItem(c) {
  const li = el("li");
  li.append(el("b", "", c.source), el("span", "", c.repeat ? ` (${t("card.repeat", { n: c.repeat })})` : ""),
            el("span", "small", ` ${kindName(c.kind)}: `));
  if (c.abstained !== null && c.abstained !== undefined) {
    li.append(el("span", "", t("card.abstained", { why: c.abstained })));
    return li;
  }
  const parts = Object.entries(c.axes || {}).map(([a, v]) => `${axisName(a)} ${num(v)}`);
  if (c.penalty) parts.push(t("card.penalty", { n: num(c.penalty) }));
  li.append(el("span", "", parts.join(", ") || t("card.noAxes")));
  if (c.reasons && c.reasons.length) {
    const ul = el("ul");
    for (const r of c.reasons) ul.append(el("li", "", r));
    li.append(ul);
  }
  if (c.comment) li.append(el("div", "", `“${c.comment}”`));
  return li;
}
function detail(e, box) {
  if (e.un) box.append(el("span", "unscored", t("unscored", { why: e.un })));
  else if (e.cm) box.append(el("span", "", e.cm));
  for (const r of e.re || []) box.append(el("div", "reason", "⚠ " + r));
  if (e.u && e.u.length) box.append(el("div", "small", t("used", { list: e.u.join(", ") })));
  for (const [src, why] of Object.entries(e.dr || {}))
    box.append(el("div", "small", t("dropped", { source: src, why })));
  if (e.o) box.append(el("div", "small", t(e.o === "png" ? "reused.png" : "reused.cache")));
  if (e.k && e.k.length) {
    const d = el("details"), s = el("summary", "", t("cards", { n: num(e.k.length) }));
    d.append(s);
    d.addEventListener("toggle", () => {
      if (d.open && d.children.length < 2) {
        const ul = el("ul");
        for (const c of e.k) ul.append(cardItem(c));
        d.append(ul);
      }
    });
    box.append(d);
  }
  return box;
}
S.detail = detail;
S.cardItem = cardItem;
S.rows = new Map();
function cell(row, text, cls, sortValue) {
  const c = row.insertCell();
  c.textContent = text;
  if (cls) c.className = cls;
  if (sortValue !== undefined) c.dataset.v = sortValue;
  return c;
}
function buildTable() {
  const meta = D.meta || [];
  const head = ["#", t("col.image"), t("col.name"), t("col.score"), ...D.axes.map(axisName),
                t("col.confidence"), ...meta.map((k) => t("col." + k)), t("col.detail"),
                t("col.mine")];
  const hr = $("rows").tHead.rows[0];
  hr.replaceChildren(...head.map((h) => el("th", "", h)));
  hr.querySelectorAll("th").forEach((th, i) => { th.onclick = () => sortBy(th, i); });
  const f = document.createDocumentFragment();
  S.rows.clear();
  for (const e of E) {
    const r = document.createElement("tr");
    cell(r, String(e.i), "n");
    const ic = r.insertCell();
    if (e.t) { const im = el("img"); im.alt = ""; im.loading = "lazy"; im.src = e.t; ic.append(im); }
    cell(r, e.n);
    cell(r, num(e.s, 1), "n", e.s ?? "");
    for (const a of D.axes) cell(r, num(val(e, a), 1), "n", val(e, a) ?? "");
    cell(r, num(e.c, 2), "n", e.c ?? "");
    for (const k of meta) cell(r, e.m && e.m[k] !== undefined ? String(e.m[k]) : "", "small");
    detail(e, r.insertCell());
    cell(r, "", "n mine");
    S.rows.set(e.i, r);
    f.appendChild(r);
  }
  $("rows").tBodies[0].replaceChildren(f);
}
function sortBy(th, i) {
  const tb = $("rows").tBodies[0], rows = [...tb.rows], up = th.dataset.up === "0";
  th.dataset.up = up ? "1" : "0";
  const key = (r) => {
    const c = r.cells[i], s = c.dataset.v ?? c.textContent, n = parseFloat(s);
    return Number.isNaN(n) ? (s === "" ? -Infinity : s) : n;
  };
  rows.sort((a, b) => { const x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * (up ? 1 : -1); });
  tb.append(...rows);
}

// ---- views ----------------------------------------------------------------------------------
S.viewName = "gallery";
function view(v) {
  S.viewName = v;
  for (const b of document.querySelectorAll(".views button")) b.classList.toggle("on", b.dataset.v === v);
  for (const id of ["gallery", "table", "summaries", "cull"]) $(id).hidden = id !== v;
  $("hist").hidden = v === "cull";
  for (const h of S.hooks) h("view", v);
}
function apply() {
  const keep = S.list[S.cur];
  const list = shown(), ids = new Set(list.map((e) => e.i));
  S.list = order(list);
  const at = keep ? S.list.indexOf(keep) : -1;
  S.cur = at >= 0 ? at : 0;
  for (const [i, r] of S.rows) r.hidden = !ids.has(i);
  $("count").textContent = t("count", { n: num(list.length), total: num(E.length) });
  hist(list);
  gallery();
  summary("byprompt", list, "p", "sum.prompt", "sum.noPrompt");
  summary("byseed", list, "seed", "sum.seed", "sum.noSeed");
  for (const h of S.hooks) h("apply");
}
function relabel() {
  label();
  S.tiles.clear();
  buildTable();
  apply();
  view(S.viewName);
}
Object.assign(S, { apply, view, shown, relabel, val });

S.start = () => {
  document.querySelectorAll(".views button").forEach((b) => { b.onclick = () => view(b.dataset.v); });
  for (const id of ["axis", "lo", "hi", "q", "status", "mine"]) $(id).addEventListener("input", apply);
  $("lang").addEventListener("change", () => {
    S.lang = $("lang").value;
    try { localStorage.setItem("saiten-lang", S.lang); } catch (_) { /* storage blocked */ }
    relabel();
  });
  label();
  buildTable();
  view("gallery");
  apply();
  S.ready = true;
};
})();
