"""The judge and the HTTP VLM in a real ComfyUI started with decoy secrets and a proxy in its
environment, against fault-injecting servers on 127.0.0.1 (issues G and K):

- no secret of the process reaches any server, whatever the widgets say; a key goes only to
  the host the user bound it to, and an answer echoing it never gets it into any output;
- a proxy is used for other hosts but never for this machine; a redirect is not followed;
- a hung server costs its timeouts once: the next prompt abstains at once;
- after an outage the same graph re-executes; a fully scored result stays cached;
- key files inside the pack's web/ folder or behind a symlink in input/ are refused.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import pytest
from comfy_harness import free_port, nudenet_tagger, on_start
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fakeapi, fixtures_http

from helpers.fakeapi import FAKE_KEY, FakeAPI, assert_no_secret

pytest_plugins = ["helpers.fixtures_http"]

BOUND_KEY = "bound-SAITEN-0123456789abcdefXYZW"
DECOYS = {"HF_TOKEN": "hf_decoySAITEN0123456789abcdef", "XAI_API_KEY": FAKE_KEY,
          "OPENAI_API_KEY": "sk-decoySAITEN0123456789abcdef",
          "OPENAI_ORG_ID": "org-decoySAITEN0123456789",
          "OPENAI_PROJECT_ID": "proj_decoySAITEN01234",
          "OPENAI_ADMIN_KEY": "sk-admin-decoySAITEN0123456789",
          "OPENAI_CUSTOM_HEADERS": "Authorization: Bearer custom-decoySAITEN0123456789",
          "SAITEN_TEST_BOUND_KEY": BOUND_KEY}
PROXY_PORT = free_port()
CONFIG = Path(tempfile.mkdtemp(prefix="saiten-config-"))
atexit.register(shutil.rmtree, CONFIG, True)
COOLDOWN = 15.0  # ≫ the ~6 s between a breaker opening in one prompt and its use in the next
REMOTE_HOST = "judge.saiten.test"  # resolves nowhere: only the proxy can answer for it


@on_start
def _environment(models_dir: Path, env: dict[str, str]) -> None:
    env.update(DECOYS)
    proxy = f"http://127.0.0.1:{PROXY_PORT}"
    env.update(HTTP_PROXY=proxy, http_proxy=proxy, ALL_PROXY=proxy, all_proxy=proxy,
               NO_PROXY="", no_proxy="", SAITEN_CONFIG_DIR=str(CONFIG),
               SAITEN_HTTP_COOLDOWN=str(COOLDOWN))


def secrets() -> list[str]:
    """Every decoy value (and the distinctive parts of each) plus the home folder."""
    out = [str(Path.home())]
    for v in DECOYS.values():
        out += [v, *(t for t in v.split() if len(t) >= 12)]
    return out


def leaked(requests: list[dict], allowed: str | None = None) -> list[str]:
    """The secrets found in what servers received (`allowed`: the one bound key)."""
    found = []
    for req in requests:
        blob = json.dumps(req, ensure_ascii=False)
        found += [s for s in secrets() if s in blob and s != allowed]
    return found


@pytest.fixture(scope="module")
def proxy():
    """The fake server listening where HTTP(S)_PROXY points: a forward proxy for plain http."""
    server = FakeAPI(port=PROXY_PORT)
    yield server
    server.stop()


@pytest.fixture
def server():
    """A server of this test alone (its own origin, so its circuit breaker is its own)."""
    s = FakeAPI()
    s.script()
    yield s
    s.stop()


def bind(host: str, **entry) -> None:
    body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in entry.items())
    (CONFIG / "keys.toml").write_text(f'[hosts."{host}"]\n{body}', encoding="utf-8")


def unbind() -> None:
    (CONFIG / "keys.toml").unlink(missing_ok=True)


def judge_node(scores: list, url: str, **kw) -> dict:
    return {"class_type": "SaitenGrokJudge", "inputs": {
        "scores": scores, "base_url": url, "model": "grok-fake", "key_env": "",
        "temperature": 0.2, "timeout": 2.0, "max_calls": 50, "max_usd": 1.0, "force": True,
        "geval_samples": 0, "band_lo": 0.0, "band_hi": 100.0, "top_k": 0, "weight": 1.1, **kw}}


def loader_node(comfy, url: str, **kw) -> dict:
    req = comfy.object_info["SaitenVLMLoader"]["input"]["required"]
    first = {k: (req[k][0] if isinstance(req[k][0], list) else req[k][1]["options"])[0]
             for k in ("model", "mmproj")}
    return {"class_type": "SaitenVLMLoader", "inputs": {
        "runtime": "openai-compatible", **first, "dtype": "auto", "quantization": "none",
        "n_gpu_layers": -1, "chat_format": "auto", "base_url": url, "model_name": "fake-vlm",
        "api_key_env": "", "keep_loaded": True, "timeout": 1.0, **kw}}


def rater_node(images: list, vlm: list, scores: list | None = None, **kw) -> dict:
    inputs = {"images": images, "vlm": vlm, "method": "generate", "use_tags": True,
              "comment": True, "repeats": 1, "weight": 0.0, "label": "", **kw}
    if scores is not None:
        inputs["scores"] = scores
    return {"class_type": "SaitenVLMRater", "inputs": inputs}


def sources() -> dict:
    """Sample images, NudeNet's cards, and an output so that a prompt always has one."""
    return {"1": {"class_type": "SaitenSampleImages", "inputs": {"size": 64}},
            "2": nudenet_tagger(["1", 0]),
            "10": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}}}


def judged(scores: list, url: str, **kw) -> dict:
    """A judge node (as "3") and a preview of its prompt_text (an output)."""
    return {"3": judge_node(scores, url, **kw),
            "11": {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}}}


def saved(prefix: str, scores: list) -> dict:
    return {
        "7": {"class_type": "SaitenEnsembleAggregate", "inputs": {
            "scores.scores0": scores, "min_sources": 1, "k": 2.5, "weights": "grok=1.1"}},
        "8": {"class_type": "SaitenScoreFilter", "inputs": {
            "images": ["1", 0], "verdicts": ["7", 0], "axis": "overall", "mode": "threshold",
            "threshold": 0.0, "top_k": 4, "unscored": "pass", "keep_best": False}},
        "9": {"class_type": "SaitenSaveImage", "inputs": {
            "images": ["8", 0], "verdicts": ["8", 2], "filename_prefix": prefix}}}


def seconds(h) -> float:
    """How long a prompt ran (ComfyUI's own timestamps)."""
    stamps = {k: d.get("timestamp") for k, d in h.messages}
    end = stamps.get("execution_success") or stamps.get("execution_error")
    return (end - stamps["execution_start"]) / 1000


def cached_nodes(h) -> set[str]:
    return set((h.message("execution_cached") or {}).get("nodes", []))


def png_texts(h, node: str = "9") -> list[str]:
    out = []
    for png in h.files(node):
        with PILImage.open(png) as im:
            out.append(json.dumps(dict(im.text), ensure_ascii=False))
    return out


def test_no_secret_of_the_process_reaches_a_server_whatever_the_widgets(comfy, server, proxy):
    unbind()
    proxy.script()
    urls = [server.url, server.url.replace("127.0.0.1", "localhost"),
            f"http://{REMOTE_HOST}/v1"]
    names = ["", "XAI_API_KEY", "HF_TOKEN", "OPENAI_API_KEY", "HOME", "OPENAI_ORG_ID",
             "SAITEN_TEST_BOUND_KEY"]
    for url in urls:
        for name in names:
            h = comfy.run({**sources(), **judged(["2", 0], url, key_env=name)})
            assert h.text("3") and (not name or "key_env is ignored" in h.text("3"))
            vlm = {**sources(), "3": loader_node(comfy, url, api_key_env=name),
                   "4": rater_node(["1", 0], ["3", 0], ["2", 0])}
            assert comfy.run(vlm).text("4")
    local, remote = server.requests(), proxy.requests()
    assert len(local) >= 2 * len(names) * 2 and len(remote) >= len(names) * 2
    for req in local + remote:
        h = {k.lower() for k in req["headers"]}
        assert "authorization" not in h and not [k for k in h if "openai" in k], req["headers"]
    assert leaked(local + remote) == []
    # the proxy saw only the other host: no request for this machine went through it
    assert all(r["path"].startswith(f"http://{REMOTE_HOST}:80/v1/") for r in remote)


def test_a_bound_key_goes_to_its_host_only_and_an_echo_of_it_is_redacted(comfy, server,
                                                                          proxy):
    bind(REMOTE_HOST, env="SAITEN_TEST_BOUND_KEY", http=True)
    try:
        proxy.script(default={"kind": "echo_key"})
        prompt = {**sources(), **judged(["2", 0], f"http://{REMOTE_HOST}/v1", force=False,
                                     key_env="XAI_API_KEY", model="grok-echo"),
                  **saved("echo", ["3", 0])}
        h = comfy.run(prompt)
        reqs = proxy.requests()
        assert reqs and all(r["headers"].get("Authorization") == f"Bearer {BOUND_KEY}"
                            for r in reqs)
        assert leaked(reqs, allowed=BOUND_KEY) == []
        assert "your key *** looks fine" in h.text("3") and "SAITEN_TEST_BOUND_KEY" in h.text("3")
        user = comfy.base / "user" / "saiten"
        with sqlite3.connect(user / "judge_cache.sqlite") as db:
            cache = json.dumps(db.execute("SELECT * FROM answers").fetchall())
        assert "looks fine" in cache
        outputs = [h.text("3"), comfy.get(f"/history/{h.prompt_id}"), *png_texts(h), cache,
                   (user / "judge_cost.jsonl").read_text(), comfy.log(400_000)]
        assert png_texts(h) and "grok" in png_texts(h)[0]
        assert_no_secret(*outputs, key=BOUND_KEY)
        bind("other.saiten.test", env="SAITEN_TEST_BOUND_KEY", http=True)  # not this host
        proxy.script()
        comfy.run({**sources(), **judged(["2", 0], f"http://{REMOTE_HOST}/v1", weight=2.0)})
        assert proxy.requests() and leaked(proxy.requests()) == []
    finally:
        unbind()


def test_a_redirect_never_takes_the_image_to_another_server(comfy, server):
    target = FakeAPI()
    try:
        target.script()
        server.script(default={"kind": "redirect", "code": 307,
                               "location": f"{target.url}/chat/completions"})
        h = comfy.run({**sources(), "3": loader_node(comfy, server.url),
                       "4": rater_node(["1", 0], ["3", 0])})
        assert "HTTP 307: the server redirects to" in h.text("4")
        assert server.requests() and target.requests() == []
    finally:
        target.stop()


def test_a_hung_server_stalls_one_prompt_at_most_and_the_next_abstains_at_once(comfy):
    judge_api, vlm_api = FakeAPI(), FakeAPI()
    try:
        for api in (judge_api, vlm_api):
            api.script(default={"kind": "delay", "seconds": 600})  # never answers in time

        def prompt(weight: float) -> dict:
            return {**sources(), "3": loader_node(comfy, vlm_api.url),
                    "4": rater_node(["1", 0], ["3", 0], ["2", 0], weight=weight),
                    "5": judge_node(["4", 0], judge_api.url, weight=weight),
                    "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 1]}}}

        comfy.run({**sources()})  # NudeNet loaded and cached: the prompts time the servers
        first_id, second_id = comfy.queue(prompt(1.0)), comfy.queue(prompt(2.0))
        first, second = comfy.wait(first_id, 120), comfy.wait(second_id, 120)
        assert first.ok and second.ok
        t1, t2 = seconds(first), seconds(second)
        print(f"hung judge + VLM server: first prompt {t1:.1f} s, second {t2:.1f} s")
        # first: VLM 2 attempts + 1 (1 s each), judge 3 attempts (2 s each), then skipped;
        # bounded by those timeouts, not by the servers' 600 s
        assert 6.0 <= t1 < 60.0, t1
        assert t2 < t1 / 2, (t1, t2)  # the second sent nothing (the requests below)
        assert "VLM server unreachable since" in second.text("4")
        assert "judge unreachable since" in second.text("5") and "retrying at" in second.text("5")
        took = re.search(r"gave up after 2 attempts in ([0-9.]+) s", first.text("4"))
        assert took and 2 * 1.0 <= float(took[1]) < t1  # the real elapsed time
        assert len(judge_api.requests()) == 3 and len(vlm_api.requests()) == 3
    finally:
        judge_api.stop()
        vlm_api.stop()


def test_after_an_outage_the_same_graph_runs_again_and_a_full_result_stays_cached(comfy):
    judge_api, vlm_api = FakeAPI(), FakeAPI()
    try:
        judge_api.script(default={"kind": "status", "code": 500, "message": "overloaded"})
        vlm_api.script(default={"kind": "ok", "content": "I'm sorry, but I can't help with that."})
        prompt = {**sources(), "3": loader_node(comfy, vlm_api.url),
                  "4": rater_node(["1", 0], ["3", 0], ["2", 0]),
                  "5": judge_node(["4", 0], judge_api.url, force=False, model="grok-outage"),
                  **saved("outage", ["5", 0])}
        down = comfy.run(prompt)
        assert "HTTP 500" in down.text("5") and "refused" in down.text("4")
        assert not any("grok" in json.loads(json.loads(t)["saiten"])["used"]
                       for t in png_texts(down))
        judge_api.script()  # both servers recover
        vlm_api.script()
        # The judge's circuit breaker opened during `down`: COOLDOWN s after it ended, it
        # lets a probe through. A wait of at least the cool-down of another process's breaker
        # (its clock cannot be driven from here): load can only lengthen it, never fail it.
        # The breaker's timing itself, on a driven clock: tests/remote/test_breaker.py.
        time.sleep(COOLDOWN)
        up = comfy.run(prompt)
        assert {"4", "5"}.isdisjoint(cached_nodes(up)), cached_nodes(up)
        assert "abstained" not in up.text("5") and "abstained" not in up.text("4")
        assert all("grok" in json.loads(json.loads(t)["saiten"])["used"] for t in png_texts(up))
        calls = len(judge_api.requests()), len(vlm_api.requests())
        again = comfy.run(prompt)
        assert {"4", "5"} <= cached_nodes(again)
        assert (len(judge_api.requests()), len(vlm_api.requests())) == calls
        # a budget abstention is a fault too: the next queue tries again
        short = {**prompt, "5": judge_node(["4", 0], judge_api.url, force=True, max_calls=1,
                                           model="grok-outage")}
        first = comfy.run(short)
        assert "budget exhausted" in first.text("5")
        assert "5" not in cached_nodes(comfy.run(short))
    finally:
        judge_api.stop()
        vlm_api.stop()


def test_key_files_in_the_packs_web_folder_or_behind_an_input_symlink_are_refused(comfy,
                                                                                   proxy):
    web_key = comfy.pack_dir / "web" / "saiten-test-key.txt"
    web_key.write_text(BOUND_KEY)
    link = comfy.input_dir / "saiten-config"
    try:
        proxy.script()
        bind(REMOTE_HOST, file=str(web_key), http=True)
        h = comfy.run({**sources(), **judged(["2", 0], f"http://{REMOTE_HOST}/v1", weight=3.0)})
        assert "refusing the key file" in h.text("3") and "web" in h.text("3")
        hidden = CONFIG / "judge_key"
        hidden.write_text(BOUND_KEY)
        bind(REMOTE_HOST, file=str(hidden), http=True)
        link.symlink_to(CONFIG, target_is_directory=True)
        h = comfy.run({**sources(), **judged(["2", 0], f"http://{REMOTE_HOST}/v1", weight=3.5)})
        assert "refusing the key" in h.text("3") and "saiten-config serves it" in h.text("3")
        assert proxy.requests() == []
        assert_no_secret(h.text("3"), comfy.get(f"/history/{h.prompt_id}"), key=BOUND_KEY)
    finally:
        web_key.unlink(missing_ok=True)
        link.unlink(missing_ok=True)
        unbind()
