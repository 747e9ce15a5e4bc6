"""Operator commands: flask --app lsmigrate.server lsmigrate ..."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from lsmigrate.server.auth import issue_token

group = AppGroup("lsmigrate", help="lsmigrate operator commands.")


@group.command("token")
@click.argument("user_id")
def print_token(user_id: str) -> None:
    """Print a bearer token for USER_ID."""
    click.echo(issue_token(user_id))
