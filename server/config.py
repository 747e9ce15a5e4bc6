"""Configuration: defaults, then the environment, then what a test passes."""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.engine import make_url

from lsmigrate.server.keys import resolve_keys

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "SQLALCHEMY_DATABASE_URI": None,  # None: SQLite under the instance folder
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    # psycopg prepares a statement on the server after its fifth run on a connection. False: never, for a
    # transaction pooler that cannot carry prepared statements from one server connection to the next
    # (PgBouncer before 1.21 in transaction mode; see docs/deployment.md).
    "DATABASE_PREPARED_STATEMENTS": True,
    "REDIS_URL": None,
    # A cached snapshot is never served more than this long after it was
    # written: the bound on staleness when an invalidation could not reach Redis.
    "CACHE_TTL_SECONDS": 600,
    # A user's tasks (or environments) past this many are not cached.
    "CACHE_MAX_RECORDS": 5_000,
    # After a Redis failure the cache does not try again for this long.
    "CACHE_RETRY_SECONDS": 5.0,
    # Flask-Limiter, per user (see server/api/limits.py). Generous: a migration
    # of 100,000 records in batches of 500 is about 200 requests.
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_DEFAULT": "6000 per minute",
    "RATELIMIT_STORAGE_URI": None,  # None: REDIS_URL, or memory:// without Redis
    # The one secret the signing and encryption keys derive from (lsmigrate.server.keys); None: a demo generates
    # one and keeps it in the instance folder, anything else refuses to start.
    "SECRET_KEY": None,
    # Key lists, newest first (a list, or comma-separated in the environment); None: [SECRET_KEY].
    "SIGNING_KEYS": None,
    "ENCRYPTION_KEYS": None,
    "TOKEN_MAX_AGE": 30 * 24 * 3600,
    "MAX_CONTENT_LENGTH": 32 * 1024 * 1024,
    "MAX_BATCH_RECORDS": 1000,
    # Store name -> newest_wins | keep_server | keep_local | ask, over the spec's own policy.
    "CONFLICT_POLICIES": {},
    # An open session idle this long may be taken over by another client session.
    "SESSION_IDLE_SECONDS": 900,
    # What a 503 (database unavailable) tells the client to wait.
    "RETRY_AFTER_SECONDS": 2,
    # Load shedding (lsmigrate.server.api.shedding): batch uploads and completes worked on at once per instance
    # (every worker of one gunicorn master together); a request that waited longer than this in front of the app
    # (the proxy's X-Request-Start) is shed at once (0: never); what a shed request is told to wait (to twice it).
    "MAX_BATCHES_IN_FLIGHT": 4,
    "MAX_QUEUE_WAIT_SECONDS": 10.0,
    "SHED_RETRY_AFTER_SECONDS": 2,
    # A statement of a write transaction running longer than this is cancelled (PostgreSQL's statement_timeout,
    # SET LOCAL): the request answers 503 and the client sends it again, well before gunicorn's time-out (30 s)
    # would kill the worker.
    "STATEMENT_TIMEOUT_SECONDS": 20,
    "DEMO": False,
    # The demo hands out a token for any user: it runs against a database on this machine only, unless this
    # says the database elsewhere is a throwaway one too.
    "DEMO_ALLOW_REMOTE_DATABASE": False,
    "PYODIDE_DIR": None,  # None: node_modules/pyodide beside the checkout
    # Where `python -m lsmigrate.server.runtime.precompress` writes the runtime's gzip and brotli copies and
    # the server finds them; None: .lsmigrate-precompressed beside PYODIDE_DIR (in node_modules/).
    "PYODIDE_PRECOMPRESSED_DIR": None,
    # The stores: "package.module:ATTRIBUTE" or a .json/.toml file (lsmigrate.shared.catalog);
    # None: the demo's with DEMO, else a start-up error.
    "STORES": None,
    # Modules declaring the models of the stores' tables, imported at start-up (a comma-separated list
    # in the environment); DEMO adds the demo's.
    "MODELS": [],
    # Other origins whose pages may call lsmigrate (CORS): none by default, since lsmigrate belongs on the
    # app's own origin. Each "https://host[:port]"; "*" alone allows any origin, never with credentials.
    "CORS_ORIGINS": [],
    # How lsmigrate's loggers write: "text" (as the app's logging says) or "json" (one object per line, with the
    # request id and users as keyed hashes: lsmigrate.server.observability.logs).
    "LOG_FORMAT": "text",
}
#: Settings of the standalone service's own Flask app, not of lsmigrate mounted in another.
_APP_ONLY = ("SQLALCHEMY_DATABASE_URI", "SQLALCHEMY_ENGINE_OPTIONS", "DATABASE_PREPARED_STATEMENTS")


def database_url(url: str) -> str:
    """A DATABASE_URL in the form SQLAlchemy wants, with psycopg 3 for PostgreSQL."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _instance_secret_key(app: Flask) -> str:
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        # Written aside and linked into place, so that processes starting at
        # once all end up with the one key that won.
        draft = path.with_name(f"secret_key.{os.getpid()}")
        draft.write_text(secrets.token_urlsafe(48))
        draft.chmod(0o600)
        try:
            os.link(draft, path)
            log.warning("LSMIGRATE_SECRET_KEY is not set: generated one in %s", path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


#: Settings that are booleans, whole numbers and numbers: parsed strictly, a wrong value a start-up error.
BOOLEANS = ("DEMO", "DEMO_ALLOW_REMOTE_DATABASE", "RATELIMIT_ENABLED", "DATABASE_PREPARED_STATEMENTS")
INTEGERS = (
    "CACHE_TTL_SECONDS", "CACHE_MAX_RECORDS", "TOKEN_MAX_AGE", "MAX_CONTENT_LENGTH", "MAX_BATCH_RECORDS",
    "SESSION_IDLE_SECONDS", "RETRY_AFTER_SECONDS", "MAX_BATCHES_IN_FLIGHT", "SHED_RETRY_AFTER_SECONDS",
    "STATEMENT_TIMEOUT_SECONDS",
)  # fmt: skip
NUMBERS = ("CACHE_RETRY_SECONDS", "MAX_QUEUE_WAIT_SECONDS")
#: Whole numbers that must be 1 or more (zero would refuse every request, or cancel every statement).
POSITIVE = ("MAX_BATCHES_IN_FLIGHT", "SHED_RETRY_AFTER_SECONDS", "STATEMENT_TIMEOUT_SECONDS")
#: Settings that are folders: a path, or None for the default.
FOLDERS = ("PYODIDE_DIR", "PYODIDE_PRECOMPRESSED_DIR")
#: Settings that are one of a few words.
CHOICES = {"LOG_FORMAT": ("text", "json")}
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def strict_boolean(name: str, value: Any) -> bool:
    """A boolean setting: True/False, 1/0, or the text true/false, 1/0, yes/no, on/off (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"LSMIGRATE_{name}: expected a boolean (true/false, 1/0, yes/no, on/off), found {value!r}")


def _strict_number(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, str):
        try:
            value = kind(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        expected = "a whole number" if kind is int else "a number"
        raise ValueError(f"LSMIGRATE_{name}: expected {expected}, found {value!r}")
    if value < 0:
        raise ValueError(f"LSMIGRATE_{name}: expected a number of zero or more, found {value!r}")
    return value


def _strict_folder(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"LSMIGRATE_{name}: expected the path of a folder, found {value!r}")
    return value


def _strict_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value.strip().lower() in choices:
        return value.strip().lower()
    raise ValueError(f"LSMIGRATE_{name}: expected one of {', '.join(choices)}, found {value!r}")


def parse_settings(settings: MutableMapping[str, Any], prefix: str = "") -> None:
    """Parse the typed settings in place (`prefix`: "LSMIGRATE_" where they sit in a host's config);
    ValueError naming the setting, what was expected and what was found."""
    for name in BOOLEANS:
        if prefix + name in settings:
            settings[prefix + name] = strict_boolean(name, settings[prefix + name])
    for name in FOLDERS:
        if prefix + name in settings:
            settings[prefix + name] = _strict_folder(name, settings[prefix + name])
    for names, kind in ((INTEGERS, int), (NUMBERS, float)):
        for name in names:
            if prefix + name in settings:
                settings[prefix + name] = _strict_number(name, settings[prefix + name], kind)
    for name in POSITIVE:
        if prefix + name in settings and settings[prefix + name] < 1:
            raise ValueError(
                f"LSMIGRATE_{name}: expected a whole number of 1 or more, found {settings[prefix + name]!r}"
            )
    for name, choices in CHOICES.items():
        if prefix + name in settings:
            settings[prefix + name] = _strict_choice(name, settings[prefix + name], choices)


_LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})


def refuse_remote_demo_database(uri: str, allowed: bool) -> None:
    """The demo signs a token for any user who asks: it refuses a database on another host (where real users'
    data may live) unless LSMIGRATE_DEMO_ALLOW_REMOTE_DATABASE says that one is a throwaway too."""
    if allowed or uri.startswith("sqlite"):
        return
    host = make_url(uri).host or ""
    if host.lower() not in _LOCAL_HOSTS and not host.startswith("/"):
        raise RuntimeError(
            f"LSMIGRATE_DEMO is on, and the database is on {host!r}, not this machine: the demo hands out a token "
            "for any user. Use a database on this machine, or set LSMIGRATE_DEMO_ALLOW_REMOTE_DATABASE=true if "
            "that database is a throwaway one too."
        )


def load_config(app: Flask, overrides: dict[str, Any] | None) -> None:
    """Fill app.config from the defaults, the environment and `overrides`, in that order."""
    app.config.from_mapping(DEFAULTS)
    if os.environ.get("DATABASE_URL"):
        app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    if os.environ.get("REDIS_URL"):
        app.config["REDIS_URL"] = os.environ["REDIS_URL"]
    app.config.from_prefixed_env("LSMIGRATE")
    if overrides:
        app.config.from_mapping(overrides)
    parse_settings(app.config)

    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if not uri:
        uri = f"sqlite:///{Path(app.instance_path) / 'lsmigrate.sqlite'}"
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url(uri)
    if app.config["DEMO"]:
        refuse_remote_demo_database(app.config["SQLALCHEMY_DATABASE_URI"], app.config["DEMO_ALLOW_REMOTE_DATABASE"])
    if not app.config["RATELIMIT_STORAGE_URI"]:
        app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"] or "memory://"
    keys_given = app.config["SIGNING_KEYS"] and app.config["ENCRYPTION_KEYS"]
    if app.config["DEMO"] and not app.config["SECRET_KEY"] and not keys_given:
        app.config["SECRET_KEY"] = _instance_secret_key(app)
    models = app.config["MODELS"]
    if isinstance(models, str):
        models = [name.strip() for name in models.split(",") if name.strip()]
    if app.config["DEMO"]:
        from lsmigrate.demo import MODELS_MODULE, STORES_REFERENCE

        app.config["STORES"] = app.config["STORES"] or STORES_REFERENCE
        models = [*models, MODELS_MODULE]
    app.config["MODELS"] = models


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")


def cors_origins(value: Any) -> tuple[str, ...]:
    """CORS_ORIGINS parsed strictly: a list or a comma-separated string of origins, or "*" alone."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(origin, str) for origin in value):
        raise ValueError(f"CORS_ORIGINS: expected origins separated by commas, found {value!r}")
    if "*" in value and len(value) > 1:
        raise ValueError("CORS_ORIGINS: '*' allows every origin and cannot be listed with others")
    wrong = [origin for origin in value if origin != "*" and not _ORIGIN.fullmatch(origin)]
    if wrong:
        raise ValueError(
            f"CORS_ORIGINS: {wrong[0]!r} is not an origin: expected scheme://host[:port] "
            "(http or https, no path, no trailing slash)"
        )
    return tuple(origin.lower() for origin in value)


def resolve_settings(app: Flask, given: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
    """lsmigrate's settings by short name: `given` itself (the standalone service's own app.config, missing
    names filled with their defaults), else the app's LSMIGRATE_* keys.

    Mounted in another app, lsmigrate reads only its own prefixed keys and leaves the host's (SECRET_KEY,
    MAX_CONTENT_LENGTH, RATELIMIT_*) alone; it has no instance-generated key there, so
    LSMIGRATE_SECRET_KEY (or both key lists) is required. Outside demo mode a missing or weak key is a
    RuntimeError (`keys.resolve_keys`), and SIGNING_KEYS and ENCRYPTION_KEYS hold the key lists in force.
    """
    names = [name for name in DEFAULTS if name not in _APP_ONLY]
    resolved: MutableMapping[str, Any]
    if given is not None:
        resolved = given
        for name in names:
            resolved.setdefault(name, DEFAULTS[name])
    else:
        resolved = {name: app.config.get(f"LSMIGRATE_{name}", DEFAULTS[name]) for name in names}
        if not resolved["RATELIMIT_STORAGE_URI"]:
            resolved["RATELIMIT_STORAGE_URI"] = resolved["REDIS_URL"] or "memory://"
    parse_settings(resolved)
    resolve_keys(resolved, demo=resolved["DEMO"])
    resolved["CORS_ORIGINS"] = cors_origins(resolved["CORS_ORIGINS"])
    resolved["PYODIDE_DIR"], resolved["PYODIDE_PRECOMPRESSED_DIR"] = pyodide_folders(
        resolved["PYODIDE_DIR"], resolved["PYODIDE_PRECOMPRESSED_DIR"]
    )
    return resolved


def pyodide_folders(pyodide_dir: str | None, precompressed_dir: str | None) -> tuple[str, str]:
    """PYODIDE_DIR and PYODIDE_PRECOMPRESSED_DIR, each given or its default."""
    if not pyodide_dir:
        pyodide_dir = str(Path(__file__).resolve().parent.parent / "node_modules" / "pyodide")
    if not precompressed_dir:
        precompressed_dir = str(Path(pyodide_dir).parent / ".lsmigrate-precompressed")
    return pyodide_dir, precompressed_dir
