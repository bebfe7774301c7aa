"""ComfyUI metadata from PNG text chunks: the graphs ComfyUI writes (API `prompt`, UI
`workflow`), followed through links to the text encoder and checkpoint loader."""

from __future__ import annotations

import json

from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from scoring.report.comfy_meta import from_prompt, from_text, read_meta, workflow_to_prompt

TXT2IMG = {  # ComfyUI's default graph, with a LoRA and a seed fed by a primitive node
    "3": {"class_type": "KSampler", "inputs": {
        "seed": ["10", 0], "steps": 28, "cfg": 6.5, "sampler_name": "dpmpp_2m",
        "scheduler": "karras", "denoise": 1.0, "model": ["11", 0], "positive": ["12", 0],
        "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "anima-v2.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 832, "height": 1216,
                                                       "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "1girl, 桜, masterpiece",
                                                     "clip": ["11", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "lowres, bad hands",
                                                     "clip": ["11", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}},
    "10": {"class_type": "PrimitiveInt", "inputs": {"value": 123456789}},
    "11": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1],
                                                  "lora_name": "style.safetensors",
                                                  "strength_model": 0.8, "strength_clip": 0.8}},
    "12": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0],
                                                           "conditioning_2": ["7", 0]}},
}


def test_txt2img_graph():
    assert from_prompt(TXT2IMG) == {
        "seed": 123456789, "steps": 28, "cfg": 6.5, "sampler": "dpmpp_2m",
        "scheduler": "karras", "denoise": 1.0, "checkpoint": "anima-v2.safetensors",
        "loras": ["style.safetensors"], "prompt": "1girl, 桜, masterpiece",
        "negative": "lowres, bad hands"}


def test_hires_fix_reads_the_last_sampler():
    g = json.loads(json.dumps(TXT2IMG))
    g["20"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "add_noise": "enable", "noise_seed": 42, "steps": 12, "cfg": 5.0,
        "sampler_name": "euler", "scheduler": "normal", "start_at_step": 6,
        "end_at_step": 12, "return_with_leftover_noise": "disable", "model": ["4", 0],
        "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["3", 0]}}
    meta = from_prompt(g)
    assert meta["seed"] == 42 and meta["steps"] == 12 and meta["sampler"] == "euler"
    assert meta["checkpoint"] == "anima-v2.safetensors" and "loras" not in meta


def test_sampler_custom_advanced():
    g = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors",
                                                     "weight_dtype": "default"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["9", 0]}},
        "3": {"class_type": "BasicGuider", "inputs": {"model": ["1", 0],
                                                      "conditioning": ["2", 0]}},
        "4": {"class_type": "RandomNoise", "inputs": {"noise_seed": 7}},
        "5": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "6": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 20,
                                                         "denoise": 1.0, "model": ["1", 0]}},
        "7": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["4", 0], "guider": ["3", 0], "sampler": ["5", 0], "sigmas": ["6", 0],
            "latent_image": ["8", 0]}},
    }
    assert from_prompt(g) == {"seed": 7, "steps": 20, "sampler": "euler",
                              "scheduler": "simple", "checkpoint": "flux1-dev.safetensors",
                              "prompt": "a cat"}


def test_ui_workflow_when_there_is_no_prompt_chunk():
    wf = {"nodes": [
        {"id": 3, "type": "KSampler", "widgets_values": [99, "randomize", 20, 7.0, "euler",
                                                         "normal", 1.0],
         "inputs": [{"name": "model", "link": 1}, {"name": "positive", "link": 4},
                    {"name": "negative", "link": 6}, {"name": "latent_image", "link": 2}]},
        {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["sd15.safetensors"]},
        {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["blue sky"],
         "inputs": [{"name": "clip", "link": 3}]},
        {"id": 7, "type": "CLIPTextEncode", "widgets_values": ["ugly"],
         "inputs": [{"name": "clip", "link": 5}]}],
        "links": [[1, 4, 0, 3, 0, "MODEL"], [4, 6, 0, 3, 1, "CONDITIONING"],
                  [6, 7, 0, 3, 2, "CONDITIONING"], [3, 4, 1, 6, 0, "CLIP"]]}
    assert workflow_to_prompt(wf)["3"]["inputs"]["positive"] == ["6", 0]
    meta = from_text({"workflow": json.dumps(wf)})
    assert meta == {"seed": 99, "steps": 20, "cfg": 7.0, "sampler": "euler",
                    "scheduler": "normal", "denoise": 1.0, "checkpoint": "sd15.safetensors",
                    "prompt": "blue sky", "negative": "ugly"}


def test_broken_or_missing_chunks_give_nothing(tmp_path):
    assert from_text({}) == {} and from_text({"prompt": "{not json"}) == {}
    assert from_text({"prompt": "[1, 2]", "workflow": '{"nodes": 3}'}) == {}
    cyclic = {"1": {"class_type": "KSampler", "inputs": {"seed": ["1", 0],
                                                         "positive": ["2", 0]}},
              "2": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["2", 0]}}}
    assert from_prompt(cyclic) == {}
    plain = tmp_path / "plain.png"
    PILImage.new("RGB", (4, 4)).save(plain)
    (tmp_path / "x.png").write_bytes(b"not a png")
    assert read_meta(plain) == {} and read_meta(tmp_path / "x.png") == {}


def test_read_from_a_png_file(tmp_path):
    info = PngInfo()
    info.add_text("prompt", json.dumps(TXT2IMG))  # what ComfyUI's SaveImage writes
    info.add_text("workflow", "{}")
    path = tmp_path / "ComfyUI_00001_.png"
    PILImage.new("RGB", (8, 8)).save(path, pnginfo=info)
    assert read_meta(path)["seed"] == 123456789
