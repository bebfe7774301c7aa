"""`python -m scoring models`: the models Saiten knows and the ones you have; fetch one.

    python -m scoring models [--models DIR] [--json]
    python -m scoring models download NAME [--models DIR]

DIR is ComfyUI's models folder (default: the ComfyUI this pack is installed in); each family
has its folder there (`saiten_tagger`, `saiten_aesthetic`, `saiten_vlm`). A download goes
through the one checked, resumable path the nodes use, shows the size and checks the free
disk first, draws a byte progress bar, and resumes after Ctrl-C or a cut connection.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..core.errors import SourceError
from ..host.pack import comfyui_root
from ..host.transfer import human
from ..sources import known as catalogue_known
from ..sources.onnx.files import list_models
from ..sources.vlm.files import list_vlms


def models_dir(given: str | None) -> Path:
    """ComfyUI's models folder: `given`, else the ComfyUI this pack is in."""
    if given:
        return Path(given).expanduser()
    root = comfyui_root()
    if root is None:
        raise SourceError("no ComfyUI around this pack: give its models folder with --models DIR")
    return root / "models"


def _local(models: Path) -> dict[str, list[str]]:
    """What each family's folder holds (names relative to it)."""
    tagger = sorted(list_models([models / catalogue_known.ROOTS["tagger"]]))
    aes = models / catalogue_known.ROOTS["aesthetic"]
    onnx = sorted(p.parent.relative_to(aes).as_posix() for p in aes.glob("**/model.onnx")
                  if (p.parent / "meta.json").is_file()) if aes.is_dir() else []
    heads = sorted(p.relative_to(aes).as_posix() for suffix in ("*.pth", "*.safetensors")
                   for p in aes.glob(f"**/{suffix}")) if aes.is_dir() else []
    found, _ = list_vlms([models / catalogue_known.ROOTS["vlm"]])
    out = {"tagger": tagger, "aesthetic": onnx + heads, "vlm": found}
    for family in ("censor", "likeness"):  # one folder of ONNX files per model
        root = models / catalogue_known.ROOTS[family]
        out[family] = sorted({p.parent.name for p in root.glob("*/*.onnx")}) \
            if root.is_dir() else []
    return out


def rows(models: Path) -> list[dict[str, Any]]:
    """Every known model (installed or not), then every local model the catalogue does not
    know."""
    out, seen = [], set()
    for k in catalogue_known.known().values():
        root = models / k.root
        m = k.model
        out.append({"name": k.name, "family": k.family, "source": k.source,
                    "size": m.size or None, "vram": m.vram, "licence": m.licence,
                    "folder": str(k.dest(root)), "installed": k.present(root),
                    "from": m.url or m.repo, "note": m.note})
        seen.add((k.family, k.name))
    for family, names in _local(models).items():
        for name in names:
            if (family, name.split("/")[0]) not in seen:
                out.append({"name": name, "family": family, "source": "", "size": None,
                            "vram": "", "licence": "", "installed": True, "from": "",
                            "folder": str(models / catalogue_known.ROOTS[family] / name),
                            "note": "local, not in the catalogue"})
    return out


def render(table: list[dict[str, Any]]) -> str:
    head = ("NAME", "FAMILY", "SIZE", "VRAM", "LICENCE", "INSTALLED", "FOLDER")
    lines = [[r["name"], r["family"], human(r["size"]) if r["size"] else "—", r["vram"] or "—",
              r["licence"] or "—", "yes" if r["installed"] else "no", r["folder"]]
             for r in table]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*row).rstrip() for row in (head, *lines))


def _bar() -> Any:
    """progress(name, done, total) drawing a tqdm byte bar per file."""
    from tqdm.auto import tqdm

    bars: dict[str, Any] = {}

    def progress(name: str, done: int, total: int | None) -> None:
        bar = bars.get(name)
        if bar is None:
            bar = bars[name] = tqdm(total=total, initial=done, unit="B", unit_scale=True,
                                    unit_divisor=1000, desc=name)
        bar.update(done - bar.n)
        if total and done >= total:
            bar.close()

    return progress


def cmd_models(args: argparse.Namespace) -> int:
    try:
        return _models(args)
    except SourceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _models(args: argparse.Namespace) -> int:
    models = models_dir(args.models)
    if getattr(args, "action", None) == "download":
        k = catalogue_known.find(args.name)
        root = models / k.root
        try:
            dest = k.fetch(root, allow=True, progress=_bar(), say=print)
        except KeyboardInterrupt:
            print(f"interrupted: the partial file stays in {k.dest(root)}; run the same "
                  "command again to resume")
            return 130
        print(f"{k.name}: ready in {dest}")
        return 0
    table = rows(models)
    print(json.dumps(table, indent=2, ensure_ascii=False) if args.json else render(table))
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("models", help="the models Saiten knows and the ones you have; "
                                      "`models download NAME` fetches one")
    m.add_argument("--models", default=None, metavar="DIR",
                   help="ComfyUI's models folder (default: the ComfyUI this pack is in)")
    m.add_argument("--json", action="store_true", help="print the list as JSON")
    actions = m.add_subparsers(dest="action")
    d = actions.add_parser("download", help="fetch a known model into its folder")
    d.add_argument("name", help="a name from `python -m scoring models`")
    d.add_argument("--models", default=argparse.SUPPRESS, metavar="DIR",
                   help="ComfyUI's models folder (default: the ComfyUI this pack is in)")
    m.set_defaults(func=cmd_models)


__all__ = ["add_command", "cmd_models", "render", "rows"]
