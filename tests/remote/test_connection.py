"""The one JSON POST (`scoring.remote.connection`) against real servers on 127.0.0.1: no
ambient headers or keys from the environment, no redirects followed (nothing re-sent), a
proxy never for this machine, the user's proxy for other hosts with NO_PROXY honoured."""

from __future__ import annotations

import pytest
from helpers.calls import MSG
from helpers.fakeapi import FAKE_KEY, FakeAPI

from scoring.remote import Remote, RemoteError

pytest_plugins = ["helpers.fixtures_http"]

DECOYS = {"OPENAI_API_KEY": "sk-decoy-openai-0123456789abcdef",
          "OPENAI_ORG_ID": "org-decoy0123456789", "OPENAI_PROJECT_ID": "proj_decoy0123456789",
          "OPENAI_ADMIN_KEY": "sk-admin-decoy-0123456789",
          "OPENAI_CUSTOM_HEADERS": "Authorization: Bearer decoy-custom-0123456789\nX-Decoy: 1",
          "OPENAI_BASE_URL": "http://127.0.0.1:9/decoy", "HF_TOKEN": "hf_decoy0123456789abcdef",
          "XAI_API_KEY": FAKE_KEY}


@pytest.fixture
def other_server():
    """A second server: where a redirect or a proxy would send requests."""
    server = FakeAPI()
    try:
        server.script()
        yield server
    finally:
        server.stop()


def headers(req: dict) -> dict[str, str]:
    return {k.lower(): v for k, v in req["headers"].items()}


def test_a_keyless_call_carries_nothing_from_the_environment(fakeapi, monkeypatch):
    for k, v in DECOYS.items():
        monkeypatch.setenv(k, v)
    Remote(fakeapi.url, timeout=2).chat(model="m", messages=MSG)
    (req,) = fakeapi.requests()
    h = headers(req)
    assert "authorization" not in h and not [k for k in h if "openai" in k or "stainless" in k]
    assert req["path"] == "/v1/chat/completions"
    for value in DECOYS.values():
        for token in [value, *(t for t in value.split() if len(t) >= 8)]:
            assert token not in str(req), token


def test_a_redirect_is_not_followed_and_nothing_is_re_sent(fakeapi, other_server):
    fakeapi.script(default={"kind": "redirect", "code": 307,
                            "location": f"{other_server.url}/chat/completions"})
    r = Remote(fakeapi.url, api_key=FAKE_KEY, timeout=2)
    with pytest.raises(RemoteError, match=r"HTTP 307: the server redirects to .* not followed"):
        r.chat(model="m", messages=[{"role": "user", "content": "data:image/png;base64,AAAA"}])
    assert len(fakeapi.requests()) == 1 and other_server.requests() == []


@pytest.mark.parametrize("var", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
def test_a_proxy_is_never_used_for_this_machine(fakeapi, other_server, monkeypatch, var):
    for v in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(var, f"http://127.0.0.1:{other_server.port}")
    for url in (fakeapi.url, fakeapi.url.replace("127.0.0.1", "localhost")):
        assert Remote(url, timeout=2).chat(model="m", messages=MSG).content
    assert len(fakeapi.requests()) == 2 and other_server.requests() == []


def test_other_hosts_use_the_users_proxy_and_no_proxy_is_honoured(other_server, monkeypatch):
    for v in ("HTTP_PROXY", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{other_server.port}")
    url = "http://judge.saiten.test/v1"  # resolves nowhere: only the proxy can answer
    assert Remote(url, timeout=2).chat(model="m", messages=MSG).content
    (req,) = other_server.requests()
    assert req["path"] == "http://judge.saiten.test:80/v1/chat/completions"
    other_server.script()
    monkeypatch.setenv("no_proxy", "example.com,.saiten.test")
    with pytest.raises(RemoteError, match=r"connection failed \(direct\)"):
        Remote(url, timeout=2, max_retries=0).chat(model="m", messages=MSG)
    assert other_server.requests() == []
