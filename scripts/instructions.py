#!/usr/bin/env python3
"""Instructions per request and per scrape, counted by callgrind.

Runs each case of benches/instructions.rs under `valgrind --tool=callgrind`
twice, with two request counts, and divides the difference in instructions
by the difference in requests: start-up and set-up cancel out, and what is
left is the cost of one request (or one scrape). Callgrind counts
instructions, not time, so the figures repeat exactly on a noisy machine.

    python3 scripts/instructions.py                 # print the table
    python3 scripts/instructions.py --check         # fail past the margin
    python3 scripts/instructions.py --update        # rewrite the baseline
    python3 scripts/instructions.py --peers         # this crate against flat_table

The baseline is benches/instructions.json; BENCHMARKS.md says when to update
it. Needs valgrind (Debian's `valgrind` package).
"""

import argparse
import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASELINE = ROOT / "benches" / "instructions.json"
# A case fails the check when it costs more than this over its baseline.
MARGIN = 0.05

# case -> (bare counterpart or None, small N, large N)
CASES = {
    "bare": (None, 1_000, 11_000),
    "bare_client_header": (None, 1_000, 11_000),
    "bare_client_response": (None, 1_000, 11_000),
    "bare_unmatched": (None, 1_000, 11_000),
    "matched": ("bare", 1_000, 11_000),
    "matched_client_header": ("bare_client_header", 1_000, 11_000),
    "matched_client_response": ("bare_client_response", 1_000, 11_000),
    "unmatched": ("bare_unmatched", 1_000, 11_000),
    "bare_short": (None, 1_000, 11_000),
    "matched_short": ("bare_short", 1_000, 11_000),
    "matched_body_end": ("bare", 1_000, 11_000),
    "matched_in_flight_bytes": ("bare", 1_000, 11_000),
    "bare_traceparent": (None, 1_000, 11_000),
    "matched_exemplar": ("bare_traceparent", 1_000, 11_000),
    "matched_native": ("bare", 1_000, 11_000),
    "matched_otel": ("bare", 1_000, 11_000),
    "scrape_1k": (None, 2, 12),
    "scrape_10k": (None, 1, 3),
    "scrape_10k_openmetrics": (None, 1, 3),
    "scrape_10k_protobuf": (None, 1, 3),
    # Not this crate's: for reading the figures above.
    "scrape_10k_prometheus": (None, 1, 3),
    "part_matchit_lookup": (None, 1_000, 11_000),
    "part_matchit_lookup_short": (None, 1_000, 11_000),
    "part_two_clock_reads": (None, 1_000, 11_000),
    "part_absent_header_lookup": (None, 1_000, 11_000),
}


# The cases of bench-peers' interleaved harness, counted by --peers.
PEER_CASES = ["matched_client", "matched_no_client", "unmatched"]
PEERS = ["tower_prometheus", "flat_table"]


def binary(bench="instructions", cwd=ROOT):
    output = subprocess.run(
        ["cargo", "bench", "--bench", bench, "--no-run", "--message-format=json"],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout
    for line in output.splitlines():
        message = json.loads(line)
        target = message.get("target", {})
        if message.get("reason") == "compiler-artifact" and target.get("name") == bench \
                and message.get("executable"):
            return message["executable"]
    sys.exit(f"cargo built no `{bench}` bench")


def count(executable, case, n, args=None, loops="instructions::run_*"):
    result = subprocess.run(
        # Only the loops count: set-up (and quanta's calibration of its
        # clock against wall time, whose length varies) is left out.
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         f"--toggle-collect={loops}", executable, *(args or [case]), str(n)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        sys.exit(f"{case} {n} failed:\n{result.stderr}")
    match = re.search(r"Collected\s*:\s*(\d+)", result.stderr)
    if not match:
        sys.exit(f"no instruction count for {case} {n}:\n{result.stderr}")
    return int(match.group(1))


def measure(executable):
    per_op = {}
    for case, (_, small, large) in CASES.items():
        per_op[case] = (count(executable, case, large) - count(executable, case, small)) / (large - small)
    figures = {}
    for case, (bare, _, _) in CASES.items():
        figures[case] = round(per_op[case] - per_op[bare] if bare else per_op[case])
    return figures


def peers():
    """Instructions per request over the bare service, this crate against
    the strongest baseline, from bench-peers' interleaved harness (its
    `count IMPL CASE N` mode). Not a gate: bench-peers is a separate
    package, which CI does not build."""
    executable = binary("interleaved", ROOT / "bench-peers")

    def per_request(implementation, case):
        run = lambda n: count(executable, case, n, ["count", implementation, case],
                              "interleaved::run_*")
        return (run(11_000) - run(1_000)) / 10_000

    print(f"{'case':<20} {'bare':>6} {'tower_prometheus':>17} {'flat_table':>11} {'ratio':>6}"
          "  (instructions; layers: over the bare service)")
    for case in PEER_CASES:
        bare = per_request("bare", case)
        ours, theirs = (per_request(peer, case) - bare for peer in PEERS)
        print(f"{case:<20} {bare:>6.0f} {ours:>17.0f} {theirs:>11.0f} {ours / theirs:>5.2f}×")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a case grew past the margin")
    parser.add_argument("--update", action="store_true", help="write the figures as the baseline")
    parser.add_argument("--peers", action="store_true",
                        help="count this crate against flat_table instead (bench-peers)")
    args = parser.parse_args()
    if args.peers:
        peers()
        return

    figures = measure(binary())
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    failed = []
    print(f"{'case':<26} {'instructions':>13} {'baseline':>10}  (layered cases: over the bare service)")
    for case, value in figures.items():
        before = baseline.get(case)
        mark = ""
        if before is not None and value > before * (1 + MARGIN) + 5:
            failed.append(case)
            mark = f"  over the baseline by more than {MARGIN:.0%}"
        shown = "-" if before is None else f"{before:,}"
        print(f"{case:<26} {value:>13,} {shown:>10}{mark}")
    if args.update:
        BASELINE.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {BASELINE.relative_to(ROOT)}")
    if args.check and failed:
        sys.exit(f"instruction counts grew: {', '.join(failed)}; see BENCHMARKS.md")
    if args.check and not baseline:
        sys.exit(f"no baseline at {BASELINE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
