"""The database's figures in a scrape: sessions by state, quarantined records, open conflicts.

    lsmigrate_sessions{state}          sessions by status (open, verified, abandoned, rolled_back), dry runs too
    lsmigrate_quarantined_records      rows in quarantine (records kept aside, superseded ones included)
    lsmigrate_open_conflicts           conflicts waiting for the user's choice
    lsmigrate_scrape_database_up       1 when the figures were read, 0 when the database failed

Two aggregate queries, run when a scrape asks and the app's last answer is older than CACHE_SECONDS (each
process keeps its own), so a storm of scrapes costs the database two queries every few seconds. They are read
at scrape time from the database itself, not counted by each worker, so every worker (and every instance)
reports the same figures. A database that fails during the scrape does not fail it: the figures are left out
and lsmigrate_scrape_database_up says 0.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
from flask import current_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from lsmigrate.server.db import db
from lsmigrate.server.db.models import MigrationConflict, MigrationSession, QuarantinedRecord

log = logging.getLogger(__name__)

#: How long one reading of the figures answers the scrapes of this process.
CACHE_SECONDS = 5.0
#: Every state a session can be in: each is reported, 0 when no session is in it.
SESSION_STATES = ("open", "verified", "abandoned", "rolled_back")
_EXTENSION_KEY = "lsmigrate_figures"


@dataclass(frozen=True)
class Figures:
    """One reading: sessions by state, quarantined records and open conflicts; None for each when it failed."""

    sessions: dict[str, int] | None
    quarantined: int | None
    open_conflicts: int | None

    @property
    def up(self) -> bool:
        """True when the database answered."""
        return self.sessions is not None


@dataclass
class _Reading:
    """The app's last reading and when it was taken (time.monotonic)."""

    figures: Figures | None = None
    taken_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def read_figures() -> Figures:
    """The figures, from the database now; all None (and the session's transaction rolled back) when it fails."""
    try:
        by_state = db.session.execute(
            select(MigrationSession.status, func.count()).group_by(MigrationSession.status)
        ).all()
        quarantined, open_conflicts = db.session.execute(
            select(
                select(func.count()).select_from(QuarantinedRecord).scalar_subquery(),
                select(func.count())
                .select_from(MigrationConflict)
                .where(MigrationConflict.status == "open")
                .scalar_subquery(),
            )
        ).one()
        db.session.rollback()  # read only: no transaction stays open past the scrape
    except (SQLAlchemyError, psycopg.Error) as error:
        # The type and SQLSTATE only, as for a request answered 503 (lsmigrate.server.errors).
        sqlstate = getattr(getattr(error, "orig", error), "sqlstate", None)
        log.warning("Metrics scrape: the database failed (%s, sqlstate %s)", type(error).__name__, sqlstate)
        try:
            db.session.rollback()
        except SQLAlchemyError:
            pass  # the connection is gone; its transaction went with it
        return Figures(None, None, None)
    sessions = dict.fromkeys(SESSION_STATES, 0)
    sessions.update({str(state): int(count) for state, count in by_state})
    return Figures(sessions, int(quarantined), int(open_conflicts))


def current_figures() -> Figures:
    """The current app's figures: its last reading while younger than CACHE_SECONDS, else a new one."""
    reading: _Reading = current_app.extensions.setdefault(_EXTENSION_KEY, _Reading())
    with reading.lock:  # one reading at a time: concurrent scrapes wait for it rather than query too
        if reading.figures is None or time.monotonic() - reading.taken_at >= CACHE_SECONDS:
            reading.figures, reading.taken_at = read_figures(), time.monotonic()
        return reading.figures


def forget_figures() -> None:
    """Drop the current app's cached reading: the next scrape reads the database."""
    current_app.extensions.pop(_EXTENSION_KEY, None)


class DatabaseCollector:
    """A prometheus-client collector of the current app's figures (built per scrape, inside its request)."""

    def collect(self) -> Iterator[Metric]:
        figures = current_figures()
        up = GaugeMetricFamily(
            "lsmigrate_scrape_database_up", "1 when the scrape read the database's figures, 0 when it failed."
        )
        up.add_metric([], 1 if figures.up else 0)
        yield up
        if figures.sessions is not None:
            sessions = GaugeMetricFamily("lsmigrate_sessions", "Migration sessions by state.", labels=["state"])
            for state, count in sorted(figures.sessions.items()):
                sessions.add_metric([state], count)
            yield sessions
        if figures.quarantined is not None:
            yield GaugeMetricFamily(
                "lsmigrate_quarantined_records", "Records held in quarantine.", value=figures.quarantined
            )
        if figures.open_conflicts is not None:
            yield GaugeMetricFamily(
                "lsmigrate_open_conflicts", "Conflicts waiting for the user's choice.", value=figures.open_conflicts
            )
