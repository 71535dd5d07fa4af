"""
Policy tests, in the manner of ``opa test``: TOML case files run against a set.

A case file names reusable agents, targets and tasks once, then lists cases::

    [defaults]                      # optional: used when a case omits the key
    agent = "demo"
    task = "triage"
    at = 2026-01-06T10:00:00Z       # TOML datetime with offset, or a string

    [agents.demo]                   # id and name default to the key; labels to {}
    tenant = "acme"
    labels = { team = "support" }

    [targets.tickets]               # name defaults to the key, kind to "http",
    uri = "http://127.0.0.1:8401/"  # uri to ""
    environment = "dev"
    tenant = "acme"
    risk = "low"

    [tasks.triage]                  # intent defaults to "", age_seconds to 0
    purpose = "support-triage"
    environment = "dev"
    tenant = "acme"

    [[case]]
    name = "support reads dev tickets"
    target = "tickets"
    action = "read"
    expect = "allow"                # or "deny", or "needs_approval"
    ttl_at_most = 600               # optional: the TTL cap exists and is <= 600 s
    policy_ids_include = ["support-reads-low-risk"]   # optional

    [[case]]
    name = "prod writes wait for an approver"
    target = "tickets-prod"
    action = "write"
    expect = "needs_approval"       # allowed, once a human approved
    approval_groups = ["prod-approvers"]   # optional: exactly these groups
    quorum = 1                      # optional: exactly this quorum

``allow`` means issued at once: a permit that asks for approval makes the case
``needs_approval``, never ``allow``.

Delegation cases (``action = "Delegate"``) name the ``child`` agent (a name or a
table, like ``agent``) and the ``subtask`` handed over instead of a target; the
delegating task is ``task``, and ``delegation`` (where the child would sit)
defaults to depth 1 under the case's agent::

    [[case]]
    name = "a planner hands reads to a researcher"
    agent = "planner"
    action = "Delegate"
    child = "researcher"
    subtask = { targets = ["tickets"], actions = ["read"], ttl_seconds = 600 }
    # purpose defaults to the task's
    delegation = { depth = 1 }      # optional; also parent_agent, root_agent,
    expect = "allow"                # root_purpose, root_tenant

Any other case may give ``delegation`` to ask as a delegated task would
(``context.delegation``); there ``depth`` and ``parent_agent`` are required and
the root defaults to the parent, the task's purpose and its tenant.

In a case, ``agent``, ``target`` and ``task`` are a name, or an inline table of
fields, optionally starting ``from = "<name>"`` to override a named one
(``task = { from = "triage", purpose = "billing" }``). Unknown keys are errors, so
a misspelt expectation never passes silently.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gatepass.errors import InvalidRequestError
from gatepass.policy.facts import (
    DELEGATE,
    AgentFacts,
    Decision,
    DelegationFacts,
    DelegationRequest,
    PolicyEngine,
    PolicyRequest,
    TargetFacts,
    TaskFacts,
)
from gatepass.policy.verdicts import Deny, Grant, NeedsApproval, verdict_of

__all__ = ["CaseReport", "CaseResult", "run_cases"]

_T = TypeVar("_T")
_CASE_KEYS = frozenset(
    {
        "name",
        "agent",
        "target",
        "task",
        "action",
        "at",
        "expect",
        "ttl_at_most",
        "policy_ids_include",
        "approval_groups",
        "quorum",
        "child",
        "subtask",
        "delegation",
    }
)
_SUBTASK_KEYS = frozenset({"targets", "actions", "purpose", "ttl_seconds"})
_DELEGATION_KEYS = frozenset(
    {"depth", "parent_agent", "root_agent", "root_purpose", "root_tenant"}
)
_EXPECTATIONS = ("allow", "deny", "needs_approval")
_FILE_KEYS = frozenset({"defaults", "agents", "targets", "tasks", "case"})
_DEFAULT_KEYS = frozenset({"agent", "target", "task", "action", "at"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseResult:
    """
    The outcome of one case.

    Attributes:
        file: the case file.
        name: the case name.
        passed: True when every expectation held.
        problems: one line per failed expectation; empty when passed.
        decision: what the policy set decided.
    """

    file: Path
    name: str
    passed: bool
    problems: tuple[str, ...]
    decision: Decision


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseReport:
    """
    The outcome of a run of case files.

    Attributes:
        results: one result per case, in file and case order.
    """

    results: tuple[CaseResult, ...]

    @property
    def passed(self) -> bool:
        """True when every case passed."""
        return all(result.passed for result in self.results)

    @property
    def failures(self) -> tuple[CaseResult, ...]:
        """The cases that failed."""
        return tuple(result for result in self.results if not result.passed)

    def summary(self) -> str:
        """
        Render the report for a terminal, one line per case and a total.

        Returns:
            The text, ending with ``N passed, M failed``.
        """
        lines = []
        for result in self.results:
            status = "PASS" if result.passed else "FAIL"
            lines.append(f"{status} {result.file.name}: {result.name}")
            lines.extend(f"     {problem}" for problem in result.problems)
        failed = len(self.failures)
        lines.append(f"{len(self.results) - failed} passed, {failed} failed")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Case:
    file: Path
    name: str
    request: PolicyRequest | DelegationRequest
    expect: str
    ttl_at_most: dt.timedelta | None
    policy_ids_include: tuple[str, ...]
    approval_groups: frozenset[str] | None
    quorum: int | None


def run_cases(policy_set: PolicyEngine, path: Path) -> CaseReport:
    """
    Run the cases in a TOML file, or in every ``*.toml`` under a directory.

    Args:
        policy_set: the policies to test.
        path: a case file, or a directory searched recursively for ``*.toml``.

    Returns:
        The report; failed cases say why.

    Raises:
        InvalidRequestError: a case file is missing, unreadable, or malformed; the
            message names the file and the case.
    """
    if path.is_dir():
        files = sorted(path.rglob("*.toml"))
        if not files:
            raise InvalidRequestError(f"{path}: no *.toml case files")
    elif path.is_file():
        files = [path]
    else:
        raise InvalidRequestError(f"{path}: case file not found")
    cases = [case for file in files for case in _read_case_file(file)]
    ordinary = [c.request for c in cases if isinstance(c.request, PolicyRequest)]
    answers = iter(policy_set.decide(ordinary))
    decisions = [
        next(answers)
        if isinstance(case.request, PolicyRequest)
        else policy_set.decide_delegation(case.request)
        for case in cases
    ]
    return CaseReport(
        results=tuple(
            _judge(case, decision)
            for case, decision in zip(cases, decisions, strict=True)
        )
    )


def _judge(case: _Case, decision: Decision) -> CaseResult:
    problems = []
    verdict = verdict_of([decision])
    got = {Grant: "allow", NeedsApproval: "needs_approval", Deny: "deny"}[type(verdict)]
    if got != case.expect:
        why = ", ".join(decision.policy_ids) or "no policy applied"
        problems.append(f"expected {case.expect}, got {got} ({why})")
    problems.extend(f"evaluation error: {error}" for error in decision.errors)
    profile = decision.profile
    if case.approval_groups is not None and profile.approval_groups != (
        case.approval_groups
    ):
        problems.append(
            f"expected approval by {sorted(case.approval_groups)}, "
            f"got {sorted(profile.approval_groups)}"
        )
    if case.quorum is not None and (
        not profile.needs_approval or profile.quorum != case.quorum
    ):
        shown = profile.quorum if profile.needs_approval else "no approval"
        problems.append(f"expected quorum {case.quorum}, got {shown}")
    if case.ttl_at_most is not None:
        cap = decision.ttl_cap
        if cap is None or cap > case.ttl_at_most:
            shown = "none" if cap is None else f"{int(cap.total_seconds())}s"
            problems.append(
                f"expected a ttl cap of at most "
                f"{int(case.ttl_at_most.total_seconds())}s, got {shown}"
            )
    missing = [i for i in case.policy_ids_include if i not in decision.policy_ids]
    if missing:
        problems.append(
            f"expected policy ids {missing} among {list(decision.policy_ids)}"
        )
    return CaseResult(
        file=case.file,
        name=case.name,
        passed=not problems,
        problems=tuple(problems),
        decision=decision,
    )


def _read_case_file(file: Path) -> list[_Case]:
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidRequestError(f"{file}: cannot read case file: {exc}") from exc
    _reject_unknown(document, _FILE_KEYS, f"{file}")
    defaults = _table(document, "defaults", f"{file}")
    _reject_unknown(defaults, _DEFAULT_KEYS, f"{file}: [defaults]")
    named = {
        kind: _table(document, kind, f"{file}")
        for kind in ("agents", "targets", "tasks")
    }
    entries = document.get("case", [])
    if not isinstance(entries, list) or not entries:
        raise InvalidRequestError(f"{file}: no [[case]] entries")
    cases: list[_Case] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise InvalidRequestError(f"{file}: case {number} is not a table")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequestError(f"{file}: case {number} needs a name")
        where = f"{file}: case {name!r}"
        if name in seen:
            raise InvalidRequestError(f"{where}: duplicate case name")
        seen.add(name)
        cases.append(
            _read_case(
                entry, file=file, name=name, defaults=defaults, named=named, where=where
            )
        )
    return cases


def _read_case(
    entry: dict[str, Any],
    *,
    file: Path,
    name: str,
    defaults: dict[str, Any],
    named: dict[str, dict[str, Any]],
    where: str,
) -> _Case:
    _reject_unknown(entry, _CASE_KEYS, where)
    merged = {**defaults, **entry}
    action = _string(merged, "action", where)
    request: PolicyRequest | DelegationRequest
    if action == DELEGATE:
        if "target" in entry:
            raise InvalidRequestError(
                f"{where}: a {DELEGATE} case names a child and a subtask, no target"
            )
        request = _delegation_request(merged, named, where)
    else:
        for key in ("child", "subtask"):
            if key in entry:
                raise InvalidRequestError(f"{where}: {key} is only for {DELEGATE}")
        agent = _resolve(merged, "agent", named["agents"], _agent, where)
        target = _resolve(merged, "target", named["targets"], _target, where)
        task = _resolve(merged, "task", named["tasks"], _task, where)
        raw = entry.get("delegation")
        request = PolicyRequest(
            agent=agent,
            action=action,
            target=target,
            task=task,
            now=_moment(merged.get("at"), where),
            delegation=None
            if raw is None
            else _position(raw, task, parent=None, where=f"{where}: delegation"),
        )
    expect = entry.get("expect")
    if expect not in _EXPECTATIONS:
        raise InvalidRequestError(
            f'{where}: expect must be "allow", "deny" or "needs_approval"'
        )
    groups = entry.get("approval_groups")
    if groups is not None and (
        not isinstance(groups, list)
        or not groups
        or not all(isinstance(group, str) for group in groups)
    ):
        raise InvalidRequestError(
            f"{where}: approval_groups must be a non-empty list of group names"
        )
    quorum = entry.get("quorum")
    if quorum is not None and (type(quorum) is not int or quorum <= 0):
        raise InvalidRequestError(f"{where}: quorum must be a positive integer")
    ttl = entry.get("ttl_at_most")
    if ttl is not None and (type(ttl) is not int or ttl <= 0):
        raise InvalidRequestError(f"{where}: ttl_at_most must be a positive integer")
    include = entry.get("policy_ids_include", [])
    if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
        raise InvalidRequestError(f"{where}: policy_ids_include must be strings")
    return _Case(
        file=file,
        name=name,
        request=request,
        expect=expect,
        ttl_at_most=None if ttl is None else dt.timedelta(seconds=ttl),
        policy_ids_include=tuple(include),
        approval_groups=None if groups is None else frozenset(groups),
        quorum=quorum,
    )


def _delegation_request(
    case: Mapping[str, Any], named: dict[str, dict[str, Any]], where: str
) -> DelegationRequest:
    """A ``Delegate`` case: the agent hands ``subtask`` of ``task`` to ``child``."""
    parent = _resolve(case, "agent", named["agents"], _agent, where)
    child = _resolve(case, "child", named["agents"], _agent, where)
    task = _resolve(case, "task", named["tasks"], _task, where)
    subtask = case.get("subtask", {})
    if not isinstance(subtask, dict):
        raise InvalidRequestError(f"{where}: subtask must be a table")
    _reject_unknown(subtask, _SUBTASK_KEYS, f"{where}: subtask")
    ttl = subtask.get("ttl_seconds", 300)
    if type(ttl) is not int or ttl <= 0:
        raise InvalidRequestError(
            f"{where}: subtask.ttl_seconds must be a positive integer"
        )
    return DelegationRequest(
        parent=parent,
        child=child,
        task=task,
        targets=_names(subtask, "targets", f"{where}: subtask"),
        actions=_names(subtask, "actions", f"{where}: subtask"),
        purpose=_string(subtask, "purpose", f"{where}: subtask", default=task.purpose),
        ttl_seconds=ttl,
        delegation=_position(
            case.get("delegation", {}),
            task,
            parent=parent,
            where=f"{where}: delegation",
        ),
        now=_moment(case.get("at"), where),
    )


def _position(
    raw: object, task: TaskFacts, *, parent: AgentFacts | None, where: str
) -> DelegationFacts:
    """
    Read a ``delegation`` table.

    For a ``Delegate`` case (``parent`` given) every key has a default: depth 1
    under the delegating agent. For a delegated task's request, ``depth`` and
    ``parent_agent`` are required.
    """
    if not isinstance(raw, dict):
        raise InvalidRequestError(f"{where}: must be a table")
    _reject_unknown(raw, _DELEGATION_KEYS, where)
    depth = raw.get("depth", 1 if parent is not None else None)
    if type(depth) is not int or depth <= 0:
        raise InvalidRequestError(f"{where}: depth must be a positive integer")
    parent_agent = _string(
        raw, "parent_agent", where, default=None if parent is None else parent.id
    )
    return DelegationFacts(
        depth=depth,
        parent_agent=parent_agent,
        root_agent=_string(raw, "root_agent", where, default=parent_agent),
        root_purpose=_string(raw, "root_purpose", where, default=task.purpose),
        root_tenant=_string(raw, "root_tenant", where, default=task.tenant),
    )


def _names(fields: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = fields.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _resolve(
    case: Mapping[str, Any],
    key: str,
    named: dict[str, Any],
    build: Callable[[str, Mapping[str, Any], str], _T],
    where: str,
) -> _T:
    """Turn a name or an inline table (optionally ``from`` a name) into facts."""
    value = case.get(key)
    if value is None:
        raise InvalidRequestError(f"{where}: no {key} (give one, or set a default)")
    if isinstance(value, str):
        return build(value, _named(named, value, key, where), f"{where}: {key}")
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{where}: {key} must be a name or a table")
    base_name = value.get("from")
    fields = {k: v for k, v in value.items() if k != "from"}
    if base_name is None:
        return build("inline", fields, f"{where}: {key}")
    if not isinstance(base_name, str):
        raise InvalidRequestError(f"{where}: {key}.from must be a name")
    base = _named(named, base_name, key, where)
    return build(base_name, {**base, **fields}, f"{where}: {key}")


def _named(named: dict[str, Any], name: str, key: str, where: str) -> dict[str, Any]:
    found = named.get(name)
    if not isinstance(found, dict):
        raise InvalidRequestError(f"{where}: unknown {key} {name!r}")
    return found


def _agent(key: str, fields: Mapping[str, Any], where: str) -> AgentFacts:
    _reject_unknown(fields, {"id", "name", "tenant", "labels"}, where)
    labels = fields.get("labels", {})
    if not isinstance(labels, dict) or not all(
        isinstance(v, str) for v in labels.values()
    ):
        raise InvalidRequestError(f"{where}: labels must map names to strings")
    name = _string(fields, "name", where, default=key)
    return AgentFacts(
        id=_string(fields, "id", where, default=name),
        name=name,
        tenant=_string(fields, "tenant", where),
        labels=labels,
    )


def _target(key: str, fields: Mapping[str, Any], where: str) -> TargetFacts:
    _reject_unknown(
        fields, {"name", "uri", "kind", "environment", "tenant", "risk"}, where
    )
    return TargetFacts(
        name=_string(fields, "name", where, default=key),
        uri=_string(fields, "uri", where, default=""),
        kind=_string(fields, "kind", where, default="http"),
        environment=_string(fields, "environment", where),
        tenant=_string(fields, "tenant", where),
        risk=_string(fields, "risk", where),
    )


def _task(_key: str, fields: Mapping[str, Any], where: str) -> TaskFacts:
    _reject_unknown(
        fields, {"purpose", "intent", "environment", "tenant", "age_seconds"}, where
    )
    age = fields.get("age_seconds", 0)
    if type(age) is not int or age < 0:
        raise InvalidRequestError(f"{where}: age_seconds must be a whole number")
    return TaskFacts(
        purpose=_string(fields, "purpose", where),
        intent=_string(fields, "intent", where, default=""),
        environment=_string(fields, "environment", where),
        tenant=_string(fields, "tenant", where),
        age_seconds=age,
    )


def _moment(value: object, where: str) -> dt.datetime:
    if value is None:
        raise InvalidRequestError(f"{where}: no at time (give one, or set a default)")
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidRequestError(f"{where}: at: {exc}") from exc
    if not isinstance(value, dt.datetime):
        raise InvalidRequestError(f"{where}: at must be a date and time")
    if value.tzinfo is None:
        raise InvalidRequestError(f"{where}: at needs an offset (Z for UTC)")
    return value


def _string(
    fields: Mapping[str, Any], key: str, where: str, *, default: str | None = None
) -> str:
    value = fields.get(key, default)
    if not isinstance(value, str):
        raise InvalidRequestError(f"{where}: {key} must be a string")
    return value


def _table(document: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{where}: [{key}] must be a table")
    return value


def _reject_unknown(
    fields: Mapping[str, Any], allowed: frozenset[str] | set[str], where: str
) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise InvalidRequestError(f"{where}: unknown keys {unknown}")
