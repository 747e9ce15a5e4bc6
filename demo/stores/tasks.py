"""The task record: its schema and the rules of design §4 for tasks."""

from __future__ import annotations

from typing import Any, ClassVar

from lsmigrate.shared.fields import Choice, Flag, JsonObject, Text, Timestamp, Title
from lsmigrate.shared.mapping import RecordSchema

STATUS_SPELLINGS = {
    "IN_PROGRESS": "in_progress",
    "DONE": "completed",
    "MERGED": "merged",
    "PAUSED": "paused",
    "CANCELLED": "cancelled",
}
# Folded spellings (lower case, "-" and " " as "_") accepted with a warning.
STATUS_VARIANTS = {
    "in_progress": "in_progress",
    "inprogress": "in_progress",
    "done": "completed",
    "completed": "completed",
    "complete": "completed",
    "merged": "merged",
    "paused": "paused",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}


class TaskSchema(RecordSchema):
    """A task as Zustand's task-store keeps it."""

    metadata_fields: ClassVar[tuple[str, ...]] = ("messages", "mode")

    title = Title(default="Untitled task")
    description = Text()
    status = Choice(STATUS_SPELLINGS, STATUS_VARIANTS, default="pending")
    branch = Text()
    session_id = Text(data_key="sessionId")
    repository = Text()
    status_message = Text(data_key="statusMessage")
    is_archived = Flag(data_key="isArchived", default=False)
    has_changes = Flag(data_key="hasChanges", default=False)
    pull_request = JsonObject(data_key="pullRequest")
    created_at = Timestamp(data_key="createdAt")
    updated_at = Timestamp(data_key="updatedAt")

    def derive(self, row: dict[str, Any], record: dict[str, Any]) -> None:
        """Priority: high with a pull request or changes, low in ask mode, else medium."""
        if row["pull_request"] is not None or row["has_changes"]:
            row["priority"] = "high"
        elif record.get("mode") == "ask":
            row["priority"] = "low"
        else:
            row["priority"] = "medium"
