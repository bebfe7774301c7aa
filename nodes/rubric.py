"""Saiten Rubric: the rubric as editable TOML, for the VLM rater and the judge."""

from __future__ import annotations

from comfy_api.latest import io, ui

from ..scoring.core.rubric import Rubric
from .shared.types import Rubric as RubricType


def parse(toml: str, guidance: str = "") -> Rubric:
    """The rubric from the node's widgets; ValueError names the TOML problem."""
    try:
        rubric = Rubric.from_toml(toml)
    except ValueError as e:
        raise ValueError(f"Saiten Rubric: {e}") from None
    return rubric.with_guidance(guidance)


class SaitenRubric(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaitenRubric",
            display_name="Saiten Rubric",
            category="Saiten",
            description="The rubric the VLM rater and the judge score on, as TOML: the axes' "
                        "meanings, the anchor examples, the comment language and guidance.",
            inputs=[
                io.String.Input("toml", multiline=True, default=Rubric.default().to_toml(),
                                tooltip="language, guidance, [axes] name = meaning, "
                                        "[[anchors]] description / scores / comment"),
                io.String.Input("guidance", multiline=True, default="", optional=True,
                                tooltip="extra guidance appended to the rubric's own"),
            ],
            outputs=[RubricType.Output(display_name="rubric")],
        )

    @classmethod
    def execute(cls, toml: str, guidance: str = "") -> io.NodeOutput:
        rubric = parse(toml, guidance or "")
        text = (f"rubric: {len(rubric.anchors)} anchors, comments in {rubric.language_name}"
                + (f"\nguidance: {rubric.guidance}" if rubric.guidance else ""))
        return io.NodeOutput(rubric, ui=ui.PreviewText(text))


NODES = [SaitenRubric]
