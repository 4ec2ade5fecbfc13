"""Coverage-guided fuzzing (atheris, libFuzzer) of the frame decoder, or of the whole frame path.

    python -m benchmarks.fuzz_atheris --iterations 200000            # protocol.decode
    python -m benchmarks.fuzz_atheris --iterations 20000 --deep      # decode, router, entities
    python -m benchmarks.fuzz_atheris --iterations 0 -- -max_total_time=600 corpus/

Hypothesis (``benchmarks.fuzz``) generates structured frames; libFuzzer mutates bytes and
keeps the inputs that reach new code, which finds what structure-aware generation does not
think of. The property is the same (``tests.fuzz.harness``): ``check_decode`` by default,
``check_frame`` (connection, router, handlers, sandboxed entities) with ``--deep``. The first
input byte picks the encoding and whether JSON arrives as text (text frames are valid UTF-8:
the socket layer checks). It starts from every routed type's valid example in both encodings
(written to a temporary corpus unless corpus directories are given after ``--``). A broken
property stops the run with libFuzzer's crash report and a ``crash-*`` file to replay:
``python -m benchmarks.fuzz_atheris --iterations 1 [--deep] -- crash-<sha>``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["serve", "actors", "rthub"]):
    from serve import protocol
    from tests.fuzz import harness

log = logging.getLogger("benchmarks.fuzz_atheris")
MAX_LEN = 4096  # libFuzzer's input cap; the decoder's own limit is tested by benchmarks.fuzz


def split(data: bytes) -> tuple[str, str | bytes] | None:
    """(encoding, frame) from one libFuzzer input; None for text that is not UTF-8."""
    if not data:
        return None
    mode, payload = data[0], data[1:]
    if mode & 1:
        return protocol.MSGPACK, payload
    if mode & 2:
        try:
            return protocol.JSON, payload.decode()
        except UnicodeDecodeError:
            return None
    return protocol.JSON, payload


def decode_only(data: bytes) -> None:
    found = split(data)
    if found is not None:
        harness.check_decode(found[1], found[0], MAX_LEN)


def whole_path(data: bytes) -> None:
    found = split(data)
    if found is not None:
        harness.check_frame(harness.FrameCase("atheris", found[1], found[0]))


def seed_corpus(directory: Path) -> None:
    """Every routed type's valid example, in both encodings (JSON as bytes and as text)."""
    for n, message_type in enumerate(harness.routed_types()):
        frame = {"type": message_type, "id": n, "content": harness.EXAMPLES[message_type]}
        for mode, encoding in ((0, protocol.JSON), (2, protocol.JSON), (1, protocol.MSGPACK)):
            data = harness.serialize(frame, encoding, False)
            assert isinstance(data, bytes)
            (directory / f"{message_type}-{mode}").write_bytes(bytes([mode]) + data)


def write_dictionary(path: Path) -> None:
    """libFuzzer tokens: the envelope's and the examples' field names, every type, and what
    breaks things (JSON's NUL escape, a big integer, msgpack's bin, ext and uint64 markers)."""
    words = {*harness.ENVELOPE_FIELDS, *harness.routed_types(),
             *(name for example in harness.EXAMPLES.values() for name in example)}
    tokens = [f'"\\"{w}\\""' for w in sorted(words)]  # each name as a JSON string
    tokens += ['"\\\\u0000"', '"18446744073709551615"', '"\\xc4\\x01"', '"\\xd4\\x05"',
               '"\\xcf"', '"\\xa4type"', '"\\x81"', '"\\x91"', '"[["', '"{\\"a\\":"']
    path.write_text("\n".join(tokens) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100_000,
                        help="inputs to run (libFuzzer -runs); 0: libFuzzer's own limits")
    parser.add_argument("--deep", action="store_true",
                        help="the whole frame path, not just protocol.decode")
    parser.add_argument("libfuzzer", nargs="*",
                        help="after --: libFuzzer flags and corpus directories")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("serve.connection").setLevel(logging.CRITICAL)
    flags = [f"-max_len={MAX_LEN}", *args.libfuzzer]
    if args.iterations:
        flags.append(f"-runs={args.iterations}")
    # libFuzzer ends the process with exit(): what it needs lives in one directory in /tmp
    work = Path(tempfile.mkdtemp(prefix="rthub-fuzz-"))
    if not any(not f.startswith("-") for f in args.libfuzzer):  # no corpus given: seed one
        (work / "corpus").mkdir()
        seed_corpus(work / "corpus")
        flags.append(str(work / "corpus"))
    if not any(f.startswith("-dict=") for f in args.libfuzzer):
        write_dictionary(work / "frames.dict")
        flags.insert(0, f"-dict={work / 'frames.dict'}")
    harness.seeded()
    log.info("fuzzing %s: libFuzzer reports below, and ends the process (exit code 0: "
             "no property broken)", "the frame path" if args.deep else "protocol.decode")
    atheris.Setup([sys.argv[0], *flags], whole_path if args.deep else decode_only)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
