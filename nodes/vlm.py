"""VLM nodes: a loader (transformers, llama.cpp or an OpenAI-compatible server) and a rater.

Models live in ComfyUI's `models/saiten_vlm` folder (and `models/LLM` when another pack
registered it): transformers models as folders (what `save_pretrained` or a Hugging Face
download writes), llama.cpp models as a GGUF file plus its paired mmproj GGUF.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import folder_paths
from comfy_api.latest import io, ui

from ..scoring.core.cards import Sheet
from ..scoring.core.rubric import Rubric as RubricData
from ..scoring.sources import Source, catalogue
from ..scoring.sources.vlm import files as vlm_files
from ..scoring.sources.vlm.files import AUTO_MMPROJ, RUNTIMES
from .shared import rerun
from .shared.common import HANDLES, cards_text, run_source
from .shared.downloads import NodeDownload, cancel_is_interrupt
from .shared.keys import ignored_widget_note, served_dirs
from .shared.types import Rubric, Scores

FOLDER = "saiten_vlm"
SHARED_FOLDERS = ("LLM",)  # other packs' LLM folder, reused when registered
NO_MODEL = f"(none found: put models in models/{FOLDER})"

VLM = io.Custom("SAITEN_VLM")
"""A `VLMHandle`: the loaded-model handle and whether it stays loaded after a run."""


def register_folder() -> None:
    """Register `models/saiten_vlm` with ComfyUI (idempotent)."""
    folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, FOLDER))


register_folder()


def model_roots() -> list[Path]:
    names = [FOLDER, *(n for n in SHARED_FOLDERS if n in folder_paths.folder_names_and_paths)]
    roots = []
    for name in names:
        roots += [Path(p) for p in folder_paths.get_folder_paths(name) if os.path.isdir(p)]
    return roots


def list_models() -> tuple[list[str], list[str]]:
    """(models, mmproj files) in the registered folders, then the known VLMs not present
    (`scoring.sources.vlm.files`)."""
    return vlm_files.choices(model_roots())


@dataclass(frozen=True)
class VLMHandle:
    """The loader's output: a shared loaded-model handle (cached by its build options) and
    the loader's own settings. Raters pass their run options per call, never onto it."""

    source: Source
    keep_loaded: bool = True
    label: str = ""  # the loader's name for the model (cards' default source name)


class SaitenVLMLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        found, projs = list_models()
        tf, llama, http = (catalogue.spec(n) for n in
                           ("vlm-transformers", "vlm-llamacpp", "vlm-http"))
        return io.Schema(
            node_id="SaitenVLMLoader",
            display_name="Saiten VLM Loader",
            category="Saiten",
            description="Choose a VLM scorer: a transformers model folder (JoyCaption, "
                        "ToriiGate…), a GGUF + its mmproj for llama.cpp, or an "
                        "OpenAI-compatible server. The model loads when the rater first runs.",
            inputs=[
                io.Combo.Input("runtime", options=list(RUNTIMES), default="transformers"),
                io.Combo.Input("model", options=found or [NO_MODEL],
                               tooltip="models/saiten_vlm: a transformers folder or a GGUF; "
                                       "the known models not there yet are listed after "
                                       "yours (fetched when allow_download is on)"),
                io.Combo.Input("mmproj", options=[AUTO_MMPROJ, *projs],
                               tooltip="llama.cpp: the mmproj GGUF made for this model"),
                io.Combo.Input("dtype", options=list(tf.choices["dtype"]),
                               tooltip="transformers: auto = ComfyUI's choice for the card"),
                io.Combo.Input("quantization", options=list(tf.choices["quantization"]),
                               tooltip="transformers: nf4 = 4-bit bitsandbytes"),
                io.Int.Input("n_gpu_layers", default=-1, min=-1, max=999,
                             tooltip="llama.cpp: layers on the GPU; -1 = as many as fit"),
                io.Combo.Input("chat_format", options=list(llama.choices["chat_format"]),
                               default="auto",
                               tooltip="llama.cpp: the chat handler; auto = from the model "
                                       "and mmproj pair"),
                io.String.Input("base_url", default=http.build["base_url"],
                                tooltip="openai-compatible: the server's /v1 URL"),
                io.String.Input("model_name", default="",
                                tooltip="openai-compatible: the model id the server knows"),
                io.String.Input("api_key_env", default="",
                                display_name="api_key_env (ignored)",
                                tooltip="ignored, kept so saved workflows load: the key is "
                                        "the one bound to the server's host in keys.toml; "
                                        "a server on this machine gets none"),
                io.Boolean.Input("keep_loaded", default=True,
                                 tooltip="keep the model in memory between runs"),
                io.Float.Input("timeout", default=http.build["timeout"], min=1.0, max=3600.0,
                               step=1.0, optional=True,
                               tooltip="openai-compatible: seconds per attempt (1 retry). "
                                       "After 3 images in a row fail the batch's rest is "
                                       "skipped; after 3 failed attempts in a row the server "
                                       "is skipped (every prompt) until a probe after a "
                                       "cool-down"),
                io.Boolean.Input("allow_download", default=False, optional=True,
                                 tooltip="Download a known model that is not there yet into "
                                         "models/saiten_vlm (a GGUF with its paired mmproj); "
                                         "its size is shown first and free disk checked"),
            ],
            outputs=[VLM.Output(display_name="vlm")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, runtime: str, model: str, mmproj: str, dtype: str, quantization: str,
                n_gpu_layers: int, chat_format: str, base_url: str, model_name: str,
                api_key_env: str, keep_loaded: bool, timeout: float | None = None,
                allow_download: bool = False) -> io.NodeOutput:
        note = ignored_widget_note(api_key_env, "api_key_env") \
            if runtime == "openai-compatible" else ""
        chosen = "" if model == NO_MODEL else model
        node_id = cls.hidden.unique_id if cls.hidden else None
        with cancel_is_interrupt():
            source = vlm_files.open_vlm(
                runtime, chosen, mmproj, model_roots(), HANDLES, served=served_dirs(),
                dtype=dtype, quantization=quantization, n_gpu_layers=n_gpu_layers,
                chat_format=chat_format, base_url=base_url, model_name=model_name,
                timeout=timeout, allow_download=allow_download,
                feedback=NodeDownload(node_id).options())
        handle = VLMHandle(source, keep_loaded, source.label)
        text = source.describe() + (f"\n{note}" if note else "")
        return io.NodeOutput(handle, ui=ui.PreviewText(text))


class SaitenVLMRater(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        spec = catalogue.spec("vlm-transformers")
        return io.Schema(
            node_id="SaitenVLMRater",
            display_name="Saiten VLM Rater",
            category="Saiten",
            description="Score every image of the batch on the rubric with a VLM. generate: "
                        "the model writes the JSON score card; logprob: scores read from the "
                        "probabilities of the rating digits (faster, steadier).",
            inputs=[
                io.Image.Input("images"),
                VLM.Input("vlm"),
                Scores.Input("scores", optional=True,
                             tooltip="cards from earlier sources (tags go into the prompt)"),
                io.Combo.Input("method", options=list(spec.choices["method"]),
                               default=spec.option_default("method")),
                io.Boolean.Input("use_tags", default=True,
                                 tooltip="put the taggers' tags and ratings into the prompt"),
                io.Boolean.Input("comment", default=True,
                                 tooltip="logprob: also generate the short comment"),
                io.Int.Input("repeats", default=1, min=1, max=8,
                             tooltip="score each image N times (the aggregate takes the "
                                     "median); greedy decoding repeats itself, so 1 is enough "
                                     "for local models"),
                io.Float.Input("weight", default=0.0, min=0.0, max=10.0, step=0.05,
                               tooltip="Weight in the ensemble; 0 = the model's default "
                                       "(" + ", ".join(dict.fromkeys(
                                           f"{m.label} {m.weight}" for m in spec.models))
                                       + ")"),
                io.String.Input("label", default="", tooltip="Name of this source in the cards "
                                                              "(default: the model's name)"),
                Rubric.Input("rubric", optional=True,
                             tooltip="from Saiten Rubric (default: the built-in rubric)"),
            ],
            outputs=[Scores.Output(display_name="scores")],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> int:
        return rerun.fingerprint("SaitenVLMRater", cls.hidden.unique_id if cls.hidden else None)

    @classmethod
    def execute(cls, images, vlm: VLMHandle, method: str, use_tags: bool, comment: bool,
                repeats: int, weight: float, label: str, scores: Sheet | None = None,
                rubric: RubricData | None = None) -> io.NodeOutput:
        options = {"method": method, "use_tags": use_tags, "comment": comment,
                   "weight": float(weight) if weight > 0 else None,
                   "label": label.strip() or vlm.label, "keep_loaded": vlm.keep_loaded}
        node_id = cls.hidden.unique_id if cls.hidden else None
        merged, mine = run_source(vlm.source, images, scores, rubric=rubric, repeats=repeats,
                                  options=options, node_id=node_id)
        rerun.record("SaitenVLMRater", node_id, mine)
        return io.NodeOutput(merged, ui=ui.PreviewText(cards_text(mine)))


NODES = [SaitenVLMLoader, SaitenVLMRater]
