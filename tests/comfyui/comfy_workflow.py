"""UI-format workflow (what the ComfyUI frontend saves: nodes, links, widgets_values) → the
API-format prompt /prompt takes, using /object_info for the widget order — so tests run the
example workflows exactly as shipped.

Widget values are matched to a node's widget inputs in `input_order` (required, then
optional), skipping socket-only types, `forceInput` inputs and dynamic inputs; the frontend's
extra values (`control_after_generate` after an INT that asks for it, the upload button of
LoadImage) are skipped. A workflow saved before an optional widget was added has no value for
it: like the frontend, the widget's default is used. Linked inputs (also widgets converted to
sockets, and Autogrow slots such as `scores.scores0`) come from `links`. Muted nodes are left
out; bypassed nodes and reroutes are not supported (a clear error).
"""

from __future__ import annotations

from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
FRONTEND_ONLY = {"Note", "MarkdownNote"}
MUTED, BYPASSED = 2, 4


class WorkflowError(ValueError):
    """The workflow cannot be turned into a prompt (unknown node, bad widget count, …)."""


def _spec(info: dict, name: str) -> tuple[Any, dict]:
    for group in ("required", "optional"):
        spec = info.get("input", {}).get(group, {}).get(name)
        if spec is not None:
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            return spec[0], opts
    raise WorkflowError(f"{info.get('name')}: no input {name!r}")


def _default(info: dict, name: str) -> Any:
    """What the frontend gives a widget it has no saved value for."""
    kind, opts = _spec(info, name)
    if "default" in opts:
        return opts["default"]
    options = kind if isinstance(kind, list) else opts.get("options") or [None]
    return options[0]


def widget_inputs(info: dict) -> list[tuple[str, int]]:
    """(input name, number of widgets_values it takes) in the frontend's widget order."""
    order = info.get("input_order") or {
        g: list(info.get("input", {}).get(g, {})) for g in ("required", "optional")
    }
    out = []
    for name in [*order.get("required", []), *order.get("optional", [])]:
        kind, opts = _spec(info, name)
        is_widget = isinstance(kind, list) or kind in WIDGET_TYPES
        if not is_widget or opts.get("forceInput"):
            continue
        extra = 0
        if kind in ("INT", "FLOAT") and opts.get("control_after_generate"):
            extra = 1
        if any(opts.get(k) for k in ("image_upload", "video_upload", "audio_upload")):
            extra = 1
        out.append((name, 1 + extra))
    return out


def to_prompt(workflow: dict, object_info: dict[str, dict]) -> dict[str, dict]:
    """The API prompt for a UI-format workflow."""
    links = {link[0]: link for link in workflow.get("links", [])}
    nodes = {n["id"]: n for n in workflow.get("nodes", [])}
    prompt: dict[str, dict] = {}
    for node in workflow.get("nodes", []):
        kind = node["type"]
        if kind in FRONTEND_ONLY or node.get("mode", 0) == MUTED:
            continue
        if node.get("mode", 0) == BYPASSED:
            raise WorkflowError(f"node {node['id']} ({kind}) is bypassed: not supported")
        info = object_info.get(kind)
        if info is None:
            raise WorkflowError(f"node {node['id']}: type {kind!r} is not in /object_info "
                                "(not installed, or its module failed to import)")
        values = node.get("widgets_values") or []
        if isinstance(values, dict):  # some nodes save named values
            inputs = dict(values)
        else:
            inputs = {}
            i = 0
            for name, width in widget_inputs(info):
                if i >= len(values) and name in info.get("input", {}).get("optional", {}):
                    inputs[name] = _default(info, name)  # added since the file was saved
                    continue
                if i >= len(values):
                    raise WorkflowError(f"node {node['id']} ({kind}): {len(values)} widget "
                                        f"values, but /object_info has more widgets")
                inputs[name] = values[i]
                i += width
            if i != len(values):
                raise WorkflowError(f"node {node['id']} ({kind}): {len(values)} widget values "
                                    f"for {i} widget slots (widget order changed?)")
        for slot in node.get("inputs", []):
            link = links.get(slot.get("link")) if slot.get("link") is not None else None
            if link is None:
                continue
            _, origin, origin_slot, *_ = link
            src = nodes.get(origin)
            if src is None or src.get("mode", 0) == MUTED:
                inputs.pop(slot["name"], None)
                continue
            if src["type"] == "Reroute":
                raise WorkflowError(f"node {node['id']}: reroutes are not supported")
            inputs[slot["name"]] = [str(origin), origin_slot]
        title = node.get("title") or info.get("display_name") or kind
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs, "_meta": {"title": title}}
    return prompt
