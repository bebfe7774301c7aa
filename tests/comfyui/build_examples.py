"""(Re)build the generating example workflows, their thumbnails and the subgraph blueprint
with the real frontend.

    python tests/comfyui/build_examples.py [name ...]      # needs ComfyUI and Chromium

Each workflow is written here as an API graph (`graphs.Graph`, every widget at its default
unless set) laid out in columns, loaded into ComfyUI's frontend in headless Chromium
(`app.loadApiJson`), given its note (English and Japanese), saved as the frontend serializes
it (`example_workflows/<name>.json`, UI format) and photographed (`<name>.jpg`, ComfyUI's
template thumbnail convention). The blueprint `subgraphs/Saiten Score & Filter.json` is the
pack's scoring nodes converted to one subgraph by the frontend (`convertToSubgraph`) and
serialized the way its "Publish subgraph" command writes a blueprint. The tests load these
files back through the same frontend.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))

from cdp import Browser, find_chromium
from comfy_harness import REPO, find_comfyui, start_comfy
from graphs import Graph

from scoring.host.transfer import human
from scoring.sources.known import find as known_model
from scoring.sources.onnx.aesthetic import DEFAULT_MODEL as AESTHETIC

OUT = REPO / "example_workflows"
CKPT = "v1-5-pruned-emaonly-fp16.safetensors"  # ComfyUI's own templates use this name
AESTHETIC_SIZE = human(known_model(AESTHETIC).model.size)
POSITIVE = "masterpiece, best quality, 1girl, solo, looking at viewer, detailed background"
NEGATIVE = "lowres, bad anatomy, bad hands, text, error, worst quality, jpeg artifacts"


def _generate(g: Graph, batch: int) -> dict[str, str]:
    c = g.add("CheckpointLoaderSimple", ckpt_name=CKPT)
    pos = g.add("CLIPTextEncode", "Positive", clip=[c, 1], text=POSITIVE)
    neg = g.add("CLIPTextEncode", "Negative", clip=[c, 1], text=NEGATIVE)
    empty = g.add("EmptyLatentImage", width=512, height=512, batch_size=batch)
    ks = g.add("KSampler", model=[c, 0], positive=[pos, 0], negative=[neg, 0],
               latent_image=[empty, 0], steps=20, cfg=7.0, denoise=1.0)
    dec = g.add("VAEDecode", samples=[ks, 0], vae=[c, 2])
    return {"ckpt": c, "pos": pos, "neg": neg, "empty": empty, "ks": ks, "dec": dec}


def _score(g: Graph, images: list, *, aesthetic: bool = False,
           **filter_inputs) -> dict[str, str]:
    """NudeNet + the technical check (+ the anime_aesthetic model, fetched when missing) →
    aggregate → filter, and the scores shown."""
    tag = g.add("SaitenTagger", images=images, model="nudenet (offline)")
    tech = g.add("SaitenTechnicalCheck", images=images, scores=[tag, 0])
    last = tech
    if aesthetic:
        last = g.add("SaitenAesthetic", images=images, scores=[tech, 0], model=AESTHETIC,
                     allow_download=True)
    agg = g.add("SaitenEnsembleAggregate", **{"scores.scores0": [last, 0]})
    flt = g.add("SaitenScoreFilter", images=images, verdicts=[agg, 0], **filter_inputs)
    show = g.add("SaitenShowScores", verdicts=[agg, 0], scores=[last, 0])
    return {"tag": tag, "tech": tech, "aes": last, "agg": agg, "flt": flt, "show": show}


def generate_filter(g: Graph) -> list[list[str]]:
    n = _generate(g, batch=4)
    s = _score(g, [n["dec"], 0], aesthetic=True, latent=[n["ks"], 0], threshold=75.0)
    save = g.add("SaitenSaveImage", "Saved (passed)", images=[s["flt"], 0],
                 verdicts=[s["flt"], 2], filename_prefix="saiten/passed")
    rej = g.add("PreviewImage", "Rejected", images=[s["flt"], 1])
    return [[n["ckpt"], "note"], [n["pos"], n["neg"], n["empty"]], [n["ks"], n["dec"]],
            [s["tag"], s["tech"], s["aes"]], [s["agg"], s["show"]], [s["flt"]], [save, rej]]


def best_of_n_hires(g: Graph) -> list[list[str]]:
    n = _generate(g, batch=8)
    s = _score(g, [n["dec"], 0], aesthetic=True, latent=[n["ks"], 0], axis="appeal",
               mode="top_k", top_k=2)
    up = g.add("LatentUpscaleBy", samples=[s["flt"], 4], upscale_method="nearest-exact",
               scale_by=1.5)
    ks2 = g.add("KSampler", "KSampler (hires: winners only)", model=[n["ckpt"], 0],
                positive=[n["pos"], 0], negative=[n["neg"], 0], latent_image=[up, 0],
                steps=20, cfg=7.0, denoise=0.5)
    dec2 = g.add("VAEDecode", "VAE Decode (hires)", samples=[ks2, 0], vae=[n["ckpt"], 2])
    save = g.add("SaitenSaveImage", "Saved (best K, hires)", images=[dec2, 0],
                 verdicts=[s["flt"], 2], filename_prefix="saiten/best_hires")
    rej = g.add("PreviewImage", "Not chosen", images=[s["flt"], 1])
    return [[n["ckpt"], "note"], [n["pos"], n["neg"], n["empty"]], [n["ks"], n["dec"]],
            [s["tag"], s["tech"], s["aes"]], [s["agg"], s["show"]], [s["flt"], rej],
            [up, ks2, dec2], [save]]


def publish_check(g: Graph) -> list[list[str]]:
    n = _generate(g, batch=4)
    images = [n["dec"], 0]
    check = g.add("SaitenPublishCheck", images=images, model="censor_detect_v1.0_s",
                  allow_download=True)
    regions = g.add("PreviewImage", "Regions (green ok, red needs a mosaic, orange too fine)",
                    images=[check, 1])
    tag = g.add("SaitenTagger", images=images, model="nudenet (offline)", scores=[check, 0])
    tech = g.add("SaitenTechnicalCheck", images=images, scores=[tag, 0])
    agg = g.add("SaitenEnsembleAggregate", **{"scores.scores0": [tech, 0]})
    flt = g.add("SaitenScoreFilter", images=images, verdicts=[agg, 0], threshold=85.0,
                publish=True)
    save = g.add("SaitenSaveImage", "Saved (publishable)", images=[flt, 0], verdicts=[flt, 2],
                 filename_prefix="saiten/publishable")
    mosaic = g.add("SaitenMosaic", images=[flt, 7], verdicts=[flt, 8])
    fixed = g.add("SaitenSaveImage", "Saved (mosaicked here: review them)",
                  images=[mosaic, 0], verdicts=[mosaic, 1], filename_prefix="saiten/mosaicked")
    rej = g.add("PreviewImage", "Rejected", images=[flt, 1])
    return [[n["ckpt"], "note"], [n["pos"], n["neg"], n["empty"]], [n["ks"], n["dec"]],
            [check, regions], [tag, tech], [agg, flt], [save, rej], [mosaic, fixed]]


WD = "wd-eva02-large-tagger-v3"
VLM_GGUF = "qwen2.5-vl-nsfw/thesby_Qwen2.5-VL-7B-NSFW-Caption-V3-Q4_K_M.gguf"


def full_ensemble(g: Graph) -> list[list[str]]:
    n = _generate(g, batch=4)
    images = [n["dec"], 0]
    tag = g.add("SaitenTagger", "WD tagger", images=images, model=WD)
    tech = g.add("SaitenTechnicalCheck", images=images, scores=[tag, 0])
    vlm = g.add("SaitenVLMLoader", "VLM (GGUF, llama.cpp)", runtime="llama.cpp",
                model=VLM_GGUF)
    rate = g.add("SaitenVLMRater", images=images, vlm=[vlm, 0], scores=[tech, 0])
    judge = g.add("SaitenGrokJudge", "Judge (text only)", scores=[rate, 0])
    agg = g.add("SaitenEnsembleAggregate", **{"scores.scores0": [judge, 0]})
    flt = g.add("SaitenScoreFilter", images=images, verdicts=[agg, 0], latent=[n["ks"], 0],
                threshold=70.0)
    show = g.add("SaitenShowScores", verdicts=[agg, 0])
    save = g.add("SaitenSaveImage", "Saved (passed)", images=[flt, 0], verdicts=[flt, 2],
                 filename_prefix="saiten/ensemble")
    rej = g.add("PreviewImage", "Rejected", images=[flt, 1])
    return [[n["ckpt"], "note"], [n["pos"], n["neg"], n["empty"]], [n["ks"], n["dec"]],
            [tag, tech], [vlm, rate], [judge], [agg, show], [flt], [save, rej]]


NOTES = {
    "saiten_generate_filter": f"""\
**Saiten: generate → score → filter by appeal**

Pick your checkpoint and queue. KSampler makes a batch of 4; NudeNet, the technical check and \
the **anime aesthetic model** score every image. The overall score is the aesthetic model's \
(its percentile: 75 = better than 75 % of its training images, "great") minus the technical \
check's penalty, so images scoring **≥ 75 overall** — appealing *and* sound — are saved with \
their verdict in the PNG (`saiten`, `saiten_score`); the rest show in *Rejected*. Broken frames \
(black, NaN, blurred, washed out) never reach Save.

- **Downloads on**: the first run fetches `deepghs/anime_aesthetic` / `{AESTHETIC}` \
({AESTHETIC_SIZE}: model.onnx, meta.json, samples.npz) into `models/saiten_aesthetic/`, \
showing the size first and a progress bar. Turn *allow_download* off to never download; \
*saiten_offline_filter* needs no download at all.
- **WD tagger**: in *Saiten Tagger* choose a WD v3 model (or set *allow_download*).
- **A VLM for composition and lettering**: add *Saiten VLM Loader* + *Saiten VLM Rater* \
(see *saiten_full_ensemble*).
- The filter also splits the **latents** (`passed_latent`), for a second pass on winners \
only (see *saiten_best_of_n_hires*).

---

**採点：生成 → 採点 → 魅力で選別**

チェックポイントを選んでキューに入れるだけ。KSampler が 4 枚生成し、NudeNet・技術チェック・\
**アニメ美的評価モデル**が 1 枚ずつ採点します。総合点は美的評価モデルの点（パーセンタイル：\
75 = 学習画像の 75 % より上＝great）から技術チェックの減点を引いたもので、**総合 75 以上**\
（魅力的で、かつ壊れていない）の画像だけが判定結果を PNG に書き込んで保存され（`saiten`・\
`saiten_score`）、残りは *Rejected* に表示されます。黒画面・NaN・ぼけ・白飛びの失敗画像は\
保存されません。

- **ダウンロード有効**：初回の実行で `deepghs/anime_aesthetic` の `{AESTHETIC}`（{AESTHETIC_SIZE}：\
model.onnx・meta.json・samples.npz）を `models/saiten_aesthetic/` に取得します。\
先にサイズを表示し、進捗バーが出ます。ダウンロードしない場合は *allow_download* を\
オフに。ダウンロード不要の *saiten_offline_filter* もあります。
- **WD タガー**：*Saiten Tagger* で WD v3 モデルを選択（*allow_download* でも可）。
- **構図・写植を見る VLM**：*Saiten VLM Loader* と *Saiten VLM Rater* を追加 \
（*saiten_full_ensemble* を参照）。
- フィルタは **latent** も振り分けます（`passed_latent`）。合格画像だけの 2 パス目は \
*saiten_best_of_n_hires* を参照。
""",
    "saiten_best_of_n_hires": f"""\
**Saiten: best of N by appeal → hires pass on the winners only**

KSampler makes **8** images at base size; the **anime aesthetic model** scores each one's \
appeal (with NudeNet and the technical check); the filter keeps the **top 2 by appeal** and \
passes on their **latents** (`passed_latent`). Only those are upscaled (*Upscale Latent By* \
1.5×) and sampled again at **denoise 0.5**, so the expensive pass is paid for the 2 best \
images, not 8. The hires images are saved with the verdicts of the images they came from; \
the others show in *Not chosen*.

**Downloads on**: the first run fetches `deepghs/anime_aesthetic` / `{AESTHETIC}` \
({AESTHETIC_SIZE}) into `models/saiten_aesthetic/` (size shown first, progress bar). Change \
N in *Empty Latent Image* (batch_size) and K in *Saiten Score Filter* (top_k).

---

**採点：N 枚から魅力で選抜 → 合格画像だけ高解像度化**

KSampler が基本サイズで **8 枚** 生成し、**アニメ美的評価モデル**が 1 枚ずつ魅力を採点します\
（NudeNet と技術チェックも）。フィルタが **魅力の上位 2 枚** を選び、その **latent**\
（`passed_latent`）を次へ渡します。アップスケール（*Upscale Latent By* 1.5 倍）と \
**denoise 0.5** の 2 回目のサンプリングはこの 2 枚だけに行われるので、重い処理は 8 枚分でなく\
いちばん良い 2 枚分で済みます。高解像度画像は元画像の判定結果つきで保存され、選ばれなかった\
画像は *Not chosen* に表示されます。

**ダウンロード有効**：初回の実行で `deepghs/anime_aesthetic` の `{AESTHETIC}`\
（{AESTHETIC_SIZE}）を `models/saiten_aesthetic/` に取得します（先にサイズを表示、\
進捗バーあり）。N は *Empty Latent Image* の batch_size、K は *Saiten Score Filter* の top_k \
で変更できます。
""",
}

NOTES["saiten_full_ensemble"] = f"""\
**Saiten: the full ensemble (WD + VLM + judge)**

For users with the models. Every generated image is scored by the **WD tagger**, the \
**technical check**, a **Qwen2.5-VL GGUF through llama.cpp** (composition, appeal, lettering) \
and the **text-only judge** (it reads what the others said, never the image); the aggregate \
combines them (median, outliers dropped, weights `qwen-gguf=1.0, joycaption=0.9, wd=0.8, \
grok=1.1`) and the filter saves images scoring **≥ 70 overall**.

Inputs to set up:
- *WD tagger* `model`: `{WD}` in `models/saiten_tagger/{WD}/` (model.onnx + \
selected_tags.csv), or turn on *allow_download*.
- *VLM* `model`: `models/saiten_vlm/{VLM_GGUF}` with its paired mmproj in the same folder \
(`mmproj` = auto); needs `llama-cpp-python`. `n_gpu_layers` -1 = all on the GPU.
- *Judge*: your key in the environment variable named by `key_env` (default `XAI_API_KEY`), \
never in the workflow. Remove the node (connect the rater to the aggregate) to run offline.

---

**採点：フルアンサンブル（WD + VLM + ジャッジ）**

モデルをお持ちの方向けです。生成した画像 1 枚ずつを **WD タガー**、**技術チェック**、\
**llama.cpp で動かす Qwen2.5-VL の GGUF**（構図・魅力・写植）、**テキストのみのジャッジ**\
（他のソースの出力だけを読み、画像は送りません）が採点し、アグリゲートがまとめ（中央値、外れ値の\
除外、重み付け）、総合 **70 点以上** の画像を保存します。

設定が必要な入力：
- *WD tagger* の `model`：`models/saiten_tagger/{WD}/`（model.onnx と selected_tags.csv）に置くか、\
*allow_download* を有効に。
- *VLM* の `model`：`models/saiten_vlm/{VLM_GGUF}` と、同じフォルダに対応する mmproj \
（`mmproj` = auto）。`llama-cpp-python` が必要です。`n_gpu_layers` -1 で全層を GPU に。
- *Judge*：API キーは `key_env` で指定した環境変数（既定 `XAI_API_KEY`）に入れてください。\
ワークフローには書きません。オフラインで使う場合はこのノードを外し、Rater を直接アグリゲートへ。
"""

NOTES["saiten_publish_check"] = """\
**Saiten: ready to sell — the mosaic check**

Pick your checkpoint and queue. Every image goes through the **Publish Check**: the anime \
censor detector (deepghs/anime_censor_detection `censor_detect_v1.0_s`, about 44 MB, \
**downloaded on first run** — *allow_download* is on; NudeNet adds realistic images) finds \
the regions a Japanese store requires obscured and measures what covers each (mosaic block \
size, bar, blur, nothing) against the **1/100 rule**: blocks ≥ ⌈long side ÷ 100⌉ px and never \
under 4 px (`strict x2` doubles it; `custom` for your store). *Regions* shows them: green \
obscured, red needs a mosaic, orange too fine.

The filter (**overall ≥ 85**, *publish* on) routes three ways: **publishable** images are \
saved; good images that still **need a mosaic** go to *Saiten Mosaic* (rule-sized blocks on \
the image grid, each region padded), are judged again and saved with the new verdict; the \
rest show in *Rejected*. The PNGs carry the verdict (`saiten` → `publish`).

**The check assists your own review; it is not a legal judgement.** Look at every image you \
sell. To keep only your character, add *Saiten Likeness* with your reference images and turn \
on the filter's *require_character*.

---

**採点：販売前チェック（モザイク修正の確認）**

チェックポイントを選んでキューに入れるだけ。すべての画像が **販売前チェック** を通ります: \
アニメ用の修正箇所検出器（deepghs/anime_censor_detection の `censor_detect_v1.0_s`、約 44 MB、\
**初回実行時にダウンロード** — *allow_download* がオン。実写寄りの画像には NudeNet）が日本の \
ストアで修正が必要な部位を見つけ、覆っているもの（モザイクのブロックサイズ、黒塗り・白抜き、\
ぼかし、何もなし）を **1/100 基準**（ブロックは ⌈長辺 ÷ 100⌉ px 以上かつ 4 px 以上。\
`strict x2` はその 2 倍、`custom` はストアに合わせて）で測ります。*Regions* に表示: 緑は修正済み、\
赤はモザイクが必要、橙は細かすぎ。

フィルタ（**総合 85 点以上**、*publish* オン）は 3 つに振り分けます: **販売可** の画像は保存。\
良い画像でも **モザイクが必要** なものは *Saiten Mosaic*（基準サイズのブロックを画像の格子に\
揃え、部位を広げてかける）へ送られ、もう一度判定して新しい判定つきで保存。残りは *Rejected* に\
表示。PNG には判定が入ります（`saiten` → `publish`）。

**このチェックはご自身の確認を助けるもので、法的な判断ではありません。** 販売する画像はすべて\
ご自身で確認してください。自分のキャラクターだけを残すには、参照画像つきの *Saiten Likeness* を\
追加し、フィルタの *require_character* をオンに。
"""

WORKFLOWS: dict[str, Callable[[Graph], list[list[str]]]] = {
    "saiten_generate_filter": generate_filter,
    "saiten_best_of_n_hires": best_of_n_hires,
    "saiten_full_ensemble": full_ensemble,
    "saiten_publish_check": publish_check,
}

_LOAD = """(async () => {
  const spec = %s;
  await app.loadApiJson(spec.prompt, spec.name);
  const g = app.graph;
  const note = LiteGraph.createNode("MarkdownNote");
  note.title = "About / 説明";
  g.add(note);
  note.widgets[0].value = spec.note;
  note.size = [460, 600];
  const byId = id => id === "note" ? note : g.getNodeById(Number(id));
  let x = 40;
  for (const column of spec.columns) {
    let y = 80, width = 0;
    for (const id of column) {
      const n = byId(id);
      const big = spec.big[n.type] || [240, 0];
      n.size = [Math.max(n.size[0], big[0]), Math.max(n.size[1], big[1])];
      n.pos = [x, y];
      y += n.size[1] + 80;
      width = Math.max(width, n.size[0]);
    }
    x += width + 70;
  }
  g.setDirtyCanvas(true, true);
  return true;
})()"""

_FIT = """(() => {
  const c = app.canvas, ns = app.graph.nodes;
  const x0 = Math.min(...ns.map(n => n.pos[0])), y0 = Math.min(...ns.map(n => n.pos[1] - 40));
  const x1 = Math.max(...ns.map(n => n.pos[0] + n.size[0]));
  const y1 = Math.max(...ns.map(n => n.pos[1] + n.size[1]));
  const W = c.canvas.clientWidth, H = c.canvas.clientHeight;
  const s = Math.min(W / (x1 - x0 + 80), H / (y1 - y0 + 80));
  c.ds.scale = s;
  c.ds.offset = [(W / s - (x1 - x0)) / 2 - x0, (H / s - (y1 - y0)) / 2 - y0];
  c.setDirty(true, true);
  return [W, H, s];
})()"""

BIG = {"SaitenSaveImage": [420, 420], "PreviewImage": [380, 340],
       "SaitenShowScores": [420, 300], "CLIPTextEncode": [400, 180]}


BLUEPRINT = "Saiten Score & Filter"
BLUEPRINT_DESCRIPTION = (
    "Images in (e.g. from VAE Decode) → passed / rejected images, their latents and "
    "verdicts out. NudeNet + technical check, ensemble, threshold filter (≥ 85 overall). "
    "Connect the LATENT that was decoded to split it too. / 画像を入力すると合格・不合格の"
    "画像、latent、判定結果を出力します。")
_BLUEPRINT = """(async () => {
  const spec = %s;
  await app.loadApiJson(spec.prompt, "blueprint");
  const g = app.graph, byId = id => g.getNodeById(Number(id));
  const inner = new Set(spec.inner.map(byId));
  const { node, subgraph } = g.convertToSubgraph(inner);
  subgraph.name = node.title = spec.name;
  subgraph.description = spec.description;
  subgraph.category = "Saiten";
  const outer = g.nodes.filter(n => n !== node);
  for (const n of outer) g.remove(n);
  const { nodes, subgraphs } = app.canvas._serializeItems([node]);
  return { revision: 0, last_node_id: node.id, last_link_id: 0, nodes, links: [],
           version: 0.4, definitions: { subgraphs },
           extra: { BlueprintDescription: spec.description } };
})()"""


def blueprint(browser: Browser, comfy) -> Path:
    """The "Saiten Score & Filter" blueprint: images (+ optional latent) in; passed /
    rejected images, latents and verdicts out."""
    g = Graph(comfy.object_info)
    images = g.add("SaitenSampleImages")
    latent = g.add("EmptyLatentImage", batch_size=7)
    s = _score(g, [images, 0], latent=[latent, 0], threshold=85.0)
    del g.prompt[s["show"]]
    sinks = {"IMAGE": "PreviewImage", "LATENT": "LatentUpscaleBy",
             "SAITEN_VERDICTS": "SaitenShowScores"}
    kinds = comfy.object_info["SaitenScoreFilter"]["output"][:6]  # passed / rejected: images,
    for slot, kind in enumerate(kinds):  # verdicts, latents — a consumer per output: it becomes
        # one of the blueprint's (all verdicts and the publish gate's needs_work stay inside)
        sink = sinks[kind]
        first = {"PreviewImage": "images", "LatentUpscaleBy": "samples",
                 "SaitenShowScores": "verdicts"}[sink]
        g.add(sink, **{first: [s["flt"], slot]})
    spec = {"prompt": g.prompt, "inner": [s["tag"], s["tech"], s["agg"], s["flt"]],
            "name": BLUEPRINT, "description": BLUEPRINT_DESCRIPTION}
    browser.evaluate("app.graph.clear(), true")
    data = browser.evaluate(_BLUEPRINT % json.dumps(spec))
    path = REPO / "subgraphs" / f"{BLUEPRINT}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    browser.evaluate("app.graph.clear(), true")
    return path


def build(browser: Browser, comfy, name: str) -> Path:
    g = Graph(comfy.object_info)
    columns = WORKFLOWS[name](g)
    spec = {"prompt": g.prompt, "name": name, "note": NOTES[name], "columns": columns,
            "big": BIG}
    browser.evaluate("app.graph.clear(), true")
    browser.evaluate(_LOAD % json.dumps(spec))
    workflow = browser.evaluate("app.graph.serialize()")
    workflow["extra"] = {"ds": {"scale": 0.6, "offset": [0, 0]}}
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(workflow, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    thumbnail(browser, OUT / f"{name}.jpg")
    return path


def thumbnail(browser: Browser, path: Path) -> Path:
    """The graph as the frontend draws it, without the app's chrome, as a JPEG."""
    from PIL import Image

    browser.evaluate(_FIT)
    time.sleep(1.0)
    png = browser.screenshot(path.with_suffix(".png"))
    with Image.open(png) as im:
        im = im.convert("RGB")
        im = im.resize((1600, round(im.height * 1600 / im.width)), Image.Resampling.LANCZOS)
        im.save(path, "JPEG", quality=85, optimize=True)
    png.unlink()
    return path


def open_frontend(comfy, width: int = 2880, height: int = 1500) -> Browser:
    """Chromium on ComfyUI's page, the first-visit dialog closed, chrome hidden."""
    chromium = find_chromium()
    if not chromium:
        raise SystemExit("no Chromium (CHROMIUM_PATH or chromium on PATH)")
    browser = Browser(chromium, width, height)
    browser.goto(comfy.url)
    browser.wait_for("!!(window.app && window.app.graph && window.app.graph.nodes)", 90)
    time.sleep(2)
    for kind in ("keyDown", "keyUp"):  # the Templates dialog of a first visit
        browser.send("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape",
                     windowsVirtualKeyCode=27)
    browser.evaluate("""(async () => {
      const s = app.extensionManager.setting;
      await s.set('Comfy.Minimap.Visible', false);
      app.canvas.show_info = false;
      await s.set('LiteGraph.Canvas.LowQualityRenderingZoomThreshold', 0.1);
      app.canvas.low_quality_zoom_threshold = 0.1;
      await app.extensionManager.command.execute('Workspace.ToggleFocusMode');
      return true;
    })()""")
    return browser


def main(names: list[str]) -> None:
    root, why = find_comfyui()
    if root is None:
        raise SystemExit(why)
    base = Path(tempfile.mkdtemp(prefix="saiten-examples-"))
    comfy = start_comfy(root, base, timeout=600)
    try:  # the templates' model names, listed (empty files): no "missing model" frames
        (comfy.models_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (comfy.models_dir / "checkpoints" / CKPT).touch()
        (comfy.models_dir / "saiten_vlm" / VLM_GGUF).parent.mkdir(parents=True, exist_ok=True)
        (comfy.models_dir / "saiten_vlm" / VLM_GGUF).touch()
        browser = open_frontend(comfy)
        try:
            for name in names or [*WORKFLOWS, "blueprint"]:
                print(blueprint(browser, comfy) if name == "blueprint"
                      else build(browser, comfy, name))
            if browser.errors:
                print("page errors:", *browser.errors, sep="\n")
        finally:
            browser.close()
    finally:
        comfy.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
