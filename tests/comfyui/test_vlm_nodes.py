"""The VLM nodes in a real ComfyUI: tiny transformers models in models/saiten_vlm, listed by
the loader, scoring a batch through the rater in both methods; a VLM that cannot be created
abstains and the prompt still succeeds."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("transformers")

from comfy_harness import nudenet_tagger
from helpers.models.tiny_hf import build_llava, build_qwen2vl

from scoring.report import read_png_scores

LINE = re.compile(r"^#(\d) (\S+): erotic=\d+ composition=\d+ appeal=\d+ typeset=\d+ "
                  r"overall=\d+", re.MULTILINE)


@pytest.fixture(scope="module")
def vlm_comfy(comfy):
    folder = comfy.models_dir / "saiten_vlm"
    build_llava(folder / "tiny-llava")
    build_qwen2vl(folder / "family" / "tiny-qwen2vl")
    (folder / "model-Q4_K_M.gguf").write_bytes(b"GGUF")
    (folder / "mmproj-model-f16.gguf").write_bytes(b"GGUF")
    for name in ("m-Q4_K_M.gguf", "mmproj-x.gguf", "mmproj-y.gguf"):
        (folder / "two" / name).parent.mkdir(exist_ok=True)
        (folder / "two" / name).write_bytes(b"GGUF")
    comfy.refresh_object_info()
    return comfy


def loader(model="tiny-llava", runtime="transformers", keep_loaded=True, **kw):
    inputs = {"runtime": runtime, "model": model, "mmproj": kw.pop("mmproj", None),
              "dtype": "auto", "quantization": "none", "n_gpu_layers": -1, "chat_format": "auto",
              "base_url": "http://127.0.0.1:9/v1", "model_name": "", "api_key_env":
              "OPENAI_API_KEY", "keep_loaded": keep_loaded, **kw}
    return {"class_type": "SaitenVLMLoader", "inputs": inputs}


def graph(vlm_node, method, batch=2, label=""):
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 48, "batch_size": batch, "color": 0x3366AA}},
        "2": vlm_node,
        "3": {"class_type": "SaitenVLMRater",
              "inputs": {"images": ["1", 0], "vlm": ["2", 0], "method": method,
                         "use_tags": True, "comment": True, "repeats": 1, "weight": 0.9,
                         "label": label}},
    }


def test_nodes_are_registered_and_list_the_models_folder(vlm_comfy):
    info = vlm_comfy.object_info
    load = info["SaitenVLMLoader"]["input"]["required"]
    models = load["model"][0] if isinstance(load["model"][0], list) else \
        load["model"][1]["options"]
    assert "tiny-llava" in models and "family/tiny-qwen2vl" in models
    assert "model-Q4_K_M.gguf" in models and "mmproj-model-f16.gguf" not in models
    mmproj = load["mmproj"][0] if isinstance(load["mmproj"][0], list) else \
        load["mmproj"][1]["options"]
    assert "mmproj-model-f16.gguf" in mmproj
    assert set(load["runtime"][0] if isinstance(load["runtime"][0], list)
               else load["runtime"][1]["options"]) == {"transformers", "llama.cpp",
                                                        "openai-compatible"}
    rate = info["SaitenVLMRater"]
    assert rate["output"] == ["SAITEN_SCORES"]
    assert "scores" in rate["input"]["optional"]


@pytest.mark.parametrize(("model", "method"), [("tiny-llava", "logprob"),
                                               ("family/tiny-qwen2vl", "generate")])
def test_rater_scores_every_image(vlm_comfy, model, method):
    node = loader(model, mmproj=_auto(vlm_comfy))
    h = vlm_comfy.run(graph(node, method, batch=3))
    text = h.text("3")
    found = LINE.findall(text)
    assert [int(i) for i, _ in found] == [0, 1, 2], text
    assert {name for _, name in found} == {model.split("/")[-1]}


def test_label_and_keep_loaded_false_unloads(vlm_comfy):
    node = loader("tiny-llava", keep_loaded=False, mmproj=_auto(vlm_comfy))
    h = vlm_comfy.run(graph(node, "logprob", batch=1, label="joy-tiny"))
    assert LINE.findall(h.text("3")) == [("0", "joy-tiny")]
    sources = vlm_comfy.get("/saiten_test/loaded")["sources"]
    # the shared handle keeps the loader's name: a rater's label lives on its cards only
    assert {"name": "tiny-llava", "loaded": False} in sources


def test_a_vlm_that_cannot_run_abstains_and_the_prompt_succeeds(vlm_comfy):
    node = loader("tiny-llava", runtime="openai-compatible", model_name="",
                  mmproj=_auto(vlm_comfy))
    h = vlm_comfy.run(graph(node, "generate", batch=2))
    text = h.text("3")
    assert text.count("abstained") == 2 and "set model_name" in text, text


def _auto(comfy):
    load = comfy.object_info["SaitenVLMLoader"]["input"]["required"]["mmproj"]
    options = load[0] if isinstance(load[0], list) else load[1]["options"]
    return options[0]


@pytest.mark.parametrize(("model", "why"), [
    ("model-Q4_K_M.gguf", ""),  # not a real GGUF (or no llama-cpp-python): that source abstains
    ("two/m-Q4_K_M.gguf", "choose the mmproj for m-Q4_K_M.gguf"),
])
def test_llamacpp_problems_abstain_with_the_reason(vlm_comfy, model, why):
    node = loader(model, runtime="llama.cpp", mmproj=_auto(vlm_comfy))
    h = vlm_comfy.run(graph(node, "logprob", batch=2))
    text = h.text("3")
    assert text.count("abstained") == 2 and why in text, text


def test_comfyui_free_memory_unloads_the_vlm(vlm_comfy):
    node = loader("tiny-llava", mmproj=_auto(vlm_comfy))
    vlm_comfy.run(graph(node, "logprob", batch=1, label="evict-me"))
    state = vlm_comfy.get("/saiten_test/loaded")
    # the shared handle keeps the loader's name: the rater's label lives on its cards only
    assert {"name": "tiny-llava", "loaded": True} in state["sources"]
    assert any(m["name"] == "tiny-llava" for m in state["models"]), state

    def evicted() -> bool:  # acted on by ComfyUI's prompt worker, soon after a /free
        state = vlm_comfy.get("/saiten_test/loaded")
        return ({"name": "tiny-llava", "loaded": False} in state["sources"]
                and not any(m["name"] == "tiny-llava" for m in state["models"]))

    assert vlm_comfy.free_until(evicted), vlm_comfy.get("/saiten_test/loaded")


def test_two_raters_on_one_loader_score_as_each_asked(vlm_comfy):
    """Run options travel per call: two raters share one loaded model (one cached handle)
    and each scores with its own method, label and weight."""
    g = graph(loader("tiny-llava", mmproj=_auto(vlm_comfy)), "logprob", batch=2, label="lp")
    g["3"]["inputs"]["comment"] = False
    g["4"] = {"class_type": "SaitenVLMRater",
              "inputs": {"images": ["1", 0], "vlm": ["2", 0], "scores": ["3", 0],
                         "method": "generate", "use_tags": False, "comment": True,
                         "repeats": 1, "weight": 2.5, "label": "gen"}}
    g["5"] = {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}
    h = vlm_comfy.run(g)
    cards = h.text("5").split("ScoreCard(")[1:]
    lp = [c for c in cards if c.startswith("source='lp'")]
    gen = [c for c in cards if c.startswith("source='gen'")]
    assert len(lp) == len(gen) == 2, h.text("5")
    assert all("'level_probs'" in c and "weight=0.9" in c and "'attempts'" not in c for c in lp)
    assert all("'attempts'" in c and "weight=2.5" in c and "'level_probs'" not in c
               for c in gen)
    handles = [s for s in vlm_comfy.get("/saiten_test/loaded")["sources"]
               if s["name"] == "tiny-llava"]
    assert len(handles) == 1, handles  # one model in memory for both raters


def test_tagger_then_rater_in_one_graph(vlm_comfy):
    """The rater takes the tagger's scores (tags go into its prompt) and passes them on."""
    g = graph(loader("family/tiny-qwen2vl", mmproj=_auto(vlm_comfy)), "logprob", batch=2)
    g["4"] = nudenet_tagger(["1", 0])
    g["3"]["inputs"]["scores"] = ["4", 0]
    g["5"] = {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}
    h = vlm_comfy.run(g)
    assert [i for i, _ in LINE.findall(h.text("3"))] == ["0", "1"], h.text("3")
    merged = h.text("5")  # the rater's output: the tagger's cards, then its own, per image
    assert merged.count("source='tiny-qwen2vl'") == 2, merged
    assert merged.index("kind='detector'") < merged.index("source='tiny-qwen2vl'"), merged


@pytest.fixture(scope="module")
def gguf_comfy(vlm_comfy):
    """The tiny llama.cpp models (text GGUF + its mmproj) in a folder of their own."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from helpers.models import gguf_models as gguf
    built = gguf.build_gguf_models(vlm_comfy.models_dir / "saiten_vlm" / "qwen-gguf")
    built.llava_text.unlink()
    built.llava_mmproj.unlink()
    built.mismatched_mmproj.unlink()
    vlm_comfy.refresh_object_info()
    return vlm_comfy


@pytest.mark.parametrize("method", ["logprob", "generate"])
def test_llamacpp_through_the_loader(gguf_comfy, method):
    node = loader("qwen-gguf/tiny-qwen2vl-text.gguf", runtime="llama.cpp",
                  mmproj=_auto(gguf_comfy))
    h = gguf_comfy.run(graph(node, method, batch=2))
    text = h.text("3")
    assert [i for i, _ in LINE.findall(text)] == ["0", "1"], text


def test_a_known_gguf_is_fetched_with_its_paired_mmproj_and_scores(vlm_comfy, aesthetic_hub,
                                                                   tmp_path):
    """The loader's known Qwen2.5-VL GGUF, not there yet, with allow_download on: the Q4_K_M
    and the mmproj of the same repository come from the (fake) hub into their folder, and the
    rater scores with the pair through real llama.cpp."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from helpers.models import gguf_models as gguf

    from scoring.sources.vlm.files import known_entries

    (name, k), = [(n, k) for n, k in known_entries().items() if n.endswith(".gguf")]
    built = gguf.build_gguf_models(tmp_path / "gguf")
    text = next(f for f in k.model.files if "mmproj" not in f)
    proj = next(f for f in k.model.files if "mmproj" in f)
    aesthetic_hub.add(k.model.repo, {text: built.qwen_text.read_bytes(),
                                     proj: built.qwen_mmproj.read_bytes(),
                                     text.replace("Q4_K_M", "Q8_0"): b"not this one"})
    listed = vlm_comfy.refresh_object_info()["SaitenVLMLoader"]["input"]["required"]["model"]
    assert name in (listed[0] if isinstance(listed[0], list) else listed[1]["options"])
    off = vlm_comfy.run(graph(loader(name, runtime="llama.cpp", mmproj=_auto(vlm_comfy)),
                              "logprob", batch=1))
    assert "downloads are off" in off.text("2") + off.text("3")
    node = loader(name, runtime="llama.cpp", mmproj=_auto(vlm_comfy), allow_download=True)
    h = vlm_comfy.run(graph(node, "logprob", batch=2))
    folder = vlm_comfy.models_dir / "saiten_vlm" / k.name
    assert sorted(p.name for p in folder.iterdir()) == sorted([text, proj])
    assert [i for i, _ in LINE.findall(h.text("3"))] == ["0", "1"], h.text("3")


@pytest.fixture(scope="module")
def fake_server():
    from helpers.fakeapi import FakeAPI

    server = FakeAPI()
    yield server
    server.stop()


def test_openai_compatible_through_the_loader(vlm_comfy, fake_server):
    fake_server.script()  # plain rubric JSON answers
    node = loader(runtime="openai-compatible", base_url=fake_server.url, model_name="tiny",
                  api_key_env="SAITEN_TEST_UNSET_KEY", mmproj=_auto(vlm_comfy))
    h = vlm_comfy.run(graph(node, "generate", batch=2, label="server"))
    text = h.text("3")
    assert text.count("server: erotic=60 composition=55 appeal=70 typeset=50 overall=65") == 2
    bodies = fake_server.bodies()
    assert len(bodies) == 2 and {b["model"] for b in bodies} == {"tiny"}


def test_tagger_rater_aggregate_filter_save(vlm_comfy):
    """The whole ensemble with a local VLM: NudeNet and a tiny Qwen2-VL vote, the filter keeps
    the best two, and each saved PNG carries the verdict both sources are in."""
    g = graph(loader("family/tiny-qwen2vl", mmproj=_auto(vlm_comfy)), "logprob", label="qwen")
    g["1"] = {"class_type": "SaitenSampleImages", "inputs": {"size": 96}}
    g["4"] = nudenet_tagger(["1", 0])
    g["3"]["inputs"]["scores"] = ["4", 0]
    g["5"] = {"class_type": "SaitenEnsembleAggregate", "inputs": {
        "scores.scores0": ["3", 0], "min_sources": 2, "k": 2.5, "weights": "qwen=1.0"}}
    g["6"] = {"class_type": "SaitenScoreFilter", "inputs": {
        "images": ["1", 0], "verdicts": ["5", 0], "axis": "erotic", "mode": "top_k",
        "threshold": 0.0, "top_k": 2, "unscored": "block", "keep_best": False}}
    g["7"] = {"class_type": "SaitenSaveImage", "inputs": {
        "images": ["6", 0], "verdicts": ["6", 2], "filename_prefix": "ensemble"}}
    h = vlm_comfy.run(g)
    saved = h.files("7")
    assert len(saved) == 2, h.outputs
    for path in saved:
        verdict = read_png_scores(path)
        assert verdict is not None and verdict["unscored"] is None
        assert {"nudenet", "qwen"} <= set(verdict["used"]), verdict
        assert 0 <= verdict["axes"]["erotic"] <= 100
