"""axe-core (npm, tests/browser/package-lock.json) run inside a page by the browser tests: WCAG
2.1 A and AA rules and best practices, in the light and the dark colour scheme."""

import json
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_AXE = os.path.join(_HERE, "node_modules", "axe-core")
SOURCE = open(os.path.join(_AXE, "axe.min.js")).read()
VERSION = json.load(open(os.path.join(_AXE, "package.json")))["version"]


def check(page, name, found):
    """Runs axe in `page` (through the debugging protocol, which the console's CSP does not
    govern: the pages themselves never run an inline script); appends each violation, named
    after the page and the scheme, to `found`."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.evaluate(SOURCE)
        violations = page.evaluate("""async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => `${v.id} (${v.impact}): ${v.nodes.length} x ` +
                v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
        }""")
        found.extend(f"{name} [{scheme}]: {v}" for v in violations)
    page.emulate_media(color_scheme="light")
