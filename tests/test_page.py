"""The page's adapters (browser/page.py) on CPython: the bodies fetch puts on the wire."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from lsmigrate.browser import page
from lsmigrate.browser.page import fetch_sender, json_body
from tests.migration_helpers import API, db_rows
from tests.runner_helpers import FakeLocalStorage, run, zustand

CUT_EMOJI = "Launch \ud83d"  # "Launch 😀".slice(0, 8) in the page: the emoji's high surrogate alone
CUT_KEY = "form-\ud83d-draft"


def as_fetch_sends(text: str) -> bytes:
    """What fetch sends for a JavaScript string body: UTF-8, every lone surrogate replaced by U+FFFD."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode("utf-8")


@pytest.mark.parametrize(
    "body",
    [
        {"records": [{"title": CUT_EMOJI}]},
        {"key": CUT_KEY, "records": [{"\udc00": "low", "pair": "😀", "text": "é \\ud800 is only text"}]},
        {"remainder": {"tree": ["\udfff", "日本語"]}},
        {"plain": "ascii only"},
    ],
    ids=["cut-emoji", "key-and-name", "remainder", "ascii"],
)
def test_a_body_reaches_the_server_as_the_page_holds_it(body: dict[str, Any]) -> None:
    text = json_body(body)
    assert json.loads(as_fetch_sends(text)) == body
    if "😀" in json.dumps(body, ensure_ascii=False):
        assert "😀" in text  # only surrogates are escaped: other text goes as UTF-8


class FakeResponse:
    """pyfetch's answer: the status, the headers, the body as text."""

    def __init__(self, status: int, headers: dict[str, str], text: str) -> None:
        self.status = status
        self.headers = headers
        self._text = text

    async def string(self) -> str:
        return self._text


def fetch_over(client: FlaskClient) -> Any:
    """A pyfetch that calls the app through its test client and sends the body as fetch does."""

    async def pyfetch(url: str, *, method: str, headers: dict[str, str], body: str | None) -> FakeResponse:
        data = None if body is None else as_fetch_sends(body)
        response = client.open(url, method=method, headers=headers, data=data)
        answer = {name.lower(): value for name, value in response.headers.items()}
        return FakeResponse(response.status_code, answer, response.get_data(as_text=True))

    return pyfetch


def test_a_lone_surrogate_in_a_record_or_a_key_name_never_blocks_the_users_migration(
    client, auth, postgres, monkeypatch
) -> None:
    monkeypatch.setattr(page, "pyfetch", fetch_over(client), raising=False)
    token = auth("alice")["Authorization"].removeprefix("Bearer ")
    draft = json.dumps({"title": "a key holding a lone surrogate"})
    storage = FakeLocalStorage(
        {
            "task-store": zustand("tasks", [{"id": "t-cut", "title": CUT_EMOJI}, {"id": "t-ok", "title": "Launch"}]),
            CUT_KEY: draft,
            "form-draft-1": draft,
        }
    )
    report = run(storage, fetch_sender(API, token))
    assert report["state"] == "done", report.get("error")
    found = report["keys"]["task-store"]
    assert (found["inserted"], found["quarantined"]) == (1, 1)
    [quarantined] = client.get(f"{API}/sessions/{report['session_id']}/quarantine", headers=auth("alice")).json[
        "records"
    ]
    assert quarantined["raw"] == {"id": "t-cut", "title": CUT_EMOJI}  # the surrogate intact, not U+FFFD
    assert [reason["code"] for reason in quarantined["reasons"]] == ["unstorable_text"]
    # The key whose name no column holds is reported and kept; the others migrate.
    assert report["errors"] == [
        {
            "key": CUT_KEY,
            "code": "unstorable_key",
            "expected": "a key name the server can store",
            "found": "a name it refuses (must not contain a lone surrogate)",
        }
    ]
    assert report["keys"][CUT_KEY]["cleaned_up"] is False
    assert storage.items[CUT_KEY] == draft
    assert "form-draft-1" not in storage.items  # the demo deletes a draft the server holds whole
    assert db_rows(postgres, "SELECT count(*) FROM form_drafts") == [(1,)]
