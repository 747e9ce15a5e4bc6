"""The environment mapping: ids, names, and the GitHub token as a secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from lsmigrate.shared.canonical import canonical_json
from lsmigrate.shared.catalog import STORES

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
    assert mapped.row["github_token_hint"] == "ghp_…wxyz"
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
