"""
What every engine's ``[targets.engine]`` table shares, parsed one way.

An engine declares its table as a subclass of :class:`EngineTable`: strict
(``extra="forbid"``), frozen, with one field keyed by the target's actions (named
by :attr:`EngineTable.action_field`). An engine that logs in to its target with an
admin credential subclasses :class:`AdminURLTable` instead, which adds
``admin_url`` / ``admin_url_env`` (exactly one) and :meth:`AdminURLTable.admin`
to resolve them.

:func:`parse_engine_table` validates a raw table the same way for every engine:
it reports **every** problem (up to :data:`MAX_PROBLEMS`), each as
``targets.<name>.engine.<field>: <message>``, and never the offending value, which
may be the admin URL itself. It also checks the action-keyed field against the
target: every key must be an action of the target, and every action of the
target needs an entry (an action without one could be granted by policy and then
never issued).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Generic, Protocol, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from gatepass.engines.context import EngineContext
from gatepass.errors import ConfigurationError
from gatepass.models import Target
from gatepass.secret import Secret

__all__ = [
    "ENV_NAME",
    "MAX_PROBLEMS",
    "AdminURL",
    "AdminURLTable",
    "ConfiguredEngine",
    "EngineTable",
    "engine_path",
    "matching",
    "parse_engine_table",
]

# A POSIX-style environment variable name.
ENV_NAME: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
# A hostile table can hold thousands of bad entries; the error stays readable.
MAX_PROBLEMS: Final = 10
# Keys and action names from the table are echoed in messages, cut to this length.
_ECHO_LENGTH: Final = 64

TableT = TypeVar("TableT", bound="EngineTable")


class _MountConfig(Protocol):
    """What every engine's typed configuration has: its target's name."""

    @property
    def target(self) -> str:
        """The target (mount) name."""
        ...


ConfigT = TypeVar("ConfigT", bound=_MountConfig)


def matching(pattern: re.Pattern[str], problem: str) -> AfterValidator:
    """
    Return a validator refusing strings ``pattern`` does not match in full.

    Put it after a ``Field(max_length=…)`` in the ``Annotated`` type, so that the
    length is checked before the expression runs on a hostile 10 kB value.

    Args:
        pattern: the shape a value must have.
        problem: the message when it has not (never quoting the value).
    """

    def validate(value: str) -> str:
        if pattern.fullmatch(value) is None:
            raise ValueError(problem)
        return value

    return AfterValidator(validate)


def engine_path(target: str) -> str:
    """Return where a target's engine table sits in the configuration."""
    return f"targets.{target}.engine"


class EngineTable(BaseModel):
    """
    Base of every ``[targets.engine]`` model: unknown keys are errors.

    Attributes:
        action_field: the field whose keys are the target's actions (``grants``,
            ``principals``); :func:`parse_engine_table` checks them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    action_field: ClassVar[str] = "grants"

    def action_keys(self) -> tuple[str, ...]:
        """Return the keys of the action-keyed field, in table order."""
        value: Mapping[str, object] = getattr(self, self.action_field)
        return tuple(value)


@dataclass(frozen=True, slots=True)
class AdminURL:
    """
    A mount's resolved admin connection string.

    Attributes:
        value: the connection string; it may carry a password.
        where: the key it came from (``targets.<name>.engine.admin_url`` or
            ``….admin_url_env``), for messages about it that never quote it.
    """

    value: Secret
    where: str


class AdminURLTable(EngineTable):
    """
    An engine table with an admin connection: ``admin_url`` xor ``admin_url_env``.

    Attributes:
        admin_url: the admin connection string itself (prefer ``admin_url_env``).
        admin_url_env: the environment variable holding it, so that the secret
            stays out of the configuration file.
    """

    admin_url: SecretStr | None = Field(default=None, min_length=1, max_length=4096)
    admin_url_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None

    @model_validator(mode="after")
    def _one_admin_source(self) -> Self:
        if (self.admin_url is None) == (self.admin_url_env is None):
            raise ValueError("give exactly one of admin_url and admin_url_env")
        return self

    def admin(self, target: str) -> AdminURL:
        """
        Return the admin connection string, read from the environment if named so.

        Args:
            target: the target's name, for messages.

        Raises:
            ConfigurationError: the named environment variable is unset or empty.
        """
        path = engine_path(target)
        if self.admin_url_env is not None:
            url = os.environ.get(self.admin_url_env, "")
            if not url:
                raise ConfigurationError(
                    f"{path}.admin_url_env: environment variable "
                    f"{self.admin_url_env} is not set"
                )
            return AdminURL(Secret(url), f"{path}.admin_url_env")
        # The validator guarantees one of the two.
        secret = self.admin_url.get_secret_value() if self.admin_url else ""
        return AdminURL(Secret(secret), f"{path}.admin_url")


def parse_engine_table(
    model: type[TableT], target: Target, raw: Mapping[str, Any]
) -> TableT:
    """
    Validate a target's raw engine table into ``model``.

    Args:
        model: the engine's table model.
        target: the target the table belongs to.
        raw: the table as read from the configuration file.

    Returns:
        The validated table.

    Raises:
        ConfigurationError: naming every problem as
            ``targets.<name>.engine.<field>: <message>``, never a value.
    """
    path = engine_path(target.name)
    problems: list[str] = []
    try:
        table = model.model_validate(dict(raw))
    except ValidationError as error:
        # include_input=False: the offending value may be the admin URL itself.
        details = error.errors(
            include_url=False, include_input=False, include_context=False
        )
        problems = [
            _located(path, detail["loc"], _message(str(detail["msg"])))
            for detail in details
        ]
    if problems:
        # Raised outside the except block: pydantic's error holds the input
        # values, so it must be neither the cause nor the context of this one.
        raise ConfigurationError(_joined(problems))
    problems = _action_problems(f"{path}.{model.action_field}", table, target)
    if problems:
        raise ConfigurationError(_joined(problems))
    return table


def _action_problems(where: str, table: EngineTable, target: Target) -> list[str]:
    keys = table.action_keys()
    unknown = [
        f"{where}.{key[:_ECHO_LENGTH]}: not an action of the target"
        for key in keys
        if key not in target.actions
    ]
    missing = [
        f"{where}.{action}: missing (every action of the target needs one)"
        for action in target.actions
        if action not in keys
    ]
    return unknown + missing


def _located(path: str, location: tuple[int | str, ...], message: str) -> str:
    where = ".".join(str(part)[:_ECHO_LENGTH] for part in location)
    return f"{path}{'.' if where else ''}{where}: {message}"


def _message(text: str) -> str:
    """Drop pydantic's ``Value error,`` prefix; lower-case a leading plain word."""
    text = text.removeprefix("Value error, ")
    # "Extra inputs…" reads "extra inputs…"; "USAGE cannot…" keeps its keyword.
    if text[:2].isupper():
        return text
    return text[:1].lower() + text[1:]


def _joined(problems: list[str]) -> str:
    shown = "; ".join(problems[:MAX_PROBLEMS])
    hidden = len(problems) - MAX_PROBLEMS
    return shown + (f"; and {hidden} more" if hidden > 0 else "")


class ConfiguredEngine(Generic[ConfigT]):
    """
    The one constructor shape of the built-in engines.

    ``XEngine(config, context)`` takes the engine's frozen, validated, typed
    configuration and the shared :class:`EngineContext`; ``XEngine.from_target``
    is the factory the registry calls with the raw ``[targets.engine]`` table,
    which :meth:`parse_settings` (each engine's own) turns into that config.

    Args:
        config: the validated mount.
        context: shared engine facilities.
    """

    def __init__(self, config: ConfigT, context: EngineContext) -> None:
        """Keep the configuration and the context."""
        self._config = config
        self._context = context

    @classmethod
    def parse_settings(cls, target: Target, settings: Mapping[str, Any]) -> ConfigT:
        """
        Validate a target's raw engine table into this engine's config.

        Raises:
            ConfigurationError: naming every problem, never a value.
        """
        raise NotImplementedError

    @classmethod
    def from_target(
        cls, target: Target, settings: Mapping[str, Any], context: EngineContext
    ) -> Self:
        """
        Build the engine of ``target`` from its ``[targets.engine]`` table.

        Nothing is connected and no file is touched until the first call.

        Raises:
            ConfigurationError: a setting is missing, unknown or invalid.
        """
        return cls(cls.parse_settings(target, settings), context)

    @property
    def config(self) -> ConfigT:
        """The validated mount."""
        return self._config

    def __repr__(self) -> str:
        """Name the target only: configurations hold admin credentials."""
        return f"{type(self).__name__}(target={self._config.target!r})"
