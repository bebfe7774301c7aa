"""Saiten Diagnostics: what this ComfyUI's Python can run (`scoring/host/doctor.py`), as text on
the node and as JSON, with the model folders the other nodes actually search."""

from __future__ import annotations

import json
from pathlib import Path

import folder_paths
from comfy_api.latest import io, ui

from ..scoring.host import doctor
from ..scoring.remote import check_env_name


def searched_folders() -> dict[str, list[Path]]:
    """The folders the Tagger, VLM Loader, Publish Check and Likeness look in
    (extra_model_paths.yaml included), also those that do not exist yet: that is where
    models go."""
    from . import publish, tagger, vlm

    names = [vlm.FOLDER, *(n for n in vlm.SHARED_FOLDERS
                           if n in folder_paths.folder_names_and_paths)]
    return {"tagger": tagger.model_dirs(),
            "vlm": [Path(p) for n in names for p in folder_paths.get_folder_paths(n)],
            "censor": publish.model_dirs("censor"), "likeness": publish.model_dirs("likeness")}


class SaitenDiagnostics(io.ComfyNode):
    """Installed runtimes, their GPU support, model folders and the judge key (set or not)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaitenDiagnostics",
            display_name="Saiten Diagnostics",
            category="Saiten",
            description="Checks what this Python can run: the ONNX Runtime package(s) and "
                        "their providers (CPU and GPU builds together are flagged with the "
                        "fix), torch's CUDA against onnxruntime-gpu's, llama-cpp-python (GPU "
                        "offload, vision), bitsandbytes, transformers, every model folder "
                        "searched and what is in it, and whether the judge's key is set "
                        "(never its value). Run it alone: queue a graph with just this node.",
            inputs=[
                io.String.Input("key_env", default="XAI_API_KEY",
                                tooltip="The NAME of the judge key's environment variable "
                                        "(only whether it is set is shown, never the value)."),
            ],
            outputs=[io.String.Output(display_name="text"),
                     io.String.Output(display_name="json")],
            is_output_node=True,
            not_idempotent=True,
        )

    @classmethod
    def execute(cls, key_env: str = "XAI_API_KEY") -> io.NodeOutput:
        facts = doctor.report(searched_folders(), key_env=check_env_name(key_env))
        text = doctor.render(facts)
        return io.NodeOutput(text, json.dumps(facts, ensure_ascii=False),
                             ui=ui.PreviewText(text))


NODES = [SaitenDiagnostics]
