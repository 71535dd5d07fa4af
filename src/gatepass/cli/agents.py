"""``gatepass agents``: register, list, show and disable agents."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

import typer

from gatepass.cli.client import AdminClient, admin_client, resource_path
from gatepass.cli.identities import (
    AgentKey,
    check_writable,
    generate_agent_key,
    read_agent_key,
    write_identity,
)
from gatepass.cli.options import (
    ADDR_OPTION,
    CONFIG_OPTION,
    JSON_OPTION,
    OUTPUT_OPTION,
    WIDE_OPTION,
    Format,
    wants_json,
)
from gatepass.cli.output import (
    print_json,
    print_record,
    print_table,
    stdout_console,
    terminal_safe,
)
from gatepass.cli.tables import Column
from gatepass.errors import GatepassError, InvalidRequestError

__all__ = ["app"]

app = typer.Typer(help="Register and manage agents.", no_args_is_help=True)

_COLUMNS = [
    Column("id", "id", "id"),
    Column("name", "name", "text"),
    Column("tenant", "tenant", "word", drop=3),
    Column("status", "status", "word"),
    Column("algorithm", "alg", "word", drop=4),
    Column("labels", "labels", "text", drop=2),
    Column("owners", "owners", "text", drop=2),
    Column("created_at", "created", "time", drop=1),
]


class Algorithm(enum.StrEnum):
    """The key types the broker registers for agents."""

    ES256 = "ES256"
    EDDSA = "EdDSA"


def _private_key_given(path: Path) -> InvalidRequestError:
    return InvalidRequestError(
        f"{path} holds a private key, which never goes to the broker: pass it with "
        "--private-key (only its public half is sent)"
    )


def _read_public_key(path: Path) -> str | dict[str, Any]:
    """
    Return a JWK object for JSON files and the text itself for PEM files.

    Raises:
        InvalidRequestError: the file is unreadable, not JSON, or holds a private
            key (refused here, so that it is never sent).
    """
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
        if "d" in jwk:
            raise _private_key_given(path)
        return jwk
    if "PRIVATE KEY" in text:
        raise _private_key_given(path)
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


def _agent_key(
    public_key: Path | None,
    private_key: Path | None,
    generate: bool,
    algorithm: Algorithm,
    identity: Path | None,
) -> tuple[str | dict[str, Any], AgentKey | None]:
    """
    Return what to register and, for an identity file, the key it will name.

    Raises:
        InvalidRequestError: the options do not make one usable key.
    """
    given = [public_key is not None, private_key is not None, generate]
    if sum(given) != 1:
        raise InvalidRequestError(
            "give exactly one of --public-key FILE, --private-key FILE or "
            "--generate-key"
        )
    if generate and identity is None:
        raise InvalidRequestError(
            "--generate-key needs --write-identity FILE: the private key is "
            "written only there"
        )
    if identity is not None:
        if public_key is not None:
            raise InvalidRequestError(
                "--write-identity needs the private key: pass --private-key FILE "
                "(it stays where it is) or --generate-key"
            )
        check_writable(identity)
    if public_key is not None:
        return _read_public_key(public_key), None
    key = (
        read_agent_key(private_key, identity)
        if private_key is not None
        else generate_agent_key("ES256" if algorithm is Algorithm.ES256 else "EdDSA")
    )
    return key.public_jwk, key


def _issuer(client: AdminClient) -> str:
    """Return the broker's issuer URL from its metadata (RFC 8414), for the SDK."""
    try:
        metadata = client.get("/.well-known/oauth-authorization-server")
    except GatepassError:
        return client.address
    issuer = metadata.get("issuer") if isinstance(metadata, dict) else None
    return issuer if isinstance(issuer, str) and issuer else client.address


@app.command("add")
def add(
    name: str = typer.Argument(..., help="the agent's name, unique: [a-z0-9._-]"),
    tenant: str = typer.Option(..., "--tenant", "-t", help="the agent's tenant"),
    public_key: Path | None = typer.Option(
        None,
        "--public-key",
        "-k",
        exists=True,
        dir_okay=False,
        help="the agent's public key: a JWK JSON file or a PEM file",
    ),
    private_key: Path | None = typer.Option(
        None,
        "--private-key",
        exists=True,
        dir_okay=False,
        help="the agent's private key file (PEM or JWK): only its public half is "
        "sent; --write-identity refers to this file",
    ),
    generate_key: bool = typer.Option(
        False,
        "--generate-key",
        help="generate the key pair here; the private key is written only into "
        "--write-identity FILE",
    ),
    algorithm: Algorithm = typer.Option(
        Algorithm.ES256, "--algorithm", help="the key type for --generate-key"
    ),
    write_identity_to: Path | None = typer.Option(
        None,
        "--write-identity",
        dir_okay=False,
        metavar="FILE",
        help="write the identity file the SDK loads (agent id, broker, key); mode 0600",
    ),
    label: list[str] = typer.Option(
        [], "--label", "-l", help="a label as key=value; repeat for more"
    ),
    owner: list[str] = typer.Option(
        [], "--owner", help="an operator responsible for it; repeatable"
    ),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Register an agent with its public key; optionally write its identity file."""
    registered_key, key = _agent_key(
        public_key, private_key, generate_key, algorithm, write_identity_to
    )
    body = {
        "name": name,
        "tenant": tenant,
        "public_key": registered_key,
        "labels": _parse_labels(label),
        "owners": owner,
    }
    with admin_client(addr, config) as client:
        agent = client.post("/v1/agents", body)
        if write_identity_to is not None and key is not None:
            write_identity(
                write_identity_to,
                agent_id=str(agent["id"]),
                broker=_issuer(client),
                key=key,
            )
    if wants_json(output, as_json):
        print_json(agent)
        return
    _show(agent, as_json=False)
    console = stdout_console()
    # Plain lines, never folded: the id is what the agent's configuration needs.
    console.print(
        f"agent id: {terminal_safe(str(agent['id']))}", soft_wrap=True, markup=False
    )
    if write_identity_to is not None:
        console.print(
            f"identity written to {terminal_safe(str(write_identity_to))} (mode "
            "0600): AgentIdentity.load() reads it",
            soft_wrap=True,
            markup=False,
        )


@app.command("list")
def list_agents(
    tenant: str | None = typer.Option(None, "--tenant", "-t", help="only this tenant"),
    status: str | None = typer.Option(
        None, "--status", "-s", help="only this status (active, disabled)"
    ),
    output: Format = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """List agents."""
    params = {
        key: value
        for key, value in (("tenant", tenant), ("status", status))
        if value is not None
    }
    with admin_client(addr, config) as client:
        answer = client.get("/v1/agents", params)
    if wants_json(output, as_json):
        print_json(answer)
        return
    print_table(answer["items"], _COLUMNS, wide=wide, empty="no agents")


@app.command("show")
def show(
    agent_id: str = typer.Argument(..., metavar="ID", help="the agent id (agt_…)"),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Show one agent."""
    with admin_client(addr, config) as client:
        agent = client.get(resource_path("/v1/agents", agent_id))
    _show(agent, as_json=wants_json(output, as_json))


@app.command("disable")
def disable(
    agent_id: str = typer.Argument(..., metavar="ID", help="the agent id (agt_…)"),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Disable an agent: its open tasks close and its leases are revoked."""
    with admin_client(addr, config) as client:
        agent = client.post(resource_path("/v1/agents", agent_id, "disable"))
    _show(agent, as_json=wants_json(output, as_json))
