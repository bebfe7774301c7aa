"""Keys are bound to hosts by the user's configuration: the built-in xAI binding, keys.toml
entries (host or host:port, https unless allowed), none for this machine or an unknown host,
and key files (and the keys file) refused inside served folders, symlinks included."""

from __future__ import annotations

import pytest
from helpers.fakeapi import FAKE_KEY, assert_no_secret

from scoring.remote.keys import KeyConfigError, is_loopback, key_for, load_bindings


@pytest.fixture
def config(tmp_path, monkeypatch):
    """An empty config folder; no key variables set."""
    folder = tmp_path / "config"
    folder.mkdir()
    monkeypatch.setenv("SAITEN_CONFIG_DIR", str(folder))
    for var in ("SAITEN_KEYS_FILE", "SAITEN_XAI_KEY_FILE", "XAI_API_KEY", "MY_LAN_KEY"):
        monkeypatch.delenv(var, raising=False)
    return folder


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.10", "[::1]", "0.0.0.0",
                                  "[::ffff:127.0.0.1]", "app.localhost"])
def test_this_machine_is_loopback_and_gets_no_key_even_when_bound(config, monkeypatch, host):
    monkeypatch.setenv("XAI_API_KEY", FAKE_KEY)
    (config / "keys.toml").write_text(f'[hosts]\n"{host.strip("[]")}" = "XAI_API_KEY"\n')
    assert is_loopback(host)
    hk = key_for(f"http://{host}:8080/v1")
    assert hk.value is None and "this machine" in hk.why


def test_builtin_xai_binding_env_then_file_and_https_only(config, monkeypatch):
    assert key_for("https://api.x.ai/v1").value is None
    assert "set the environment variable XAI_API_KEY" in key_for("https://api.x.ai/v1").why
    (config / "xai_key").write_text(FAKE_KEY + "\n")
    assert key_for("https://api.x.ai/v1").value == FAKE_KEY
    monkeypatch.setenv("XAI_API_KEY", "from-env")
    assert key_for("https://api.x.ai/v1").value == "from-env"
    assert key_for("https://API.X.AI:443/v1").value == "from-env"
    plain = key_for("http://api.x.ai/v1")
    assert plain.value is None and "https only" in plain.why
    for other in ("https://api.x.ai.evil.example/v1", "https://evil.example/api.x.ai/v1",
                  "https://x.ai/v1", "https://api.openai.com/v1"):
        hk = key_for(other)
        assert hk.value is None and "no key is bound" in hk.why, other


def test_keys_file_binds_hosts_and_ports_to_variables(config, monkeypatch):
    monkeypatch.setenv("MY_LAN_KEY", "lan-secret-value")
    (config / "keys.toml").write_text('[hosts."vllm.lan:8000"]\nenv = "MY_LAN_KEY"\n'
                                      'http = true\n')
    assert {b.host for b in load_bindings()} >= {"vllm.lan:8000", "api.x.ai"}
    assert key_for("http://vllm.lan:8000/v1").value == "lan-secret-value"
    assert key_for("http://vllm.lan:8001/v1").value is None  # another port: another server
    (config / "keys.toml").write_text('[hosts]\n"gpu.example.com" = "MY_LAN_KEY"\n')
    assert key_for("https://gpu.example.com:9443/v1").value == "lan-secret-value"
    assert key_for("http://gpu.example.com/v1").value is None  # http needs http = true
    (config / "keys.toml").write_text('[hosts]\n"gpu.example.com" = { file = "k", x = 1 }\n')
    with pytest.raises(KeyConfigError, match="unknown keys"):
        key_for("https://gpu.example.com/v1")


def test_key_files_inside_served_folders_are_refused_symlinks_too(config, tmp_path,
                                                                   monkeypatch):
    comfy = tmp_path / "ComfyUI"
    web = tmp_path / "packs" / "ComfyUI-Saiten" / "web"  # a pack linked into custom_nodes
    inp = comfy / "input"
    for d in (web, inp, comfy / "custom_nodes"):
        d.mkdir(parents=True)
    (comfy / "custom_nodes" / "ComfyUI-Saiten").symlink_to(web.parent)
    served = [comfy, inp, comfy / "custom_nodes", comfy / "custom_nodes" / "ComfyUI-Saiten",
              web]
    (web / "key.txt").write_text(FAKE_KEY)
    monkeypatch.setenv("SAITEN_XAI_KEY_FILE", str(web / "key.txt"))
    with pytest.raises(KeyConfigError, match="inside") as info:
        key_for("https://api.x.ai/v1", served)
    assert_no_secret(str(info.value))
    # the key file in the config folder, but served through a symlink inside input/
    monkeypatch.delenv("SAITEN_XAI_KEY_FILE")
    (config / "xai_key").write_text(FAKE_KEY)
    assert key_for("https://api.x.ai/v1", served).value == FAKE_KEY
    (inp / "shared").symlink_to(config)
    with pytest.raises(KeyConfigError, match=r"symlink .*input/shared serves it"):
        key_for("https://api.x.ai/v1", served)
    # and the keys file itself, which decides where keys go, inside a served folder
    (inp / "shared").unlink()
    monkeypatch.setenv("SAITEN_KEYS_FILE", str(inp / "keys.toml"))
    (inp / "keys.toml").write_text('[hosts]\n"evil.example" = "XAI_API_KEY"\n')
    with pytest.raises(KeyConfigError, match="keys file"):
        key_for("https://evil.example/v1", served)
