"""The "Saiten Score & Filter" subgraph blueprint (subgraphs/*.json, served by ComfyUI 0.8.0's
subgraph manager): listed for the pack, registered by the real frontend as a node, and —
dropped after an image source — flattened by `graphToPrompt` into the pack's nodes and run:
passed / rejected images, latents and verdicts come out of the one node."""

from __future__ import annotations

import json

from comfy_harness import PACK_NAME, REPO

NAME = "Saiten Score & Filter"
FILE = REPO / "subgraphs" / f"{NAME}.json"
OUTPUTS = ["passed", "rejected", "passed_verdicts", "rejected_verdicts", "passed_latent",
           "rejected_latent"]


def test_the_blueprint_is_one_subgraph_of_our_nodes():
    data = json.loads(FILE.read_text(encoding="utf-8"))
    (node,) = data["nodes"]
    (sub,) = data["definitions"]["subgraphs"]
    assert node["type"] == sub["id"] and sub["name"] == NAME
    assert [i["name"] for i in node["inputs"]] == ["images", "latent"]
    assert [o["name"] for o in node["outputs"]] == OUTPUTS
    assert {n["type"] for n in sub["nodes"]} == {
        "SaitenTagger", "SaitenTechnicalCheck", "SaitenEnsembleAggregate", "SaitenScoreFilter"}


def test_comfyui_serves_it_for_the_pack(comfy):
    listed = comfy.get("/global_subgraphs")
    ours = {k: v for k, v in listed.items()
            if v["info"]["node_pack"] == f"custom_nodes.{PACK_NAME}"}
    assert [v["name"] for v in ours.values()] == [NAME]
    (key,) = ours
    served = comfy.get(f"/global_subgraphs/{key}")
    assert json.loads(served["data"]) == json.loads(FILE.read_text(encoding="utf-8"))


_REGISTERED = """(async () => {
  const el = [...document.querySelectorAll('*')].find(e => e.__vue_app__);
  const stores = el.__vue_app__.config.globalProperties.$pinia._s;
  const find = () => [...stores.get('nodeDef').blueprintNodeDefsByName.values()]
    .find(d => d.display_name === %s);
  if (!find()) await stores.get('subgraph').fetchSubgraphs();
  const d = find();
  return d && { category: d.category, inputs: Object.keys(d.input.required),
                outputs: [...d.output_name], description: d.description };
})()"""

_DROP = """(async () => {
  await app.loadGraphData(%s);
  const g = app.graph, sg = g.nodes[0];
  const add = (type, values) => { const n = LiteGraph.createNode(type); g.add(n);
    (values || []).forEach((v, i) => n.widgets[i].value = v); return n; };
  const src = add("SaitenSampleImages", [72]);
  const lat = add("SaitenTestLatent", [7, "both"]);
  const inp = name => sg.inputs.findIndex(i => i.name === name);
  const out = name => sg.outputs.findIndex(o => o.name === name);
  src.connect(0, sg, inp("images"));
  lat.connect(0, sg, inp("latent"));
  const save = add("SaitenSaveImage", ["blueprint/passed"]);
  sg.connect(out("passed"), save, 0);
  sg.connect(out("passed_verdicts"), save, 1);
  const rej = add("PreviewImage");
  sg.connect(out("rejected"), rej, 0);
  const dig = add("SaitenTestDigest");
  sg.connect(out("passed_latent"), dig, 1);
  const { output } = await app.graphToPrompt();
  return { output, ids: { save: save.id, rej: rej.id, dig: dig.id } };
})()"""


def test_one_node_after_the_images_scores_and_splits(comfy, page):
    node = page.evaluate(_REGISTERED % json.dumps(NAME))
    assert node, "the frontend did not register the blueprint as a node"
    assert node["inputs"] == ["images", "latent"] and node["outputs"] == OUTPUTS
    assert node["category"].startswith("Subgraph Blueprints") and "VAE Decode" in \
        node["description"]
    got = page.evaluate(_DROP % FILE.read_text(encoding="utf-8"))
    prompt, ids = got["output"], got["ids"]
    kinds = sorted(v["class_type"] for v in prompt.values())
    assert kinds.count("SaitenScoreFilter") == 1 and "SaitenTagger" in kinds
    h = comfy.run(prompt)
    flt = next(k for k, v in prompt.items() if v["class_type"] == "SaitenScoreFilter")
    text = h.text(flt)
    passed = int(text.split()[1].split("/")[0])
    assert 0 < passed < 7, text
    saved = h.files(str(ids["save"]))
    assert len(saved) == passed
    assert len(h.files(str(ids["rej"]), kind="temp")) == 7 - passed
    d = h.ui(str(ids["dig"]))["digest"][0]
    yes = [int(t.split()[0][1:]) for t in text.splitlines()[1].split(": ")[1].split(", ")]
    assert d["first_values"] == [float(i) for i in yes]  # the passed images' own latents
