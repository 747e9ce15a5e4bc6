"""Request bodies sent gzip-compressed (Content-Encoding, issue 14): inflated under the decompressed limit, the
same rows and answers as plain bodies, a decompression bomb refused while it inflates."""

from __future__ import annotations

import gzip
import io
import json
import struct
import time
import tracemalloc
import zlib
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from lsmigrate.server.api.bodies import gunzip
from lsmigrate.server.db import db
from lsmigrate.server.errors import ApiError
from tests.conftest import TABLES
from tests.corpus import realistic_tasks
from tests.fixtures_services import RedisServer
from tests.migration_helpers import API, DUMPED_TABLES, batch_body, catalog_of, dump, manifest_entry, whole_key

GIB = 1 << 30
CRC_BODY = b'{"client_session_id":"crc"}'


def compact(value: Any) -> bytes:
    """JSON as the page writes it: compact, members in order."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def gzip_of_zeros(size: int) -> bytes:
    """A valid gzip member of `size` zero bytes, built without deflating them all: a block of 1 MiB of zeros,
    ended by a full flush (which resets the compressor), is the same bytes wherever it stands, so it repeats."""
    block_size = 1 << 20
    assert size % block_size == 0
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(bytes(block_size)) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    zeros = bytes(block_size)
    for _ in range(size // block_size):
        crc = zlib.crc32(zeros, crc)
    ending = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # an empty final block
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + block * (size // block_size) + ending + struct.pack("<II", crc, size & 0xFFFFFFFF)


def send(client: FlaskClient, method: str, url: str, body: bytes, headers: dict[str, str], coding: str | None):
    """`body` sent as it is, with `coding` as its Content-Encoding (None: none)."""
    extra = {"Content-Type": "application/json"} | ({"Content-Encoding": coding} if coding else {})
    return client.open(url, method=method, data=body, headers={**headers, **extra})


def open_session(client: FlaskClient, headers: dict[str, str], coding: str | None = None) -> str:
    body = compact({"client_session_id": "tab-1"})
    response = send(client, "POST", f"{API}/sessions", gzip.compress(body) if coding else body, headers, coding)
    assert response.status_code == 201, response.json
    return str(response.json["session_id"])


def empty(app: Flask, redis_server: RedisServer) -> None:
    """Every table and the cache emptied, as the `app` fixture leaves them."""
    with app.app_context():
        db.session.execute(text(f"TRUNCATE {TABLES} CASCADE"))
        db.session.commit()
    redis.Redis.from_url(redis_server.url).flushall()


def counts(postgres: Any) -> dict[str, int]:
    return {table: len(rows) for table, rows in dump(postgres, (*DUMPED_TABLES, "migration_batches")).items()}


def test_the_helper_builds_real_gzip() -> None:
    assert gzip.decompress(gzip_of_zeros(3 << 20)) == bytes(3 << 20)


@pytest.mark.parametrize(
    ("data", "limit"),
    [(b"", 0), (b"{}", 2), (b"x" * 1000, 1000), (bytes(5 << 20), 5 << 20), (b"tail" * 9, None)],
)
def test_gunzip_gives_the_bytes_back_up_to_the_limit(data: bytes, limit: int | None) -> None:
    assert gunzip(gzip.compress(data), limit) == data
    assert gunzip(gzip.compress(data[:1]) + gzip.compress(data[1:]), limit) == data  # two members
    if limit:
        with pytest.raises(ApiError) as refused:
            gunzip(gzip.compress(data), limit - 1)
        assert (refused.value.status, refused.value.code) == (413, "request_too_large")


def test_a_gzip_batch_writes_the_rows_and_answer_of_the_plain_one(
    app: Flask, client: FlaskClient, auth, postgres, redis_server: RedisServer
) -> None:
    headers = auth("alice")
    body = compact(batch_body("task-store", realistic_tasks(60, seed=14)))
    outcomes = {}
    for coding in ("gzip", None):
        empty(app, redis_server)
        sid = open_session(client, headers, coding)
        answer = send(
            client, "PUT", f"{API}/sessions/{sid}/batches/0", gzip.compress(body) if coding else body, headers, coding
        )
        assert answer.status_code == 200, answer.json
        tasks = client.get("/api/tasks", headers=headers).json
        outcomes[coding] = (answer.json, tasks, counts(postgres))
    assert outcomes["gzip"] == outcomes[None]
    assert outcomes["gzip"][0]["counts"] == {"inserted": 60}


@pytest.mark.parametrize(("first", "again"), [("gzip", None), (None, "gzip"), ("x-gzip", "gzip")])
def test_a_batch_replays_whichever_coding_it_is_sent_in(client, auth, postgres, first, again) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    body = compact(batch_body("task-store", realistic_tasks(20, seed=1)))
    url = f"{API}/sessions/{sid}/batches/0"
    answer = send(client, "PUT", url, gzip.compress(body) if first else body, headers, first)
    assert answer.status_code == 200, answer.json
    replay = send(client, "PUT", url, gzip.compress(body) if again else body, headers, again)
    assert (replay.status_code, replay.json) == (200, answer.json)
    other = compact(batch_body("task-store", realistic_tasks(20, seed=2)))
    mismatch = send(client, "PUT", url, gzip.compress(other), headers, "gzip")
    assert (mismatch.status_code, mismatch.json["error"]["code"]) == (409, "batch_mismatch")
    assert counts(postgres)["tasks"] == 20


def test_every_body_route_takes_gzip(client, auth) -> None:
    headers = auth("alice")
    sid = open_session(client, headers, "gzip")
    task = {"id": "task-1", "title": "Zipped", "status": "DONE"}
    catalog = catalog_of(client)
    batch = compact(batch_body("task-store", [task]))
    assert (
        send(client, "PUT", f"{API}/sessions/{sid}/batches/0", gzip.compress(batch), headers, "gzip").status_code == 200
    )
    remainder = compact({"key": "task-store", "remainder": whole_key(catalog, "task-store", [task]).remainder})
    answer = send(client, "PUT", f"{API}/sessions/{sid}/remainders", gzip.compress(remainder), headers, "gzip")
    assert answer.status_code == 200, answer.json
    manifest = compact({"manifest": {"task-store": manifest_entry([task], catalog, "task-store")}})
    verdict = send(client, "POST", f"{API}/sessions/{sid}/complete", gzip.compress(manifest), headers, "gzip")
    assert verdict.status_code == 200, verdict.json
    assert verdict.json["verified"] is True


def test_the_limit_applies_to_the_inflated_body(app: Flask, client, auth, postgres, monkeypatch) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    body = compact(batch_body("task-store", realistic_tasks(30, seed=3)))
    compressed = gzip.compress(body)
    assert len(compressed) < len(body) // 3
    url = f"{API}/sessions/{sid}/batches/0"
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", len(body) - 1)
    refused = send(client, "PUT", url, compressed, headers, "gzip")
    assert (refused.status_code, refused.json["error"]["code"]) == (413, "request_too_large")
    assert f"larger than {len(body) - 1} bytes once decompressed" in refused.json["error"]["message"]
    assert counts(postgres)["migration_batches"] == 0
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", len(body))
    assert send(client, "PUT", url, compressed, headers, "gzip").status_code == 200


def test_the_compressed_body_is_limited_as_a_plain_one(app: Flask, client, auth, monkeypatch) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    noise = gzip.compress(bytes(range(256)) * 40, compresslevel=0)  # 10 KB that do not compress
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 5000)
    url = f"{API}/sessions/{sid}/batches/0"
    for extra in ({}, {"input_stream": io.BytesIO(noise), "environ_overrides": {"wsgi.input_terminated": True}}):
        headers_sent = {**headers, "Content-Type": "application/json", "Content-Encoding": "gzip"}
        if extra:
            headers_sent["Transfer-Encoding"] = "chunked"
        answer = client.put(url, data=None if extra else noise, headers=headers_sent, **extra)
        assert (answer.status_code, answer.json["error"]["code"]) == (413, "request_too_large"), extra


def test_a_chunked_gzip_body_is_inflated(client, auth) -> None:
    headers = auth("alice")
    body = gzip.compress(compact({"client_session_id": "chunked"}))
    answer = client.post(
        f"{API}/sessions",
        input_stream=io.BytesIO(body),
        headers={
            **headers,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Transfer-Encoding": "chunked",
        },
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert answer.status_code == 201, answer.json


def test_a_gzip_bomb_is_413_quickly_and_within_memory(app: Flask, client, auth, postgres) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    bomb = gzip_of_zeros(2 * GIB)
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert len(bomb) < limit < 2 * GIB // 50  # passes as sent; 2 GiB once inflated
    tracemalloc.start()
    try:
        started = time.perf_counter()
        answer = send(client, "PUT", f"{API}/sessions/{sid}/batches/0", bomb, headers, "gzip")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 413
    assert answer.json["error"] == {
        "code": "request_too_large",
        "message": f"The request body is larger than {limit} bytes once decompressed.",
        "details": None,
    }
    assert elapsed < 5, elapsed  # the limit's worth of zeros inflated (about 0.1 s), not 2 GiB
    assert peak < 2 * limit, peak  # the pieces up to the limit and the compressed body (~1.2x), not 2 GiB
    assert counts(postgres)["migration_batches"] == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (compact({"client_session_id": "plain"}), "not valid gzip"),
        (gzip.compress(compact({"client_session_id": "cut"}))[:-6], "cut short"),
        (b"", "empty or cut short"),
        (gzip.compress(CRC_BODY)[:-8] + b"\0\0\0\0" + struct.pack("<I", len(CRC_BODY)), "incorrect data check"),
        (gzip.compress(compact({"client_session_id": "tail"})) + b"trailing", "not valid gzip"),
    ],
    ids=["not-gzip", "truncated", "empty", "bad-crc", "trailing-garbage"],
)
def test_gzip_that_does_not_inflate_is_400(client, auth, postgres, body: bytes, message: str) -> None:
    answer = send(client, "POST", f"{API}/sessions", body, auth("alice"), "gzip")
    assert (answer.status_code, answer.json["error"]["code"]) == (400, "invalid_encoding")
    assert message in answer.json["error"]["message"]
    assert dump(postgres, ("migration_sessions",)) == {"migration_sessions": []}


@pytest.mark.parametrize("coding", ["br", "deflate", "zstd", "compress", "gzip, gzip", "gzip, br", "bogus"])
def test_another_content_encoding_is_415_naming_what_is_accepted(client, auth, postgres, coding: str) -> None:
    body = compact({"client_session_id": "tab-1"})
    answer = send(client, "POST", f"{API}/sessions", body, auth("alice"), coding)
    assert answer.status_code == 415
    error = answer.json["error"]
    assert error["code"] == "unsupported_encoding"
    assert "gzip" in error["message"] and repr(coding) in error["message"]
    assert error["details"] == {"accepted": ["gzip", "x-gzip", "identity"]}
    assert dump(postgres, ("migration_sessions",)) == {"migration_sessions": []}


@pytest.mark.parametrize("coding", ["identity", "IDENTITY", "", "Gzip", " x-gzip , identity "])
def test_identity_and_gzip_in_any_case_are_accepted(client, auth, coding: str) -> None:
    body = compact({"client_session_id": "tab-1"})
    zipped = "gzip" in coding.lower()
    answer = send(client, "POST", f"{API}/sessions", gzip.compress(body) if zipped else body, auth("alice"), coding)
    assert answer.status_code == 201, answer.json


def test_a_preflight_from_an_allowed_origin_allows_content_encoding(make_app) -> None:
    client = make_app(None, CORS_ORIGINS="https://app.example").test_client()
    preflight = client.options(
        f"{API}/sessions/x/batches/0",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization,content-encoding,content-type",
        },
    )
    assert preflight.status_code == 204
    allowed = {name.strip().lower() for name in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-encoding", "content-type"} <= allowed


def test_the_openapi_document_describes_compressed_bodies(client) -> None:
    document = client.get("/api/openapi.json").json
    assert "unsupported_encoding" in document["components"]["responses"]["Error415"]["description"]
    assert "invalid_encoding" in document["components"]["responses"]["Error400"]["description"]
    for item in document["paths"].values():
        for operation in item.values():
            if "requestBody" in operation:
                assert "Content-Encoding: gzip" in operation["requestBody"]["description"]
                assert operation["responses"]["415"] == {"$ref": "#/components/responses/Error415"}


def test_the_apis_answers_go_gzip_compressed_to_a_client_that_accepts_it(client: FlaskClient, auth) -> None:
    """A batch's answer (its per-record results: 140 KB for 1,000 records) is compressed on the way down too."""
    headers = auth("alice")
    sid = open_session(client, headers)
    tasks = realistic_tasks(200, 7)
    body = compact(batch_body("task-store", tasks))
    plain = client.put(f"{API}/sessions/{sid}/batches/0", data=body, headers=headers)
    zipped = client.put(
        f"{API}/sessions/{sid}/batches/0", data=body, headers={**headers, "Accept-Encoding": "gzip, br"}
    )
    assert plain.status_code == zipped.status_code == 200
    assert "Content-Encoding" not in plain.headers and "Accept-Encoding" in plain.headers["Vary"]
    assert zipped.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["Vary"]
    assert json.loads(gzip.decompress(zipped.get_data())) == plain.json  # the replay: the same answer
    assert len(zipped.get_data()) < len(plain.get_data()) / 3  # random ids and digests: about 3.7 times
    small = client.get(f"{API}/sessions/{sid}", headers={**headers, "Accept-Encoding": "gzip"})
    assert len(small.get_data()) >= 1024 or "Content-Encoding" not in small.headers
