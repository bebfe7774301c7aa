"""Where VLM files are (`scoring.sources.vlm.files`), on real folders: discovery lists what
can see, a GGUF is paired with its mmproj or refused as blind, and the VLM Loader's widgets
become one shared handle — or an Unavailable saying what to fix, under the label the
model's weight belongs to."""

from __future__ import annotations

import shutil

import pytest

from scoring.sources import SourceError, Unavailable, catalogue
from scoring.sources.handles import Handles
from scoring.sources.vlm.files import AUTO_MMPROJ, list_vlms, open_vlm, paired_mmproj, vlm_files


def test_discovery_lists_vision_models_only(folders, tmp_path):
    root = tmp_path / "LLM"
    for name in ("llava", "text"):
        shutil.copytree(folders[name], root / "nested" / folders[name].name)
    (root / "model-Q4_K_M.gguf").write_bytes(b"GGUF")
    found, projs = list_vlms([root])
    assert found == ["model-Q4_K_M.gguf", "nested/tiny-llava"] and projs == []


def test_a_gguf_without_its_mmproj_is_refused_saying_it_cannot_see(tmp_path):
    model = tmp_path / "Qwen2.5-7B-Instruct-Q4_K_M.gguf"
    model.write_bytes(b"GGUF")
    with pytest.raises(SourceError, match="has no mmproj GGUF next to it: without its mmproj"):
        paired_mmproj(model)
    with pytest.raises(SourceError, match="text-only model and cannot see the images"):
        vlm_files(model.name, roots=[tmp_path])


def test_the_loaders_widgets_give_one_shared_handle(tmp_path):
    for name in ("m-Q4_K_M.gguf", "mmproj-m-f16.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")  # never read: a handle loads on first use
    (tmp_path / "tiny").mkdir()
    handles = Handles()
    gguf = open_vlm("llama.cpp", "m-Q4_K_M.gguf", AUTO_MMPROJ, [tmp_path], handles)
    assert gguf.name == "vlm-llamacpp" and gguf.mmproj_path == tmp_path / "mmproj-m-f16.gguf"
    assert open_vlm("llama.cpp", "m-Q4_K_M.gguf", AUTO_MMPROJ, [tmp_path], handles) is gguf
    assert open_vlm("llama.cpp", "m-Q4_K_M.gguf", AUTO_MMPROJ, [tmp_path], handles,
                    n_gpu_layers=8) is not gguf
    folder = open_vlm("transformers", "tiny", AUTO_MMPROJ, [tmp_path], handles, dtype="fp32")
    assert dict(folder.build) == {"model_dir": str(tmp_path / "tiny"), "dtype": "fp32",
                                  "quantization": "none"}
    http = open_vlm("openai-compatible", "", "", [], handles, base_url=" http://127.0.0.1:1/v1 ",
                    model_name="m", served=[str(tmp_path)])
    assert dict(http.build) == {"base_url": "http://127.0.0.1:1/v1", "model": "m",
                                "forbidden_dirs": (str(tmp_path),),
                                "timeout": catalogue.spec("vlm-http").build["timeout"]}
    assert len(list(handles)) == 4


@pytest.mark.parametrize(("runtime", "model", "label", "why"), [
    ("openai-compatible", "", "openai-compatible", "set model_name (the server's model id)"),
    ("llama.cpp", "", "llama.cpp", "no model: put a transformers folder or a GGUF"),
    ("llama.cpp", "tiny", "tiny", "llama.cpp needs a GGUF file, 'tiny' is not one"),
    ("llama.cpp", "joycaption-Q4_K_M.gguf", "joycaption", "not found under"),
    ("tensorrt", "tiny", "tiny", "unknown runtime 'tensorrt'"),
])
def test_widgets_that_cannot_work_give_an_unavailable_saying_why(tmp_path, runtime, model,
                                                                   label, why):
    (tmp_path / "tiny").mkdir()
    handles = Handles()
    got = open_vlm(runtime, model, AUTO_MMPROJ, [tmp_path], handles)
    assert isinstance(got, Unavailable) and why in got.why and got.label == label
    assert list(handles) == []
