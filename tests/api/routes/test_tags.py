"""Tags on labelled examples through the API, over both store backends: example tags
(``POST /v1/models/{model}/tags``), rule tags (``PUT /v1/models/{model}/tags/{tag}``), listing,
deleting, and the tags on ``GET /v1/models/{model}/examples`` with its ``tag=`` filter."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.main import create_app
from driftline.settings import Settings
from driftline.store import Store, Stores
from driftline.store.labels import LabelRow, LabelStore, PredictionRow

T = 1_700_000_000
N = 20
TAGS = "/v1/models/spam/tags"
EXAMPLES = "/v1/models/spam/examples"


def truth(i: int) -> int:
    return i % 2


def predicted(i: int) -> int:
    return 1 - truth(i) if i % 4 == 0 else truth(i)  # e00, e04, e08...: wrong


def event(i: int) -> dict[str, Any]:
    return {
        "model": "spam",
        "id": f"e{i:02d}",
        "features": {"amount": 100.0 * i, "country": "BR" if i % 2 else "FR"},
        "prediction": 0.9 if predicted(i) else 0.1,
        "segment": {"channel": "mobile" if i % 3 == 0 else "web"},
    }


def seed(labels: LabelStore, ids: range, stage: str = "") -> None:
    labels.write_predictions(
        [
            PredictionRow(
                "spam", stage, f"e{i:02d}", T + 10 * i, (T + 10 * i) // 60 * 60, "1", event(i)
            )
            for i in ids
        ]
    )
    labels.write_labels(
        [LabelRow("spam", stage, f"e{i:02d}", truth(i), (T + 10 * i + 5) * 1000) for i in ids]
    )


@pytest.fixture
def stores(store: Store) -> Stores:
    seed(LabelStore(store.backend), range(N))
    return Stores(store)


@pytest.fixture
def client(stores: Stores) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(), stores)) as c:
        yield c


def ok(reply: Any, code: int = 200) -> Any:
    assert reply.status_code == code, reply.text
    return reply.json() if code != 204 else None


def rows(client: TestClient, **params: Any) -> dict[str, list[str]]:
    """id -> tags of every example the read returns."""
    body = ok(client.get(EXAMPLES, params={"limit": 1000, **params}))
    assert body["total"] == len(body["rows"])
    return {r["id"]: r["tags"] for r in body["rows"]}


def test_example_tags_are_added_listed_and_deleted(client: TestClient) -> None:
    assert ok(client.get(TAGS)) == {"model": "spam", "stage": "", "rules": [], "examples": []}
    written = ok(client.post(TAGS, json={"tag": "mislabelled", "ids": ["e01", "e02", "e02", "x"]}))
    assert written == {"model": "spam", "stage": "", "tag": "mislabelled", "added": 3, "count": 3}
    again = ok(client.post(TAGS, json={"tag": "mislabelled", "ids": ["e01", "e03"]}))
    assert (again["added"], again["count"]) == (1, 4)  # e01 was tagged already
    ok(client.post(TAGS, json={"tag": "check.later", "ids": ["e05"]}))
    listed = ok(client.get(TAGS))
    assert listed["rules"] == []
    assert [(e["tag"], e["count"]) for e in listed["examples"]] == [
        ("check.later", 1),
        ("mislabelled", 4),
    ]
    assert all(e["created_at"].endswith("Z") for e in listed["examples"])
    one = ok(client.get(f"{TAGS}/mislabelled"))
    assert (one["kind"], one["count"], one["condition"]) == ("examples", 4, None)
    # some ids out of the tag (an id it does not name is skipped)
    ok(client.delete(f"{TAGS}/mislabelled", params={"id": ["e01", "x", "nope"]}), 204)
    assert ok(client.get(f"{TAGS}/mislabelled"))["count"] == 2
    assert rows(client, tag="mislabelled").keys() == {"e02", "e03"}
    # the whole tag
    ok(client.delete(f"{TAGS}/mislabelled"), 204)
    assert client.get(f"{TAGS}/mislabelled").status_code == 404
    assert client.delete(f"{TAGS}/mislabelled").status_code == 404
    assert [e["tag"] for e in ok(client.get(TAGS))["examples"]] == ["check.later"]
    # tagged again after the delete: a fresh tag
    assert ok(client.post(TAGS, json={"tag": "mislabelled", "ids": ["e01"]}))["count"] == 1
    assert rows(client, tag="mislabelled").keys() == {"e01"}


def test_rule_tags_are_put_replaced_listed_and_deleted(client: TestClient) -> None:
    made = ok(client.put(f"{TAGS}/big-br", json={"condition": "amount > 1000 and country == 'BR'"}))
    assert made["tag"] == "big-br" and made["condition"] == "amount > 1000 and country == 'BR'"
    replaced = ok(client.put(f"{TAGS}/big-br", json={"condition": "amount > 1500"}))
    assert replaced["created_at"] == made["created_at"]
    assert replaced["updated_at"] >= made["updated_at"]
    listed = ok(client.get(TAGS))
    assert [(r["tag"], r["condition"]) for r in listed["rules"]] == [("big-br", "amount > 1500")]
    assert listed["examples"] == []
    one = ok(client.get(f"{TAGS}/big-br"))
    assert (one["kind"], one["condition"], one["count"]) == ("rule", "amount > 1500", None)
    assert rows(client, tag="big-br").keys() == {f"e{i:02d}" for i in range(16, N)}
    ok(client.delete(f"{TAGS}/big-br"), 204)
    assert ok(client.get(TAGS))["rules"] == []
    assert client.get(f"{TAGS}/big-br").status_code == 404
    assert client.get(EXAMPLES, params={"tag": "big-br"}).status_code == 404


def test_examples_carry_their_tags_and_filter_by_one(client: TestClient) -> None:
    ok(client.post(TAGS, json={"tag": "mislabelled", "ids": ["e04", "e05", "e08"]}))
    ok(
        client.put(
            f"{TAGS}/wrong-mobile",
            json={"condition": 'segment.channel == "mobile" and not correct'},
        )
    )
    ok(client.put(f"{TAGS}/confident", json={"condition": "prediction >= 0.9"}))
    ok(client.put(f"{TAGS}/br", json={"condition": 'country in ["BR"]'}))
    tags = rows(client)
    assert len(tags) == N
    wrong = {i for i in range(N) if i % 4 == 0}
    for i in range(N):
        expected = set()
        if i in (4, 5, 8):
            expected.add("mislabelled")
        if i % 3 == 0 and i in wrong:
            expected.add("wrong-mobile")
        if predicted(i):
            expected.add("confident")
        if i % 2:
            expected.add("br")
        assert tags[f"e{i:02d}"] == sorted(expected), i
    assert rows(client, tag="wrong-mobile").keys() == {"e00", "e12"}
    assert rows(client, tag="mislabelled").keys() == {"e04", "e05", "e08"}
    assert rows(client, tag="mislabelled", errors=True).keys() == {"e04", "e08"}
    assert rows(client, tag="br", segment="channel=mobile").keys() == {"e03", "e09", "e15"}
    # paging over a filtered read
    page = ok(client.get(EXAMPLES, params={"tag": "br", "limit": 4, "offset": 8}))
    assert page["total"] == 10 and [r["id"] for r in page["rows"]] == ["e03", "e01"]
    missing = client.get(EXAMPLES, params={"tag": "nothing"})
    assert missing.status_code == 404
    assert "no tag 'nothing'" in missing.json()["detail"] and TAGS in missing.json()["detail"]
    assert client.get(EXAMPLES, params={"tag": "bad;name"}).status_code == 422


def test_a_rule_tag_covers_examples_stored_after_it(client: TestClient, stores: Stores) -> None:
    ok(client.put(f"{TAGS}/huge", json={"condition": "amount >= 2500"}))
    assert rows(client, tag="huge") == {}  # none yet: still a known tag, not a 404
    seed(stores.labels, range(N, N + 10))
    assert rows(client, tag="huge").keys() == {f"e{i:02d}" for i in range(25, N + 10)}
    assert all("huge" in t for t in rows(client, tag="huge").values())
    # an example tag may name an id whose prediction comes later, too
    ok(client.post(TAGS, json={"tag": "later", "ids": ["e40"]}))
    assert rows(client, tag="later") == {}
    seed(stores.labels, range(40, 41))
    assert rows(client, tag="later") == {"e40": ["huge", "later"]}


def test_tags_in_every_format(client: TestClient) -> None:
    ok(client.post(TAGS, json={"tag": "mislabelled", "ids": ["e19"]}))
    ok(client.put(f"{TAGS}/br", json={"condition": "country == 'BR'"}))
    params = {"limit": 3}  # e19, e18, e17
    expected = ["br;mislabelled", "", "br"]
    text = client.get(EXAMPLES, params={**params, "format": "csv"}).text
    read = list(csv.DictReader(io.StringIO(text)))
    assert [r["tags"] for r in read] == expected
    assert list(read[0])[:9][-1] == "tags"  # after label_ts, before the features
    frame = pd.read_parquet(
        io.BytesIO(client.get(EXAMPLES, params={**params, "format": "parquet"}).content)
    )
    assert frame["tags"].tolist() == expected
    lines = client.get(EXAMPLES, params={**params, "format": "jsonl"}).text.splitlines()
    assert [orjson.loads(line)["tags"] for line in lines] == [["br", "mislabelled"], [], ["br"]]


@pytest.mark.parametrize(
    ("condition", "position", "expected"),
    [
        ("amount >", 8, "a field"),
        ("amount = 5", 7, "'=='"),
        ("__import__('os').system('id')", 10, "'and', 'or' or the end"),
        ("(amount > 1", 11, "')'"),
        ('country == "BR', 11, "a closing"),
        ("(" * 40 + "a" + ")" * 40, 32, "levels"),
    ],
)
def test_a_bad_condition_is_a_422_that_says_where(
    client: TestClient, condition: str, position: int, expected: str
) -> None:
    reply = client.put(f"{TAGS}/bad", json={"condition": condition})
    assert reply.status_code == 422, reply.text
    [issue] = reply.json()["detail"]
    assert issue["loc"] == ["body", "condition"]
    assert f"at position {position}: expected " in issue["msg"]
    assert issue["ctx"]["position"] == position and expected in issue["ctx"]["expected"]
    assert issue["type"] == "condition_syntax"
    assert client.get(f"{TAGS}/bad").status_code == 404  # nothing stored


def test_bounds_are_422s(client: TestClient) -> None:
    too_long = client.put(f"{TAGS}/long", json={"condition": "a > 1 and " * 60 + "a > 1"})
    assert too_long.status_code == 422
    for body in (
        {"tag": "t", "ids": []},
        {"tag": "t", "ids": [f"e{i}" for i in range(1001)]},
        {"tag": "t", "ids": [""]},
        {"tag": "bad;name", "ids": ["e01"]},
        {"tag": ".hidden", "ids": ["e01"]},
        {"tag": "t" * 101, "ids": ["e01"]},
        {"tag": "t", "ids": [1]},
        {"tag": "t", "ids": ["e01"], "extra": 1},
    ):
        assert client.post(TAGS, json=body).status_code == 422, body
    assert client.put(f"{TAGS}/t", json={"condition": ""}).status_code == 422
    assert client.put(f"{TAGS}/t", json={"condition": 5}).status_code == 422
    assert client.put(f"{TAGS}/bad;name", json={"condition": "a > 1"}).status_code == 422
    ok(client.post(TAGS, json={"tag": "t", "ids": ["e01"]}))
    many = client.delete(f"{TAGS}/t", params={"id": [f"e{i}" for i in range(1001)]})
    assert many.status_code == 422
    assert client.delete(f"{TAGS}/t", params={"id": [""]}).status_code == 422


def test_a_name_is_one_kind_of_tag(client: TestClient) -> None:
    ok(client.put(f"{TAGS}/rule", json={"condition": "amount > 1"}))
    ok(client.post(TAGS, json={"tag": "named", "ids": ["e01"]}))
    clash = client.post(TAGS, json={"tag": "rule", "ids": ["e01"]})
    assert clash.status_code == 409 and "rule tag" in clash.json()["detail"]
    clash = client.put(f"{TAGS}/named", json={"condition": "amount > 1"})
    assert clash.status_code == 409 and "example tag" in clash.json()["detail"]
    # a rule tag names no ids to take out
    some = client.delete(f"{TAGS}/rule", params={"id": ["e01"]})
    assert some.status_code == 422 and "rule tag" in some.json()["detail"][0]["msg"]
    # once deleted, the name is free for the other kind
    ok(client.delete(f"{TAGS}/named"), 204)
    ok(client.put(f"{TAGS}/named", json={"condition": "amount > 1"}))


def test_each_stage_has_its_own_tags(client: TestClient, stores: Stores) -> None:
    seed(stores.labels, range(3), stage="s1")
    ok(client.post(TAGS, params={"stage": "s1"}, json={"tag": "x", "ids": ["e01"]}))
    ok(client.put(f"{TAGS}/r", params={"stage": "s1"}, json={"condition": "amount >= 0"}))
    assert ok(client.get(TAGS)) == {"model": "spam", "stage": "", "rules": [], "examples": []}
    staged = ok(client.get(TAGS, params={"stage": "s1"}))
    assert [r["tag"] for r in staged["rules"]] == ["r"]
    assert [e["tag"] for e in staged["examples"]] == ["x"]
    assert rows(client, stage="s1") == {"e02": ["r"], "e01": ["r", "x"], "e00": ["r"]}
    assert all(t == [] for t in rows(client).values())
    assert client.get(EXAMPLES, params={"tag": "x"}).status_code == 404
    assert client.delete(f"{TAGS}/x").status_code == 404
    ok(client.delete(f"{TAGS}/x", params={"stage": "s1"}), 204)


def test_reads_take_the_read_key_and_changes_the_admin_key(stores: Stores) -> None:
    settings = Settings(api_key=SecretStr("admin-k"), api_read_key=SecretStr("read-k"))
    admin = {"Authorization": "Bearer admin-k"}
    read = {"Authorization": "Bearer read-k"}
    with TestClient(create_app(settings, stores)) as client:
        body = {"tag": "t", "ids": ["e01"]}
        rule = {"condition": "amount > 1"}
        assert client.get(TAGS).status_code == 401
        assert client.post(TAGS, json=body).status_code == 401
        assert client.post(TAGS, json=body, headers=read).status_code == 403
        assert client.put(f"{TAGS}/r", json=rule, headers=read).status_code == 403
        ok(client.post(TAGS, json=body, headers=admin))
        ok(client.put(f"{TAGS}/r", json=rule, headers=admin))
        assert len(ok(client.get(TAGS, headers=read))["examples"]) == 1
        assert ok(client.get(f"{TAGS}/r", headers=read))["kind"] == "rule"
        reply = client.get(EXAMPLES, params={"tag": "t"}, headers=read)
        assert [r["tags"] for r in ok(reply)["rows"]] == [["r", "t"]]
        assert client.delete(f"{TAGS}/t", headers=read).status_code == 403
        assert client.delete(f"{TAGS}/t").status_code == 401
        ok(client.delete(f"{TAGS}/t", headers=admin), 204)
