"""Request bodies refuse an object that names a member twice (issue 13, item 18); source values do not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lsmigrate.browser.page import json_body
from lsmigrate.server.api.bodies import parse_body
from lsmigrate.server.errors import BadRequest
from lsmigrate.shared.canonical import RepeatedName, digest, parse_json, parse_json_strict
from lsmigrate.shared.envelopes import read_json
from tests.corpus import realistic_tasks
from tests.migration_helpers import API, batch_body, catalog_of, db_rows, open_session, put, put_remainder, whole_key

TASK = {"id": "task-1", "title": "Second", "status": "DONE"}
#: A record whose "title" is written twice; the last wins in a lenient parse, giving TASK.
TASK_TWICE = '{"id":"task-1","title":"First","title":"Second","status":"DONE"}'


def batch_text(record_text: str) -> bytes:
    """A batch body of one record written as `record_text`, with the digest a lenient parse of it has."""
    record = parse_json(record_text)
    return f'{{"key":"task-store","offset":0,"records":[{record_text}],"digests":["{digest(record)}"]}}'.encode()


@pytest.mark.parametrize(
    ("text", "name", "place", "shown"),
    [
        ('{"a":1,"a":2}', "a", (), '$ names "a" twice'),
        ('{ "a" : 1 ,\n "b" : 0 , "a" : 2 }', "a", (), '$ names "a" twice'),
        ('{"a":{"b":1},"a":{"c":2}}', "a", (), '$ names "a" twice'),
        ('{"records":[{"id":1,"title":"x","title":"y"}]}', "title", ("records", 0), '$.records[0] names "title"'),
        ('[{"a":1},{"b":1,"b":2}]', "b", (1,), '$[1] names "b" twice'),
        ('{"x":{"y":[[{"z":0,"z":1}]]}}', "z", ("x", "y", 0, 0), '$.x.y[0][0] names "z" twice'),
        ('{"a":1,"\\u0061":2}', "a", (), '$ names "a" twice'),
        ('{"\\u00e9t\\u00e9":1,"été":2}', "été", (), '$ names "été" twice'),
        ('{"x y":{"k\\n":1,"k\\n":2}}', "k\n", ("x y",), '$["x y"] names "k\\n" twice'),
        # The first object in text order is named, though the scanner finishes the inner one first.
        ('[{"a":{"b":1,"b":2},"a":3}]', "a", (0,), '$[0] names "a" twice'),
    ],
)
def test_a_repeated_name_is_refused_with_its_name_and_place(text: str, name: str, place: tuple, shown: str) -> None:
    with pytest.raises(RepeatedName) as caught:
        parse_json_strict(text)
    assert (caught.value.name, caught.value.place) == (name, place)
    assert shown in str(caught.value)
    with pytest.raises(BadRequest) as refused:
        parse_body(text.encode())
    assert refused.value.code == "invalid_json" and refused.value.status == 400
    assert shown in refused.value.message


@pytest.mark.parametrize(
    "text",
    ['{"a":1,"b":{"a":2}}', '[{"a":1},{"a":2}]', '{"a":1,"A":2,"a ":3}', '{"":1,"\\u0000":2}', "[]", '"a"'],
)
def test_the_same_name_in_different_objects_is_no_repeat(text: str) -> None:
    assert parse_json_strict(text) == parse_json(text) == parse_body(text.encode())


def test_a_huge_repeated_name_is_quoted_cut_short() -> None:
    name = "k" * 100_000
    inner = f'{{"{name}":1,"{name}":2}}'
    text = "[" * 300 + f'{{"{name}":{inner}}}' + "]" * 300
    with pytest.raises(BadRequest) as refused:
        parse_body(text.encode())
    message = refused.value.message
    assert len(message) < 500 and "kkkk…" in message and '"]' in message, message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a":"\xff"}', "not UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"a":NaN,"a":1}', "NaN is not valid JSON"),
        (b'{"a":1e400}', "too large for a double"),
        (b'{"a":1,"a":2', "not valid JSON"),
    ],
)
def test_other_refusals_stay_as_they_were(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_body(body)
    assert refused.value.code == "invalid_json" and message in refused.value.message


def test_strict_and_lenient_read_any_body_without_a_repeat_alike() -> None:
    value = batch_body("task-store", realistic_tasks(50))
    value["records"].append({"big": 2**70, "small": 1e-07, "lone": "\ud800", "deep": [[[[[[1]]]]]] * 3})
    spellings = [json_body(value), json.dumps(value), json.dumps(value, indent=2, ensure_ascii=True)]
    for text in spellings:
        assert parse_body(text.encode("utf-8", "surrogatepass")) == parse_json_strict(text) == parse_json(text)


def test_source_values_keep_the_last_of_a_repeated_name() -> None:
    # localStorage is read as it is: the product never loses a value for how it was written.
    text = '{"state":{"tasks":[{"id":"t","title":"a","title":"b"}]},"version":0,"version":1}'
    expected = {"state": {"tasks": [{"id": "t", "title": "b"}]}, "version": 1}
    assert parse_json(text) == read_json(text) == expected
    with pytest.raises(RepeatedName):
        parse_json_strict(text)


# --- over HTTP: a 400 invalid_json, and nothing written -------------------------------------------------------


def refused(response: Any, name: str) -> None:
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "invalid_json"
    assert f'names "{name}" twice' in response.json["error"]["message"]


def rows(postgres: Any, *tables: str) -> list[int]:
    return [db_rows(postgres, f"SELECT count(*) FROM {table}")[0][0] for table in tables]


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (batch_text(TASK_TWICE), "title"),
        (batch_text(TASK_TWICE.replace('"title":"Second"', '"\\u0074itle":"Second"')), "title"),
        (batch_text('{"id":"task-1","title":"Second","pullRequest":{"number":1,"number":1}}'), "number"),
        (batch_text(json.dumps(TASK)).replace(b'"offset":0', b'"offset":0,"offset":0'), "offset"),
    ],
)
def test_a_batch_that_repeats_a_name_is_400_and_writes_nothing(client, auth, postgres, body, name) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    refused(client.put(f"{API}/sessions/{sid}/batches/0", data=body, headers=headers), name)
    assert rows(postgres, "tasks", "migration_ledger", "migration_batches", "quarantine") == [0, 0, 0, 0]
    # The same batch without the repeat goes in under the same seq.
    assert put(client, headers, sid, 0, batch_body("task-store", [TASK])).status_code == 200


def test_other_routes_refuse_a_repeated_name_and_write_nothing(client, auth, postgres) -> None:
    headers = auth("alice")
    body = b'{"client_session_id":"tab-1","client_session_id":"tab-2"}'
    refused(client.post(f"{API}/sessions", data=body, headers=headers), "client_session_id")
    assert rows(postgres, "migration_sessions") == [0]

    sid = open_session(client, headers)
    remainder = json.dumps(whole_key(catalog_of(client), "task-store", [TASK]).remainder)
    body = f'{{"key":"task-store","remainder":{remainder},"key":"task-store"}}'.encode()
    refused(client.put(f"{API}/sessions/{sid}/remainders", data=body, headers=headers), "key")
    assert rows(postgres, "migration_remainders") == [0]

    assert put_remainder(client, headers, sid, "task-store", [TASK]).status_code == 200
    assert put(client, headers, sid, 0, batch_body("task-store", [TASK])).status_code == 200
    entry = whole_key(catalog_of(client), "task-store", [TASK]).manifest([digest(TASK)])
    body = json.dumps({"manifest": {"task-store": entry}}).replace('"count": 1', '"count": 2, "count": 1').encode()
    assert b'"count": 2, "count": 1' in body
    before = client.get(f"{API}/sessions/{sid}", headers=headers).json
    refused(client.post(f"{API}/sessions/{sid}/complete", data=body, headers=headers), "count")
    assert client.get(f"{API}/sessions/{sid}", headers=headers).json == before
