"""API-prompt building blocks for the ComfyUI tests: a node with every widget at its
/object_info default, and the SD pipeline pieces (checkpoint → KSampler → VAE Decode).

    g = Graph(comfy.object_info)
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=CHECKPOINT)
    lat = g.add("EmptyLatentImage", width=64, height=64, batch_size=4)
    comfy.run(g.prompt)
"""

from __future__ import annotations

import itertools
from typing import Any

Link = list  # ["node id", output slot]


def defaults(info: dict) -> dict[str, Any]:
    """Every widget input of a node (as /object_info describes it) at its default."""
    out: dict[str, Any] = {}
    for group in ("required", "optional"):
        for name, spec in info.get("input", {}).get(group, {}).items():
            kind = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if opts.get("forceInput"):
                continue
            if "default" in opts:
                out[name] = opts["default"]
            elif isinstance(kind, list) and kind:
                out[name] = kind[0]
            elif kind == "COMBO" and opts.get("options"):
                out[name] = opts["options"][0]
    return out


class Graph:
    """An API prompt under construction; `add` returns the new node's id."""

    def __init__(self, object_info: dict[str, dict]) -> None:
        self.info = object_info
        self.prompt: dict[str, dict] = {}
        self._ids = itertools.count(1)

    def add(self, class_type: str, _title: str | None = None, **inputs: Any) -> str:
        if class_type not in self.info:
            raise KeyError(f"{class_type} is not in /object_info")
        node_id = str(next(self._ids))
        self.prompt[node_id] = {"class_type": class_type,
                                "inputs": {**defaults(self.info[class_type]), **inputs}}
        if _title:
            self.prompt[node_id]["_meta"] = {"title": _title}
        return node_id

    def score(self, images: Link, **filter_inputs: Any) -> tuple[str, str]:
        """NudeNet tagger + technical check + aggregate + filter on `images`: (aggregate,
        filter) node ids."""
        tag = self.add("SaitenTagger", images=images, model="nudenet (offline)")
        tech = self.add("SaitenTechnicalCheck", images=images, scores=[tag, 0])
        agg = self.add("SaitenEnsembleAggregate", **{"scores.scores0": [tech, 0]})
        flt = self.add("SaitenScoreFilter", images=images, verdicts=[agg, 0], **filter_inputs)
        return agg, flt


def technical_graph(image: str, node: int) -> dict:
    """LoadImage(`image`) → Technical Check → Aggregate (one source) → Show Scores, as nodes
    `node` … `node + 3`."""
    return {
        f"{node}": {"class_type": "LoadImage", "inputs": {"image": image}},
        f"{node + 1}": {"class_type": "SaitenTechnicalCheck",
                        "inputs": {"images": [f"{node}", 0]}},
        f"{node + 2}": {"class_type": "SaitenEnsembleAggregate", "inputs": {
            "scores.scores0": [f"{node + 1}", 0], "min_sources": 1, "k": 2.5,
            "weights": ""}},
        f"{node + 3}": {"class_type": "SaitenShowScores",
                        "inputs": {"verdicts": [f"{node + 2}", 0]}},
    }
