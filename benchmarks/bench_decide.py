"""Explained decisions per second through kmrules.decide vs bare durable_rules (the ceiling).

Run: .venv/bin/python benchmarks/bench_decide.py [--cases 100000] [--rss-decisions 1000000]
Prints decisions/s, p50/p99 latency, the bare-engine figure on the same compiled rules and
firings, their ratio, and RSS before and after the long run.
"""

from __future__ import annotations

import argparse
import importlib
import resource
import statistics
import time
from typing import Any

import kmrules
from kmrules.engine import QuietHost, _assert_collect_retract, encode_fact
from kmrules.facts import flatten
from kmrules.factset import derive_facts
from kmrules.overlay import stack_for
from kmrules.resolve import resolve
from kmrules.testing.population import synthetic_population

decide_module = importlib.import_module("kmrules.decide")


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_wrapper(requests: list[dict[str, Any]], explain_more: bool = True) -> tuple[float, list[float]]:
    latencies = []
    t0 = time.perf_counter()
    for request in requests:
        t = time.perf_counter_ns()
        kmrules.decide(request, explain_more=explain_more)
        latencies.append((time.perf_counter_ns() - t) / 1e6)
    return len(requests) / (time.perf_counter() - t0), latencies


def bench_bare(requests: list[dict[str, Any]]) -> tuple[float, float]:
    """Same compiled rulesets and firings, facts pre-encoded: only assert + actions + retract."""
    book = kmrules.get_rulebook()
    prepared = []
    for request in requests:
        case = book.catalogue.model.model_validate(request["case"])
        flat = flatten(case, book.catalogue.facts)
        rules = resolve(book, request["scheme"], stack_for(book, "baseline"), flat["application_date"])
        facts, _ = derive_facts(rules, flat)
        compiled = decide_module._DURABLE.compiled(rules, decide_module.fact_types(book, rules))
        prepared.append((compiled, encode_fact(compiled, facts, rules.param_values)))
    t0 = time.perf_counter()
    for compiled, fact in prepared:
        _assert_collect_retract(compiled, fact)
    lean = len(prepared) / (time.perf_counter() - t0)

    # durable_rules' own Host API on the same rules: every firing runs a Python action
    fired: list[str] = []
    hosts: dict[str, tuple[QuietHost, str]] = {}
    for compiled, _fact in prepared:
        if compiled.name not in hosts:
            definition = {name: {**rule, "run": (lambda n: lambda _c: fired.append(n))(name)} for name, rule in compiled.definition.items()}
            host = QuietHost()
            host.register_rulesets({compiled.name + "_api": definition})
            hosts[compiled.name] = (host, compiled.name + "_api")
    t0 = time.perf_counter()
    for compiled, fact in prepared:
        host, name = hosts[compiled.name]
        host.assert_fact(name, fact)
        host.retract_fact(name, fact)
        fired.clear()
    api = len(prepared) / (time.perf_counter() - t0)
    return lean, api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--rss-decisions", type=int, default=1_000_000)
    args = parser.parse_args()

    requests = synthetic_population(
        args.cases, schemes=("knowledge_migrant", "knowledge_migrant", "knowledge_migrant", "eu_blue_card")
    )
    for request in requests[:2000]:  # warm caches (compile every ruleset once)
        kmrules.decide(request)
    core_rate, core_latencies = bench_wrapper(requests, explain_more=False)
    cq = statistics.quantiles(core_latencies, n=100)
    rate, latencies = bench_wrapper(requests)
    q = statistics.quantiles(latencies, n=100)
    bare, host_api = bench_bare(requests[: min(len(requests), 50_000)])
    outcomes = {
        o: sum(1 for r in requests[:5000] if kmrules.decide(r).outcome == o)
        for o in ("granted", "refused", "undetermined")
    }
    print(f"cases: {len(requests)} (outcome mix of first 5000: {outcomes})")
    print(f"kmrules.decide (findings, amounts, receipt; explain_more=False): {core_rate:,.0f} explained decisions/s; "
          f"p50 {cq[49]:.3f} ms, p99 {cq[98]:.3f} ms")
    print(f"kmrules.decide (default: + counterfactuals on threshold refusals): {rate:,.0f} decisions/s; "
          f"p50 {q[49]:.3f} ms, p99 {q[98]:.3f} ms")
    print(f"bare durable_rules, engine calls as kmrules drives them (same rules, same firings): {bare:,.0f} decisions/s")
    print(f"bare durable_rules through its Host API with Python actions (same rules, same firings): {host_api:,.0f} decisions/s")
    print(f"ratio explained (explain_more=False)/bare engine calls: {core_rate / bare:.2f}; /Host API: {core_rate / host_api:.2f}")

    before = rss_mib()
    done = 0
    t0 = time.perf_counter()
    while done < args.rss_decisions:
        for request in requests:
            kmrules.decide(request)
            done += 1
            if done >= args.rss_decisions:
                break
        print(f"  {done:,} decisions, RSS {rss_mib():.1f} MiB", flush=True)
    print(
        f"RSS before {before:.1f} MiB, after {args.rss_decisions:,} decisions {rss_mib():.1f} MiB "
        f"({args.rss_decisions / (time.perf_counter() - t0):,.0f}/s)"
    )


if __name__ == "__main__":
    main()
