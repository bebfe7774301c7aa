"""The text-only remote judge node (Grok by default; any OpenAI-compatible endpoint).

No key widget, and no widget naming one: ComfyUI writes every widget into each saved PNG,
/history and error events, and people share PNGs. The workflow names a server; the key is
the one the user bound to that server's host (`scoring.remote.keys`). The old `key_env`
widget stays (saved workflows keep their widget order) but is ignored, with a note on the
node.
"""

from __future__ import annotations

from pathlib import Path

import folder_paths
from comfy_api.latest import io, ui

from ..scoring.core.cards import Sheet
from ..scoring.core.rubric import Rubric as RubricData
from ..scoring.remote import CostLog
from ..scoring.sources import catalogue, create
from .shared import rerun
from .shared.common import cards_text, run_source
from .shared.keys import ignored_widget_note, served_dirs
from .shared.types import Rubric, Scores


def saiten_dir() -> Path:
    """<ComfyUI user directory>/saiten: the judge's cost log, cache and price table."""
    return Path(folder_paths.get_user_directory()) / "saiten"


class SaitenGrokJudge(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        spec = catalogue.spec("judge")
        return io.Schema(
            node_id="SaitenGrokJudge",
            display_name="Saiten Judge (Grok, text only)",
            category="Saiten",
            description=(
                "Scores each image from what the earlier sources said (tags, ratings, VLM "
                "comments) with a remote LLM. Never sends the image. The key is the one bound "
                "to the server's host in your configuration (never in the workflow); cost "
                "logged to the user directory; answers cached; a dead server is skipped "
                "by its circuit breaker."),
            inputs=[
                Scores.Input("scores", tooltip="cards from a tagger / VLM for this batch"),
                io.String.Input("base_url", default=spec.build["base_url"]),
                io.String.Input("model", default=spec.build["model"]),
                io.String.Input("key_env", default="",
                                display_name="key_env (ignored)",
                                tooltip="ignored, kept so saved workflows load: the key is "
                                        "bound to the server's host (XAI_API_KEY for "
                                        "api.x.ai; keys.toml for others)"),
                io.Float.Input("temperature", default=spec.option_default("temperature"),
                               min=0.0, max=2.0, step=0.05),
                io.Float.Input("timeout", default=spec.build["timeout"], min=1.0, max=600.0,
                               step=1.0,
                               tooltip="seconds per attempt; 2 retries at most. After 3 "
                                       "failed attempts in a row the server is skipped "
                                       "(every prompt) until a probe after a cool-down"),
                io.Int.Input("max_calls", default=200, min=0, max=1_000_000,
                             tooltip="calls per run (0: no limit); then the judge abstains"),
                io.Float.Input("max_usd", default=1.0, min=0.0, max=1000.0, step=0.01,
                               tooltip="USD per run (0: no limit); then the judge abstains"),
                io.Boolean.Input("force", default=False, tooltip="bypass the answer cache"),
                io.Int.Input("geval_samples", default=0, min=0, max=10,
                             tooltip="G-Eval: >1 samples at temperature 1.0, averaged; "
                                     "their spread becomes the confidence (costs n calls)"),
                io.Float.Input("band_lo", default=0.0, min=0.0, max=100.0, step=1.0,
                               tooltip="two-stage: judge only images whose prior score is "
                                       "in [band_lo, band_hi] (0–100: all)"),
                io.Float.Input("band_hi", default=100.0, min=0.0, max=100.0, step=1.0),
                io.Int.Input("top_k", default=0, min=0, max=100_000,
                             tooltip="two-stage: also judge the top-K by prior score"),
                io.Float.Input("weight", default=spec.default_weight, min=0.0, max=10.0,
                               step=0.05),
                Rubric.Input("rubric", optional=True,
                             tooltip="from Saiten Rubric (default: the built-in rubric)"),
            ],
            outputs=[Scores.Output(display_name="scores"),
                     io.String.Output(display_name="prompt_text")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> int:
        return rerun.fingerprint("SaitenGrokJudge", cls.hidden.unique_id if cls.hidden else None)

    @classmethod
    def execute(cls, scores: Sheet, base_url: str, model: str, key_env: str,
                temperature: float, timeout: float, max_calls: int, max_usd: float,
                force: bool, geval_samples: int, band_lo: float, band_hi: float, top_k: int,
                weight: float, rubric: RubricData | None = None) -> io.NodeOutput:
        note = ignored_widget_note(key_env, "key_env")
        folder = saiten_dir()
        band = None if band_lo <= 0 and band_hi >= 100 else (band_lo, band_hi)
        judge = create(
            "judge", base_url=base_url.strip(), model=model.strip(),
            forbidden_dirs=served_dirs(), timeout=timeout, cost_log=folder / "judge_cost.jsonl",
            cache=folder / "judge_cache.sqlite", prices=folder / "prices.json")
        options = {"temperature": temperature, "max_calls": max_calls, "max_usd": max_usd,
                   "force": force, "geval_samples": geval_samples, "band": band,
                   "top_k": top_k, "weight": weight}
        node_id = cls.hidden.unique_id if cls.hidden else None
        merged, result = run_source(judge, None, scores, rubric=rubric, options=options,
                                    node_id=node_id)
        rerun.record("SaitenGrokJudge", node_id, result)
        prompts = "\n\n".join(f"### image {i}\n{p}" for i, p in enumerate(result.prompts) if p)
        cost = result.cost or f"{result.label}: {CostLog(None).summary()}"  # it never ran
        notes = "".join(f"{n}\n" for n in (result.describe, note) if n)
        text = (f"{cost} this run — log: "
                f"{folder / 'judge_cost.jsonl'}\n{notes}{cards_text(result)}")
        return io.NodeOutput(merged, prompts, ui=ui.PreviewText(text))


NODES = [SaitenGrokJudge]
