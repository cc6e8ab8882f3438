"""A pydantic base that rejects unknown keys with the list of allowed ones."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


def unknown_key_message(key: str, allowed: list[str]) -> str:
    hint = difflib.get_close_matches(key, allowed, n=1)
    did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
    return f"unknown field '{key}'{did_you_mean}; allowed: {', '.join(allowed)}"


class Strict(BaseModel):
    """Frozen model whose unknown keys fail loudly, naming what is allowed.

    pydantic's own ``extra="forbid"`` error does not list the allowed fields, so the
    check is done here; ``extra="forbid"`` stays as the backstop.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = []
            for name, field in cls.model_fields.items():
                allowed.append(field.alias or name)
            for key in data:
                if key not in allowed:
                    raise PydanticCustomError(
                        "unknown_field", unknown_key_message(str(key), allowed)
                    )
        return data
