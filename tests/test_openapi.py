"""The OpenAPI document at /api/openapi.json, and a schemathesis fuzz run against the app it describes."""

from __future__ import annotations

import re

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error

from lsmigrate.server.api.openapi import OPERATIONS, openapi_path

_METHODS = {"get", "put", "post", "patch", "delete"}


def test_the_document_is_served_without_a_token(client) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.json["openapi"].startswith("3.")
    assert response.json["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_every_api_route_is_in_the_document(app: Flask, client) -> None:
    documented = {
        (path, method) for path, item in client.get("/api/openapi.json").json["paths"].items() for method in item
    }
    routed = {
        (openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") and rule.endpoint != "lsmigrate.docs.show_openapi"
        for method in rule.methods or ()
        if method.lower() in _METHODS
    }
    assert routed == documented


def _refs(value: object) -> set[str]:
    if isinstance(value, dict):
        found = {value["$ref"]} if isinstance(value.get("$ref"), str) else set()
        return found.union(*(_refs(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_refs(item) for item in value))
    return set()


def test_the_document_is_well_formed_openapi_3(client) -> None:
    document = client.get("/api/openapi.json").json
    assert set(document) >= {"openapi", "info", "paths", "components"}
    assert {"title", "version"} <= set(document["info"])
    for ref in _refs(document):
        section, name = re.fullmatch(r"#/components/(\w+)/(\w+)", ref).groups()  # type: ignore[union-attr]
        assert name in document["components"][section], ref
    for path, item in document["paths"].items():
        in_path = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            assert method in _METHODS
            assert operation["responses"], (path, method)
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == in_path, (path, method)
    # The same schemas the views load bodies with, not copies.
    assert {op.body.__name__ for op in OPERATIONS if op.body} <= set(document["components"]["schemas"])


def test_the_document_is_valid_against_the_openapi_schema(client) -> None:
    # openapi-spec-validator checks against the OpenAPI 3.x JSON Schema it ships (no network),
    # then what a JSON Schema cannot say: $refs that resolve, path parameters declared, and so on.
    document = client.get("/api/openapi.json").json
    assert document["openapi"].startswith("3.")
    validate(document)


def test_every_error_status_answers_with_the_envelope(client) -> None:
    document = client.get("/api/openapi.json").json
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert response == {"$ref": f"#/components/responses/Error{status}"}


@pytest.fixture
def fuzz_session(client, auth) -> str:
    """An open session of the fuzzing user, so operations on a session reach past the 404."""
    response = client.post("/api/migration/sessions", headers=auth("fuzz"), json={"client_session_id": "fuzz"})
    assert response.status_code == 201
    return response.json["session_id"]


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.method.upper()} {op.path}")
def test_fuzzing_finds_no_server_error(app: Flask, auth, fuzz_session: str, operation, mode) -> None:
    """Bodies and parameters generated from the document (valid, then invalid): never a 5xx, errors enveloped."""
    api = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    # Answers uncompressed: the WSGI client does not inflate the gzip a client that accepts it gets
    # (tests/test_compressed_bodies.py covers that).
    headers = {**auth("fuzz"), "Accept-Encoding": "identity"}

    # A generated sid names no session (404), so half the cases get the open one and reach the view.
    @given(case=api[openapi_path(operation.path)][operation.method.upper()].as_strategy(mode), real_sid=st.booleans())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def call(case: Case, real_sid: bool) -> None:
        if real_sid and "sid" in (case.path_parameters or {}):
            case.path_parameters["sid"] = fuzz_session  # type: ignore[index]
        response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
        if response.status_code >= 300:
            error = response.json()["error"]
            assert set(error) == {"code", "message", "details"}
            assert isinstance(error["code"], str) and isinstance(error["message"], str)

    call()


def test_a_batch_number_past_the_ledgers_column_is_not_found(client, auth, fuzz_session: str) -> None:
    # Found by the fuzz run: 2**31 reached PostgreSQL and failed there with a 500.
    body = {"key": "task-store", "offset": 0, "records": [], "digests": []}
    response = client.put(f"/api/migration/sessions/{fuzz_session}/batches/{2**31}", headers=auth("fuzz"), json=body)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
