"""``gatepass agents``: register, list, show and disable agents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from gatepass.cli.client import admin_client, resource_path
from gatepass.cli.output import JSON_OPTION, print_json, print_record, print_table
from gatepass.errors import InvalidRequestError

__all__ = ["app"]

app = typer.Typer(help="Register and manage agents.", no_args_is_help=True)

_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("tenant", "tenant"),
    ("status", "status"),
    ("algorithm", "alg"),
    ("labels", "labels"),
    ("owners", "owners"),
    ("created_at", "created"),
]


def _read_public_key(path: Path) -> str | dict[str, Any]:
    """Return a JWK object for JSON files and the text itself for PEM files."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"{path}: cannot read the public key") from exc
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"{path}: not valid JWK JSON: {exc}") from exc
        # Text that starts with "{" and parses is always an object.
        jwk: dict[str, Any] = document
        return jwk
    return text


def _parse_labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise InvalidRequestError(f"label {pair!r} is not key=value")
        labels[key] = value
    return labels


def _show(agent: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print_json(agent)
        return
    shown = {key: value for key, value in agent.items() if key != "public_jwk"}
    jwk = agent.get("public_jwk")
    if isinstance(jwk, dict):
        shown["key"] = " ".join(
            str(jwk[part]) for part in ("kty", "crv") if part in jwk
        )
    print_record(shown, title=f"agent {agent.get('name', '')}")


@app.command("add")
def add(  # noqa: PLR0917 - Typer passes each option as a parameter
    name: str = typer.Argument(..., help="the agent's name, unique: [a-z0-9._-]"),
    tenant: str = typer.Option(..., "--tenant", "-t", help="the agent's tenant"),
    public_key: Path = typer.Option(
        ...,
        "--public-key",
        "-k",
        exists=True,
        dir_okay=False,
        help="the agent's public key: a JWK JSON file or a PEM file",
    ),
    label: list[str] = typer.Option(
        [], "--label", "-l", help="a label as key=value; repeat for more"
    ),
    owner: list[str] = typer.Option(
        [], "--owner", "-o", help="an operator responsible for it; repeatable"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Register an agent with its public key."""
    body = {
        "name": name,
        "tenant": tenant,
        "public_key": _read_public_key(public_key),
        "labels": _parse_labels(label),
        "owners": owner,
    }
    with admin_client() as client:
        agent = client.post("/v1/agents", body)
    _show(agent, as_json=as_json)


@app.command("list")
def list_agents(
    tenant: str | None = typer.Option(None, "--tenant", "-t", help="only this tenant"),
    status: str | None = typer.Option(
        None, "--status", "-s", help="only this status (active, disabled)"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """List agents."""
    params = {
        key: value
        for key, value in (("tenant", tenant), ("status", status))
        if value is not None
    }
    with admin_client() as client:
        answer = client.get("/v1/agents", params)
    if as_json:
        print_json(answer)
        return
    print_table(answer["items"], _COLUMNS, empty="no agents")


@app.command("show")
def show(
    agent_id: str = typer.Argument(..., metavar="ID", help="the agent id (agt_…)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one agent."""
    with admin_client() as client:
        agent = client.get(resource_path("/v1/agents", agent_id))
    _show(agent, as_json=as_json)


@app.command("disable")
def disable(
    agent_id: str = typer.Argument(..., metavar="ID", help="the agent id (agt_…)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Disable an agent: its open tasks close and its leases are revoked."""
    with admin_client() as client:
        agent = client.post(resource_path("/v1/agents", agent_id, "disable"))
    _show(agent, as_json=as_json)
