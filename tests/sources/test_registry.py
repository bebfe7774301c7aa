"""Sources by name (`scoring.sources.registry`): every registered name imports its own
source, an unknown one says what is known, and `unavailable` is the one abstention shape —
the registered source's kind and axes when its module imports."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.cli.score import make_sources
from scoring.sources import (
    OFFLINE_DEFAULT,
    REGISTRY,
    ScoreContext,
    Source,
    SourceError,
    Unavailable,
    source_class,
    unavailable,
)

RED = np.zeros((12, 16, 3), np.float32)
RED[..., 0] = 1.0


def test_unavailable_is_the_one_abstention_shape():
    (card,) = unavailable("cl", "no model here").score([RED])[0]
    assert not card.ok and card.abstained == "no model here"
    assert card.kind == "tagger" and card.provides == ("erotic", "overall")  # CL's own axes
    (cli,) = make_sources(["cl"], lambda _: None)  # no model_path: it cannot start
    assert isinstance(cli, Unavailable) and "--option cl.model_path" in cli.why
    (card,) = cli.score([RED], ScoreContext(options={"method": "generate"}))[0]
    assert card.source == "cl" and card.provides == ("erotic", "overall")


def test_every_name_is_its_own_source_and_an_unknown_one_says_what_is_known():
    for name in REGISTRY:
        cls = source_class(name)
        assert issubclass(cls, Source) and cls.name == name
    assert set(OFFLINE_DEFAULT) <= set(REGISTRY)
    with pytest.raises(SourceError, match=r"unknown source 'nope'; known: technical, nudenet"):
        source_class("nope")
    (card,) = unavailable("nope", "gone", label="mine").score([RED])[0]  # no class to ask
    assert card.abstained == "gone" and card.source == "mine" and card.provides == ()
