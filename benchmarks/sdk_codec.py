"""The JavaScript SDK's msgpack codec against V8's JSON and @msgpack/msgpack, in Node: bytes
per frame, and the time to encode and decode three frames the hub sends (a ``time.pong``, a
``chat.message``, a ``chat.history`` ack of 50 messages).

    python -m benchmarks.sdk_codec            # 5 runs of 100,000 (2,500 for the history ack)
    python -m benchmarks.sdk_codec --quick    # 3 runs of 20,000; printed, not written

JSON is timed as an app on ``ws`` meets it: ``JSON.stringify`` then UTF-8 bytes to send,
UTF-8 bytes to ``JSON.parse`` on receipt. Node runs on core 1 (``taskset``); medians of
--runs runs; results to stdout and benchmarks/results/sdk_codec.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.fanout import npm_install

SERVERS = Path(__file__).resolve().parent / "servers"
RESULTS = Path(__file__).resolve().parent / "results" / "sdk_codec.md"


def render(result: dict, runs: int, load: tuple[float, float]) -> str:
    rows = []
    by_frame: dict[str, dict[str, dict]] = {}
    for row in result["results"]:
        by_frame.setdefault(row["frame"], {})[row["codec"]] = row
    for frame, codecs in by_frame.items():
        json_row = codecs["JSON"]
        for codec, row in codecs.items():
            rows.append(
                f"| {frame} | {codec} | {row['bytes']:,} | {row['encode_ns'] / 1000:,.2f} "
                f"| {row['decode_ns'] / 1000:,.2f} "
                f"| {row['bytes'] / json_row['bytes']:.2f} "
                f"| {row['encode_ns'] / json_row['encode_ns']:.2f} "
                f"| {row['decode_ns'] / json_row['decode_ns']:.2f} |")
    return "\n".join([
        f"`python -m benchmarks.sdk_codec {' '.join(sys.argv[1:])}`".replace(" `", "`")
        + f" — {time.strftime('%Y-%m-%d %H:%M')} UTC, Node {result['node']} pinned to core 1 "
        f"(`taskset`), median of {runs} runs. Load average {load[0]:.2f} before the run, "
        f"{load[1]:.2f} after.",
        "",
        "| frame | codec | bytes | encode µs | decode µs | bytes vs JSON | encode vs JSON "
        "| decode vs JSON |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Each codec's output is decoded back and checked equal to the frame before timing. "
        "V8's `JSON.parse`/`JSON.stringify` are native code; both msgpack codecs are "
        "JavaScript. What msgpack buys on the wire is the bytes column (and, on the hub, "
        "a frame built once per encoding).",
    ]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs of 20,000; stdout only")
    parser.add_argument("--runs", type=int, help="runs (default 5)")
    parser.add_argument("--iterations", type=int, help="calls per run (default 100,000)")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    iterations = args.iterations or (20_000 if args.quick else 100_000)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    npm_install()
    load = os.getloadavg()[0]
    done = subprocess.run(["taskset", "-c", "1", "node", "codec_bench.mjs",
                           json.dumps({"runs": runs, "iterations": iterations})],
                          cwd=SERVERS, capture_output=True, text=True, check=True)
    table = render(json.loads(done.stdout.strip().splitlines()[-1]), runs,
                   (load, os.getloadavg()[0]))
    if not args.quick:
        RESULTS.write_text(table)
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
