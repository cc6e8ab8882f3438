"""The config contract every method passes, technique or backend."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from autoopt import plugins
from autoopt.resolve import make_step


class ConfigContract:
    """A method's config: a frozen, hashable :class:`~autoopt.plugins.MethodConfig` that
    round-trips through JSON (how recipes are stored) and rejects unknown keys."""

    key: ClassVar[str]
    config: ClassVar[dict[str, Any]] = {}

    def test_config_round_trips_through_json_and_the_recipe(self) -> None:
        cls = plugins.get(self.key).Config
        config = cls(**self.config)
        assert issubclass(cls, plugins.MethodConfig)
        assert cls(**config.model_dump()) == config
        again = cls.model_validate(json.loads(config.model_dump_json()))
        assert again == config and hash(again) == hash(config)
        assert make_step(self.key, self.config).config == config

    def test_config_rejects_unknown_key(self) -> None:
        with pytest.raises(ValidationError, match="extra"):
            plugins.get(self.key).Config.model_validate({**self.config, "no_such_field": 1})

    def test_config_is_frozen(self) -> None:
        config = plugins.get(self.key).Config(**self.config)
        fields = list(type(config).model_fields)
        if fields:
            with pytest.raises(ValidationError, match="frozen"):
                setattr(config, fields[0], getattr(config, fields[0]))
