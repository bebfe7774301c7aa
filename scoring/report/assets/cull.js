// Saiten report page (2/2): culling. Your ratings (1–5, reject, favourite) per image, kept in
// this browser per report (localStorage "saiten-ratings:<report id>", the image keyed by its
// content hash), the keys, the one-image view, what to rate next, and ratings.csv (Export, or
// Save into ComfyUI's user folder when the page was opened from ComfyUI).
"use strict";
(() => {
const S = window.saitenReport;
const { $, t, num, el, D, E } = S;
const STORE = "saiten-ratings:" + D.id;
const DISAGREE = 30; // points of 100 between your rating and Saiten's score
const NEAR = 25; // within this of the threshold an image is "close to it"
const [LOW, HIGH] = D.csv.scale;
const R = new Map(); // image key → {r: 1–5 | null, f: "" | "reject" | "favourite"}
const keyOf = (e) => e.h || "n:" + e.n;
const mine = (e) => R.get(keyOf(e));
const rated = (e) => R.has(keyOf(e));

// ---- storage --------------------------------------------------------------------------------
function load() {
  let d = null;
  try { d = JSON.parse(localStorage.getItem(STORE) || "null"); } catch (_) { return; }
  if (!d || d.v !== 1 || typeof d.r !== "object" || d.r === null) return;
  for (const [k, v] of Object.entries(d.r)) {
    if (!Array.isArray(v)) continue;
    const [r, f] = v;
    const okR = r === null || (Number.isInteger(r) && r >= LOW && r <= HIGH);
    if (okR && ["", "reject", "favourite"].includes(f) && (r !== null || f)) R.set(k, { r, f });
  }
}
function store() {
  const r = {};
  for (const [k, v] of R) r[k] = [v.r, v.f];
  try { localStorage.setItem(STORE, JSON.stringify({ v: 1, r })); } catch (_) { say(t("msg.storage"), true); }
}
function say(text, bad = false) {
  $("msg").textContent = text;
  $("msg").classList.toggle("bad", bad);
}

// ---- what a rating means --------------------------------------------------------------------
function value(e) { // the rating as exported: the number, else what a mark counts as
  const m = mine(e);
  if (!m) return null;
  return m.r ?? (m.f === "reject" ? D.csv.reject : D.csv.favourite);
}
function mine100(e) {
  const v = value(e);
  return v === null ? null : ((v - LOW) / (HIGH - LOW)) * 100;
}
const threshold = (e) => (e.d && typeof e.d.threshold === "number" ? e.d.threshold : D.threshold);
function spread(e) { // how far apart the sources' own overall scores are
  const vs = (e.k || []).filter((c) => (c.abstained === null || c.abstained === undefined)
    && c.kind !== "check" && c.axes && typeof c.axes.overall === "number").map((c) => c.axes.overall);
  return vs.length > 1 ? Math.max(...vs) - Math.min(...vs) : 0;
}
function near(e) { return e.s === null ? 0 : Math.max(0, 1 - Math.abs(e.s - threshold(e)) / NEAR); }
S.suggestion = (e) => (rated(e) || e.s === null ? -1 : 0.5 * near(e) + 0.5 * Math.min(1, spread(e) / 50));
S.mineFilter = (e, m) => {
  if (m === "unrated") return !rated(e);
  if (m === "rated") return rated(e);
  if (m === "next") return S.suggestion(e) > 0;
  if (m === "disagree") { const v = mine100(e); return v !== null && e.s !== null && Math.abs(v - e.s) >= DISAGREE; }
  return true;
};
function markText(e) {
  const m = mine(e);
  if (!m) return "";
  return (m.r !== null ? "★" + m.r : "") + (m.f === "reject" ? "✕" : m.f === "favourite" ? "♥" : "");
}
S.mark = (e, tile) => { tile.querySelector(".my").textContent = markText(e); };
function refresh(e) {
  const tile = S.tiles.get(e.i);
  if (tile) S.mark(e, tile);
  const row = S.rows.get(e.i);
  if (row) row.querySelector(".mine").textContent = markText(e);
  if (S.viewName === "cull") big();
  progress();
}
function progress() {
  $("progress").textContent = t("progress", { n: num(R.size ? E.filter(rated).length : 0), total: num(E.length) });
}

// ---- changing a rating ----------------------------------------------------------------------
function set(e, change) {
  const k = keyOf(e), m = { ...(R.get(k) || { r: null, f: "" }), ...change };
  if (m.r === null && !m.f) R.delete(k); else R.set(k, m);
  store();
  refresh(e);
}
function rate(key) {
  const e = S.list[S.cur];
  if (!e) return;
  if (key === "0") set(e, { r: null, f: "" });
  else if (key === "x") set(e, { f: mine(e)?.f === "reject" ? "" : "reject" });
  else if (key === "f") set(e, { f: mine(e)?.f === "favourite" ? "" : "favourite" });
  else set(e, { r: Number(key) });
  if (key !== "0" && $("advance").checked) move(1);
}

// ---- moving ---------------------------------------------------------------------------------
function columns() {
  const tiles = $("gallery").children;
  if (tiles.length < 2) return 1;
  const top = tiles[0].offsetTop;
  let n = 1;
  while (n < tiles.length && tiles[n].offsetTop === top) n++;
  return n;
}
function current(scroll = true) {
  for (const n of $("gallery").querySelectorAll(".tile.cur")) n.classList.remove("cur");
  const e = S.list[S.cur];
  const tile = e && S.tiles.get(e.i);
  if (tile) {
    tile.classList.add("cur");
    if (scroll && S.viewName === "gallery") tile.scrollIntoView({ block: "nearest" });
  }
  if (S.viewName === "cull") big();
}
function move(d) {
  if (!S.list.length) return;
  S.cur = Math.max(0, Math.min(S.list.length - 1, S.cur + d));
  current();
}
S.goto = (i) => { const at = S.list.findIndex((e) => e.i === i); if (at >= 0) { S.cur = at; current(); } };

// ---- the one-image view ---------------------------------------------------------------------
function why(e) { // the filter's decision in the reader's words
  const d = e.d || {};
  if (e.st === "unscored") return t("unscored", { why: e.un || d.why || "" }) + (d.passed ? " " + t("why.unscoredPassed") : "");
  if (typeof d.axis !== "string") return `${S.statusName(e.st)}: ${d.rule || ""}${d.why ? ` (${d.why})` : ""}`;
  if (d.gate) return t("why.gate", { status: S.statusName(e.st), why: d.why || "" });
  const axis = S.axisName(d.axis), k = num(d.top_k);
  const v = d.axis === "confidence" ? e.c : S.val(e, d.axis);
  const parts = { axis, value: num(v, d.axis === "confidence" ? 2 : 1), threshold: num(d.threshold, 2, 0) };
  if (e.st === "passed") {
    if (typeof d.top_k === "number") return t("why.top", { k, axis });
    return v !== null && v < d.threshold ? t("why.keptBest") : t("why.passed", parts);
  }
  if (d.min_confidence > 0 && typeof d.confidence === "number" && d.confidence < d.min_confidence)
    return t("why.lowConfidence", { c: num(d.confidence, 2), min: num(d.min_confidence, 2, 0) });
  return typeof d.top_k === "number" ? t("why.notTop", { k, axis }) : t("why.rejected", parts);
}
function big() {
  const box = $("cull"), e = S.list[S.cur];
  if (!e) { box.replaceChildren(el("p", "", t("cull.empty"))); return; }
  const pic = el("div", "big"), im = el("img");
  im.alt = "";
  if (e.f || e.t) im.src = e.f || e.t;
  if (e.f && e.t) im.onerror = () => { im.onerror = null; im.src = e.t; };
  pic.append(im);
  const info = el("div", "info");
  const m = mine(e);
  let mineText = t("mine.none");
  if (m) {
    const parts = [];
    if (m.r !== null) parts.push(t("mine.rating", { n: num(m.r) }));
    if (m.f) parts.push(t(m.f === "reject" ? "mine.reject" : "mine.favourite"));
    mineText = parts.join(" · ");
  }
  info.append(el("h2", "", e.n), el("div", "score", e.s === null ? "–" : num(e.s, 1)),
              el("div", "why " + e.st, why(e)), el("div", "mine", mineText));
  const mv = mine100(e);
  if (mv !== null && e.s !== null) info.append(el("div", "", t("mine.vs", { score: num(e.s), mine: num(mv) })));
  if (!rated(e) && e.s !== null) {
    const sp = spread(e);
    if (sp >= 15) info.append(el("div", "suggest", t("suggest.spread", { n: num(sp) })));
    if (near(e) > 0) info.append(el("div", "suggest", t("suggest.near", { score: num(e.s, 1), threshold: num(threshold(e), 2, 0) })));
  }
  const axes = el("div", "axes");
  for (const a of D.axes) {
    const v = S.val(e, a);
    if (v !== null) axes.append(el("span", "", S.axisName(a)), el("span", "", num(v, 1)));
  }
  info.append(axes, el("div", "small", t("conf", { n: num(e.c, 2) })));
  const detail = S.detail(e, el("div"));
  const cards = detail.querySelector("details");
  if (cards) { cards.open = true; cards.dispatchEvent(new Event("toggle")); }
  info.append(detail);
  const prev = el("button", "", "← " + t("cull.prev")), next = el("button", "", t("cull.next") + " →");
  prev.onclick = () => move(-1);
  next.onclick = () => move(1);
  info.append(el("p", "", ""), prev, el("span", "", ` ${t("cull.position", { i: num(S.cur + 1), n: num(S.list.length) })} `), next);
  box.replaceChildren(pic, info);
}

// ---- ratings.csv ----------------------------------------------------------------------------
function ratings() {
  return E.filter(rated).map((e) => ({ file: e.n, rating: value(e), sha256: e.h || "", flag: mine(e).f }));
}
const cellText = (s) => (/[",\n\r]|^\s|\s$/.test(String(s)) ? `"${String(s).replace(/"/g, '""')}"` : String(s));
function reportFolder() { // for `learn`: where this page lies, when opened from disk
  if (location.protocol !== "file:") return "";
  const p = decodeURIComponent(location.pathname).replace(/\/[^/]*$/, "");
  return /^\/[A-Za-z]:/.test(p) ? p.slice(1) : p;
}
S.csv = () => {
  const folder = reportFolder().replace(/[\r\n]/g, " ");
  return [D.csv.header.join(","), ...(folder ? [D.csv.report + folder] : []), ...ratings().map((r) =>
    [r.file, r.rating, r.sha256, r.flag].map(cellText).join(","))].join("\n") + "\n";
};
function exportCsv() {
  const n = ratings().length;
  if (!n) { say(t("msg.none"), true); return; }
  const a = el("a");
  a.href = URL.createObjectURL(new Blob([S.csv()], { type: "text/csv" }));
  a.download = "ratings.csv";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  say(`${t("msg.exported", { n: num(n) })} ${t("msg.learn")}`);
}
const served = location.protocol.startsWith("http")
  && location.pathname.startsWith(D.save.report + "/") && location.pathname.endsWith("/report.html");
async function save() {
  const rows = ratings();
  if (!rows.length) { say(t("msg.none"), true); return; }
  const folder = decodeURIComponent(location.pathname.slice(D.save.report.length + 1, -"/report.html".length));
  let res, body;
  try {
    res = await fetch(D.save.ratings, { method: "POST", headers: { "Content-Type": "application/json" },
                                        body: JSON.stringify({ report: folder, ratings: rows }) });
    body = await res.json().catch(() => ({}));
  } catch (_) {
    say(t("msg.unreachable"), true);
    return;
  }
  if (res.ok) say(`${t("msg.saved", { n: num(body.count), path: String(body.saved) })} ${t("msg.learn")}`);
  else if (res.status === 413) say(t("msg.tooLarge"), true);
  else say(t("msg.saveFailed", { why: `${res.status} ${body.error || ""}`.trim() }), true);
}

// ---- keys -----------------------------------------------------------------------------------
function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const tag = ev.target && ev.target.tagName;
  if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") {
    if (ev.key === "Escape") ev.target.blur();
    return;
  }
  const k = ev.key;
  if ($("help").open) { if (k === "Escape" || k === "?") { $("help").close(); ev.preventDefault(); } return; }
  const step = S.viewName === "gallery" ? columns() : 1;
  const act = { ArrowLeft: () => move(-1), ArrowRight: () => move(1), ArrowUp: () => move(-step),
    ArrowDown: () => move(step), Home: () => move(-S.list.length), End: () => move(S.list.length),
    Enter: () => S.view("cull"), Escape: () => S.view("gallery"), "?": () => $("help").showModal() }[k];
  if (act) act();
  else if (/^[0-5xf]$/.test(k)) rate(k);
  else return;
  ev.preventDefault();
}

S.hooks.push((what, v) => {
  if (what === "apply") { current(false); progress(); }
  if (what === "view" && v === "cull") big();
  if (what === "view" && v === "gallery") current();
});
$("gallery").addEventListener("click", (ev) => {
  const tile = ev.target.closest(".tile");
  if (tile) S.goto(Number(tile.dataset.i));
});
$("gallery").addEventListener("dblclick", (ev) => { if (ev.target.closest(".tile")) S.view("cull"); });
document.addEventListener("keydown", onKey);
$("export").onclick = exportCsv;
$("save").hidden = !served;
$("save").onclick = save;
$("keys").onclick = () => $("help").showModal();
$("help").querySelector("button").onclick = () => $("help").close();
try { $("advance").checked = localStorage.getItem("saiten-advance") !== "0"; } catch (_) { $("advance").checked = true; }
$("advance").addEventListener("change", () => {
  try { localStorage.setItem("saiten-advance", $("advance").checked ? "1" : "0"); } catch (_) { /* blocked */ }
});
Object.assign(S, { ratings: R, set, rate, move, save, exportCsv });
load();
S.start();
progress();
})();
