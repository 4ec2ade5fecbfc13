"""The frame fuzzer at volume: tests/fuzz's properties over at least --frames generated frames.

    python -m benchmarks.fuzz --frames 100000     # the issue's figure (minutes)
    python -m benchmarks.fuzz --frames 5000       # a quick look

The same Hypothesis strategies and property as tests/fuzz/test_frames.py
(``tests.fuzz.harness``): a fifth of the frames fuzz the envelope and the decoder (raw
bytes, random objects, a wrong field, deep nesting, oversized, invalid UTF-8, truncated),
the rest are split evenly over every message type the gateway routes (its valid example
mutated, or random content), in both encodings, from the owner, a member and an outsider of
the seeded room, party, playlist and poll. Each type runs as one Hypothesis test with
``max_examples`` set to its share (random, not derandomized: each run explores anew), and
every frame the property checks is counted (shrinking included). A type whose property
fails stops there (Hypothesis shrinks it to a minimal frame, recorded below) and the others
run on until the total is reached.

Results: a table through logging and benchmarks/results/fuzz.md (command, date, frames,
failures, time, and per type the frames and how they were answered).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import re
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import hypothesis
from hypothesis import Phase, given, settings
from hypothesis.reporting import with_reporter

from tests.fuzz import harness

RESULTS = Path(__file__).parent / "results" / "fuzz.md"
ENVELOPE_SHARE = 0.2
log = logging.getLogger("benchmarks.fuzz")


@dataclass
class Target:
    """One Hypothesis test of the run: the envelope, or one message type."""

    label: str
    frames: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failure: str | None = None
    seconds: float = 0.0

    def strategy(self) -> hypothesis.strategies.SearchStrategy[harness.FrameCase]:
        if self.label == "envelope":
            return harness.envelope_cases()
        return harness.payload_cases(self.label)

    def run(self, examples: int) -> None:
        """Run the property for ``examples`` more generated frames (fewer if it fails)."""
        reports: list[str] = []

        @settings(max_examples=examples, derandomize=False, database=None,
                  phases=(Phase.explicit, Phase.generate, Phase.shrink),
                  report_multiple_bugs=False, **harness.SETTINGS_KWARGS)
        @given(self.strategy())
        def fuzz(case: harness.FrameCase) -> None:
            self.frames += 1
            self.outcomes[harness.check_frame(case)] += 1

        start = time.perf_counter()
        try:
            with with_reporter(reports.append):
                fuzz()
        except Exception as exc:  # the property failed: keep the minimal frame and why
            notes = [*getattr(exc, "__notes__", ()), *reports]  # where Hypothesis puts it
            example = next((n for n in notes if "FrameCase(" in n), "")
            example = re.sub(r"\n\s*", " ", example[example.find("FrameCase("):].rstrip(",\n )"))
            self.failure = f"{str(exc).splitlines()[0][:400]} — `{example[:600]}`"
            log.warning("%s: FAILED %s", self.label, self.failure)
        finally:
            self.seconds += time.perf_counter() - start


def fuzz_all(frames: int) -> list[Target]:
    """Rounds until ``frames`` frames ran: the envelope's share, then the types' shares."""
    targets = [Target("envelope"), *(Target(t) for t in harness.routed_types())]
    harness.seeded()  # seed outside the timings
    shares = {t.label: (ENVELOPE_SHARE if t.label == "envelope" else
                        (1 - ENVELOPE_SHARE) / (len(targets) - 1)) for t in targets}
    while (done := sum(t.frames for t in targets)) < frames:
        running = [t for t in targets if t.failure is None]
        if not running:
            break
        missing = frames - done
        weight = sum(shares[t.label] for t in running)
        for target in running:
            examples = max(1, math.ceil(missing * shares[target.label] / weight))
            before = target.frames
            target.run(examples)
            log.info("%-20s %7d frames (%.1f s)", target.label, target.frames - before,
                     target.seconds)
    return targets


def table(targets: list[Target]) -> list[str]:
    """The per-target markdown rows: frames, answers by kind, failures."""
    rows = ["| target | frames | ack | error (code: frames) | malformed (code: frames) | "
            "failed | s |", "|---|---:|---:|---|---|---|---:|"]
    for t in targets:
        errors = ", ".join(f"{k.split(':')[1]}: {v}" for k, v in sorted(t.outcomes.items())
                           if k.startswith("error:"))
        malformed = ", ".join(f"{k.split(':')[1]}: {v}" for k, v in
                              sorted(t.outcomes.items()) if k.startswith("malformed:"))
        rows.append(f"| {t.label} | {t.frames} | {t.outcomes['ack']} | {errors or '-'} | "
                    f"{malformed or '-'} | {'**yes**' if t.failure else 'no'} | "
                    f"{t.seconds:.1f} |")
    return rows


def write_results(targets: list[Target], command: str, seconds: float, started: datetime,
                  path: Path) -> None:
    frames = sum(t.frames for t in targets)
    failed = [t for t in targets if t.failure]
    load = os.getloadavg()
    lines = [
        f"`{command}` — {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores (load average "
        f"{load[0]:.1f} at the end), Python {platform.python_version()}, Hypothesis "
        f"{hypothesis.__version__}",
        "",
        f"**{frames:,} frames, {len(failed)} failures, {seconds:.0f} s** "
        f"({frames / seconds:,.0f} frames/s) over the envelope and "
        f"{len(targets) - 1} message types (every route of the gateway's router), "
        "through `serve.connection.Connection`, the router and real entity kinds in a "
        "sandbox (tests/fuzz/harness.py). ack: answered `ack` (or `time.pong`, or nothing "
        "for `pong`); error: an `error` reply with that PROTOCOL.md code; malformed: "
        "refused by `protocol.decode`. A failure is any other outcome: an exception, an "
        "`internal` error, an unanswered request, a reply or broadcast one encoding cannot "
        "carry, an event that cannot be logged and replayed, a value PostgreSQL refuses.",
        "",
        *table(targets),
        "",
    ]
    if failed:
        lines += ["Failures (each type stops at its first; Hypothesis' minimal frame):", ""]
        lines += [f"* `{t.label}`: {t.failure}" for t in failed]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000,
                        help="generate at least this many frames in total")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the markdown to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("serve.connection").setLevel(logging.CRITICAL)  # failures: below
    started = datetime.now(UTC)
    start = time.perf_counter()
    targets = fuzz_all(args.frames)
    seconds = time.perf_counter() - start
    command = shlex.join(["python", "-m", "benchmarks.fuzz", *(argv or sys.argv[1:])])
    for row in table(targets):
        log.info("%s", row)
    frames, failures = sum(t.frames for t in targets), sum(1 for t in targets if t.failure)
    log.info("%d frames, %d failures, %.0f s", frames, failures, seconds)
    write_results(targets, command, seconds, started, args.results)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
