"""The environment mapping: ids, names, and the GitHub token as a secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from lsmigrate.demo.stores import STORES
from lsmigrate.shared.canonical import canonical_json
from lsmigrate.shared.envelopes import SourceError
from lsmigrate.shared.mapping import MappedRecord

SPEC = STORES.named("environments")
TOKEN = "ghp_0123456789abcdefghijklmnopqrstuvwxyz"


def test_token_goes_to_secrets_with_a_hint_and_never_into_the_row() -> None:
    [mapped] = SPEC.map(
        key="environments",
        records=[{"id": "env-1", "name": "Prod", "githubToken": TOKEN}],
        user_id="alice",
        migrated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert mapped.secrets == {"github_token": TOKEN}
    assert mapped.row is not None
    assert mapped.row["github_token_hint"] == "…wxyz"
    assert TOKEN not in json.dumps(mapped.row) + json.dumps(mapped.warnings)
    assert canonical_json(SPEC.rebuild(mapped.row, mapped.secrets)) == canonical_json(
        {"id": "env-1", "name": "Prod", "githubToken": TOKEN}
    )


def test_a_token_that_is_not_text_is_quarantined_without_its_value_in_the_reason() -> None:
    [mapped] = SPEC.map(
        key="environments",
        records=[{"name": "Prod", "githubToken": {"value": TOKEN}}],
        user_id="alice",
        migrated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert mapped.quarantined
    assert TOKEN not in json.dumps(mapped.reasons)


def test_missing_name_is_untitled_with_a_warning() -> None:
    [mapped] = SPEC.map(
        [{"id": "e"}], key="environments", user_id="alice", migrated_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert mapped.row["name"] == "Untitled environment"  # type: ignore[index]
    assert {"code": "name_missing", "field": "name"} in mapped.warnings


def map_one(record: Any) -> MappedRecord:
    [mapped] = SPEC.map([record], key="environments", user_id="alice", migrated_at=datetime(2026, 1, 1, tzinfo=UTC))
    return mapped


def shown(mapped: MappedRecord) -> str:
    """Everything a mapped record shows: the outcome, its warnings and reasons."""
    return canonical_json(mapped.as_dict()) + json.dumps([mapped.warnings, mapped.reasons]) + repr(mapped.as_dict())


@pytest.mark.parametrize(
    ("record", "quarantined"),
    [
        ({"id": "env-1", "name": "Prod", "githubToken": TOKEN}, False),
        ({"id": "env-1", "name": {"text": "Prod"}, "githubToken": TOKEN}, True),
        ({"id": ["env-1"], "name": "Prod", "githubToken": TOKEN}, True),
        ({"name": "Prod", "githubToken": {"value": TOKEN}}, True),
        ({"name": "Prod", "githubToken": [TOKEN]}, True),
        ({"name": "Prod", "githubToken": TOKEN, "createdAt": "garbage", "description": 5}, False),
    ],
)
def test_a_token_never_appears_in_warnings_reasons_or_the_outcome(record: dict[str, Any], quarantined: bool) -> None:
    mapped = map_one(record)
    assert mapped.quarantined is quarantined
    assert TOKEN not in shown(mapped)
    assert TOKEN[4:-4] not in shown(mapped)
    if quarantined:
        assert mapped.secrets == {}
    else:
        assert "githubToken" not in json.dumps(mapped.row["metadata"])  # type: ignore[index]


def test_a_refused_token_is_reported_without_its_type_detail() -> None:
    mapped = map_one({"name": "Prod", "githubToken": 12345678901234567890})
    assert mapped.reasons == [{"code": "wrong_type", "field": "githubToken", "message": "the value was refused"}]


@pytest.mark.parametrize(
    ("token", "hint"),
    [
        (TOKEN, "…wxyz"),
        ("ghp_short", "…"),
        ("ghp_0123456789abcd", "…"),
        ("", "…"),
        ("github_pat_11ABCDEFG0123", "…0123"),
    ],
)
def test_the_hint_names_a_token_without_revealing_it(token: str, hint: str) -> None:
    record = {"id": "env-1", "name": "Prod", "githubToken": token}
    mapped = map_one(record)
    assert mapped.row["github_token_hint"] == hint  # type: ignore[index]
    assert mapped.secrets == {"github_token": token}
    assert canonical_json(SPEC.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)  # type: ignore[arg-type]


@pytest.mark.parametrize("record", [{"id": "env-1", "githubToken": None}, {"id": "env-1"}])
def test_no_token_is_no_secret(record: dict[str, Any]) -> None:
    mapped = map_one(record)
    assert mapped.secrets == {}
    assert mapped.row["github_token_hint"] is None  # type: ignore[index]
    assert canonical_json(SPEC.rebuild(mapped.row, {})) == canonical_json(record)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"state": {"environments": {"githubToken": TOKEN}}, "version": 0}),
        json.dumps({"state": {"environments": TOKEN}, "version": 0}),
        json.dumps({"state": {"environments": []}, "version": TOKEN}),
        json.dumps({"state": TOKEN}),
        json.dumps({"state": {"environments": [{"githubToken": TOKEN}]}})[:-4],
    ],
)
def test_a_source_error_never_shows_a_token(raw: str) -> None:
    with pytest.raises(SourceError) as caught:
        SPEC.extract("environments", raw)
    assert caught.value.key == "environments"
    assert TOKEN not in str(caught.value) + json.dumps(caught.value.as_dict())


@pytest.mark.parametrize(
    ("name", "column", "warning"),
    [
        ("Prod", "Prod", None),
        ("<b>Prod</b> & <i>Staging</i>", "<b>Prod</b> & <i>Staging</i>", None),
        ("", "Untitled environment", "name_missing"),
        (None, "Untitled environment", "name_missing"),
        (42, "42", "number_as_text"),
    ],
)
def test_names_are_kept_verbatim_or_defaulted(name: Any, column: str, warning: str | None) -> None:
    record = {"id": "env-1", "name": name, "githubOrganization": "acme", "region": "eu"}
    mapped = map_one(record)
    assert mapped.row["name"] == column  # type: ignore[index]
    assert mapped.row["github_organization"] == "acme"  # type: ignore[index]
    assert mapped.row["metadata"]["extra"] == {"region": "eu"}  # type: ignore[index]
    assert [w["code"] for w in mapped.warnings if w["field"] == "name"] == ([warning] if warning else [])
    assert canonical_json(SPEC.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)  # type: ignore[arg-type]
