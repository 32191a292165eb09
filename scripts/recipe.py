#!/usr/bin/env python3
"""Prints a configuration block of a documentation page, so the test command runs exactly what
the page shows. A block is named by the second word of its fence's info string:

    ```ini sssd.conf
    ...
    ```

Usage: recipe.py PAGE NAME [PLACEHOLDER=VALUE ...]

Each PLACEHOLDER is replaced by its VALUE. A placeholder the block does not hold is an error
(the page and its test drifted apart), and so is a placeholder such as `<the account's secret>`
(words in angle brackets) left unreplaced.
"""

import re
import sys


def block(page, name):
    found, lines, inside = False, [], False
    for line in open(page, encoding="utf-8"):
        fence = line.strip()
        if not inside and fence.startswith("```") and fence[3:].split()[1:2] == [name]:
            inside = found = True
            continue
        if inside and fence.startswith("```"):
            inside = False
            continue
        if inside:
            lines.append(line)
    if not found:
        sys.exit(f"recipe.py: {page} has no block named {name}")
    return "".join(lines)


def fill(page, name, pairs, every=True):
    """The block with each (placeholder, value) of `pairs` put in. With `every`, a placeholder
    the block does not hold is an error; a `<words in brackets>` left always is."""
    text = block(page, name)
    for placeholder, value in pairs:
        if every and placeholder not in text:
            sys.exit(f"recipe.py: the block {name} of {page} does not hold {placeholder!r}")
        text = text.replace(placeholder, value)
    left = re.findall(r"<[a-z][\w']* [^<>\n]*>", text)
    if left:
        sys.exit(f"recipe.py: the block {name} of {page} still holds {left}")
    return text


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    pairs = []
    for pair in sys.argv[3:]:
        placeholder, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"recipe.py: {pair!r} is not PLACEHOLDER=VALUE")
        pairs.append((placeholder, value))
    sys.stdout.write(fill(sys.argv[1], sys.argv[2], pairs))


if __name__ == "__main__":
    main()
