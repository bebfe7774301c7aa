// ComfyUI-Saiten frontend: shows each Saiten node's score text on the node, a button that opens a
// Batch Report's page (served by the pack: rate the images there, in Japanese or English), and the score badges
// of "Saiten Save Image": a row of badges in a DOM widget (drawn in both the classic canvas and
// the Vue "Nodes 2.0" mode, which paints no canvas foreground) and, on the classic canvas, one
// badge over every image preview. Everything it reads comes from the node's `ui` output
// (`text`: lines of text, `saiten`: one {score, label, confidence, unscored} per saved image);
// missing or odd data just shows nothing.

import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const TEXT_WIDGET = "saiten_text";
const REPORT_WIDGET = "saiten_report";
const REPORT_LABEL = { en: "Open the report to rate the images", ja: "レポートを開いて評価する" };
const BADGE_WIDGET = "saiten_badges";

function badgeColour(b) {
  if (!b || typeof b.score !== "number") return "#666"; // unscored
  if (b.score >= 70) return "#2e7d32";
  if (b.score >= 40) return "#b26a00";
  return "#b71c1c";
}

function showText(node, lines) {
  const text = (Array.isArray(lines) ? lines : [lines]).filter((t) => t != null).join("\n");
  let widget = node.widgets?.find((w) => w.name === TEXT_WIDGET);
  if (!widget) {
    widget = ComfyWidgets.STRING(node, TEXT_WIDGET, ["STRING", { multiline: true }], app).widget;
    widget.serialize = false; // never part of widgets_values (keeps the widget order)
    widget.options = { ...(widget.options || {}), serialize: false }; // nor of the prompt
    if (widget.inputEl) {
      widget.inputEl.readOnly = true;
      widget.inputEl.style.fontFamily = "monospace";
      widget.inputEl.style.fontSize = "11px";
      widget.inputEl.style.opacity = "0.85";
    }
  }
  widget.value = text;
  node.setDirtyCanvas?.(true, true);
}

function locale() {
  const chosen = app.extensionManager?.setting?.get?.("Comfy.Locale")
    || globalThis.navigator?.language || "en";
  return String(chosen).toLowerCase().startsWith("ja") ? "ja" : "en";
}

// The Batch Report's page, in a new tab: only a path of the pack's own report route opens.
function showReportButton(node, url) {
  if (typeof url !== "string" || !url.startsWith("/saiten/report/")) return;
  let widget = node.widgets?.find((w) => w.name === REPORT_WIDGET);
  if (!widget) {
    widget = node.addWidget("button", REPORT_WIDGET, null, () => {
      globalThis.window?.open(widget.saitenUrl, "_blank", "noopener");
    }, { serialize: false });
    widget.serialize = false;
  }
  widget.label = REPORT_LABEL[locale()];
  widget.saitenUrl = url;
  node.setDirtyCanvas?.(true, true);
}

function badgeLabel(b) {
  return b && b.label != null ? String(b.label) : "—";
}

// One badge per saved image in a DOM widget: both frontend modes render DOM widgets.
function showBadgeRow(node, badges) {
  if (typeof node.addDOMWidget !== "function") return;
  let widget = node.widgets?.find((w) => w.name === BADGE_WIDGET);
  if (!widget) {
    const row = document.createElement("div");
    row.className = "saiten-badges";
    row.style.cssText = "display:flex;flex-wrap:wrap;align-items:flex-start;align-content:flex-start;" +
      "gap:4px;padding:2px 4px;min-height:22px;";
    widget = node.addDOMWidget(BADGE_WIDGET, "saiten-badges", row,
                               { serialize: false, getMinHeight: () => 26 });
    widget.serialize = false; // never part of widgets_values, nor of the prompt
    widget.options = { ...(widget.options || {}), serialize: false };
  }
  const row = widget.element;
  row.replaceChildren(...badges.map((b, i) => {
    const chip = document.createElement("span");
    chip.className = "saiten-badge";
    chip.textContent = `#${i} ${badgeLabel(b)}`;
    chip.dataset.score = typeof b?.score === "number" ? String(b.score) : "";
    chip.title = b?.unscored ? `unscored: ${b.unscored}`
      : typeof b?.confidence === "number" ? `confidence ${b.confidence.toFixed(2)}` : "";
    chip.style.cssText = `background:${badgeColour(b)};color:#fff;border-radius:6px;` +
      "padding:1px 6px;font:bold 12px sans-serif;line-height:18px;";
    return chip;
  }));
  node.setDirtyCanvas?.(true, true);
}

function drawBadge(ctx, x, y, b) {
  const label = badgeLabel(b);
  ctx.save();
  ctx.font = "bold 13px sans-serif";
  const w = Math.max(24, ctx.measureText(label).width + 12);
  ctx.fillStyle = badgeColour(b);
  ctx.globalAlpha = 0.9;
  ctx.beginPath();
  ctx.roundRect ? ctx.roundRect(x, y, w, 20, 6) : ctx.rect(x, y, w, 20);
  ctx.fill();
  ctx.globalAlpha = 1;
  ctx.fillStyle = "#fff";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(label, x + w / 2, y + 10);
  ctx.restore();
}

// Where each preview image sits on the node: the grid rectangles the frontend records, or the
// single shown image fitted into the preview widget's area.
function imageSpots(node) {
  const imgs = node.imgs || [];
  if (!imgs.length) return [];
  if (node.imageIndex == null && Array.isArray(node.imageRects) && node.imageRects.length) {
    return node.imageRects.map((r, i) => ({ i, x: r[0] + 4, y: r[1] + 4 }));
  }
  const i = node.imageIndex ?? 0;
  const img = imgs[i];
  const preview = node.widgets?.find((w) => String(w.name).includes("image-preview"));
  const top = preview?.y ?? (node.size[1] - 220);
  const height = preview?.computedHeight ?? (node.size[1] - top);
  if (!img?.naturalWidth || !img?.naturalHeight) return [{ i, x: 4, y: top + 4 }];
  const s = Math.min(node.size[0] / img.naturalWidth, height / img.naturalHeight, 1);
  const w = img.naturalWidth * s;
  const h = img.naturalHeight * s;
  return [{ i, x: (node.size[0] - w) / 2 + 4, y: top + (height - h) / 2 + 4 }];
}

app.registerExtension({
  name: "saiten.scores",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!String(nodeData?.name || "").startsWith("Saiten")) return;

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      try {
        if (message?.text != null) showText(this, message.text);
        if (Array.isArray(message?.saiten_report)) showReportButton(this, message.saiten_report[0]);
        if (Array.isArray(message?.saiten)) {
          this.saitenBadges = message.saiten;
          showBadgeRow(this, message.saiten);
        }
      } catch (e) {
        console.warn("saiten: cannot show scores", e);
      }
    };

    if (nodeData.name !== "SaitenSaveImage") return;
    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      onDrawForeground?.apply(this, arguments);
      const badges = this.saitenBadges;
      if (!Array.isArray(badges) || !badges.length || this.flags?.collapsed) return;
      const transform = ctx.getTransform();
      const spots = imageSpots(this);
      // previews are painted in a microtask after the node: paint the badges after them
      queueMicrotask(() => queueMicrotask(() => {
        ctx.save();
        ctx.setTransform(transform);
        for (const { i, x, y } of spots) if (badges[i]) drawBadge(ctx, x, y, badges[i]);
        ctx.restore();
      }));
    };
  },
});
