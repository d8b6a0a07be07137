#!/usr/bin/env python3
"""The crate's module graph: which top-level module uses which.

Reads every file under src/, takes each `crate::` path it names (in `use`
declarations and in expressions), resolves the crate root's re-exports to
the module that defines the item, and prints the graph from the lowest
layer up. With --check, fails when two modules use each other, directly or
through others: every module must sit above all the modules it uses.

Test code (`#[cfg(test)]` modules) and doc comments are left out: a test
may reach anywhere.
"""

import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"


def top_module(path):
    rel = path.relative_to(SRC)
    if rel.parts == ("lib.rs",):
        return None
    return rel.parts[0].removesuffix(".rs")


def code_only(text):
    """The text with comments, strings and char literals blanked out."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif (m := re.match(r'r(#*)"', text[i : i + 80])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            i = n if j < 0 else j + len(end)
            out.append('""')
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            out.append('""')
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^'\\])'", text[i : i + 12])):
            i += len(m.group(0))
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip(text):
    """The code of a file, test modules left out."""
    text = code_only(text)
    out = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"\s*#\[cfg\(test\)\]", line):
            # Skip the attributes and the item after them, to its closing brace.
            j = i
            while j < len(lines) and "{" not in lines[j] and not lines[j].rstrip().endswith(";"):
                j += 1
            if j < len(lines) and lines[j].rstrip().endswith(";"):
                i = j + 1
                continue
            depth = 0
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                j += 1
                if depth <= 0:
                    break
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def root_exports(lib):
    """Names re-exported at the crate root, mapped to their modules."""
    exports = {}
    for module, names in re.findall(r"pub use (\w+)::\{?([^;]*?)\}?;", lib):
        for name in re.split(r"[\s,]+", names):
            if name:
                exports[name.split("::")[-1]] = module
    return exports


def crate_paths(text):
    """The first segments after `crate::`, including inside `use crate::{..}`."""
    found = set()
    for match in re.finditer(r"crate::(\{|\w+)", text):
        if match.group(1) != "{":
            found.add(match.group(1))
            continue
        depth, start = 1, match.end()
        k = start
        while depth and k < len(text):
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            k += 1
        inner = text[start : k - 1]
        # Top-level items of the group: split on commas at depth 0.
        depth, item = 0, ""
        for ch in inner + ",":
            if ch == "," and depth == 0:
                head = re.match(r"\s*(\w+)", item)
                if head:
                    found.add(head.group(1))
                item = ""
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            item += ch
    return found


def graph():
    lib = strip((SRC / "lib.rs").read_text())
    exports = root_exports(lib)
    modules = {top_module(p) for p in SRC.rglob("*.rs")} - {None}
    edges = {m: set() for m in modules}
    for path in SRC.rglob("*.rs"):
        module = top_module(path)
        if module is None:
            continue
        for name in crate_paths(strip(path.read_text())):
            target = name if name in modules else exports.get(name)
            if target and target != module:
                edges[module].add(target)
    return edges


def layers(edges):
    """Modules in order, each after all it uses; None if there is a cycle."""
    order, placed = [], set()
    while len(placed) < len(edges):
        ready = sorted(m for m in edges if m not in placed and edges[m] <= placed)
        if not ready:
            return None
        order.extend(ready)
        placed.update(ready)
    return order


def cycle(edges):
    """One cycle, as a list of modules."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == "open":
                return stack[stack.index(n) :] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        state[m] = "done"
        stack.pop()
        return None

    for m in sorted(edges):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def main():
    edges = graph()
    order = layers(edges)
    if order is None:
        print("module cycle: " + " -> ".join(cycle(edges)), file=sys.stderr)
        return 1
    for module in order:
        uses = ", ".join(sorted(edges[module])) or "nothing"
        print(f"{module}: {uses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
