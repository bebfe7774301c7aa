"""locales/{en,ja}/nodeDefs.json (ComfyUI's i18n format) against the LIVE node schemas: every
node id, every input (name + tooltip) and every output (name) has an entry in both languages;
the English one is the schema's own text wherever the schema has some. A failure lists
exactly which entries are missing, stale or out of date."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from comfy_harness import REPO
from schema_probe import load_schemas

LANGS = ("en", "ja")


@pytest.fixture(scope="module")
def schemas(comfy_root: Path) -> dict[str, dict]:
    return load_schemas(comfy_root, REPO)


def node_defs(lang: str) -> dict:
    return json.loads((REPO / "locales" / lang / "nodeDefs.json").read_text(encoding="utf-8"))


def problems(lang: str, schemas: dict[str, dict]) -> list[str]:
    defs, found = node_defs(lang), []
    where = f"locales/{lang}/nodeDefs.json"
    found += [f"{where}: {n} is not a node (stale entry)" for n in sorted(set(defs) - set(schemas))]
    for node, s in schemas.items():
        d = defs.get(node)
        if d is None:
            found.append(f"{where}: no entry for node {node}")
            continue
        for key in ("display_name", "description"):
            if not str(d.get(key, "")).strip():
                found.append(f"{where}: {node}.{key} is missing")
            elif lang == "en" and s[key] and d[key] != s[key]:
                found.append(f"{where}: {node}.{key} differs from the schema's {s[key]!r}")
        inputs = d.get("inputs", {})
        for name, tip in s["inputs"].items():
            entry = inputs.get(name, {})
            for key in ("name", "tooltip"):
                if not str(entry.get(key, "")).strip():
                    found.append(f"{where}: {node}.inputs.{name}.{key} is missing")
            if lang == "en" and tip and entry.get("tooltip") not in (None, "", tip):
                found.append(f"{where}: {node}.inputs.{name}.tooltip differs from the "
                             f"schema's {tip!r}")
        found += [f"{where}: {node}.inputs.{name} is not an input (stale entry)"
                  for name in sorted(set(inputs) - set(s["inputs"]))]
        outputs = d.get("outputs", {})
        for i, out in enumerate(s["outputs"]):
            entry = outputs.get(str(i), {})
            if not str(entry.get("name", "")).strip():
                found.append(f"{where}: {node}.outputs.{i}.name ({out['name']}) is missing")
            elif lang == "en" and entry["name"] != out["name"]:
                found.append(f"{where}: {node}.outputs.{i}.name should be {out['name']!r}")
        found += [f"{where}: {node}.outputs.{k} is not an output (stale entry)"
                  for k in sorted(set(outputs) - {str(i) for i in range(len(s["outputs"]))})]
    return found


@pytest.mark.parametrize("lang", LANGS)
def test_every_node_input_and_output_has_an_entry(lang, schemas):
    assert len(schemas) >= 12
    assert problems(lang, schemas) == []


def test_japanese_is_japanese(schemas):
    ja = node_defs("ja")
    for node in schemas:
        assert any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff"
                   for ch in ja[node]["description"]), node


def test_comfyui_serves_both_languages(comfy, schemas):
    i18n = comfy.get("/i18n")
    for lang in LANGS:
        served = i18n[lang]["nodeDefs"]
        assert {n: served[n] for n in schemas} == {n: node_defs(lang)[n] for n in schemas}


@pytest.mark.parametrize("lang", LANGS)
def test_every_node_has_a_help_page_naming_each_input(lang, schemas):
    missing = []
    for node, s in schemas.items():
        path = REPO / "web" / "docs" / (f"{node}.md" if lang == "en" else f"{node}/{lang}.md")
        if not path.is_file():
            missing.append(f"{path.relative_to(REPO)} does not exist")
            continue
        text = path.read_text(encoding="utf-8")
        missing += [f"{path.relative_to(REPO)} does not mention input `{name}`"
                    for name in s["inputs"] if f"`{name}`" not in text]
    assert missing == []


def test_comfyui_serves_the_help_pages(comfy, schemas):
    for node in schemas:
        for rel in (f"{node}.md", f"{node}/ja.md"):
            served = comfy.request("GET", f"/extensions/ComfyUI-Saiten/docs/{rel}")
            served = served.decode() if isinstance(served, bytes) else served
            assert served == (REPO / "web" / "docs" / rel).read_text(encoding="utf-8"), rel
