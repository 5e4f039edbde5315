"""The API keeps its own contract: schemathesis against the app's /openapi.json.

Every operation gets requests generated from its schema, valid ones and invalid ones, sent to
the app in process (ASGI) over the embedded store and a real broker. Each answer must be no
5xx, a status code the operation documents, a body that matches the documented schema, with the
documented content type. Runs without an API key and with one (requests carry the admin key).

Deterministic: Hypothesis is derandomized and keeps no example database, so every run sends
the same requests; no shrinking, so a failure is reported as found. Bounded: a fixed number of
examples per operation and mode (about a minute for both runs).

The operations are driven here, with schemathesis's public pieces (``as_strategy``,
``call_and_validate``), rather than by ``schema.parametrize()``: its lazy, fixture-loaded form
does not run under pytest 9 (it rewrites ``request.node._nodeid``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from driftline.broker import EmbeddedBroker, ensure_topics
from driftline.settings import Settings
from driftline.store import MetricPoint, Store, Stores
from driftline.store.embedded import EmbeddedBackend
from driftline.topics import topic_partitions

ADMIN_KEY = "contract-admin-key"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
EXAMPLES = 10  # per operation and mode: about 20 s a run on two cores (32 operations)
# POST .../retrain waits for the retrainer's decision; none runs here, so do not wait
FIXED_QUERY = {"POST /v1/models/{model}/retrain": {"wait": 0}}
# Bodies valid only together (a silence needs `ends_at` or `duration_s`, which JSON Schema does
# not say): one valid request runs first, as an explicit example, beside the generated ones,
# so the operation is always reached past validation
VALID_BODY: dict[str, Any] = {
    "POST /v1/silences": {"matchers": [{"name": "model", "value": "fraud"}], "duration_s": 60.0},
    # a deployment needs a baseline with stored windows: the store's "fraud" version 1
    "POST /v1/models/{model}/deployments": {
        "strategy": "canary",
        "baseline": "1",
        "candidate": "2",
    },
    # a condition must parse: few generated strings do
    "PUT /v1/models/{model}/tags/{tag}": {"condition": "amount > 1 and not correct"},
}
VALID_PATH: dict[str, dict[str, str]] = {
    "POST /v1/models/{model}/deployments": {"model": "fraud"},
    "PUT /v1/models/{model}/tags/{tag}": {"model": "fraud", "tag": "suspicious"},
}


@pytest.fixture(scope="module")
def contract_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        ensure_topics(b.bootstrap, topic_partitions(predictions=1, labels=1))
        yield b


@pytest.fixture(scope="module")
def contract_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The embedded engine, with a few windows of 'fraud' to read."""
    s = Store(EmbeddedBackend(tmp_path_factory.mktemp("contract") / "chdb"))
    s.init_schema()
    t = 1_700_000_000
    s.write_window(
        [
            MetricPoint("fraud", t, 60, "traffic.count", 100.0, version="1"),
            MetricPoint("fraud", t, 60, "input.mean", 1.5, feature="amount"),
        ],
        [],
    )
    try:
        yield s
    finally:
        s.close()


def run_schema(
    schema: schemathesis.BaseSchema, headers: dict[str, str], seen: dict[str, set[int]]
) -> list[str]:
    """Every operation, valid and invalid requests; returns the failures, one line each."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # the OpenAPI document itself is valid
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(
                generation_mode=mode, query=FIXED_QUERY.get(operation.label)
            )
            test = _operation_test(strategy, headers, failures, seen)
            body = VALID_BODY.get(operation.label)
            if body is not None and mode is GenerationMode.POSITIVE:
                case = operation.Case(
                    body=body,
                    media_type="application/json",
                    path_parameters=VALID_PATH.get(operation.label),
                )
                test = example(case=case)(test)
            try:
                test()
            except Unsatisfiable:
                # nothing in the operation can be made invalid (no parameters, free strings)
                assert mode is GenerationMode.NEGATIVE, operation.label
    return failures


def _operation_test(
    strategy: Any, headers: dict[str, str], failures: list[str], seen: dict[str, set[int]]
) -> Callable[[], None]:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def test(case: Case[Any]) -> None:
        try:
            response = case.call_and_validate(headers=headers, checks=CHECKS)
        except FailureGroup as group:
            failures.append(f"{case.operation.label}: {group.exceptions[0]!s}"[:2000])
            return
        seen.setdefault(case.operation.label, set()).add(response.status_code)

    return test


@pytest.mark.parametrize("api_key", [None, ADMIN_KEY], ids=["no-key", "admin-key"])
def test_every_answer_is_in_the_openapi(
    api_key: str | None, contract_store: Store, contract_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings_ = Settings(
        kafka_bootstrap=contract_broker.bootstrap,
        data_dir=tmp_path,
        api_key=SecretStr(api_key) if api_key else None,
        api_read_key=SecretStr("contract-read-key") if api_key else None,
    )
    app = create_app(settings_, Stores(contract_store))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    seen: dict[str, set[int]] = {}
    try:
        failures = run_schema(schema, headers, seen)
    finally:
        app.state.ingest.close()
    assert not failures, f"{len(failures)} answers break the contract:\n" + "\n\n".join(
        failures[:10]
    )
    # the run reached past validation: answers other than 422 came from every operation
    reached = {label for label, codes in seen.items() if codes - {422}}
    assert reached == set(seen), f"only 422s from {sorted(set(seen) - reached)}"
