"""The environment record: its schema; the GitHub token is a secret."""

from __future__ import annotations

from lsmigrate.shared.fields import Secret, Text, Timestamp, Title
from lsmigrate.shared.mapping import RecordSchema


class EnvironmentSchema(RecordSchema):
    """An environment as Zustand's environments store keeps it."""

    name = Title(default="Untitled environment")
    description = Text()
    github_organization = Text(data_key="githubOrganization")
    github_repository = Text(data_key="githubRepository")
    github_token = Secret(data_key="githubToken")
    created_at = Timestamp(data_key="createdAt")
    updated_at = Timestamp(data_key="updatedAt")
