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


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    page, name = sys.argv[1], sys.argv[2]
    text = block(page, name)
    for pair in sys.argv[3:]:
        placeholder, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"recipe.py: {pair!r} is not PLACEHOLDER=VALUE")
        if placeholder not in text:
            sys.exit(f"recipe.py: the block {name} of {page} does not hold {placeholder!r}")
        text = text.replace(placeholder, value)
    left = re.findall(r"<[a-z][\w']* [^<>\n]*>", text)
    if left:
        sys.exit(f"recipe.py: the block {name} of {page} still holds {left}")
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
