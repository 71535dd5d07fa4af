"""
What an approver group's webhook receives: gatepass JSON or a Slack message.

Both bodies are built from the :class:`~gatepass.models.Approval` as the broker
recorded it, when the event happens, and put the broker's own canonical
parameters first. Whatever the agent wrote (its justification) appears only
under ``agent_supplied`` (JSON) or in one block labelled as written by the agent
(Slack), after :func:`~gatepass.approvals.agent_text.inert_text`; in Slack it is
also escaped for mrkdwn and sent ``verbatim``, so it can neither open a link
nor mention anyone. The only link in either body is the broker's own, to the
approval in the console.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import quote

from gatepass.approvals.agent_text import escape_mrkdwn, inert_text
from gatepass.models import Approval

__all__ = ["WebhookEvent", "approval_link", "json_body", "slack_body"]

# Slack Block Kit limits: a section's text and a context element hold 3,000
# characters, a header 150, a section field 2,000.
_SECTION_LIMIT: Final = 3000
_FIELD_LIMIT: Final = 2000
# Characters allowed as they are in the link; anything else is percent-encoded,
# so no "<", ">", "|" or space from the configured base can shape Slack markup.
_URL_SAFE: Final = ":/?#[]@!$&'()*+,;=%-._~"


class WebhookEvent(enum.StrEnum):
    """The events approver groups are told about."""

    REQUESTED = "approval.requested"
    APPROVED = "approval.approved"
    DENIED = "approval.denied"
    EXPIRED = "approval.expired"
    CANCELLED = "approval.cancelled"


_TITLES: Final = {
    WebhookEvent.REQUESTED: "Approval requested",
    WebhookEvent.APPROVED: "Approval granted",
    WebhookEvent.DENIED: "Approval denied",
    WebhookEvent.EXPIRED: "Approval expired",
    WebhookEvent.CANCELLED: "Approval cancelled",
}


def approval_link(base: str, approval_id: str) -> str:
    """
    Return the console link of an approval: ``{base}/console/approvals/{id}``.

    Args:
        base: ``approvals.link_base``, or the broker's issuer.
        approval_id: the approval's id.
    """
    raw = f"{base.rstrip('/')}/console/approvals/{quote(approval_id, safe='')}"
    return quote(raw, safe=_URL_SAFE)


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat()


def _ttl_seconds(approval: Approval) -> int | None:
    return None if approval.ttl is None else int(approval.ttl.total_seconds())


def json_body(approval: Approval, event: WebhookEvent, link: str) -> dict[str, Any]:
    """
    Return gatepass's JSON body for an event of an approval.

    Args:
        approval: the approval as recorded.
        event: what happened.
        link: the approval's console link (:func:`approval_link`).

    Returns:
        The body: the broker's canonical parameters at the top level, the agent's
        own words only under ``agent_supplied``.
    """
    return {
        "event": event.value,
        "approval_id": approval.id,
        "state": approval.state.value,
        "request": dict(approval.request),
        "tenant": approval.tenant,
        "environment": approval.environment,
        "target": approval.target,
        "kind": approval.kind,
        "actions": list(approval.actions),
        "ttl_seconds": _ttl_seconds(approval),
        "groups": list(approval.groups),
        "quorum": approval.quorum,
        "created_at": _iso(approval.created_at),
        "expires_at": _iso(approval.expires_at),
        "redeem_by": _iso(approval.redeem_by),
        "end_reason": approval.end_reason,
        "votes": [
            {
                "operator": vote.operator_name,
                "choice": vote.choice.value,
                "reason": inert_text(vote.reason),
                "at": _iso(vote.at),
            }
            for vote in approval.votes
        ],
        "link": link,
        "agent_supplied": {"justification": inert_text(approval.justification)},
    }


def _mrkdwn(text: str, *, verbatim: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "mrkdwn", "text": text}
    if verbatim:
        block["verbatim"] = True
    return block


def _field(label: str, value: object) -> dict[str, Any]:
    text = escape_mrkdwn(str(value))[: _FIELD_LIMIT - len(label) - 4]
    return _mrkdwn(f"*{label}*\n{text}")


def _rendered(cleaned: str) -> Iterator[str]:
    # Each character as it is sent: escaped, and every line quoted by the broker.
    for char in cleaned:
        yield "\n> " if char == "\n" else escape_mrkdwn(char)


def _quote_agent_text(cleaned: str, *, limit: int = _SECTION_LIMIT) -> str:
    quoted = "> " + escape_mrkdwn(cleaned).replace("\n", "\n> ")
    if len(quoted) <= limit:
        return quoted
    # Cut between characters, never inside an entity, when escaping made the text
    # longer than a section may be.
    out = ["> "]
    size = 2
    for piece in _rendered(cleaned):
        if size + len(piece) > limit - 1:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def slack_body(approval: Approval, event: WebhookEvent, link: str) -> dict[str, Any]:
    """
    Return a Slack-compatible body (``text`` and ``blocks``) for an approval event.

    For Slack incoming webhooks; tools that accept their format without Block
    Kit show the ``text`` line.

    Args:
        approval: the approval as recorded.
        event: what happened.
        link: the approval's console link (:func:`approval_link`).

    Returns:
        The body. ``text`` (the notification line) holds only broker facts.
    """
    title = _TITLES[event]
    actions = ", ".join(approval.actions)
    ttl = _ttl_seconds(approval)
    summary = escape_mrkdwn(
        f"{title}: {actions} on {approval.target} "
        f"({approval.tenant}/{approval.environment}), approval {approval.id}"
    )
    request = approval.request
    fields = [
        _field("Target", approval.target),
        _field("Actions", actions),
        _field("Tenant / environment", f"{approval.tenant} / {approval.environment}"),
        _field("Agent", request.get("agent_id", "")),
        _field("Task", request.get("task_id", "")),
        _field("Credential TTL", "policy default" if ttl is None else f"{ttl} s"),
        _field("Quorum", f"{approval.quorum} of {', '.join(approval.groups)}"),
        _field("Expires", _iso(approval.expires_at)),
    ]
    justification = inert_text(approval.justification)
    agent_block = (
        _mrkdwn(_quote_agent_text(justification), verbatim=True)
        if justification
        else _mrkdwn("_(no justification given)_")
    )
    return {
        "text": summary,
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": f"gatepass: {title.lower()}"},
            },
            {
                "type": "section",
                "text": _mrkdwn(
                    escape_mrkdwn(f"Approval {approval.id} is {approval.state.value}")
                ),
                "fields": fields,
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Review in gatepass"},
                        "url": link,
                    }
                ],
            },
            {"type": "divider"},
            {
                "type": "context",
                "elements": [
                    _mrkdwn(
                        ":warning: *Written by the agent, not checked by gatepass.* "
                        "Do not follow instructions or links in it."
                    )
                ],
            },
            {"type": "section", "text": agent_block},
        ],
    }
