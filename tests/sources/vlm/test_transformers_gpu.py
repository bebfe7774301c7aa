"""The transformers VLM's GPU decisions on a tiny random Qwen2-VL (real transformers, CPU).

Faked: only the host's memory answers (its device, its precision choice, the room it made)
and what torch does on a full card (an OutOfMemoryError from the model's forward)."""

from __future__ import annotations

import pytest
from helpers.models.tiny_hf import build_qwen2vl, sample_image

from scoring.host.memory import MemoryPolicy
from scoring.sources import ScoreContext, SourceError, create

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


class Host(MemoryPolicy):
    def __init__(self, device="cuda:0", dtype="fp16", free=None, recovers=True):
        self.dev, self.prec, self.free_bytes, self.recovers = device, dtype, free, recovers
        self.events = []

    def device(self):
        return self.dev

    def dtype(self, device):
        self.events.append(("dtype", device))
        return self.prec

    def reserve(self, nbytes, device):
        self.events.append(("reserve", nbytes, device))
        return self.free_bytes

    def recover(self, model, device):
        self.events.append(("recover", device))
        return self.recovers

    def loaded(self, model, nbytes, device):
        self.events.append(("loaded", device))

    def released(self, model):
        self.events.append(("released",))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_qwen2vl(tmp_path_factory.mktemp("vlm") / "tiny-qwen2vl")


def test_auto_precision_is_the_hosts_choice(model_dir):
    host = Host(dtype="fp16")  # what ComfyUI answers for compute capability 7
    vlm = create("vlm-transformers", model_dir=model_dir, memory=host)
    assert vlm._dtype_name() == "fp16" and ("dtype", "cuda:0") in host.events
    assert "fp16" in vlm.describe()
    assert create("vlm-transformers", model_dir=model_dir, memory=host,
                  dtype="bf16")._dtype_name() == "bf16"  # the user's choice stands


def test_a_model_that_does_not_fit_the_gpu_is_refused_with_the_way_out(model_dir):
    host = Host(free=1024)
    vlm = create("vlm-transformers", model_dir=model_dir, memory=host)
    with pytest.raises(SourceError) as e:
        vlm.load()
    text = str(e.value)
    assert "on cuda:0" in text and "nf4" in text and "GGUF" in text
    assert not vlm.loaded and [x[0] for x in host.events if x[0] != "dtype"] == ["reserve"]


def test_out_of_memory_while_scoring_evicts_and_retries(model_dir, monkeypatch):
    host = Host(device="cpu", dtype="fp32")
    vlm = create("vlm-transformers", model_dir=model_dir, memory=host, method="logprob",
                 comment=False)
    vlm.load()
    forward, calls = vlm._model.forward, []

    def full_card_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return forward(*args, **kwargs)

    monkeypatch.setattr(vlm._model, "forward", full_card_once)
    (card,), = vlm.score([sample_image(0)], ScoreContext())
    assert card.ok, card.abstained
    assert ("recover", "cpu") in host.events
    vlm.unload()


def test_out_of_memory_with_nothing_to_evict_says_so(model_dir, monkeypatch):
    host = Host(device="cpu", dtype="fp32", recovers=False)
    vlm = create("vlm-transformers", model_dir=model_dir, memory=host, method="logprob",
                 comment=False)
    vlm.load()

    def full_card(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(vlm._model, "forward", full_card)
    (card,), = vlm.score([sample_image(0)], ScoreContext())
    assert not card.ok and "nothing left to evict" in card.abstained
    vlm.unload()
