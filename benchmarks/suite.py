"""Every benchmark in one run, written to docs/benchmarks.md and docs/benchmarks.svg.

    python -m benchmarks [--quick] [--only NAME[,NAME…]] [--no-write]

Runs each benchmark as its own process (`python -m benchmarks.<name>`, so that one's memory and
threads do not colour the next), reads the figures from its output, and writes the report: the
machine, each figure against its reference measured in the same run, the ratio, the goal and
whether it is met, and a chart of each figure against its goal. `--quick` uses smaller sizes and
shorter durations; the report says which mode produced it. A benchmark that cannot run here
(nginx, wrk or Kubo missing) or fails is listed with its reason instead of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.chart import write_chart

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "benchmarks.svg"
TIMEOUT_SECONDS = 3600


@dataclass(frozen=True)
class Figure:
    """One measured figure. `compared` is what the goal applies to: the ratio to the reference,
    or the value itself when the goal is absolute (`reference` then gives context only)."""

    benchmark: str
    name: str
    value: float
    unit: str
    reference: float | None
    reference_name: str
    goal: float | None
    at_most: bool  # the goal is an upper bound (≤) rather than a lower one (≥)
    compared: str  # "ratio" or "value"

    @property
    def ratio(self) -> float | None:
        return None if not self.reference else self.value / self.reference

    @property
    def judged(self) -> float | None:
        return self.ratio if self.compared == "ratio" else self.value

    @property
    def met(self) -> bool | None:
        judged = self.judged
        if self.goal is None or judged is None:
            return None
        return judged <= self.goal if self.at_most else judged >= self.goal


@dataclass(frozen=True)
class Outcome:
    """What one benchmark produced: figures, or the reason it has none."""

    name: str
    command: list[str]
    seconds: float
    figures: list[Figure]
    output: str
    failure: str | None = None


@dataclass(frozen=True)
class Benchmark:
    name: str
    full: list[str]
    quick: list[str]
    parse: Callable[[str], list[Figure]]


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _search(pattern: str, output: str) -> re.Match[str]:
    match = re.search(pattern, output, re.MULTILINE)
    if match is None:
        raise ValueError(f"no line matching {pattern!r}")
    return match


# --- reading each benchmark's output -------------------------------------------------------


def parse_cid(output: str) -> list[Figure]:
    sha = _number(_search(r"^sha256:\s+([\d.]+) MiB/s", output)[1])
    cid = _number(_search(r"^CID import:\s+([\d.]+) MiB/s", output)[1])
    return [Figure("cid_throughput", "CID import throughput", cid, "MiB/s", sha,
                   "hashlib.sha256", 0.85, False, "ratio")]  # fmt: skip


SERVE_GOALS = {
    "GET /feed.json (200)": 0.25,
    "GET /feed.json (304)": None,
    "GET 20 MiB take (200)": 0.8,
    "GET first MiB (206)": 0.8,
    "GET seek to half (206)": 0.8,
}


def parse_serve(output: str) -> list[Figure]:
    figures = []
    line = re.compile(r"^(GET .+?\))\s+([\d,]+) (req/s|MB/s)\s+([\d,]+) (?:req/s|MB/s)\s+[\d.]+")
    for text in output.splitlines():
        match = line.match(text)
        if match and match[1] in SERVE_GOALS:
            figures.append(
                Figure(
                    "serve",
                    match[1],
                    _number(match[2]),
                    match[3],
                    _number(match[4]),
                    "nginx",
                    SERVE_GOALS[match[1]],
                    False,
                    "ratio",
                )
            )
    if not figures:
        raise ValueError("no scenario lines in the output")
    return figures


def parse_federation(output: str) -> list[Figure]:
    rate = _number(_search(r"^first full sync: .*, ([\d,]+) proofs/s", output)[1])
    raw = _number(_search(r"^raw Ed25519 verify .*: ([\d,]+)/s", output)[1])
    unchanged = _number(_search(r"^sync round with nothing changed: ([\d.]+) s", output)[1])
    feeds = _search(r"^followed (\d+) feeds", output)[1]
    return [
        Figure("federation", "proofs verified in a first sync", rate, "proofs/s", raw,
               "raw Ed25519 verify", 0.5, False, "ratio"),
        Figure("federation", f"no-change sync round of {feeds} feeds", unchanged, "s", None,
               "-", 5.0, True, "value"),
    ]  # fmt: skip


def parse_kubo(output: str) -> list[Figure]:
    stave = _number(_search(r"^stave add:\s+([\d.]+) s", output)[1])
    ipfs = _number(_search(r"^ipfs add:\s+([\d.]+) s", output)[1])
    mib = _search(r"^file:\s+(\d+) MiB", output)[1]
    return [Figure("kubo_add", f"stave add of {mib} MiB into Kubo", stave, "s", ipfs,
                   "ipfs add", 1.1, True, "ratio")]  # fmt: skip


def parse_idle(output: str) -> list[Figure]:
    rss = _search(r"^idle RSS:\s+([\d.]+) MB .*bare aiohttp ([\d.]+) MB", output)
    start = _search(r"^cold start:\s+([\d.]+) s to /healthz .*, ([\d.]+) s to /feed.json", output)
    python = _number(_search(r"python -c pass ([\d.]+) s", output)[1])
    nginx = re.search(r"nginx start\+serve ([\d.]+) s", output)
    node = _search(r"^node: (\d+) tracks, (\d+) follows", output)
    where = f"{node[1]} tracks, {node[2]} follows"
    figures = [
        Figure("idle", f"idle resident memory ({where})", _number(rss[1]), "MB",
               _number(rss[2]), "bare aiohttp process", 60.0, True, "value"),
        Figure("idle", "cold start to first 200 of /healthz", _number(start[1]), "s",
               python, "python -c pass", 1.5, True, "value"),
        Figure("idle", "cold start to first 200 of /feed.json", _number(start[2]), "s",
               python, "python -c pass", 1.5, True, "value"),
    ]  # fmt: skip
    imports = re.search(r"Stave's imports alone: ([\d.]+) MB", output)
    if imports:
        figures.insert(1, Figure("idle", "resident memory of stave run's imports alone",
                                 _number(imports[1]), "MB", _number(rss[2]),
                                 "bare aiohttp process", None, True, "value"))  # fmt: skip
    if nginx:
        figures.append(Figure("idle", "cold start to /healthz, against nginx", _number(start[1]),
                              "s", _number(nginx[1]), "nginx start and serve", None, True,
                              "ratio"))  # fmt: skip
    return figures


def parse_load(output: str) -> list[Figure]:
    start = output.find("{")
    if start < 0:
        raise ValueError("no JSON report in the output")
    report = json.loads(output[start:])
    clients = report["clients"]
    return [
        Figure("load", f"peak resident memory under {clients} clients",
               report["rss_peak_mib"], "MiB", report["rss_idle_mib"], "the same node idle",
               report["rss_cap_mib"], True, "value"),
        Figure("load", f"5xx responses under {clients} clients", report["server_errors"],
               "responses", None, "-", 0.0, True, "value"),
        Figure("load", f"requests served under {clients} clients",
               report["requests_per_second"], "req/s", None, "-", None, False, "value"),
    ]  # fmt: skip


def parse_fediverse(output: str) -> list[Figure]:
    raw = _number(_search(r"^raw RSA-2048 sign .*: ([\d,]+)/s", output)[1])
    figures = []
    for scenario in ("shared inboxes", "personal inboxes"):
        label = re.escape(f"[{scenario}]")
        total = re.search(rf"^{label} publish to last delivery: ([\d.]+) s", output, re.M)
        if total is None:
            continue
        rss = _search(rf"^{label} stave run peak RSS: ([\d.]+) MB \(VmHWM; ([\d.]+) MB", output)
        rate = _search(rf"^{label} deliveries: ([\d,]+) deliveries/s", output)
        followers = _search(rf"^{label} (\d+) followers, (\d+) inboxes", output)
        where = f"{followers[1]} followers, {followers[2]} inboxes"
        figures += [
            Figure("fediverse_fanout", f"one track to {where}: publish to last delivery",
                   _number(total[1]), "s", None, "-", 60.0, True, "value"),
            Figure("fediverse_fanout", f"{where}: stave run peak RSS", _number(rss[1]), "MB",
                   _number(rss[2]), "the same node before publishing", 100.0, True, "value"),
            Figure("fediverse_fanout", f"{where}: deliveries per second", _number(rate[1]),
                   "deliveries/s", raw, "raw RSA-2048 sign", None, False, "ratio"),
        ]  # fmt: skip
    if not figures:
        raise ValueError("no scenario lines in the output")
    return figures


def parse_transcode(output: str) -> list[Figure]:
    minutes = _number(_search(r"^track: ([\d.]+) s", output)[1]) / 60
    figures = []
    for name in ("WAV", "FLAC"):
        speed = _search(
            rf"^transcode {name} to Opus 128 kb/s: ([\d.]+)x real time.*"
            r"decoding alone ([\d.]+)x real time",
            output,
        )
        figures.append(
            Figure("transcode", f"{name} to Opus 128 kb/s, {minutes:g}-minute track, one core",
                   _number(speed[1]), "x real time", _number(speed[2]), "PyAV decoding alone",
                   20.0, False, "value")
        )  # fmt: skip
    album = _search(r"^album: (\d+) WAVs of (\d+) MiB", output)
    rss = _search(r"^stave add DIR peak RSS: ([\d.]+) MB; stave --version ([\d.]+) MB", output)
    figures.append(
        Figure("transcode", f"stave add DIR peak RSS, {album[1]} WAVs of {album[2]} MiB",
               _number(rss[1]), "MB", _number(rss[2]), "stave --version", 150.0, True, "value")
    )  # fmt: skip
    return figures


BENCHMARKS = [
    Benchmark("cid_throughput", [], ["--mib", "64"], parse_cid),
    Benchmark("serve", [], ["--tracks", "200", "--duration", "3", "--rounds", "1"], parse_serve),
    Benchmark("federation", [], ["--feeds", "200", "--tracks", "5"], parse_federation),
    Benchmark("kubo_add", [], ["--mib", "50", "--rounds", "2"], parse_kubo),
    Benchmark("idle", [], ["--settle", "5", "--starts", "3"], parse_idle),
    Benchmark("transcode", [], ["--minutes", "1", "--tracks", "3", "--mib", "10"], parse_transcode),
    Benchmark(
        "fediverse_fanout",
        [],
        ["--followers", "2000", "--inboxes", "100", "--no-personal"],
        parse_fediverse,
    ),
]
if (ROOT / "benchmarks" / "load.py").exists():
    BENCHMARKS.append(
        Benchmark("load", [], ["--clients", "50", "--duration", "10", "--uploads", "5"], parse_load)
    )


def run_benchmark(benchmark: Benchmark, quick: bool) -> Outcome:
    command = [sys.executable, "-m", f"benchmarks.{benchmark.name}"]
    command += benchmark.quick if quick else benchmark.full
    print(f"== {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        seconds = time.perf_counter() - started
        return Outcome(benchmark.name, command, seconds, [], "", "timed out")
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    print(output, flush=True)
    try:
        figures = benchmark.parse(done.stdout)
    except ValueError as e:
        last = output.strip().splitlines()[-1] if output.strip() else f"exit {done.returncode}"
        return Outcome(benchmark.name, command, seconds, [], output, f"{last} ({e})")
    return Outcome(benchmark.name, command, seconds, figures, done.stdout)


# --- the machine and the report -----------------------------------------------------------


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )  # fmt: skip
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
    memory = f"{int(total[1]) / 1024**2:.1f} GiB" if total else "unknown"
    return {
        "CPU": model,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "Python": platform.python_version(),
        "kernel": f"{platform.system()} {platform.release()}",
    }


def _value(value: float, unit: str) -> str:
    if value >= 100:
        return f"{value:,.0f} {unit}"
    if value >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.3g} {unit}"


def goal_text(figure: Figure) -> str:
    if figure.goal is None:
        return "–"
    sign = "≤" if figure.at_most else "≥"
    unit = "" if figure.compared == "ratio" else f" {figure.unit}"
    what = "ratio " if figure.compared == "ratio" else ""
    return f"{what}{sign} {figure.goal:g}{unit}"


def met_text(figure: Figure) -> str:
    return {True: "met", False: "**not met**", None: "–"}[figure.met]


def render_report(outcomes: list[Outcome], quick: bool, started: datetime, chart: str) -> str:
    mode = "quick (`--quick`: smaller sizes, shorter runs)" if quick else "full"
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by `python -m benchmarks` (benchmarks/suite.py); do not edit by hand. -->",
        "",
        "**Generated by `python -m benchmarks`; not written by hand.** Run it again to replace "
        "this page and its chart.",
        "",
        f"Run: {started:%Y-%m-%d %H:%M} UTC, mode: {mode}.",
        "",
        "Every reference was measured in the same run, on the same machine, interleaved with "
        "the figure it is compared to where the benchmark allows. The machine is shared with "
        "other work (other engineers' test suites may run at the same time) and has 2 cores, so "
        "the figures are noisy: rerun before reading much into a difference of 10–20 %.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {key} | {value} |" for key, value in machine().items()]
    lines += [
        "",
        "## Figures",
        "",
        "| benchmark | figure | measured | reference (same run) | ratio | goal | |",
        "|---|---|---:|---|---:|---|---|",
    ]
    for outcome in outcomes:
        for f in outcome.figures:
            reference = (
                "–"
                if f.reference is None
                else f"{_value(f.reference, f.unit)} ({f.reference_name})"
            )
            ratio = "–" if f.ratio is None else f"{f.ratio:.2f}"
            lines.append(
                f"| {f.benchmark} | {f.name} | {_value(f.value, f.unit)} | {reference} | "
                f"{ratio} | {goal_text(f)} | {met_text(f)} |"
            )
    lines += [
        "",
        "A goal on the *ratio* compares Stave with its reference; a goal on a value in its own "
        "unit (MB, s) is absolute, and the reference beside it is context. For scale, not "
        "measured here: Navidrome documents an idle footprint under 50 MB, and a small Funkwhale "
        "install uses about 500 MB.",
        "",
        f"![Each figure against its goal]({chart})",
        "",
        "The chart draws one bar per figure with a goal: the ratio to its reference, or the value "
        "in its unit when the goal is absolute, scaled so that the goal (the black mark) sits at "
        "the middle of every track; a bar past twice its goal is cut and labelled. Green bars "
        "meet their goal, red ones do not.",
        "",
        "## How each was run",
        "",
    ]
    for outcome in outcomes:
        command = " ".join(["python", *outcome.command[1:]])
        state = f"failed: {outcome.failure}" if outcome.failure else "ok"
        lines.append(f"- `{command}` — {outcome.seconds:.0f} s, {state}")
    lines += ["", "## Output of each benchmark", ""]
    for outcome in outcomes:
        lines += [f"### {outcome.name}", "", "```", outcome.output.strip() or "(none)", "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    parser.add_argument("--only", default="", help="comma-separated benchmark names to run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name}
    unknown = only - {b.name for b in BENCHMARKS}
    if unknown:
        raise SystemExit(f"no benchmark named {', '.join(sorted(unknown))}")
    started = datetime.now(UTC)
    outcomes = [
        run_benchmark(benchmark, args.quick)
        for benchmark in BENCHMARKS
        if not only or benchmark.name in only
    ]
    figures = [f for outcome in outcomes for f in outcome.figures]
    for f in figures:
        ratio = "" if f.ratio is None else f"  ratio {f.ratio:.2f} to {f.reference_name}"
        print(f"{f.name}: {_value(f.value, f.unit)}{ratio}  goal {goal_text(f)}  {met_text(f)}")
    for outcome in outcomes:
        if outcome.failure:
            print(f"{outcome.name}: {outcome.failure}")
    if not args.no_write:
        write_chart(CHART, [f for f in figures if f.goal is not None and f.judged is not None])
        REPORT.write_text(
            render_report(outcomes, args.quick, started, CHART.name), encoding="utf-8"
        )
        print(f"wrote {REPORT.relative_to(ROOT)} and {CHART.relative_to(ROOT)}")
