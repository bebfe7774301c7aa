// Drives web/saiten.js (copied to extensions/ComfyUI-Saiten/) against the stand-in shims
// and prints what it did as JSON.
import { app } from "./scripts/app.js";
await import("./extensions/ComfyUI-Saiten/saiten.js");

const [ext] = app.extensions;
const out = { name: ext.name };

function nodeType() {
  function Node() {
    this.widgets = [];
    this.size = [400, 500];
    this.flags = {};
    this.setDirtyCanvas = () => {};
  }
  return Node;
}
function recordingCtx() {
  const calls = [];
  return {
    calls,
    save() {}, restore() {}, beginPath() {}, fill() {}, rect() {},
    roundRect(x, y) { calls.push(["rect", Math.round(x), Math.round(y)]); },
    measureText(t) { return { width: 7 * String(t).length }; },
    fillText(t) { calls.push(["text", t]); },
    getTransform() { return "T"; }, setTransform(t) { calls.push(["transform", t]); },
  };
}
const settle = () => new Promise((r) => setTimeout(r, 0));

// a text node
const Show = nodeType();
await ext.beforeRegisterNodeDef(Show, { name: "SaitenShowScores" });
const show = new Show();
show.onExecuted({ text: ["#0 72.0  conf 0.90", "#1 unscored (too few sources)"] });
show.onExecuted({ text: ["#0 80.0"] });
const w = show.widgets.find((x) => x.name === "saiten_text");
out.text = { count: show.widgets.length, value: w.value, serialize: w.serialize,
             optionSerialize: w.options.serialize, readOnly: w.inputEl.readOnly };
show.onExecuted({});          // missing data: nothing breaks
show.onExecuted(undefined);
out.afterEmpty = show.widgets.find((x) => x.name === "saiten_text").value;

// the Batch Report's button opens its page (and only a page of the pack's route)
const opened = [];
globalThis.window = { open: (...a) => opened.push(a) };
const Report = nodeType();
Report.prototype.addWidget = function (type, name, value, callback, options) {
  const widget = { type, name, value, callback, options };
  this.widgets.push(widget);
  return widget;
};
await ext.beforeRegisterNodeDef(Report, { name: "SaitenBatchReport" });
const report = new Report();
report.onExecuted({ text: ["7 added"], saiten_report: ["/saiten/report/night/report.html"] });
report.onExecuted({ text: ["7 more"], saiten_report: ["/saiten/report/night%202/report.html"] });
report.onExecuted({ saiten_report: ["https://elsewhere.example/x"] });
const button = report.widgets.find((x) => x.name === "saiten_report");
button.callback();
out.report = { buttons: report.widgets.filter((x) => x.type === "button").length,
               label: button.label, serialize: button.serialize, opened };

// a node of another pack is left alone
const Other = nodeType();
await ext.beforeRegisterNodeDef(Other, { name: "PreviewImage" });
out.otherPatched = typeof Other.prototype.onExecuted === "function";

// badges on a grid of previews
const Save = nodeType();
await ext.beforeRegisterNodeDef(Save, { name: "SaitenSaveImage" });
const save = new Save();
save.onExecuted({ saiten: [{ score: 72.4, label: "72" }, { score: null, label: "—" }],
                  text: ["two"] });
save.imgs = [{ naturalWidth: 64, naturalHeight: 64 }, { naturalWidth: 64, naturalHeight: 64 }];
save.imageRects = [[0, 100, 200, 200], [200, 100, 200, 200]];
let ctx = recordingCtx();
save.onDrawForeground(ctx);
out.gridBeforeMicrotasks = ctx.calls.length;
await settle();
out.grid = ctx.calls;

// one image shown in the preview widget area
save.imageIndex = 1;
save.widgets.push({ name: "$$canvas-image-preview", y: 100, computedHeight: 300 });
ctx = recordingCtx();
save.onDrawForeground(ctx);
await settle();
out.single = ctx.calls;

// no previews / collapsed: nothing drawn, nothing thrown
const bare = new Save();
bare.onExecuted({ saiten: [{ score: 50, label: "50" }] });
ctx = recordingCtx();
bare.onDrawForeground(ctx);
await settle();
out.noPreview = ctx.calls.filter((c) => c[0] === "text");
save.flags.collapsed = true;
ctx = recordingCtx();
save.onDrawForeground(ctx);
await settle();
out.collapsed = ctx.calls.length;

console.log(JSON.stringify(out));
