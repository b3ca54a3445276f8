"""Unknown configuration keys are errors: the sections' common base, and the messages that name
the key and the closest valid one.

Every section of ``GovmailConfig`` (and every table nested in one, such as a route) derives from
``ConfigSection``, which forbids keys it does not declare. ``unknown_key_messages`` turns pydantic's
``extra_forbidden`` errors into ``unknown key spamd.enable (did you mean spamd.enabled?)``;
``unknown_environment_keys`` does the same for ``GOVMAIL_<SECTION>__<KEY>`` variables, which
pydantic-settings would otherwise drop silently when the key is not a field.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

ENV_PREFIX = "GOVMAIL_"
ENV_NESTING = "__"


class ConfigSection(BaseModel):
    """A table of the configuration file: a key it does not declare is an error."""

    model_config = ConfigDict(extra="forbid")


def config_key_names(model: type[BaseModel]) -> list[str]:
    """The keys a config table accepts (fields marked ``exclude`` are not config keys)."""
    return [name for name, field in model.model_fields.items() if not field.exclude]


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly or as the items of a list or an optional value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _nested_model(argument)
        if found is not None:
            return found
    return None


def _model_at(root: type[BaseModel], location: Sequence[int | str]) -> type[BaseModel] | None:
    """The model of the table at ``location`` (list indexes skipped), None if there is none."""
    model: type[BaseModel] | None = root
    for part in location:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _nested_model(field.annotation) if field is not None else None
    return model


def dotted_path(location: Sequence[int | str]) -> str:
    """``("routing", "routes", 0, "hosst")`` as ``routing.routes[0].hosst``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def closest_key(key: str, valid: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key_message(root: type[BaseModel], location: Sequence[int | str]) -> str:
    """``unknown key spamd.enable (did you mean spamd.enabled?)`` for one forbidden key."""
    *table, key = location
    message = f"unknown key {dotted_path(location)}"
    model = _model_at(root, table)
    suggestion = closest_key(str(key), config_key_names(model)) if model is not None else None
    if suggestion is not None:
        return message + f" (did you mean {dotted_path([*table, suggestion])}?)"
    if not table:
        # A key written above its section's header: point to the section that has it.
        sections_of_keys = _sections_of_keys(root)
        misplaced = closest_key(str(key), sections_of_keys)
        if misplaced is not None:
            section = sections_of_keys[misplaced]
            return message + f" (did you mean {section}.{misplaced}, under [{section}]?)"
    return message


def _sections_of_keys(root: type[BaseModel]) -> dict[str, str]:
    """Each key of a section, with the (first) section that has it."""
    sections: dict[str, str] = {}
    for section in config_key_names(root):
        model = _model_at(root, [section])
        for key in config_key_names(model) if model is not None else []:
            sections.setdefault(key, section)
    return sections


def unknown_key_messages(root: type[BaseModel], error: ValidationError) -> list[str]:
    """One message per key that is not a config key; [] if the error is about something else."""
    return [
        unknown_key_message(root, detail["loc"])
        for detail in error.errors()
        if detail["type"] == "extra_forbidden"
    ]


def unknown_environment_keys(root: type[BaseModel], environ: Mapping[str, str]) -> list[str]:
    """Messages for ``GOVMAIL_<SECTION>__<KEY>`` variables naming no section or no key of it.

    Variables without ``__`` (``GOVMAIL_CONFIG``, ``GOVMAIL_LOG_LEVEL``) are not key overrides.
    Deeper nesting (``GOVMAIL_A__B__C``) is checked down to the key of the section.
    """
    messages = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX) or ENV_NESTING not in name:
            continue
        section, _, rest = name[len(ENV_PREFIX) :].lower().partition(ENV_NESTING)
        key = rest.split(ENV_NESTING)[0]
        location = [section] if section not in config_key_names(root) else [section, key]
        model = _model_at(root, location[:-1])
        if model is not None and location[-1] in config_key_names(model):
            continue
        messages.append(f"environment variable {name}: {unknown_key_message(root, location)}")
    return messages
