#!/usr/bin/env python3
"""Checks the documentation (README.md and docs/**/*.md), as the test command runs it:

1. Every relative link names a file that exists, and every #anchor a heading of that file
   (GitHub's way of turning a heading into an anchor).
2. Measured figures are stated in docs/performance.md, each under a section that names the
   command that produced it. A figure quoted anywhere else — a number with a unit of
   throughput, latency, memory or size, a percentage or a ratio, outside code — must appear
   in docs/performance.md as written, so two places cannot disagree.
3. The README stays short (at most 300 lines).

Exits 1 naming each problem (file:line). No arguments; run from anywhere.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PERFORMANCE = ROOT / "docs" / "performance.md"
README_MAX_LINES = 300

# A number (with thousands separators, decimals and ranges such as 76–90) and a unit that
# only measurements carry. Settings are written in code spans (`64KiB`, `30s`) and are not
# figures.
NUMBER = r"\d[\d,]*(?:\.\d+)?(?:\s?[–-]\s?\d[\d,]*(?:\.\d+)?)?"
UNIT = r"(?:req/s|requests per second|events/s|µs|ms|MiB|GiB|MB|GB|KB|%|×)"
FIGURE = re.compile(rf"(?<![\w.]){NUMBER}\s?{UNIT}(?!\w)")
COMMAND = re.compile(r"(bench/\S+\.sh|cargo bench|scripts/\S+|\bwrk\b|\bperf\b|callgrind|cargo test)")


def docs():
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").rglob("*.md"))


def prose(text):
    """Yields (line number, line) outside fenced code blocks, inline code removed."""
    fenced = False
    for number, line in enumerate(text.split("\n"), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield number, re.sub(r"`[^`]*`", "", line)


def anchors(text):
    found, seen = set(), {}
    fenced = False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if fenced or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title.replace("`", "")).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def check_links(path, text, problems):
    for number, line in prose(text):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}:{number}"
            if not dest.exists():
                problems.append(f"{where}: the link {target} names no file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
                problems.append(f"{where}: the link {target} names no heading of {file_part or 'this file'}")


def figures(text):
    for number, line in prose(text):
        for m in FIGURE.finditer(line):
            yield number, m.group(0)


def normal(figure):
    return re.sub(r"\s", "", figure).replace("-", "–")


def check_performance(text, problems):
    """Every section of docs/performance.md that states a figure names its command."""
    section, start, has_command, has_figure = None, 0, False, False

    def close():
        if section is not None and has_figure and not has_command:
            problems.append(f"docs/performance.md:{start}: the section '{section}' states figures "
                            "without naming the command that measured them")

    fenced = False
    for number, line in enumerate(text.split("\n"), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            close()
            section, start, has_command, has_figure = line[3:].strip(), number, False, False
            continue
        has_command = has_command or bool(COMMAND.search(line))
        has_figure = has_figure or (not fenced and bool(FIGURE.search(re.sub(r"`[^`]*`", "", line))))
    close()


def main():
    problems = []
    measured = {normal(f) for _, f in figures(PERFORMANCE.read_text())}
    for path in docs():
        text = path.read_text()
        check_links(path, text, problems)
        if path == PERFORMANCE:
            check_performance(text, problems)
            continue
        for number, figure in figures(text):
            if normal(figure) not in measured:
                problems.append(f"{path.relative_to(ROOT)}:{number}: the figure '{figure}' is not "
                                "stated in docs/performance.md (state it there, with its command, "
                                "and link to it)")
    lines = (ROOT / "README.md").read_text().count("\n")
    if lines > README_MAX_LINES:
        problems.append(f"README.md: {lines} lines, more than {README_MAX_LINES}: move detail into docs/")
    for problem in problems:
        print(problem)
    print(f"docs check: {sum(1 for _ in docs())} files, {len(measured)} figures in docs/performance.md, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
