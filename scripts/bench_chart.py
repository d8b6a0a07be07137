#!/usr/bin/env python3
"""Tabulates and charts the bench-peers results.

Reads criterion's estimates (the median, in ns) for the `tower`, `threads`
and `axum` groups of bench-peers/benches/peers.rs, prints one Markdown table
per group with the overhead per request (case minus the group's bare
service), and writes a horizontal bar chart of those overheads as SVG.

    cd bench-peers && cargo bench && python3 ../scripts/bench_chart.py

Python 3 standard library only.
"""

import argparse
import datetime
import json
import math
import os
import sys
from xml.sax.saxutils import escape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CRITERION = os.path.join(ROOT, "bench-peers", "target", "criterion")
DEFAULT_SVG = os.path.join(ROOT, "docs", "benchmark-overhead.svg")

REFERENCE = "tower_prometheus"
LAYER_CASES = ["matched_client", "matched_no_client", "unmatched"]

# Per group: the implementations and their cases, in table order.
GROUPS = {
    "tower": [
        (REFERENCE, LAYER_CASES),
        ("flat_table", LAYER_CASES),
        ("cached_handles", LAYER_CASES),
        ("naive", LAYER_CASES),
    ],
    "axum": [
        # A layer that does nothing: what axum adds for any `Router::layer`.
        ("noop_layer", ["matched_no_client", "unmatched"]),
        # This crate's layer around the whole Router, as one tower service.
        ("tower_prometheus_around_router", LAYER_CASES),
        # The same layer through `Router::layer`, applied to every route.
        (REFERENCE, LAYER_CASES),
        ("axum_prometheus", ["matched_no_client", "unmatched"]),
    ],
}
THREAD_IMPLS = [REFERENCE, "flat_table", "cached_handles"]
THREAD_COUNTS = [1, 2]

COLOURS = {
    "tower_prometheus": "#2b6cb0",
    "tower_prometheus_around_router": "#1a4480",
    "flat_table": "#e0b040",
    "cached_handles": "#dd8a2e",
    "naive": "#8a8f98",
    "axum_prometheus": "#c0392b",
    "noop_layer": "#b8c4d6",
}


class Results:
    """Median times in ns, read from one criterion output directory."""

    def __init__(self, directory):
        self.directory = directory
        self.missing = []
        self.newest = None

    def median(self, group, function, parameter):
        """The median of `group/function/parameter`, or None if not run."""
        candidates = [
            os.path.join(self.directory, group, function, str(parameter)),
            # An id given as one "function/parameter" string is stored flattened.
            os.path.join(self.directory, group, f"{function}_{parameter}"),
        ]
        for base in candidates:
            path = os.path.join(base, "new", "estimates.json")
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as file:
                    estimates = json.load(file)
                mtime = os.path.getmtime(path)
                if self.newest is None or mtime > self.newest:
                    self.newest = mtime
                return float(estimates["median"]["point_estimate"])
        self.missing.append(f"{group}/{function}/{parameter}")
        return None


def baseline_case(case):
    return "unmatched" if case == "unmatched" else "matched"


def difference(value, base):
    if value is None or base is None:
        return None
    return value - base


def ratio(value, reference):
    if value is None or reference is None or reference <= 0:
        return None
    return value / reference


def fmt_ns(value):
    return "n/a" if value is None else f"{value:,.1f}"


def fmt_ratio(value):
    return "n/a" if value is None else f"{value:.2f}×"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |"]
    aligns = ["---"] + ["---:"] * (len(header) - 1)
    lines.append("| " + " | ".join(aligns) + " |")
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def layer_group(results, group):
    """Rows of `group` and the overheads by (implementation, case)."""
    bare = {case: results.median(group, "bare", case) for case in ("matched", "unmatched")}
    overheads = {}
    times = {}
    for name, cases in GROUPS[group]:
        for case in cases:
            time = results.median(group, name, case)
            times[(name, case)] = time
            overheads[(name, case)] = difference(time, bare[baseline_case(case)])
    rows = [[f"bare/{case}", fmt_ns(bare[case]), "—", "—"] for case in ("matched", "unmatched")]
    for name, cases in GROUPS[group]:
        for case in cases:
            overhead = overheads[(name, case)]
            rows.append(
                [
                    f"{name}/{case}",
                    fmt_ns(times[(name, case)]),
                    fmt_ns(overhead),
                    fmt_ratio(ratio(overhead, overheads.get((REFERENCE, case)))),
                ]
            )
    header = ["case", "ns/request", "overhead ns", f"overhead × {REFERENCE}"]
    return markdown_table(header, rows), overheads


def threads_group(results):
    times = {
        (name, threads): results.median("threads", name, threads)
        for name in ["bare"] + THREAD_IMPLS
        for threads in THREAD_COUNTS
    }
    rows = []
    for name in ["bare"] + THREAD_IMPLS:
        for threads in THREAD_COUNTS:
            time = times[(name, threads)]
            if name == "bare":
                overhead = relative = "—"
            else:
                value = difference(time, times[("bare", threads)])
                reference = difference(times[(REFERENCE, threads)], times[("bare", threads)])
                overhead = fmt_ns(value)
                relative = fmt_ratio(ratio(value, reference))
            if threads == THREAD_COUNTS[0]:
                speedup = "—"
            else:
                speedup = fmt_ratio(ratio(times[(name, THREAD_COUNTS[0])], time))
            rows.append([f"{name}/{threads}", fmt_ns(time), overhead, relative, speedup])
    header = [
        "case",
        "ns/request",
        "overhead ns",
        f"overhead × {REFERENCE}",
        f"speed-up {THREAD_COUNTS[0]}→{THREAD_COUNTS[-1]} threads",
    ]
    return markdown_table(header, rows)


def locked_version(criterion, package):
    """`package`'s version in the Cargo.lock next to `target/criterion`."""
    lock = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(criterion))), "Cargo.lock")
    try:
        with open(lock, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    for index, line in enumerate(lines[:-1]):
        if line.strip() == f'name = "{package}"':
            version = lines[index + 1].strip()
            if version.startswith("version = "):
                return version.split("=", 1)[1].strip().strip('"')
    return None


def machine_description():
    model = None
    cpus = 0
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "processor":
                    cpus += 1
    except OSError:
        pass
    model = model or "unknown CPU"
    cpus = cpus or os.cpu_count() or 0
    return f"{model}, {cpus} logical CPU{'s' if cpus != 1 else ''}"


def nice_step(maximum, ticks=5):
    """A 1, 2 or 5 × 10^k step giving about `ticks` intervals up to `maximum`."""
    if maximum <= 0:
        return 1.0
    raw = maximum / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def fmt_tick(value):
    return f"{value:,.0f}" if value >= 1 or value == 0 else f"{value:g}"


class Chart:
    """Horizontal bar panels stacked vertically, written as one SVG."""

    WIDTH = 860
    LABEL_WIDTH = 250
    VALUE_MARGIN = 90
    BAR_HEIGHT = 18
    BAR_GAP = 4
    SECTION_GAP = 14
    FONT = "font-family=\"Helvetica, Arial, sans-serif\""

    def __init__(self, title):
        self.parts = []
        self.y = 0
        self.title = title

    def text(self, x, y, content, size=12, anchor="start", weight="normal", fill="#222"):
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}">{escape(content)}</text>'
        )

    def panel(self, heading, sections, axis_label):
        """`sections`: (label, [(series name, value or None)]) per case."""
        values = [v for _, bars in sections for _, v in bars if v is not None]
        maximum = max(values + [0.0])
        step = nice_step(maximum)
        top = step * math.ceil(maximum / step) if maximum > 0 else step
        x0 = self.LABEL_WIDTH
        span = self.WIDTH - self.LABEL_WIDTH - self.VALUE_MARGIN

        def scale(value):
            return x0 + span * max(value, 0.0) / top

        self.text(20, self.y + 18, heading, size=14, weight="bold")
        self.y += 32
        plot_top = self.y
        rows = []
        for label, bars in sections:
            rows.append(("section", label, None, None))
            rows.extend(("bar", label, name, value) for name, value in bars)
            rows.append(("gap", None, None, None))
        rows.pop()
        height = sum(
            {"section": 16, "bar": self.BAR_HEIGHT + self.BAR_GAP, "gap": self.SECTION_GAP}[kind]
            for kind, *_ in rows
        )
        plot_bottom = plot_top + height

        tick = 0.0
        while tick <= top + step / 2:
            x = scale(tick)
            self.parts.append(
                f'<line x1="{x:.1f}" y1="{plot_top:.1f}" x2="{x:.1f}" y2="{plot_bottom:.1f}" '
                f'stroke="#e3e3e3" stroke-width="1"/>'
            )
            self.text(x, plot_bottom + 16, fmt_tick(tick), size=11, anchor="middle", fill="#555")
            tick += step

        y = plot_top
        for kind, label, name, value in rows:
            if kind == "section":
                self.text(20, y + 12, label, size=12, weight="bold", fill="#444")
                y += 16
            elif kind == "gap":
                y += self.SECTION_GAP
            else:
                self.text(x0 - 8, y + self.BAR_HEIGHT - 5, name, size=12, anchor="end")
                if value is None:
                    self.text(x0 + 4, y + self.BAR_HEIGHT - 5, "not measured", size=11, fill="#888")
                else:
                    width = scale(value) - x0
                    self.parts.append(
                        f'<rect x="{x0:.1f}" y="{y:.1f}" width="{width:.1f}" '
                        f'height="{self.BAR_HEIGHT}" fill="{COLOURS.get(name, "#555")}"/>'
                    )
                    self.text(
                        x0 + width + 6, y + self.BAR_HEIGHT - 5, f"{value:,.0f} ns", size=12
                    )
                y += self.BAR_HEIGHT + self.BAR_GAP
        self.parts.append(
            f'<line x1="{x0}" y1="{plot_top:.1f}" x2="{x0}" y2="{plot_bottom:.1f}" '
            f'stroke="#333" stroke-width="1"/>'
        )
        self.text(x0 + span / 2, plot_bottom + 34, axis_label, size=12, anchor="middle", fill="#333")
        self.y = plot_bottom + 56

    def render(self, footer):
        body = self.parts
        self.parts = []
        height = self.y + 16 * len(footer) + 16
        header = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.WIDTH}" height="{height:.0f}" '
            f'viewBox="0 0 {self.WIDTH} {height:.0f}" {self.FONT}>',
            f'<rect width="{self.WIDTH}" height="{height:.0f}" fill="#ffffff"/>',
        ]
        self.text(20, 30, self.title, size=17, weight="bold")
        title = self.parts
        self.parts = []
        for index, line in enumerate(footer):
            self.text(20, self.y + 16 * index, line, size=11, fill="#666")
        return "\n".join(header + title + body + self.parts + ["</svg>", ""])


def chart(tower, axum, footer):
    figure = Chart("Request metrics: overhead per request (lower is better)")
    figure.y = 48
    case_titles = {
        "matched_client": "matched path, client id header",
        "matched_no_client": "matched path, no client id",
        "unmatched": "path matching no template",
    }
    figure.panel(
        "Layer over a tower service that answers at once",
        [
            (case_titles[case], [(name, tower.get((name, case))) for name, _ in GROUPS["tower"]])
            for case in LAYER_CASES
        ],
        "overhead per request (ns)",
    )
    figure.panel(
        "Layer on an axum Router with 12 routes",
        [
            (
                case_titles["matched_no_client"],
                [(name, axum.get((name, "matched_no_client"))) for name, _ in GROUPS["axum"]],
            )
        ],
        "overhead per request (ns)",
    )
    return figure.render(footer)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "criterion",
        nargs="?",
        default=DEFAULT_CRITERION,
        help=f"criterion output directory (default: {os.path.relpath(DEFAULT_CRITERION)})",
    )
    parser.add_argument(
        "--svg",
        default=DEFAULT_SVG,
        help=f"chart to write (default: {os.path.relpath(DEFAULT_SVG)})",
    )
    parser.add_argument(
        "--machine", help="machine description for the chart (default: from /proc/cpuinfo)"
    )
    args = parser.parse_args()

    if not os.path.isdir(args.criterion):
        sys.exit(f"no criterion output in {args.criterion}: run `cargo bench` in bench-peers first")
    results = Results(args.criterion)

    tower_table, tower = layer_group(results, "tower")
    threads_table = threads_group(results)
    axum_table, axum = layer_group(results, "axum")
    print("## tower: layers over a bare tower service\n")
    print(tower_table)
    print("\n## threads: matched requests, no client id, per thread count\n")
    print(threads_table)
    print("\n## axum: Router with 12 routes\n")
    print(axum_table)

    if results.missing:
        print(f"\nnot measured: {', '.join(results.missing)}", file=sys.stderr)
    if results.newest is None:
        sys.exit("no estimates found: nothing to chart")

    measured = datetime.date.fromtimestamp(results.newest).isoformat()
    machine = args.machine or machine_description()
    peer = locked_version(args.criterion, "axum-prometheus")
    footer = [
        f"Criterion medians measured {measured} on {machine}.",
        "Overhead: matched cases minus the bare service's matched request, "
        "unmatched minus its unmatched request, in the same group.",
        "tower_prometheus: this crate · flat_table: prometheus crate, handles resolved once in a "
        "flat table · cached_handles: handles cached in RwLock<HashMap> · naive: "
        "with_label_values per request.",
        "axum_prometheus: axum-prometheus" + (f" {peer}" if peer else "")
        + " · noop_layer: a layer that does nothing, i.e. axum's own cost of Router::layer.",
    ]
    svg = chart(tower, axum, footer)
    directory = os.path.dirname(os.path.abspath(args.svg))
    os.makedirs(directory, exist_ok=True)
    with open(args.svg, "w", encoding="utf-8") as file:
        file.write(svg)
    print(f"\nwrote {os.path.relpath(args.svg)}", file=sys.stderr)


if __name__ == "__main__":
    main()
