"""The one download path, against a fake Hub on 127.0.0.1 (HF_ENDPOINT) and a CDN on another
port: sizes announced and disk checked first, byte progress, checksums, resume after a cut
connection and after a cancel, gated repositories, the user's Hub cache, offline, a full
tmpfs — and nothing half-written under a final name. Also the plain `download()` of a
repository sub-folder and a gated repository on the simpler hub of tests/helpers/hub.py."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from helpers.tmpfs import tmpfs

from scoring.core.errors import Cancelled, SourceError
from scoring.host import download, transfer
from scoring.host.download import Wanted

BIG = os.urandom(300_000)   # an LFS file (served through the CDN)
SMALL = b'{"labels": ["worst", "low"]}'
REPO = "deepghs/anime_aesthetic"


@pytest.fixture
def hub(fake_hub):
    fake_hub.add(REPO, {"m/model.onnx": BIG, "m/meta.json": SMALL})
    return fake_hub


def files() -> list[Wanted]:
    return download.hub_files(REPO, ("model.onnx", "meta.json"), subfolder="m")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetches_once_with_sizes_progress_and_checksums(hub, tmp_path):
    said, seen = [], []
    dest = download.fetch(files(), tmp_path / "m", allow=True, say=said.append,
                          progress=lambda *a: seen.append(a))
    assert (dest / "model.onnx").read_bytes() == BIG and (dest / "meta.json").read_bytes() == SMALL
    assert leftovers(dest) == ["meta.json", "model.onnx"]              # no part, no metadata
    assert "300.0 KB" in said[0] and "model.onnx" in said[0]           # shown before any GET
    big = [s for s in seen if s[0] == "model.onnx"]
    assert big[-1] == ("model.onnx", len(BIG), len(BIG)) and len(big) > 2
    assert hub.gets("/cdn/" + hashlib.sha256(BIG).hexdigest())         # LFS went to the CDN
    n = len(hub.requests)
    download.fetch(files(), dest, allow=True)
    assert len(hub.requests) == n                                        # present: no request


def test_not_allowed_or_offline_says_what_to_put_where(hub, tmp_path, monkeypatch):
    with pytest.raises(SourceError) as e:
        download.fetch(files(), tmp_path / "m", allow=False)
    text = str(e.value)
    assert "put model.onnx and meta.json in" in text and "allow_download" in text
    assert f"{hub.url}/{REPO}" in text and not hub.requests
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceError, match="offline"):
        download.fetch(files(), tmp_path / "m", allow=True)
    assert not hub.requests and not (tmp_path / "m").exists()


def test_offline_uses_the_users_hub_cache(hub, tmp_path, monkeypatch):
    from huggingface_hub import hf_hub_download

    from scoring.host import hub as hubmod

    for f in ("m/model.onnx", "m/meta.json"):          # the user fetched them once, elsewhere
        hf_hub_download(REPO, f, endpoint=hub.url, cache_dir=hubmod.cache_dir())
    assert str(hubmod.cache_dir()).startswith(str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = len(hub.requests)
    dest = download.fetch(files(), tmp_path / "m", allow=True)
    assert (dest / "model.onnx").read_bytes() == BIG and len(hub.requests) == n


def test_a_cut_connection_resumes_with_a_range_request(hub, tmp_path):
    hub.cut["m/model.onnx"] = 100_000
    dest = download.fetch(files(), tmp_path / "m", allow=True)
    assert (dest / "model.onnx").read_bytes() == BIG
    gets = hub.gets("/cdn/" + hashlib.sha256(BIG).hexdigest())
    assert "range" not in gets[0] and gets[1]["range"] == "bytes=100000-"


def test_a_cancel_keeps_the_part_and_the_next_try_resumes(hub, tmp_path):
    hub.delay = 0.001
    seen: list[int] = []
    with pytest.raises(Cancelled):
        download.fetch(files(), tmp_path / "m", allow=True,
                       progress=lambda name, done, total: seen.append(done),
                       interrupted=lambda: bool(seen) and seen[-1] >= 100_000)
    folder = tmp_path / "m"
    assert not (folder / "model.onnx").exists()                         # nothing looks complete
    parts = [p for p in folder.iterdir() if p.name.endswith(".part")]
    assert len(parts) == 1 and parts[0].name.startswith(".model.onnx.")
    kept = parts[0].stat().st_size
    assert 100_000 <= kept < len(BIG)
    hub.delay = 0.0
    download.fetch(files(), folder, allow=True)
    assert (folder / "model.onnx").read_bytes() == BIG
    assert hub.gets("/cdn/" + hashlib.sha256(BIG).hexdigest())[-1]["range"] == f"bytes={kept}-"
    assert leftovers(folder) == ["meta.json", "model.onnx"]


def test_gated_repository_says_exactly_what_to_do(hub, tmp_path, monkeypatch):
    hub.gated.add(REPO)
    with pytest.raises(SourceError) as e:
        download.fetch(files(), tmp_path / "m", allow=True)
    text = str(e.value)
    assert f"{hub.url}/{REPO}" in text and "accept its terms" in text
    assert "HF_TOKEN" in text and "hf auth login" in text and "widget" in text
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token_0123456789abcdef")
    with pytest.raises(SourceError, match="gated"):
        download.fetch(files(), tmp_path / "m", allow=True)
    assert any(h.get("authorization", "").startswith("Bearer hf_wrong") for _, _, h in
               hub.requests)
    monkeypatch.setenv("HF_TOKEN", hub.token)
    dest = download.fetch(files(), tmp_path / "m", allow=True)
    assert (dest / "model.onnx").read_bytes() == BIG
    cdn = [h for _, p, h in hub.requests if p.startswith("/cdn/")]
    assert cdn and all("authorization" not in h for h in cdn)          # the token stays home
    assert all(hub.token not in str(h) for _, p, h in hub.requests if p.startswith("/cdn/"))


def test_a_file_published_elsewhere_is_checked_against_its_pinned_sha256(hub, tmp_path):
    head = os.urandom(5000)
    url = hub.publish("discus0434/aesthetic-predictor-v2-5/raw/main/head.pth", head)
    good = Wanted("head.pth", url=url, size=len(head), sha256=hashlib.sha256(head).hexdigest())
    dest = download.fetch([good], tmp_path / "h", allow=True)
    assert (dest / "head.pth").read_bytes() == head
    bad = Wanted("other.pth", url=url, size=len(head), sha256="0" * 64)
    with pytest.raises(SourceError, match="checksum mismatch"):
        download.fetch([bad], tmp_path / "h", allow=True)
    assert leftovers(tmp_path / "h") == ["head.pth"]                    # nothing else kept
    with pytest.raises(ValueError, match="pinned sha256"):
        Wanted("x.pth", url=url)


def test_a_changed_hub_file_is_refused_and_nothing_kept(hub, tmp_path):
    w = Wanted("model.onnx", repo=REPO, remote="m/model.onnx", size=len(BIG),
               sha256=hashlib.sha256(b"what the catalogue pinned").hexdigest())
    with pytest.raises(SourceError, match="checksum mismatch"):
        download.fetch([w], tmp_path / "m", allow=True)
    assert leftovers(tmp_path / "m") == []


def test_a_whole_repository_folder_with_its_listing_checksums(hub, tmp_path):
    hub.add("Minthy/ToriiGate-v0.4-2B", {"config.json": b"{}", "model.safetensors": BIG,
                                          "README.md": b"# card", "sub/tokenizer.json": SMALL})
    wanted = download.repo_files("Minthy/ToriiGate-v0.4-2B", ("*.json", "*.safetensors"))
    assert [w.name for w in wanted] == ["config.json", "model.safetensors", "sub/tokenizer.json"]
    assert wanted[0].sha1 and wanted[1].sha256 == hashlib.sha256(BIG).hexdigest()
    dest = download.fetch(wanted, tmp_path / "t", allow=True)
    assert (dest / "sub" / "tokenizer.json").read_bytes() == SMALL
    assert not (dest / "README.md").exists()
    (dest / "config.json").unlink()
    hub.repos["Minthy/ToriiGate-v0.4-2B"]["config.json"] = b'{"changed": 1}'
    with pytest.raises(SourceError, match="the Hub has 14 bytes, 2 were expected"):
        download.fetch(wanted, dest, allow=True)                       # listing vs served
    hub.repos["Minthy/ToriiGate-v0.4-2B"]["config.json"] = b"[]"      # same size, other bytes
    with pytest.raises(SourceError, match="checksum mismatch"):
        download.fetch(wanted, dest, allow=True)
    assert not (dest / "config.json").exists()
    assert not [p for p in dest.iterdir() if p.name.endswith(".part")]


def test_a_full_disk_is_refused_before_the_first_byte(hub, tmp_path):
    with tmpfs(tmp_path / "small", "200k") as small:
        with pytest.raises(SourceError, match="not enough free disk space") as e:
            download.fetch(files(), small / "m", allow=True)
        assert "300.0 KB" in str(e.value)
        assert not hub.gets("model.onnx") and not hub.gets("/cdn/" + hashlib.sha256(
            BIG).hexdigest())
        assert not (small / "m").exists() or leftovers(small / "m") == []


def test_a_disk_filling_up_mid_file_keeps_nothing(hub, tmp_path):
    url = hub.publish("big.bin", BIG)
    with tmpfs(tmp_path / "small", "200k") as small:
        with pytest.raises(SourceError, match="disk is full"):
            transfer.fetch(url, small / "big.bin", size=len(BIG),
                           sha256=hashlib.sha256(BIG).hexdigest())
        assert leftovers(small) == []


def test_subfolder_files_land_next_to_each_other(tmp_path, hub_env):
    hub_env({"cella110n/cl_tagger_v2:v2_00/a.json": b"{}", "cella110n/cl_tagger_v2:v2_00/b": b"1"})
    dest = download.fetch(download.hub_files("cella110n/cl_tagger_v2", ("a.json", "b"),
                                             "v2_00"), tmp_path / "cl", allow=True)
    assert (dest / "a.json").read_bytes() == b"{}" and (dest / "b").read_bytes() == b"1"


def test_gated_repo_needs_hf_token(tmp_path, hub_env, monkeypatch):
    hub = hub_env({"cella110n/cl_tagger_v2:v2_00/model.onnx": b"onnx"}, gated=True)
    with pytest.raises(SourceError, match="HF_TOKEN"):
        download.fetch(download.hub_files("cella110n/cl_tagger_v2", ("model.onnx",), "v2_00"),
                       tmp_path / "cl", allow=True)
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    download.fetch(download.hub_files("cella110n/cl_tagger_v2", ("model.onnx",), "v2_00"),
                   tmp_path / "cl", allow=True)
    assert (tmp_path / "cl" / "model.onnx").read_bytes() == b"onnx"
    assert hub.requests
