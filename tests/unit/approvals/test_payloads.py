"""What approver webhooks carry: the broker's facts first, the agent's words inert."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from tests.unit.approvals.factories import T0, make_approval

from gatepass.approvals.agent_text import JUSTIFICATION_LIMIT, inert_text
from gatepass.approvals.webhooks import (
    WebhookEvent,
    approval_link,
    encode_body,
    json_body,
    slack_body,
)
from gatepass.ids import OperatorId
from gatepass.models import ApprovalState, Vote, VoteChoice

LINK = "https://gatepass.example/console/approvals/apr_1"
HOSTILE = [
    "<!channel>",
    "<!here|here>",
    "<@U024BE7LH>",
    "<#C024BE7LR>",
    "<https://evil.example/approve|Approve now>",
    "https://evil.example/phish",
    "\x1b[31m",
    "\x1b[2J\x1b[H",
    "\x1b]8;;https://evil.example\x07link\x1b]8;;\x07",
    "\x9b1m",
    "\u202e",
    "\u202a",
    "\u2066",
    "\u2069",
    "\u200b",
    "\u200f",
    "\x00",
    "\x07",
    "\r\n",
    "\u2028",
    "\t",
    "&amp;",
    "&",
    ">",
    "*Approved by security*",
    "```",
    "\ud800",
    "\n\n\n",
]
hostile_texts = st.lists(
    st.sampled_from(HOSTILE) | st.text(max_size=12), max_size=30
).map("".join)


def strings(value: Any) -> Iterator[str]:
    """Yield every string inside a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def dangerous(char: str) -> bool:
    """True for a control (other than a line break), format or surrogate character."""
    return char != "\n" and unicodedata.category(char) in {"Cc", "Cf", "Cs"}


def unquote(text: str) -> str:
    """Undo the Slack quoting and escaping of the agent block."""
    lines = [line.removeprefix("> ") for line in text.split("\n")]
    joined = "\n".join(lines)
    return joined.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class TestJSONBody:
    """Gatepass's JSON body."""

    def test_shape(self) -> None:
        """The broker's canonical parameters at the top, the agent's words apart."""
        approval = make_approval()
        body = json_body(approval, WebhookEvent.REQUESTED, LINK)
        assert body["event"] == "approval.requested"
        assert body["approval_id"] == approval.id
        assert body["state"] == "pending"
        assert body["request"] == approval.request
        assert (body["tenant"], body["environment"], body["target"]) == (
            "acme",
            "prod",
            "tickets-prod",
        )
        assert body["actions"] == ["write"]
        assert body["groups"] == ["prod-approvers"]
        assert body["quorum"] == 1
        assert body["expires_at"] == approval.expires_at.isoformat()
        assert body["link"] == LINK
        assert body["agent_supplied"] == {"justification": approval.justification}
        # It is JSON as sent: encoding and decoding gives it back.
        assert json.loads(encode_body(body)) == body

    def test_decided_approval_carries_votes(self) -> None:
        """An approved approval says who voted, with inert reasons."""
        vote = Vote(
            operator_id=OperatorId("opr_1"),
            operator_name="alice",
            choice=VoteChoice.APPROVE,
            reason="ok \x1b[31m\u202e",
            at=T0,
        )
        approval = make_approval(state=ApprovalState.APPROVED, votes=(vote,))
        body = json_body(approval, WebhookEvent.APPROVED, LINK)
        assert body["state"] == "approved"
        assert body["votes"] == [
            {
                "operator": "alice",
                "choice": "approve",
                "reason": "ok",
                "at": T0.isoformat(),
            }
        ]

    @given(hostile_texts)
    def test_agent_text_only_under_agent_supplied(self, justification: str) -> None:
        """Whatever the agent wrote is inert and appears only under agent_supplied."""
        body = json_body(
            make_approval(justification=justification), WebhookEvent.REQUESTED, LINK
        )
        shown = body.pop("agent_supplied")["justification"]
        assert shown == inert_text(justification)
        assert not any(dangerous(char) for char in shown)
        assert len(shown) <= JUSTIFICATION_LIMIT
        if len(shown) > 8:
            assert shown not in json.dumps(body, ensure_ascii=False)


class TestSlackBody:
    """The Slack-compatible body."""

    def test_shape(self) -> None:
        """A header, the facts, the broker's button, then the agent's block."""
        approval = make_approval()
        body = slack_body(approval, WebhookEvent.REQUESTED, LINK)
        assert set(body) == {"text", "blocks"}
        assert approval.id in body["text"]
        assert "tickets-prod" in body["text"]
        kinds = [block["type"] for block in body["blocks"]]
        assert kinds == [
            "header",
            "section",
            "actions",
            "divider",
            "context",
            "section",
        ]
        button = body["blocks"][2]["elements"][0]
        assert button["url"] == LINK
        label = body["blocks"][4]["elements"][0]["text"]
        assert "Written by the agent" in label
        agent = body["blocks"][5]["text"]
        assert agent == {
            "type": "mrkdwn",
            "text": "> close the duplicate ticket",
            "verbatim": True,
        }

    def test_every_event_has_a_title(self) -> None:
        """Each event renders, and says which event it is."""
        approval = make_approval()
        titles = {
            slack_body(approval, event, LINK)["blocks"][0]["text"]["text"]
            for event in WebhookEvent
        }
        assert len(titles) == len(WebhookEvent)

    def test_no_justification(self) -> None:
        """An approval without a justification says so, in the broker's words."""
        body = slack_body(
            make_approval(justification=None), WebhookEvent.REQUESTED, LINK
        )
        assert "no justification" in body["blocks"][-1]["text"]["text"]

    def test_issue9_slack_mention_and_link_are_escaped(self) -> None:
        """A justification's mention, link and markup reach Slack as inert text."""
        approval = make_approval(
            justification="<!channel> see <https://evil.example|runbook> & \u202eap"
        )
        body = slack_body(approval, WebhookEvent.REQUESTED, LINK)
        text = body["blocks"][-1]["text"]["text"]
        assert text == (
            "> &lt;!channel&gt; see &lt;https://evil.example|runbook&gt; &amp; ap"
        )
        assert "<" not in json.dumps(body)

    @given(hostile_texts)
    def test_hostile_justification_is_inert(self, justification: str) -> None:
        """No unescaped '<', no control, bidi or ANSI character reaches Slack."""
        body = slack_body(
            make_approval(justification=justification), WebhookEvent.REQUESTED, LINK
        )
        for text in strings(body):
            assert "<" not in text
            assert "\x1b" not in text
            assert not any(dangerous(char) for char in text)
        agent = body["blocks"][-1]["text"]
        assert len(agent["text"]) <= 3000
        cleaned = inert_text(justification)
        if cleaned:
            assert agent["verbatim"] is True
            if not agent["text"].endswith("…"):
                assert unquote(agent["text"]) == cleaned

    @given(hostile_texts.filter(lambda text: len(inert_text(text)) > 3))
    def test_agent_text_stays_in_its_block(self, noise: str) -> None:
        """The agent's words appear in the labelled block and nowhere else."""
        marker = "QXMARKERQX"
        body = slack_body(
            make_approval(justification=f"{marker}{noise}"),
            WebhookEvent.REQUESTED,
            LINK,
        )
        *broker_blocks, agent_block = body["blocks"]
        assert marker in agent_block["text"]["text"]
        assert marker not in json.dumps([body["text"], broker_blocks])

    def test_long_escaped_text_fits_a_section(self) -> None:
        """Text that escaping lengthens fivefold is cut to Slack's 3,000 limit."""
        body = slack_body(
            make_approval(justification="&" * 5000), WebhookEvent.REQUESTED, LINK
        )
        text = body["blocks"][-1]["text"]["text"]
        assert len(text) <= 3000
        assert text.endswith("…")
        assert text.removeprefix("> ").removesuffix("…").replace("&amp;", "") == ""


class TestLink:
    """The console link is the broker's own."""

    def test_built_from_the_base(self) -> None:
        """The link is {base}/console/approvals/{id}, one slash between."""
        assert (
            approval_link("https://gatepass.example/", "apr_1")
            == "https://gatepass.example/console/approvals/apr_1"
        )

    @given(st.text(max_size=40))
    def test_base_cannot_shape_markup(self, noise: str) -> None:
        """Characters that mean something to Slack are percent-encoded."""
        link = approval_link(f"https://gatepass.example/{noise}", "apr_1")
        assert not set(link) & set('<>| "\n`')
        assert link.endswith("/console/approvals/apr_1")


class TestInertText:
    """Cleaning agent text."""

    @given(hostile_texts)
    def test_idempotent_and_bounded(self, text: str) -> None:
        """Cleaning twice changes nothing; the result is within the limit."""
        once = inert_text(text)
        assert inert_text(once) == once
        assert len(once) <= JUSTIFICATION_LIMIT
        assert not any(dangerous(char) for char in once)

    def test_ansi_sequences_go_whole(self) -> None:
        """An ANSI colour or hyperlink sequence leaves no visible remnant."""
        text = "\x1b[1;31mred\x1b[0m \x1b]8;;https://evil.example\x07here\x1b]8;;\x07"
        assert inert_text(text) == "red here"

    def test_line_breaks_are_kept_tabs_become_spaces(self) -> None:
        """Line breaks survive as newlines; tabs become spaces."""
        assert inert_text("a\r\nb\u2028c\td") == "a\nb\nc d"


def test_huge_justification_is_cut_cheaply() -> None:
    """A megabyte of hostile text comes out within the limit."""
    cleaned = inert_text("\u202e<x>" * 250_000)
    assert len(cleaned) == JUSTIFICATION_LIMIT
    assert cleaned.endswith("…")
    assert "\u202e" not in cleaned
