"""The pack's routes on ComfyUI's server: a Batch Report's page, and the ratings it saves.

    GET  /saiten/report/<folder>/report.html     the page of a report folder in the output
    GET  /saiten/report/<folder>/thumbs/<x>.jpg  its thumbnails
    POST /saiten/ratings  {"report": folder, "ratings": [{file, rating, sha256, flag}, ...]}
         → <user directory>/saiten/ratings/<folder>.csv (ratings.csv, written atomically)

The page is served only as the pack wrote it (its scripts are the pack's own, byte for byte)
under a Content-Security-Policy that lets nothing else run, so a file in the output folder can
never run script on ComfyUI's origin. Every name is confined to its folder; the body is
size-limited and every rating validated before anything is written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import folder_paths
from aiohttp import web
from comfy_api.latest import io
from server import PromptServer

from ...scoring.core.atomic import write_text
from ...scoring.core.paths import confined
from ...scoring.ensemble import ratings
from ...scoring.report.page import RATINGS_ROUTE, REPORT_ROUTE, SCRIPTS, asset, policy

MAX_BODY = 8 << 20
"""A POST body larger than this is refused unread (100,000 ratings fit in ~8 MB)."""
MAX_PAGE = 256 << 20
RATINGS_DIR = "saiten/ratings"
OUTPUT, USER = "ComfyUI's output directory", "ComfyUI's user directory"
_THUMB = re.compile(r"^(?:thumbs|report_thumbs)/[A-Za-z0-9_.-]{1,200}\.jpg$")
_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer"}
STALE = ("<!doctype html><meta charset=utf-8><title>Saiten</title><p>This report was written by "
         "another version of ComfyUI-Saiten: run the Batch Report node again to refresh it (or "
         "open report.html from disk).</p><p>このレポートは別のバージョンの ComfyUI-Saiten "
         "で書かれています。Batch Report ノードをもう一度実行するか、report.html を直接"
         "開いてください。</p>")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=_HEADERS)


def report_file(rel: str) -> tuple[Path, bool]:
    """(the file, whether it is the page) for `<folder>/report.html` or a thumbnail of it
    under the output directory; ValueError for anything else."""
    if rel.endswith("/report.html"):
        folder, page = rel[: -len("/report.html")], True
    else:
        folder, _, tail = rel.rpartition("/")
        head, _, name = folder.rpartition("/")
        folder, page = head, False
        if not (head and _THUMB.match(f"{name}/{tail}")):
            raise ValueError("only a report page and its thumbnails are served here")
    base = confined(folder, folder_paths.get_output_directory(), what="report folder",
                    where=OUTPUT, file=False)
    path = base / ("report.html" if page else rel[len(folder) + 1:])
    if not path.resolve().is_relative_to(base) or not path.is_file():
        raise FileNotFoundError(rel)
    return path, page


async def serve_report(request: web.Request) -> web.StreamResponse:
    try:
        path, page = report_file(request.match_info["path"])
    except ValueError as e:
        return _error(400, str(e))
    except (FileNotFoundError, OSError):
        return _error(404, "no such report file")
    if not page:
        return web.FileResponse(path, headers={**_HEADERS, "Content-Type": "image/jpeg"})
    if path.stat().st_size > MAX_PAGE:
        return _error(413, "report page too large")
    text = path.read_text(encoding="utf-8", errors="replace")
    ours = all(f"<script>{asset(s)}</script>" in text for s in SCRIPTS)
    return web.Response(text=text if ours else STALE, content_type="text/html", charset="utf-8",
                        headers={**_HEADERS, "Content-Security-Policy": policy()})


def ratings_name(report: str) -> str:
    """The CSV's file name for a report folder: its path with every character outside
    letters, digits, '-', '_' and '.' made '_' (so never a path of its own)."""
    name = re.sub(r"[^\w.-]", "_", report.strip().strip("/"))[:120].lstrip(".")
    if not name or set(name) <= {"_"}:
        raise ValueError("report must name the report folder")
    return name + ".csv"


def parse_body(raw: bytes) -> tuple[str, list[ratings.Rating]]:
    """(report folder, its ratings) from the page's JSON; ValueError naming what is wrong."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError("the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("report"), str) \
            or not isinstance(data.get("ratings"), list):
        raise ValueError('expected {"report": folder, "ratings": [...]}')
    rows = data["ratings"]
    if len(rows) > ratings.MAX_ROWS:
        raise ValueError(f"more than {ratings.MAX_ROWS} ratings")
    out = []
    for n, r in enumerate(rows, 1):
        if not isinstance(r, dict):
            raise ValueError(f"rating {n}: expected {{file, rating, sha256, flag}}")
        out.append(ratings.check(ratings.Rating(r.get("file"), r.get("rating"),
                                                r.get("sha256", "") or "", r.get("flag", "") or ""),
                                 f"rating {n}"))
    return data["report"], out


async def save_ratings(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        return _error(415, "send the ratings as application/json")
    if request.content_length is None or request.content_length > MAX_BODY:
        return _error(413, f"the body must be at most {MAX_BODY >> 20} MB, with its length given")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        return _error(413, f"the body must be at most {MAX_BODY >> 20} MB")
    try:
        report, rows = parse_body(raw)
        report_dir = confined(report, folder_paths.get_output_directory(),
                              what="report folder", where=OUTPUT, file=False)
        if not (report_dir / "report.jsonl").is_file():
            raise ValueError(f"no report in {report!r} of {OUTPUT}")
        rel = f"{RATINGS_DIR}/{ratings_name(report)}"
        user = folder_paths.get_user_directory()
        confined(RATINGS_DIR, user, what="ratings folder", where=USER, file=False).mkdir(
            parents=True, exist_ok=True)
        target = confined(rel, user, what="ratings file", where=USER, file=False)
    except ValueError as e:
        return _error(400, str(e))
    try:
        write_text(target, ratings.to_csv(rows, str(report_dir)))
    except OSError as e:
        return _error(507, f"cannot write {rel}: {e.strerror or type(e).__name__}")
    return web.json_response({"saved": rel, "count": len(rows)}, headers=_HEADERS)


def register(routes: web.RouteTableDef) -> None:
    routes.get(REPORT_ROUTE + "/{path:.+}")(serve_report)
    routes.post(RATINGS_ROUTE)(save_ratings)


register(PromptServer.instance.routes)
NODES: list[type[io.ComfyNode]] = []  # routes only
