"""The errors every layer shares (`scoring.core.errors`): what an abstention shows for an
exception, and a module any layer can import (it imports nothing of Saiten's)."""

from __future__ import annotations

import ast
import inspect

from scoring.core import errors
from scoring.core.errors import Cancelled, RemoteError, SourceError, reason


def test_a_source_error_is_shown_as_it_is_anything_else_with_its_type():
    assert reason(SourceError("put model.onnx in models/saiten/wd")) == \
        "put model.onnx in models/saiten/wd"
    assert reason(ValueError("bad shape")) == "ValueError: bad shape"
    assert reason(KeyError("label")) == "KeyError: 'label'"
    assert reason(RemoteError("HTTP 500 after 2 attempts", status=500, attempts=2)) == \
        "RemoteError: HTTP 500 after 2 attempts"
    assert reason(Cancelled("cancelled")) == "Cancelled: cancelled"


def test_it_imports_nothing_of_saitens():
    tree = ast.parse(inspect.getsource(errors))
    relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
    absolute = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    absolute += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                 and not n.level and n.module]
    assert relative == [] and not [m for m in absolute if m.split(".")[0] == "scoring"]
