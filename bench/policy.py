"""
Policy decisions as policies grow: the whole-set scan against policy slicing.

In one run (about two minutes) it

1. builds multi-tenant policy directories of 10, 100, 1,000 and 10,000 policies
   (the quickstart's six, then per tenant a read permit on tenant equalities, an
   agent's ``action in [...]`` permit, a write-on-prod forbid and a target's
   OpenTask permit), loads each with and without slicing, and times the loads and
   the index build;
2. times ``CedarPolicySet.decide`` for one request at a time over a working set of
   requests from a few hundred tenants: the first pass (each slice's set parsed on
   first use) and then warm, for the whole set and for slicing, and checks the
   aims (p50 ≤ 200 µs at 1,000 policies, ≤ 300 µs at 10,000);
3. runs the differential check: ≥ 100,000 requests (schema-directed, near misses,
   facts Cedar refuses; alone and in the broker's batches of several actions) on
   random multi-tenant sets with guardrails, unclassifiable shapes and policies
   that fail for some requests, decided by the whole set and by slices of any
   size; every field of every decision must agree;
4. writes ``bench/results/policy.json``.

    .venv/bin/python bench/policy.py
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib.metadata
import json
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from string import Template
from typing import Any

from rich.console import Console
from rich.table import Table

from gatepass.clock import SystemClock
from gatepass.policy import (
    AgentFacts,
    CedarPolicySet,
    PolicyRequest,
    TargetFacts,
    TaskFacts,
)
from gatepass.policy.model import prepare
from gatepass.policy.slicing import PolicySlicer
from gatepass.policy.sources import read_sources

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "policy.json"
QUICKSTART = BENCH.parent / "examples" / "quickstart" / "policies"
SIZES = (10, 100, 1_000, 10_000)
AIMS_P50_US = {1_000: 200.0, 10_000: 300.0}
WORKING_TENANTS = 300
WORKING_REQUESTS = 1_500
WARM_PASSES = 2
WHOLE_SAMPLES = {10: 3_000, 100: 3_000, 1_000: 600, 10_000: 60}
DIFFERENTIAL_CASES = 100_000
DIFFERENTIAL_SETS = 25
SEED = 15
TUESDAY_10 = dt.datetime(2026, 1, 6, 10, tzinfo=dt.UTC)
ACTIONS = ("OpenTask", "read", "write", "admin")

console = Console(highlight=False)
if not console.is_terminal:
    console = Console(highlight=False, width=140)


def _action(name: str) -> str:
    return f'Gatepass::Action::"{name}"'


# ------------------------------------------------------------- multi-tenant sets


# The policies of one tenant ($t): the shapes a multi-tenant broker accumulates.
TENANT_POLICIES = (
    """@id("$t-read") @ttl("600")
permit (principal, action == Gatepass::Action::"read", resource)
when { resource.tenant == "$t" && principal.tenant == "$t" &&
       context.task.tenant == "$t" };""",
    """@id("$t-agent") @ttl("300")
permit (principal == Gatepass::Agent::"agt-$t",
        action in [Gatepass::Action::"read", Gatepass::Action::"write"], resource)
when { resource.tenant == "$t" };""",
    """@id("$t-no-prod-writes")
forbid (principal, action == Gatepass::Action::"write", resource)
when { resource.tenant == "$t" && resource.environment == "prod" };""",
    """@id("$t-open-db")
permit (principal, action == Gatepass::Action::"OpenTask",
        resource == Gatepass::Target::"db-$t")
when { principal.tenant == "$t" };""",
)


def tenant_policies(tenant: int) -> list[str]:
    """The policies of one tenant."""
    return [Template(text).substitute(t=f"t{tenant}") for text in TENANT_POLICIES]


def write_directory(root: Path, size: int) -> int:
    """Write the quickstart plus per-tenant policies, ``size`` in all; tenants."""
    root.mkdir(parents=True)
    for path in QUICKSTART.glob("*.cedar*"):
        shutil.copy(path, root / path.name)
    wanted = size - 6
    policies: list[str] = []
    tenants = 0
    while len(policies) < wanted:
        policies.extend(tenant_policies(tenants))
        tenants += 1
    (root / "tenants.cedar").write_text("\n".join(policies[:wanted]), encoding="utf-8")
    return max(tenants, 1)


def tenant_target(tenant: str, rng: random.Random) -> TargetFacts:
    """One of a tenant's two targets: its production database or its dev API."""
    if rng.random() < 0.5:
        return TargetFacts(
            name=f"db-{tenant}",
            uri=f"postgresql://db.{tenant}.example/app",
            kind="postgres",
            environment="prod",
            tenant=tenant,
            risk="high",
        )
    return TargetFacts(
        name=f"api-{tenant}",
        uri=f"https://api.{tenant}.example/",
        kind="http",
        environment="dev",
        tenant=tenant,
        risk="low",
    )


def working_set(tenants: int, rng: random.Random) -> list[PolicyRequest]:
    """Requests of the agents of a few hundred tenants on their own targets."""
    active = rng.sample(range(tenants), min(tenants, WORKING_TENANTS))
    found = []
    for _ in range(WORKING_REQUESTS):
        tenant = f"t{rng.choice(active)}"
        found.append(
            PolicyRequest(
                agent=AgentFacts(
                    id=f"agt-{tenant}",
                    name="agent",
                    tenant=tenant,
                    labels={"team": "support"},
                ),
                action=rng.choice(ACTIONS[:3]),
                target=tenant_target(tenant, rng),
                task=TaskFacts(
                    purpose="support-triage",
                    intent="triage",
                    environment="dev",
                    tenant=tenant,
                    age_seconds=rng.randrange(600),
                ),
                now=TUESDAY_10,
            )
        )
    return found


def timed(policy_set: CedarPolicySet, requests: Sequence[PolicyRequest]) -> list[float]:
    """Decide each request alone; return the latencies in µs."""
    samples = []
    for request in requests:
        start = time.perf_counter_ns()
        policy_set.decide([request])
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    """p50, p99 and mean of latencies in µs."""
    ordered = sorted(samples)
    return {
        "p50_us": round(ordered[len(ordered) // 2], 1),
        "p99_us": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
        "mean_us": round(statistics.fmean(ordered), 1),
        "samples": len(ordered),
    }


def measure_size(workdir: Path, size: int, rng: random.Random) -> dict[str, Any]:
    """Load one size both ways and time its decisions."""
    directory = workdir / f"set-{size}"
    tenants = write_directory(directory, size)
    started = time.perf_counter()
    whole = CedarPolicySet.from_directory(directory, slicing=False)
    whole_load = time.perf_counter() - started
    started = time.perf_counter()
    sliced = CedarPolicySet.from_directory(directory)
    sliced_load = time.perf_counter() - started
    sources = read_sources(directory)
    builds = []
    for _ in range(3):
        started = time.perf_counter()
        PolicySlicer(sources.policy_json)
        builds.append(time.perf_counter() - started)
    del sources
    gc.collect()  # the parsed documents of the index build are garbage now
    requests = working_set(tenants, rng)
    first_pass = timed(sliced, requests)
    warm = [s for _ in range(WARM_PASSES) for s in timed(sliced, requests)]
    whole_requests = (requests * 3)[: WHOLE_SAMPLES[size]]
    timed(whole, whole_requests[:20])
    whole_samples = timed(whole, whole_requests)
    evaluated = [policies_evaluated(sliced, request) for request in requests[:300]]
    slicer = sliced._slicer  # noqa: SLF001 - the bench reports the slices
    mismatches = sum(
        whole.decide([request]) != sliced.decide([request])
        for request in requests[: 300 if size < 10_000 else 60]
    )
    return {
        "policies": sliced.policy_count,
        "tenants": tenants,
        "load_seconds": {
            "whole": round(whole_load, 3),
            "sliced": round(sliced_load, 3),
        },
        "index_build_seconds": round(statistics.median(builds), 3),
        "whole_set": summary(whole_samples),
        "sliced_first_pass": summary(first_pass),
        "sliced_warm": summary(warm),
        "policies_evaluated_mean": round(statistics.fmean(evaluated), 2),
        "sliced_share": round(
            sum(n < sliced.policy_count for n in evaluated) / len(evaluated), 3
        ),
        "cached_slices": 0 if slicer is None else slicer.cached_slices,
        "working_set": {
            "tenants": min(tenants, WORKING_TENANTS),
            "requests": len(requests),
        },
        "mismatches_on_timed_requests": mismatches,
    }


def policies_evaluated(policy_set: CedarPolicySet, request: PolicyRequest) -> int:
    """Return how many policies Cedar evaluates for one request."""
    slicer = policy_set._slicer  # noqa: SLF001 - the bench reports the slices
    keys = prepare(0, request, policy_set._fits(request.action)).keys  # noqa: SLF001
    if slicer is None or keys is None:
        return policy_set.policy_count
    selection = slicer.select([keys])
    if selection is None or len(selection) > slicer.max_size:
        return policy_set.policy_count
    return len(selection)


# ------------------------------------------------------------------ differential

# One template a line; $-placeholders are filled at random.
TEMPLATES = """
$effect (principal, action == $action, resource) when { resource.tenant == "$t" && principal.tenant == "$t" && context.task.tenant == "$t" };
$effect (principal, action in [$actions], resource) when { resource.tenant == "$t" && resource.environment == "$env" };
$effect (principal == Gatepass::Agent::"$agent", action in [$actions], resource);
$effect (principal, action, resource == Gatepass::Target::"$target") when { principal.tenant == "$t" };
$effect (principal in Gatepass::Agent::"$agent", action == $action, resource in Gatepass::Target::"$target");
$effect (principal, action == $action, resource) when { resource.kind == "$kind" && ["low", "medium"].contains(resource.risk) };
$effect (principal, action, resource) when { "$t" == context.task.tenant && resource has uri && resource.uri == "$uri" };
$effect (principal, action, resource) unless { principal.tenant == "$t2" } when { resource.tenant == "$t" };
$effect (principal, action, resource) when { context.time.hour < $hour && resource.tenant == "$t" };
$effect (principal, action, resource) when { resource.tenant == "$t" || principal.tenant == "$t2" };
$effect (principal, action, resource) when { if resource.environment == "$env" then principal.tenant == "$t" else false };
$effect (principal, action == $action, resource) when { principal.hasTag("team") && principal.getTag("team") == "support" && resource.tenant == "$t" };
$effect (principal, action, resource) when { resource.tenant == "$t" && context.task.age_seconds + 9223372036854775000 > 0 };
$effect (principal, action, resource) when { context.task.age_seconds * 1000000000000 > 0 && resource.tenant == "$t" };
$effect (principal, action in [$actions], resource) when { resource.environment == "$env" && Gatepass::Agent::"$agent".tenant == "$t" };
$effect (principal, action, resource) when { principal.tenant == "$t" } unless { context.time.epoch * 4000000000 > 0 };
""".strip().splitlines()  # noqa: E501 - one Cedar policy a line reads best
FAILING = 4  # the last four fail for some requests (overflow, an absent entity)
DIFF_TENANTS = 12


def random_policy(rng: random.Random, number: int) -> str:
    """One random policy from the templates, usually with an @id and a TTL."""
    failing = rng.random() < 0.05
    pool = TEMPLATES[-FAILING:] if failing else TEMPLATES[:-FAILING]
    effect = rng.choice(["permit", "permit", "forbid"])
    actions = rng.sample(ACTIONS, rng.randint(1, 2))
    text = Template(pool[rng.randrange(len(pool))]).substitute(
        effect=effect,
        actions=", ".join(map(_action, actions)),
        action=_action(rng.choice(ACTIONS)),
        t=f"t{rng.randrange(DIFF_TENANTS)}",
        t2=f"t{rng.randrange(DIFF_TENANTS)}",
        agent=f"a{rng.randrange(DIFF_TENANTS)}",
        target=f"x{rng.randrange(DIFF_TENANTS)}",
        env=rng.choice(["dev", "prod"]),
        kind=rng.choice(["http", "postgres"]),
        uri=rng.choice(["u0", "u1"]),
        hour=str(rng.randrange(25)),
    )
    ttl = (
        f'@ttl("{rng.randint(1, 900)}") '
        if effect == "permit" and rng.random() < 0.5
        else ""
    )
    name = f'@id("p{number}") ' if rng.random() < 0.9 else ""
    return name + ttl + text


def near(rng: random.Random, value: str) -> str:
    """The value, or now and then a near miss of it."""
    roll = rng.random()
    if roll < 0.85:
        return value
    return rng.choice([f"{value} ", value.upper(), "", value[:-1]])


def random_request(rng: random.Random) -> PolicyRequest:
    """A schema-directed request; one in twenty has a fact Cedar refuses."""
    tenant = f"t{rng.randrange(DIFF_TENANTS)}"
    other = f"t{rng.randrange(DIFF_TENANTS)}"
    task_tenant = near(rng, tenant if rng.random() < 0.8 else other)
    age = rng.choice([0, 5, 60, 807, 808, 3_600, 9_223_372, 10**13])
    purpose: object = "support-triage"
    roll = rng.random()
    if roll < 0.02:
        purpose = 7
    elif roll < 0.04:
        age = 2**70
    elif roll < 0.05:
        task_tenant = "t0\ud800"
    moment = dt.datetime(2000, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
        seconds=rng.randrange(100 * 365 * 86_400)
    )
    return PolicyRequest(
        agent=AgentFacts(
            id=near(rng, f"a{rng.randrange(DIFF_TENANTS)}"),
            name="agent",
            tenant=near(rng, tenant),
            labels=rng.choice([{}, {"team": "support"}, {"team": "billing"}]),
        ),
        action=rng.choice([*ACTIONS, *ACTIONS, *ACTIONS, "delete"]),
        target=TargetFacts(
            name=near(rng, f"x{rng.randrange(DIFF_TENANTS)}"),
            uri=near(rng, rng.choice(["u0", "u1"])),
            kind=near(rng, rng.choice(["http", "postgres"])),
            environment=near(rng, rng.choice(["dev", "prod"])),
            tenant=near(rng, tenant if rng.random() < 0.8 else other),
            risk=rng.choice(["low", "medium", "high"]),
        ),
        task=TaskFacts(
            purpose=purpose,  # type: ignore[arg-type]
            intent="triage",
            environment=near(rng, "dev"),
            tenant=task_tenant,
            age_seconds=age,
        ),
        now=moment,
    )


def batch_of(rng: random.Random) -> list[PolicyRequest]:
    """One request, or the broker's batch: several actions on one target."""
    first = random_request(rng)
    if rng.random() < 0.6:
        return [first]
    actions = rng.sample(ACTIONS, rng.randint(2, 3))
    return [
        PolicyRequest(
            agent=first.agent,
            action=action,
            target=first.target,
            task=first.task,
            now=first.now,
        )
        for action in actions
    ]


class EagerSlicing(CedarPolicySet):
    """Slices whatever the slice's size: every selection is checked."""

    _slice_share = 1.0
    _slice_size = 10**9


def differential(workdir: Path, rng: random.Random) -> dict[str, Any]:
    """Decide random requests with the whole set and with slices; count mismatches."""
    cases = mismatches = with_errors = allowed = 0
    shown: list[str] = []
    per_set = -(-DIFFERENTIAL_CASES // DIFFERENTIAL_SETS)
    guardrails = "\n".join(
        (QUICKSTART / name).read_text(encoding="utf-8")
        for name in ("guardrails.cedar", "tenancy.cedar")
    )
    started = time.perf_counter()
    for number in range(DIFFERENTIAL_SETS):
        directory = workdir / f"differential-{number}"
        directory.mkdir()
        shutil.copy(QUICKSTART / "schema.cedarschema", directory)
        count = rng.randint(20, 80)
        policies = [random_policy(rng, index) for index in range(count)]
        (directory / "a.cedar").write_text("\n".join(policies), encoding="utf-8")
        if number % 2 == 0:
            (directory / "guardrails.cedar").write_text(guardrails, encoding="utf-8")
        sources = read_sources(directory)
        whole = CedarPolicySet(sources, directory=directory, slicing=False)
        sliced = EagerSlicing(sources, directory=directory)
        done = 0
        while done < per_set:
            batch = batch_of(rng)
            expected = whole.decide(batch)
            got = sliced.decide(batch)
            # A batch of one was just decided alone; larger ones are also split.
            alone = got if len(batch) == 1 else [sliced.decide([r])[0] for r in batch]
            for request, want, have, single in zip(
                batch, expected, got, alone, strict=True
            ):
                cases += 1
                done += 1
                with_errors += bool(want.errors)
                allowed += want.allowed
                if want != have or want != single:
                    mismatches += 1
                    if len(shown) < 5:
                        shown.append(f"{request!r}: whole {want!r}, sliced {have!r}")
    return {
        "cases": cases,
        "mismatches": mismatches,
        "sets": DIFFERENTIAL_SETS,
        "allowed": allowed,
        "with_errors": with_errors,
        "first_mismatches": shown,
        "seconds": round(time.perf_counter() - started, 1),
    }


# ------------------------------------------------------------------------ report


def print_results(
    sizes: list[dict[str, Any]], diff: dict[str, Any]
) -> list[dict[str, str]]:
    """Print the tables; return the aims with their verdicts."""
    table = Table(title="CedarPolicySet.decide, one request (µs)")
    for column in ("policies", "whole p50", "whole p99", "sliced p50", "sliced p99"):
        table.add_column(column, justify="right")
    for column in ("1st pass p50", "1st pass p99", "evaluated", "aim p50", "verdict"):
        table.add_column(column, justify="right")
    aims = []
    for row in sizes:
        aim = AIMS_P50_US.get(row["policies"])
        measured = row["sliced_warm"]["p50_us"]
        verdict = "—" if aim is None else "PASS" if measured <= aim else "MISS"
        if aim is not None:
            aims.append(
                {
                    "aim": f"sliced decide p50 <= {aim:.0f} µs at "
                    f"{row['policies']:,} policies",
                    "measured": f"{measured:.0f} µs",
                    "verdict": verdict,
                }
            )
        style = {"PASS": "green", "MISS": "yellow"}.get(verdict, "")
        table.add_row(
            f"{row['policies']:,}",
            f"{row['whole_set']['p50_us']:,.0f}",
            f"{row['whole_set']['p99_us']:,.0f}",
            f"{measured:,.0f}",
            f"{row['sliced_warm']['p99_us']:,.0f}",
            f"{row['sliced_first_pass']['p50_us']:,.0f}",
            f"{row['sliced_first_pass']['p99_us']:,.0f}",
            f"{row['policies_evaluated_mean']:.1f}",
            "—" if aim is None else f"{aim:.0f}",
            f"[{style}]{verdict}[/{style}]" if style else verdict,
        )
    console.print(table)
    loads = Table(title="Loading (s)")
    for column in (
        "policies",
        "whole set",
        "with index",
        "index build",
        "slices cached",
    ):
        loads.add_column(column, justify="right")
    for row in sizes:
        loads.add_row(
            f"{row['policies']:,}",
            f"{row['load_seconds']['whole']:.2f}",
            f"{row['load_seconds']['sliced']:.2f}",
            f"{row['index_build_seconds']:.3f}",
            str(row["cached_slices"]),
        )
    console.print(loads)
    verdict = "PASS" if diff["mismatches"] == 0 and diff["cases"] >= 100_000 else "FAIL"
    aims.append(
        {
            "aim": "differential: >= 100,000 cases, 0 mismatches",
            "measured": f"{diff['cases']:,} cases, {diff['mismatches']} mismatches",
            "verdict": verdict,
        }
    )
    console.print(
        f"Differential: {diff['cases']:,} requests on {diff['sets']} random sets "
        f"({diff['allowed']:,} allowed, {diff['with_errors']:,} with errors) in "
        f"{diff['seconds']} s: {diff['mismatches']} mismatches"
    )
    for line in diff["first_mismatches"]:
        console.print(f"[bold red]{line}")
    aim_table = Table(title="Aims")
    for column in ("aim", "measured", "verdict"):
        aim_table.add_column(column)
    for aim in aims:
        style = {"PASS": "green", "MISS": "yellow"}.get(aim["verdict"], "bold red")
        aim_table.add_row(
            aim["aim"], aim["measured"], f"[{style}]{aim['verdict']}[/{style}]"
        )
    console.print(aim_table)
    return aims


def machine() -> dict[str, Any]:
    """Describe the machine and the versions that matter."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "python": platform.python_version(),
        "cedarpy": importlib.metadata.version("cedarpy"),
        "platform": platform.platform(),
    }


def main() -> int:
    """Run everything; exit 0 when the differential check found no mismatch."""
    started_at = SystemClock().now()
    rng = random.Random(SEED)
    workdir = Path(tempfile.mkdtemp(prefix="gatepass-bench-policy-"))
    try:
        sizes = []
        for size in SIZES:
            console.print(f"{size:,} policies: loading and timing ...")
            sizes.append(measure_size(workdir, size, rng))
        console.print(f"Differential check: {DIFFERENTIAL_CASES:,} requests ...")
        diff = differential(workdir, rng)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    aims = print_results(sizes, diff)
    report = {
        "date": started_at.isoformat(timespec="seconds"),
        "machine": machine(),
        "method": {
            "decide": "one request per call, warm: the working set decided "
            f"{WARM_PASSES} more times after a first pass that parses each "
            "slice's set on first use",
            "working_set": f"{WORKING_REQUESTS} requests of agents of up to "
            f"{WORKING_TENANTS} tenants on their own targets",
            "policies": "quickstart's 6 + per tenant: read permit on tenant "
            "equalities, agent permit with action in [...], write-on-prod forbid, "
            "target OpenTask permit",
            "differential": "EagerSlicing (a slice for every request, whatever its "
            "size) against slicing=False; a request counts once, decided in its "
            "batch and alone",
        },
        "sizes": sizes,
        "differential": diff,
        "aims": aims,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "duration_seconds": round(
            (SystemClock().now() - started_at) / dt.timedelta(seconds=1), 1
        ),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(f"Wrote {RESULTS.relative_to(BENCH.parent)}")
    return 0 if diff["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
