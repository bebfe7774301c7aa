"""The HTML report: one self-contained page (no network) people look at in the morning.

Views: a gallery (thumbnails best → worst, unscored and rejected marked), the sortable table
(every card behind each verdict), and per-prompt / per-seed summaries (mean, best, passed);
a histogram per axis; filters by axis, score range, status and prompt text apply to all of
them. Up to `INLINE_THUMBS` images the thumbnails are inlined as data URIs; past that the
page loads them lazily from the report's `thumbs/` folder (see `thumbs`), so
the page stays fast at thousands of images.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.atomic import write_text
from ..core.cards import CHECK, NEEDS_WORK, STATUSES
from .entries import Entry, axes_of, meta_fields, meta_text, num

INLINE_THUMBS = 300

_STYLE = """body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 6px;vertical-align:top}
th{background:#eee;cursor:pointer;position:sticky;top:0}td.n{text-align:right}
img{max-width:192px;max-height:192px}.unscored{color:#a00}.small{font-size:85%;color:#444}
details{font-size:85%}.reason{color:#a50}ul{margin:0;padding-left:1.2em}
#controls{position:sticky;top:0;background:#fafafa;padding:.4em 0;z-index:2;display:flex;
flex-wrap:wrap;gap:.6em;align-items:center}#controls input[type=number]{width:4.5em}
.views button.on{font-weight:bold;background:#ddd}
#hist{display:flex;flex-wrap:wrap;gap:1.2em;margin:.6em 0}.hist{font-size:80%}
.bars{display:flex;align-items:flex-end;height:60px;gap:1px;border-bottom:1px solid #888}
.bars div{width:14px;background:#58a}.bars div.u{background:#c66}
#gallery{display:flex;flex-wrap:wrap;gap:8px}
.tile{width:200px;background:#fff;border:1px solid #ccc;padding:4px;font-size:80%;
position:relative}.tile img{display:block;margin:auto}.tile .b{position:absolute;top:6px;
left:6px;background:#000a;color:#fff;padding:1px 5px;border-radius:3px;font-size:120%}
.tile.rejected{opacity:.55}.tile.needs-work{border-color:#e90}
.tile.unscored{border-color:#c00;background:#fee}
.tile .nm{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.mark{color:#a00;font-weight:bold}.sum td{max-width:40em}"""

_SORT = """document.querySelectorAll('#rows th').forEach((th,i)=>th.onclick=()=>{
const tb=th.closest('table').tBodies[0],rows=[...tb.rows],up=th.dataset.up==='0';
th.dataset.up=up?'1':'0';const key=r=>{const t=r.cells[i].dataset.v??r.cells[i].innerText;
const n=parseFloat(t);return isNaN(n)?(t===''?-Infinity:t):n};
rows.sort((a,b)=>{const x=key(a),y=key(b);return (x>y?1:x<y?-1:0)*(up?1:-1)});
rows.forEach(r=>tb.appendChild(r))});"""

_APP = r"""(()=>{
const D=JSON.parse(document.getElementById('data').textContent),E=D.entries;
const $=id=>document.getElementById(id);
const rows={};for(const r of $('rows').tBodies[0].rows)rows[r.cells[0].textContent]=r;
const src=e=>e.t??(rows[e.i]?.querySelector('img')?.getAttribute('src')??'');
const val=(e,a)=>e.a[a]??null;
function shown(){const a=$('axis').value,lo=parseFloat($('lo').value),hi=parseFloat($('hi').value),
q=$('q').value.trim().toLowerCase(),st=$('status').value;
return E.filter(e=>{const v=val(e,a);
if(!isNaN(lo)&&(v===null||v<lo))return false;if(!isNaN(hi)&&(v===null||v>hi))return false;
if(st&&e.st!==st)return false;
if(q&&!(String(e.p??'').toLowerCase().includes(q)||String(e.n).toLowerCase().includes(q)))
return false;
return true})}
function el(tag,cls,text){const n=document.createElement(tag);if(cls)n.className=cls;
if(text!=null)n.textContent=text;return n}
function gallery(list,a){const s=[...list].sort((x,y)=>(val(y,a)??-1)-(val(x,a)??-1)),
f=document.createDocumentFragment();for(const e of s){const v=val(e,a),
t=el('div','tile '+e.st.replace(' ','-'));
t.title=e.p||'';const im=el('img');im.loading='lazy';im.alt='';im.src=src(e);t.append(im,
el('span','b',v===null?'–':v.toFixed(0)),el('div','nm',e.n));
if(e.st!=='passed')t.append(el('div','mark',e.st));
if(e.seed!=null)t.append(el('div','',`seed ${e.seed}`));f.appendChild(t)}
$('gallery').replaceChildren(f)}
function hist(list){const f=document.createDocumentFragment();for(const a of D.axes){
const b=new Array(10).fill(0);let u=0;for(const e of list){const v=val(e,a);if(v===null)u++;
else b[Math.min(9,Math.floor(v/10))]++}const m=Math.max(1,u,...b),h=el('div','hist'),
bars=el('div','bars');const bar=(cls,title,n)=>{const d=el('div',cls);d.title=title;
d.style.height=`${60*n/m}px`;bars.appendChild(d)};b.forEach((n,k)=>bar('',
`${k*10}–${k*10+10}: ${n}`,n));bar('u',`unscored: ${u}`,u);h.append(el('b','',a),bars,
`0 … 100 · ${u} unscored`);f.appendChild(h)}$('hist').replaceChildren(f)}
function table(head,body){const t=document.createElement('table');t.className='sum';
const h=t.createTHead().insertRow();for(const x of head){const c=document.createElement('th');
c.textContent=x;h.appendChild(c)}const b=t.createTBody();for(const r of body){
const row=b.insertRow();r.forEach((x,k)=>{const c=row.insertCell();c.textContent=x;
if(k)c.className='n'})}return t}
function summary(id,list,key,label){const g=new Map();for(const e of list){const k=e[key];
if(k==null||k==='')continue;if(!g.has(k))g.set(k,[]);g.get(k).push(e)}
const r=[...g].map(([k,es])=>{const sc=es.filter(e=>e.s!==null),
best=sc.reduce((b,e)=>b&&b.s>=e.s?b:e,null);return{k,n:es.length,m:sc.length?
sc.reduce((t,e)=>t+e.s,0)/sc.length:null,best,pass:es.filter(e=>e.st==='passed').length}})
.sort((x,y)=>(y.m??-1)-(x.m??-1)).slice(0,300);const el=$(id);el.replaceChildren();
if(!r.length){el.textContent=`No ${label} in these images' metadata.`;return}
el.appendChild(table([label,'images','mean','best','passed'],r.map(x=>[x.k,x.n,
x.m===null?'':x.m.toFixed(1),x.best?`${x.best.s.toFixed(1)} ${x.best.n}`:'',x.pass])))}
function apply(){const list=shown(),a=$('axis').value,ids=new Set(list.map(e=>e.i));
for(const i in rows)rows[i].hidden=!ids.has(+i);$('count').textContent=
`showing ${list.length} of ${E.length}`;hist(list);gallery(list,a);
summary('byprompt',list,'p','prompt');summary('byseed',list,'seed','seed')}
function view(v){for(const b of document.querySelectorAll('.views button'))
b.classList.toggle('on',b.dataset.v===v);for(const id of ['gallery','table','summaries'])
$(id).hidden=id!==v}
document.querySelectorAll('.views button').forEach(b=>b.onclick=()=>view(b.dataset.v));
for(const id of ['axis','lo','hi','q','status'])$(id).addEventListener('input',apply);
view('gallery');apply();window.saitenReport={apply,view,shown}})();"""


_JSON_UNSAFE = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                0x2028: "\\u2028", 0x2029: "\\u2029"}


def json_script(element_id: str, data: Any) -> str:
    """`data` in a `<script type="application/json">` element that no text can end or
    bend: inside the JSON every `<`, `>`, `&` and U+2028/2029 is written as a \\u escape
    (JSON.parse reads them back as they were), so no `</script>`, `<!--` or `<script`
    appears in it. The page reads it with JSON.parse(textContent); everything else on the
    page is escaped HTML or set through textContent."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False).translate(_JSON_UNSAFE)
    return (f'<script type="application/json" id="{html.escape(element_id)}">{text}'
            "</script>")


def _text(value: Any) -> str | float | None:
    """A value as the page's data carries it: a finite number, a string, or None."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value if value is None or math.isfinite(value) else None
    return meta_text(value)


def _card_html(c: Any) -> str:
    e = html.escape
    if not c.ok:
        body = f"abstained: {e(c.abstained)}"
    else:
        parts = [f"{e(a)} {v:.0f}" for a, v in c.axes.items()]
        if c.penalty:
            parts.append(f"penalty −{c.penalty:.0f}")
        body = ", ".join(parts) or "no axes"
        if c.reasons:
            body += "<ul>" + "".join(f"<li>{e(r)}</li>" for r in c.reasons) + "</ul>"
        if c.comment:
            body += f"<br>“{e(c.comment)}”"
    rep = f" #{c.repeat}" if c.repeat else ""
    return f"<li><b>{e(c.source)}</b>{rep} ({e(c.kind)}): {body}</li>"


def _status(entry: Entry) -> str:
    """passed / rejected / unscored: the verdict's decision (unscored when it has none)."""
    d = entry.verdict.decision
    return d.status if d else "unscored"


def _thumb_src(entry: Entry, ref: str | None, inline: bool) -> str | None:
    """A data URI (`inline`), or the thumbnail file's reference beside the page."""
    if not entry.thumb:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(entry.thumb).decode() if inline else ref


def _detail(en: Entry) -> str:
    e, v, d = html.escape, en.verdict, en.verdict.decision
    out = (f'<span class="unscored">unscored: {e(v.unscored)}</span>' if v.unscored
           else e(v.comment))
    if d is not None:
        why = f"; {d.why}" if d.why else ""
        out += f'<div class="small">{e(d.status)} ({e(d.rule + why)})</div>'
        if d.publish and d.status != NEEDS_WORK:
            out += f'<div class="small">publish: {e(d.publish)}</div>'
    for r in (r for c in v.cards if c.ok and c.kind == CHECK for r in c.reasons):
        out += f'<div class="reason">⚠ {e(r)}</div>'
    if v.used:
        out += f'<div class="small">used: {e(", ".join(v.used))}</div>'
    for src, why in v.dropped.items():
        out += f'<div class="small">dropped {e(src)}: {e(why)}</div>'
    if en.origin:
        out += f'<div class="small">reused ({e(en.origin)})</div>'
    cards = "".join(_card_html(c) for c in v.cards)
    if cards:
        out += f"<details><summary>{len(v.cards)} cards</summary><ul>{cards}</ul></details>"
    return out


def write_html(path: str | Path, entries: Sequence[Entry], title: str = "Saiten report", *,
               note: str = "", refs: Sequence[str | None] = ()) -> Path:
    """The report page at `path`: thumbnails inlined up to `INLINE_THUMBS` images, past that
    loaded from their files beside the page (`refs[i]`, see `thumbs.store`). Each entry's
    status is its verdict's decision (`report.decided` gives every entry one)."""
    e, path = html.escape, Path(path)
    axes, meta = axes_of(entries), meta_fields(entries)
    inline = len(entries) <= INLINE_THUMBS
    shown_meta = [k for k in ("seed", "checkpoint", "prompt") if k in meta]
    head = "".join(f"<th>{e(h)}</th>" for h in ["#", "image", "name", "score", *axes,
                                                   "confidence", *shown_meta,
                                                   "comment / sources"])
    rows, data = [], []
    for i, en in enumerate(entries):
        v, src = en.verdict, _thumb_src(en, refs[i] if i < len(refs) else None, inline)
        img = "" if src is None else (f'<img alt="" src="{e(src)}"'
                                      + (">" if inline else ' loading="lazy">'))
        cells = [f'<td class="n">{i}</td>', f"<td>{img}</td>", f"<td>{e(en.name)}</td>",
                 f'<td class="n">{num(v.score)}</td>',
                 *(f'<td class="n">{num(v.value(a))}</td>' for a in axes),
                 f'<td class="n">{num(v.confidence, 2)}</td>',
                 *(f'<td class="small">{e(meta_text(en.meta.get(k)))}</td>' for k in shown_meta),
                 f"<td>{_detail(en)}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
        data.append({"i": i, "n": en.name, "s": _text(v.score), "st": _status(en),
                     "a": {a: _text(v.value(a)) for a in axes
                           if _text(v.value(a)) is not None},
                     "p": _text(en.meta.get("prompt")), "seed": _text(en.meta.get("seed")),
                     "t": None if inline else src})
    present = [a for a in axes if a == "overall" or any(a in d["a"] for d in data)]
    rules = sorted({en.verdict.decision.rule for en in entries if en.verdict.decision})
    blob = json_script("data", {"rules": rules, "axes": present, "entries": data})
    n_pass = sum(d["st"] == "passed" for d in data)
    n_unscored = sum(d["st"] == "unscored" for d in data)
    options = "".join(f'<option value="{e(a)}"{" selected" if a == "overall" else ""}>'
                      f"{e(a)}</option>" for a in present)
    controls = (
        '<div id="controls"><span class="views"><button data-v="gallery">Gallery</button>'
        '<button data-v="table">Table</button><button data-v="summaries">By prompt / seed'
        f'</button></span><label>axis <select id="axis">{options}</select></label>'
        '<label>score <input id="lo" type="number" min="0" max="100" placeholder="min"> – '
        '<input id="hi" type="number" min="0" max="100" placeholder="max"></label>'
        '<label>status <select id="status"><option value="">all</option>'
        + "".join(f'<option value="{e(s)}">{e(s)}</option>' for s in STATUSES)
        + '</select></label><label>prompt / name <input id="q" type="search"></label>'
        '<span id="count"></span></div>')
    rule = f" ({e('; '.join(rules))})" if rules else ""
    n_work = sum(d["st"] == NEEDS_WORK for d in data)
    work = f"{n_work} need work, " if n_work else ""
    intro = (f"{len(entries)} images: {n_pass} passed{rule}, {work}"
             f"{len(entries) - n_pass - n_unscored - n_work} rejected, {n_unscored} unscored."
             + (f" {e(note)}" if note else "") + " Click a table header to sort.")
    page = (f'<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{e(title)}</h1><p>{intro}</p>"
            f'{controls}<div id="hist"></div>'
            f'<div id="table" hidden><table id="rows"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
            '<div id="gallery"></div><div id="summaries" hidden><h2>By prompt</h2>'
            '<div id="byprompt"></div><h2>By seed</h2><div id="byseed"></div></div>'
            f"{blob}"
            f"<script>{_SORT}</script><script>{_APP}</script></body></html>")
    return write_text(path, page)
