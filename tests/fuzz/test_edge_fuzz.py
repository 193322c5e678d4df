"""A CI-sized sample of the edge fuzz (tests/fuzz/edge_fuzz.py; `make fuzz` runs the full size):
generated requests to every public REST route with a valid token answer no 5xx, as the OpenAPI
document declares, and a refused request stores nothing."""

from __future__ import annotations

import json

from deploy.local.ephemeral import Mesh
from tests.fuzz.edge_fuzz import DOCUMENT, run

EXAMPLES = 10  # per operation, fuzzing phase; the stateful phase adds its chains


def _operations() -> set[str]:
    document = json.loads(DOCUMENT.read_text())
    return {f"{verb.upper()} {path}" for path, item in document["paths"].items() for verb in item}


def test_generated_requests_answer_as_documented(mesh: Mesh, tmp_path) -> None:
    result = run(mesh, examples=EXAMPLES, report_dir=tmp_path, phases="fuzzing,stateful", seed=14)
    assert result.failures == [], result.output[-6000:]
    assert result.returncode == 0, result.output[-6000:]
    assert _operations() <= set(result.requests)  # and the stateful phase's chains
    assert result.requests["DELETE /v1/me"] >= 1  # last: the account ended
    assert result.cases >= 300
    assert not [status for status in result.statuses if status >= 500]
