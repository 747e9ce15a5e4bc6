"""A deterministic localStorage corpus: realistic stores plus the input design §3 warns about.

    corpus()                  the main snapshot {localStorage key: raw text}: more than 300
                              records over tasks, environments, form drafts and preferences,
                              realistic and adversarial, plus keys lsmigrate must leave alone
    failing_corpus()          a snapshot whose keys are refused whole (invalid JSON, a wrong
                              envelope shape, a Zustand version above the spec's)
    snapshots()               both, by name: what CPython and Pyodide must map alike
    divergent_corpora()       input on which they do not agree yet, by cause
    realistic_tasks(n, seed)  tasks as the app writes them, about 1.6 KB of JSON each
    js_json(value)            JSON text the way JavaScript's JSON.stringify writes it

Raw texts are written as `JSON.stringify` writes them (UTF-8 kept, lone
surrogates escaped as \\udXXX, so the texts themselves hold none), except the
records written by hand to test other writers (1.0, -0.0, 1E21, duplicate
keys, escaped surrogates). The same call always gives the same text.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

USER_ID = "corpus-user"
MIGRATED_AT = "2026-02-03T04:05:06.789Z"

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_EPOCH_2024 = datetime(2024, 1, 1, tzinfo=UTC)
_WORDS = (
    "add remove fix refactor migrate cache token session batch upload retry backoff index schema "
    "digest manifest ledger quarantine conflict rollback verify branch commit merge rebase deploy "
    "pipeline build lint format test fixture flaky timeout latency throughput worker queue redis "
    "postgres sqlite alembic flask pyodide wasm browser storage zustand store state reducer hook "
    "component render panel progress button modal dialog form draft input validation error message "
    "handler endpoint route request response header cookie auth login logout user profile settings "
    "theme dark light locale language timezone date parse serialize encode decode compress backup "
    "restore export import report metric dashboard chart table column row query filter sort page"
).split()
_ORGS = ("acme", "globex", "initech", "umbrella", "hooli", "stark-industries", "wayne-enterprises")
_REPOS = ("web-app", "api", "mobile", "infra", "docs", "design-system", "data-pipeline", "cli")
_STATUSES = ("IN_PROGRESS", "DONE", "MERGED", "PAUSED", "CANCELLED")
_MESSAGE_TYPES = ("message", "message", "tool_use", "tool_result", "status")
_DROP: Any = object()


def js_json(value: Any) -> str:
    """JSON text as `JSON.stringify` writes it: compact, UTF-8 kept, lone surrogates escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def js_iso(moment: datetime) -> str:
    """A moment as `Date.prototype.toISOString` writes it: 2024-01-15T10:30:00.000Z."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(count))


def _sentence(rng: random.Random, low: int, high: int) -> str:
    text = _words(rng, rng.randint(low, high))
    return text[0].upper() + text[1:] + "."


def _text_of(rng: random.Random, length: int) -> str:
    """Sentences until about `length` characters."""
    parts: list[str] = []
    size = 0
    while size < length:
        parts.append(_sentence(rng, 6, 14))
        size += len(parts[-1]) + 1
    return " ".join(parts)


def _message(rng: random.Random, index: int) -> dict[str, Any]:
    kind = rng.choice(_MESSAGE_TYPES)
    data: dict[str, Any] = {"text": _text_of(rng, 100)}
    if kind == "tool_use":
        data["tool"] = rng.choice(("bash", "edit", "read", "search"))
    return {"role": "user" if index % 2 == 0 else "assistant", "type": kind, "data": data}


def _realistic_task(rng: random.Random, messages: int = 5) -> dict[str, Any]:
    org, repo = rng.choice(_ORGS), rng.choice(_REPOS)
    title = _sentence(rng, 3, 8).rstrip(".")
    slug = "-".join(title.lower().split()[:4])
    created = _EPOCH_2024 + timedelta(milliseconds=rng.randrange(365 * 24 * 3600 * 1000))
    updated = created + timedelta(milliseconds=rng.randrange(14 * 24 * 3600 * 1000))
    task: dict[str, Any] = {
        "id": _uuid4(rng),
        "title": title,
        "description": _text_of(rng, 60),
        "status": rng.choice(_STATUSES),
        "branch": f"feature/{slug}-{rng.randrange(1000)}",
        "sessionId": f"sess_{rng.getrandbits(96):024x}",
        "repository": f"{org}/{repo}",
        "statusMessage": _sentence(rng, 3, 6),
        "isArchived": rng.random() < 0.1,
        "mode": "ask" if rng.random() < 0.2 else "code",
        "hasChanges": rng.random() < 0.5,
        "messages": [_message(rng, index) for index in range(messages)],
        "createdAt": js_iso(created),
        "updatedAt": js_iso(updated),
    }
    if rng.random() < 0.4:
        number = rng.randrange(1, 5000)
        task["pullRequest"] = {
            "url": f"https://github.com/{org}/{repo}/pull/{number}",
            "number": number,
            "status": rng.choice(("open", "merged", "closed")),
            "title": title,
        }
    return task


def realistic_tasks(n: int, seed: int = 0, messages: int = 5) -> list[dict[str, Any]]:
    """`n` tasks as the app writes them: real-looking fields, `messages` messages, JavaScript ISO dates
    (about 1.6 KB of JSON each with 5 messages)."""
    rng = random.Random(seed)
    return [_realistic_task(rng, messages) for _ in range(n)]


#: The fields of a compact task: what a to-do list keeps, without its conversation or pull request.
_COMPACT_FIELDS = (
    "id",
    "title",
    "status",
    "branch",
    "repository",
    "isArchived",
    "mode",
    "hasChanges",
    "createdAt",
    "updatedAt",
)


def compact_tasks(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` realistic tasks cut down to the fields of a to-do list: about 330 bytes of JSON each, so that
    10,000 of them (3.3 MB) fit in a browser's 5 MB of localStorage."""
    return [{name: task[name] for name in _COMPACT_FIELDS} for task in realistic_tasks(n, seed, messages=0)]


def _variant(base: dict[str, Any], number: int, **changes: Any) -> dict[str, Any]:
    """A copy of `base` with its own task-N id and `changes` (a _DROP value removes the field)."""
    record = {**base, "id": f"task-{number}"}
    for name, value in changes.items():
        if value is _DROP:
            record.pop(name, None)
        else:
            record[name] = value
    return record


def _nested(depth: int) -> Any:
    value: Any = {"leaf": "bottom", "n": depth}
    for level in range(depth):
        value = [value] if level % 2 else {"level": depth - level, "child": value}
    return value


_STATUS_SPELLINGS: tuple[Any, ...] = (
    *_STATUSES,
    "in-progress",
    "In Progress",
    "inprogress",
    "in_progress",
    " DONE ",
    "done",
    "Done",
    "completed",
    "Complete",
    "merged",
    "Paused",
    "canceled",
    "CANCELED",
    "cancelled",
    "pending",
    "archived",
    "",
    "ＤＯＮＥ",
    "İN_PROGRESS",
    None,
    1,
    True,
    ["DONE"],
    {"value": "DONE"},
)

_DATES: tuple[Any, ...] = (
    "2024-01-15T10:30:00.000Z",
    "2024-01-15T10:30:00Z",
    "2024-01-15T10:30:00+02:00",
    "2024-01-15T10:30:00.123456-05:30",
    "2024-01-15T10:30:00.1234567Z",
    "2024-01-15T10:30:00.5+14:00",
    "2024-01-15 10:30:00",
    "2024-01-15",
    "2024-01-15T10:30",
    " 2024-01-15T10:30:00.000Z ",
    "9999-12-31T23:59:59.999Z",
    "0001-01-01T00:00:00.000Z",
    "0001-01-01T00:30:00+01:00",
    "2024-02-30T00:00:00.000Z",
    "2024-13-01T00:00:00.000Z",
    "Mon Jan 15 2024 10:30:00 GMT+0100 (Central European Standard Time)",
    "yesterday",
    "",
    1705314600000,
    1705314600000.5,
    -1,
    0,
    1e20,
    "1705314600000",
    "-86400000",
    "17053146000000000",
    True,
    {"$date": "2024-01-15T10:30:00.000Z"},
    None,
)

_FLAGS: tuple[Any, ...] = ("true", "false", "TRUE", " 1 ", "0", 0, 1, 1.0, None, "yes", 2)


def _adversarial_tasks(base: dict[str, Any]) -> list[str]:
    """Raw JSON texts of the tasks the design says to expect besides the realistic ones."""
    records: list[Any] = []
    number = iter(range(1, 10_000))

    def add(**changes: Any) -> None:
        records.append(_variant(base, next(number), **changes))

    # Ids: task-N (every variant), numbers, missing, null, empty, upper-case UUIDs, wrong types.
    for source_id in (
        7,
        0,
        -3,
        1.5,
        2**64,
        "42",
        None,
        "",
        "  ",
        "6A8F5C1E-2B3D-4E5F-8A9B-0C1D2E3F4A5B",
        "{6a8f5c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b}",
        "6a8f5c1e2b3d4e5f8a9b0c1d2e3f4a5b",
        "tâche-été-😀",
        True,
        ["task-1"],
        {"id": "task-1"},
    ):
        add(id=source_id)
    records.append({key: value for key, value in base.items() if key != "id"})
    records.append({"title": "only a title"})
    records.append({})
    for status in _STATUS_SPELLINGS:
        add(status=status)
    for created in _DATES:
        add(createdAt=created, updatedAt=_DROP)
    add(createdAt=None, updatedAt=None)
    add(createdAt="garbage", updatedAt="2024-03-01T00:00:00.000Z")
    add(createdAt=_DROP, updatedAt=_DROP)
    for flag in _FLAGS:
        add(isArchived=flag, hasChanges=flag)
    # Titles: empty, missing, null, 100 KB, HTML, numbers, unicode of every width.
    add(title="")
    add(title=_DROP)
    add(title=None)
    add(title="é" * 50_000)
    add(title="<img src=x onerror=\"alert('t')\"><script>alert(document.cookie)</script>")
    add(title=12345)
    add(title=0.1)
    add(title=["a", "title"])
    add(title="Café crème — naïve façade, Ærøskøbing, Smørrebrød")
    add(title="修复登录页面的缓存问题 · ログインのバグ · 로그인 수정")
    add(title="Ship it 🚀🔥 👩‍👩‍👧‍👦 𝕌𝕟𝕚𝕔𝕠𝕕𝕖 \U0010fffd")
    add(title="zero\u200bwidth\u00a0nbsp\ttab\nnewline\u0000nul\u2028ls")
    add(description="x" * 1_000_000)
    add(description=None, statusMessage=None, branch=None, sessionId=None, repository=None)
    # Numbers as strings and strings as numbers; booleans as strings.
    add(sessionId=12345678901234567890, branch=1.0, repository=-0.0, statusMessage=1e21)
    add(description=0.1, statusMessage=1e-7, branch=2**53 + 1)
    add(isArchived="false", hasChanges="true", mode="ASK")
    add(repository=True)
    add(repository={"owner": "acme", "name": "web-app"})
    # Modes and pull requests (priority).
    for mode in ("ask", "code", "ASK", 1, None, _DROP):
        add(mode=mode, hasChanges=False, pullRequest=_DROP)
    for pull_request in ({}, None, "https://github.com/acme/web-app/pull/1", [1], {"number": "17", "url": None}):
        add(pullRequest=pull_request)
    # Messages: missing, null, wrong type, nested junk, 50 levels deep.
    add(messages=_DROP)
    add(messages=None)
    add(messages="not a list")
    add(messages={"0": {"role": "user"}})
    add(messages=[None, 1, "text", [], {}, {"role": None, "type": 7, "data": [[[[]]]]}])
    add(messages=[{"role": "user", "type": "message", "data": _nested(50)}])
    # Unknown fields, including the names the row metadata uses and JavaScript's prototype keys.
    add(__proto__={"isAdmin": True}, constructor="x", prototype=None)
    add(extra={"a": 1}, original="o", absent=["title"], source_id="s", metadata={"m": 1})
    add(**{"": "empty key", "😀": "emoji key", "a.b": "dotted", "priority": "urgent"})
    add(customFloats=[1.0, 0.1, 1e21, -0.0, 1e-7, 2.5e-324, 1.7976931348623157e308, 2**53, 2**64, -(2**63)])
    add(bigInteger=int("9" * 300))
    # Records that are not objects.
    records.extend([42, 1.5, "a task", ["id", "task-1"], None, True, [], [{}]])
    texts = [js_json(record) for record in records]
    # Written by hand: what JSON.stringify never writes, but another writer (or a person) might.
    texts.extend(
        [
            '{"id":"task-hand-1","title":"floats as written","n":[1.0,-0.0,1E21,1e-7,0.1e1,100e-2,-0]}',
            '{"id":"task-hand-2","title":"dup keys","status":"PAUSED","status":"DONE","id":"task-hand-2b"}',
            '{"id":"task-hand-3","title":"lone \\ud800 high, lone \\udc00 low","description":"\\udfff"}',
            '{"id":"task-hand-4","title":"pair \\ud83d\\ude00 escaped, reversed \\ude00\\ud83d"}',
            '{"id":"task-hand-5","title":"key surrogate","\\ud800":"value","nested":{"\\udbff\\udfff":1}}',
            '{"id":"task-hand-6","title":"escapes \\u0041\\u00e9\\u4e2d \\/ \\" \\\\ \\b\\f\\n\\r\\t"}',
            '{\n  "id" : "task-hand-7" ,\t"title" : "pretty printed",\r\n "createdAt" : 1705314600000.0 }',
            '{"id":"task-hand-8","title":"messages with a lone surrogate",'
            '"messages":[{"role":"user","type":"message","data":{"text":"cut \\ud83d"}}]}',
            '{"id":"task-hand-9","title":"status as number","status":1.0,"isArchived":1.0,"hasChanges":0.0}',
        ]
    )
    return texts


def _environments(rng: random.Random) -> list[str]:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    records: list[Any] = []
    for index in range(20):
        created = _EPOCH_2024 + timedelta(milliseconds=rng.randrange(365 * 24 * 3600 * 1000))
        org = rng.choice(_ORGS)
        records.append(
            {
                "id": _uuid4(rng) if index % 3 else f"env-{index}",
                "name": f"{org.title()} {rng.choice(('Production', 'Staging', 'Preview', 'Dev'))} {index}",
                "description": _sentence(rng, 5, 12),
                "githubOrganization": org,
                "githubToken": "ghp_" + "".join(rng.choice(alphabet) for _ in range(36)),
                "githubRepository": f"{org}/{rng.choice(_REPOS)}",
                "createdAt": js_iso(created),
                "updatedAt": js_iso(created + timedelta(days=rng.randrange(30))),
            }
        )
    base = records[0]
    variants: tuple[dict[str, Any], ...] = (
        {"githubToken": None},
        {"githubToken": ""},
        {"githubToken": "short"},
        {"githubToken": 1234567890123},
        {"githubToken": {"value": "ghp_nested"}},
        {"name": ""},
        {"name": base["name"]},
        {"name": "<b>Prod</b> 🚀 生产"},
        {"createdAt": 1705314600000, "updatedAt": "not a date"},
        {"githubOrganization": 42, "description": None},
        {"id": "ENV-UPPER", "githubToken": "ghp_\ud800lonesurrogate0000000000000"},
    )
    for number, changes in enumerate(variants, start=100):
        records.append({**base, "id": f"env-{number}", **changes})
    records.extend(["env", None, [base]])
    return [js_json(record) for record in records]


def _zustand(records_name: str, texts: list[str], version: int = 0) -> str:
    return f'{{"state":{{"{records_name}":[{",".join(texts)}]}},"version":{version}}}'


def corpus(seed: int = 0) -> dict[str, str]:
    """The main snapshot: realistic and adversarial records of every store, and unknown keys."""
    rng = random.Random(seed)
    tasks = [js_json(task) for task in realistic_tasks(240, seed)]
    tasks += _adversarial_tasks(realistic_tasks(1, seed + 1)[0])
    # Where Python versions differ: fromisoformat reads T24:00 since 3.12 (lsmigrate parses it itself).
    hour_24 = ("2024-01-15T24:00:00.000Z", "2024-01-15T24:00:00Z", "2024-12-31T24:00:00+01:00", "2024-01-15T24:30")
    tasks += [
        js_json({"id": f"task-24-{index}", "title": "hour 24", "createdAt": moment})
        for index, moment in enumerate(hour_24)
    ]
    # A lone surrogate in a derived id and in a key (uuid5 would refuse to encode them).
    tasks.append('{"id":"task-\\ud800","title":"lone surrogate in the id"}')
    preferences = {
        "theme": "dark",
        "language": "fr-FR",
        "fontSize": 14.0,
        "sidebar": {"collapsed": "false", "width": 280.5},
        "shortcuts": {"newTask": "⌘K", "search": "/"},
        "recent": [None, 1, "två", {"__proto__": {}}],
    }
    return {
        "task-store": _zustand("tasks", tasks),
        "environments": _zustand("environments", _environments(rng)),
        "user-preferences": js_json({"state": preferences, "version": 0}),
        "form-draft-1": js_json(
            {"title": "New task", "description": "Draft with <b>HTML</b> and 😀", "labels": ["ui"], "estimate": 3.0}
        ),
        "react-hook-form-task-form": js_json(
            {"title": "", "repository": None, "steps": [{"done": False, "text": "écrire"}], "deep": _nested(20)}
        ),
        "taskFormDraft": '{"title":"hand-written \\ud800 draft","count":1.0}',
        "draftList": js_json(["a draft", "that is", "an array"]),
        "form-null": "null",
        "form-\ud800-draft": js_json({"title": "a key holding a lone surrogate"}),
        "form-broken": '{"title": "unterminated',
        "platform-settings": js_json({"region": "eu-west-1"}),
        "theme": "dark",
        "lsmigrate:completed": js_json({"at": MIGRATED_AT}),
    }


def failing_corpus() -> dict[str, str]:
    """Keys refused whole: the Zustand keys with a wrong shape or a too new version, and bad JSON."""
    return {
        "task-store": js_json({"state": {"tasks": {"0": {"id": "task-1"}}}, "version": 0}),
        "environments": js_json({"state": {"environments": []}, "version": 1}),
        "user-preferences": js_json({"state": {"theme": "dark"}, "version": "0"}),
        "form-draft-nan": '{"estimate": NaN}',
        "form-draft-empty": "",
        "form-draft-trailing": '{"title": "ok"} trailing',
        "draft-single-quotes": "{'title': 'python repr'}",
        # json's message for a trailing comma changed in Python 3.13; the key's error must not.
        "form-draft-comma": '{"title": "draft",}',
        "form-list-comma": '["a", "b",]',
    }


def snapshots() -> dict[str, dict[str, str]]:
    """Every snapshot of the corpus by name."""
    return {"main": corpus(), "failing": failing_corpus()}
