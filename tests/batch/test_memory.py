"""The CLI's memory policy (`scoring.batch.memory`) beside a scripted ComfyUI on 127.0.0.1:
before a GPU load it waits for the ComfyUI beside it and asks it to free memory, once until
ComfyUI is busy again; after an out-of-memory error it asks again."""

from __future__ import annotations

from scoring.batch.comfy_neighbour import ComfyNeighbour


def test_the_cli_memory_policy_makes_room_beside_comfyui_before_a_gpu_load(fake):
    """What a source's `memory.reserve(nbytes, "cuda")` does from the CLI: wait for the
    ComfyUI beside it, ask it to free (once), then report the free VRAM (unknown here)."""
    from scoring.batch.comfy_neighbour import Beside
    from scoring.batch.memory import CliMemory, cuda_device, nvidia_driver

    fake.answer("busy")
    beside = Beside(ComfyNeighbour(fake.url, poll=0.05))
    memory = CliMemory(beside.make_room, beside.free_again, device="cuda:0")
    assert memory.device() == "cuda:0"
    assert memory.reserve(1 << 30, "cpu") is None and fake.frees == []  # RAM: no fuss
    free = memory.reserve(1 << 30, "cuda:0")
    assert len(fake.frees) == 1 and len(fake.polls) == 2  # waited out "busy", then freed
    assert free is None or free > 0
    memory.reserve(1 << 30, "cuda:0")
    assert len(fake.frees) == 1  # once until ComfyUI is busy again
    assert memory.recover(None, "cuda:0") and len(fake.frees) == 2  # after an OOM
    assert not memory.recover(None, "cpu")
    if not nvidia_driver():
        assert cuda_device() == "cpu" and CliMemory().device() == "cpu"
