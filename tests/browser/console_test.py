"""The admin console in a real browser (Chromium through Playwright) against the real binary.

Run by scripts/browser.sh, which installs what it needs. Usage:
    console_test.py SCIMD_BINARY ARTIFACT_DIR
Each step prints its name; screenshots of every page go to ARTIFACT_DIR.
"""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from playwright.sync_api import expect, sync_playwright

import axe_check

BIN, ARTIFACTS = sys.argv[1], sys.argv[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery"
os.makedirs(ARTIFACTS, exist_ok=True)


def step(name):
    print(f"-- {name}", flush=True)


class Scimd:
    """`scimd serve` on ephemeral ports with a database in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory()
        self.db = os.path.join(self.dir.name, "scimd.db")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCIMD_")}
        env["SCIMD_ADMIN_LISTEN"] = "127.0.0.1:0"
        env["SCIMD_LOG_FORMAT"] = "text"
        self.env = env
        add = subprocess.run(
            [BIN, "--database", self.db, "admin", "add", "alice", "--password-stdin"],
            input=PASSWORD + "\n", text=True, env=env, capture_output=True,
        )
        assert add.returncode == 0, add.stderr
        self.proc = subprocess.Popen(
            [BIN, "--database", self.db, "serve", "--create", "--listen", "127.0.0.1:0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines = []
        self.scim_base = self.admin = None
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.lines.append(line)
                m = re.search(r"admin console and /metrics on (\S+?)/?(\s|$)", line)
                if m:
                    self.admin = m.group(1)
                m = re.search(r"listening on (\S+)", line)
                if m:
                    self.scim_base = m.group(1)
                if self.admin and self.scim_base:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        assert ready.wait(30), "".join(self.lines)

    def scim(self, method, url, token, body=None):
        req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/scim+json")
        try:
            with urllib.request.urlopen(req, data, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def sql(self, statement):
        with sqlite3.connect(self.db, timeout=10) as c:
            c.execute(statement)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.dir.cleanup()


# Every page a screenshot is taken of is checked by axe-core; what it finds is reported at
# the end.
VIOLATIONS = []


def shot(page, name):
    page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=True)
    axe_check.check(page, name, VIOLATIONS)


def login(page, admin):
    page.goto(admin + "/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Admin account").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def token_in(page):
    value = page.locator("#token").input_value()
    assert re.fullmatch(r"scimd_[0-9a-f]{16}_[0-9a-f]{64}", value), value
    return value


def main():
    server = Scimd()
    admin = server.admin
    alerts = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=admin)
            page = context.new_page()
            page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
            errors = []
            # Refusals the steps below provoke (401 wrong password, 403 forged form, 404 a page
            # that is not there, 400 a bad
            # schema) are logged
            # by the browser too; anything else is a fault.
            expected = ("status of 400", "status of 401", "status of 403", "status of 404")
            page.on("console", lambda m: errors.append(m.text)
                    if m.type == "error" and not any(e in m.text for e in expected) else None)

            step("the login page, reached with the keyboard")
            page.goto(admin + "/")
            shot(page, "01-login")
            # The account field has the focus; Tab goes to the password, Enter sends.
            expect(page.get_by_label("Admin account")).to_be_focused()
            page.keyboard.type("alice")
            page.keyboard.press("Tab")
            expect(page.get_by_label("Password")).to_be_focused()
            page.keyboard.type("wrong password!")
            page.keyboard.press("Enter")
            expect(page.get_by_role("alert")).to_have_text("Wrong account name or password.")
            shot(page, "02-login-failed")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_label("Password").press("Enter")
            expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
            expect(page.get_by_text("No identity providers yet")).to_be_visible()
            page.keyboard.press("Tab")  # the first stop on every page skips the navigation
            expect(page.locator("a.skip")).to_be_focused()
            page.keyboard.press("Enter")
            expect(page.locator("#main")).to_be_focused()

            step("add an identity provider (Entra ID)")
            page.get_by_role("link", name="Identity providers").click()
            page.get_by_role("link", name="Add identity provider").click()
            page.get_by_label("Name (used in the SCIM URL)").fill("contoso")
            page.get_by_label("Description").fill("Contoso Entra tenant")
            page.get_by_label("Microsoft Entra ID").check()
            shot(page, "03-add-provider")
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_role("heading", name="contoso")).to_be_visible()
            expect(page.locator(".notice")).to_contain_text("Identity provider contoso added")
            scim_url = f"{server.scim_base}/scim/v2/contoso"
            expect(page.locator("#scim-url")).to_have_value(scim_url)

            step("copy the SCIM URL")
            page.locator("button[data-copy=scim-url]").click()
            expect(page.locator("button[data-copy=scim-url]")).to_have_text("Copied")
            assert page.evaluate("navigator.clipboard.readText()") == scim_url

            step("create a token valid for 30 days; it is shown once")
            page.get_by_label("Description").fill("Entra provisioning")
            page.get_by_label("Valid for").select_option("30d")
            page.get_by_role("button", name="Create token").click()
            expect(page.get_by_role("dialog")).to_contain_text("it will not be shown again")
            token = token_in(page)
            page.locator("button[data-copy=token]").click()
            expect(page.locator("button[data-copy=token]")).to_have_text("Copied")
            # Focus stays on the button (a screen reader does not read the token out) and the
            # copy is announced.
            assert page.evaluate("document.activeElement.dataset.copy") == "token"
            expect(page.locator("#token-copied")).to_have_text("Copied to the clipboard")
            copied = page.evaluate("navigator.clipboard.readText()")
            assert copied == token, "the copy button copies the token"
            shot(page, "04-token-created")
            # A reload neither shows the secret again nor makes a second token.
            page.reload()
            expect(page.get_by_role("alert")).to_contain_text("was shown once")
            assert token not in page.content(), "the token is never shown again"
            shot(page, "04b-token-reloaded")
            page.get_by_role("link", name="Back to contoso").click()
            assert token not in page.content(), "the token is never shown again"
            expect(page.get_by_role("cell", name="Entra provisioning")).to_have_count(1)

            step("test connection: the identity provider's first calls, with the new token")
            # The SCIM URL here is loopback: the page says Entra cannot reach it.
            expect(page.locator("section[aria-labelledby=scim] .warning")).to_contain_text("not reachable from the internet")
            page.get_by_label("A token of this provider").fill(copied)
            page.get_by_role("button", name="Test connection").click()
            expect(page.get_by_role("status")).to_contain_text("Connection works")
            expect(page.get_by_role("row")).to_have_count(4)
            expect(page.get_by_role("row", name=re.compile("ServiceProviderConfig"))).to_contain_text("200")
            assert copied not in page.content(), "the token is not shown back"
            shot(page, "04c-test-connection")
            page.get_by_role("link", name="Back to contoso").click()
            page.get_by_label("A token of this provider").fill(copied[:-4] + "0000")
            page.get_by_role("button", name="Test connection").click()
            expect(page.get_by_role("alert")).to_contain_text("Connection failed")
            expect(page.get_by_role("row", name=re.compile("ServiceProviderConfig"))).to_contain_text("the token was refused")
            shot(page, "04d-test-connection-refused")
            page.get_by_role("link", name="Back to contoso").click()

            step("an LDAP service account: made in the console, its password shown once")
            page.get_by_label("Name (letters").fill("grafana")
            page.get_by_role("button", name="Create service account").click()
            expect(page.get_by_label("Bind DN")).to_have_value("cn=grafana,ou=services,dc=contoso,dc=scimd")
            assert len(page.get_by_label("Password").input_value()) == 64, "a 64-character password"
            shot(page, "05a-ldap-account-created")
            page.get_by_role("link", name="Done").click()
            expect(page.get_by_role("link", name="Revoke grafana")).to_be_visible()
            shot(page, "05-provider-scim-tab")

            step("the copied token works for a SCIM request; the user and its activity appear")
            page.goto(admin + "/activity")
            expect(page.get_by_role("heading", name="Activity")).to_be_visible()
            status, body = server.scim("POST", scim_url + "/Users", copied, {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "adele@contoso.com", "displayName": "Adele Vance",
                "emails": [{"value": "adele@contoso.com", "type": "work", "primary": True}],
            })
            assert status == 201, (status, body)
            adele = body["id"]
            # No reload: the page's script brings the new record in.
            expect(page.locator("#activity tbody")).to_contain_text("User adele@contoso.com", timeout=15000)
            shot(page, "06-activity-live")
            # A record opens in full: the request line and the token that sent it.
            page.locator("#activity tbody tr", has_text="adele@contoso.com").first.get_by_role("link").first.click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("Activity record")
            expect(page.locator("dl.facts")).to_contain_text("POST /scim/v2/contoso/Users")
            expect(page.locator("dl.facts")).to_contain_text(copied.split("_")[1])
            shot(page, "06c-activity-record")
            with page.expect_download() as got:
                page.goto(admin + "/activity")
                page.get_by_role("link", name="CSV").click()
            assert got.value.suggested_filename == "scimd-activity.csv"
            page.goto(admin + "/activity")
            page.get_by_label("failed only").check()
            page.get_by_role("button", name="Show").click()
            expect(page.locator("#activity tbody tr")).to_have_count(0)

            step("a hostile userName renders as text")
            status, _ = server.scim("POST", scim_url + "/Users", copied, {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "<script>alert(1)</script>", "displayName": "<img src=x onerror=alert(2)>",
            })
            assert status == 201
            page.goto(f"{admin}/providers/contoso/Users")
            expect(page.get_by_role("link", name="<script>alert(1)</script>")).to_be_visible()
            expect(page.get_by_role("cell", name="<img src=x onerror=alert(2)>")).to_be_visible()
            shot(page, "07-users")

            step("search by name, by any part of names and emails, and with a SCIM filter")
            page.get_by_label("Search", exact=True).fill("adele")
            page.get_by_role("button", name="Search").click()
            expect(page.locator("p.count")).to_have_text("1–1 of 1 Users that match")
            # "vance" is inside Adele's displayName: found when the search looks anywhere.
            page.get_by_label("Search", exact=True).fill("vance")
            page.get_by_role("button", name="Search").click()
            expect(page.locator("p.count")).to_have_text("0 Users match")
            page.get_by_label("Where").select_option("contains")
            page.get_by_role("button", name="Search").click()
            expect(page.locator("p.count")).to_have_text("1–1 of 1 Users that match")
            expect(page.get_by_role("link", name="adele@contoso.com")).to_be_visible()
            page.get_by_label("Search", exact=True).fill("")
            page.get_by_label("Where").select_option("starts")
            page.get_by_role("button", name="Search").click()
            step("sort by name with the heading, and newest first with the Order select")
            page.get_by_role("link", name="userName", exact=True).click()
            expect(page.locator("th[aria-sort=ascending]")).to_have_count(1)
            page.get_by_role("link", name="userName", exact=True).click()
            expect(page.locator("th[aria-sort=descending]")).to_have_count(1)
            shot(page, "07b-users-by-name-z-to-a")
            page.get_by_label("Order").select_option("-created")
            page.get_by_role("button", name="Search").click()
            expect(page.get_by_label("Order")).to_have_value("-created")
            expect(page.locator("th[aria-sort]")).to_have_count(0)
            page.get_by_label("Order").select_option("created")
            page.get_by_label("or a SCIM filter").fill('userName eq "nobody"')
            page.get_by_role("button", name="Search").click()
            expect(page.locator("p.count")).to_have_text("0 Users match")
            page.get_by_label("or a SCIM filter").fill('userName eq')
            page.get_by_role("button", name="Search").click()
            expect(page.get_by_role("alert")).to_be_visible()

            step("a user's page: a summary (status, title, phone, department, manager), attributes, groups and its activity")
            status, body = server.scim("POST", scim_url + "/Users", copied, {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "megan@contoso.com", "displayName": "Megan Bowen"})
            assert status == 201, body
            megan = body["id"]
            enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            status, body = server.scim("PATCH", scim_url + "/Users/" + adele, copied, {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "add", "path": "title", "value": "Retail Manager"},
                    {"op": "add", "path": "phoneNumbers", "value": [{"value": "+1 425 555 0109", "type": "mobile"}]},
                    {"op": "add", "path": f"{enterprise}:department", "value": "Retail"},
                    {"op": "add", "path": f"{enterprise}:manager", "value": megan},
                ]})
            assert status in (200, 204), (status, body)
            status, _ = server.scim("POST", scim_url + "/Groups", copied, {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Sales", "members": [{"value": adele}],
            })
            assert status == 201
            page.goto(f"{admin}/providers/contoso/Users/{adele}")
            expect(page.get_by_role("row", name=re.compile("userName adele@contoso.com"))).to_be_visible()
            expect(page.get_by_role("link", name="Sales")).to_be_visible()
            expect(page.locator("table").last).to_contain_text("created")
            card = page.locator(".summary-card")
            expect(card).to_contain_text("active")
            expect(card).to_contain_text("Retail Manager")
            expect(card).to_contain_text("+1 425 555 0109 (mobile)")
            expect(card).to_contain_text("adele@contoso.com (work) — primary")
            expect(card).to_contain_text("Retail")
            expect(card.get_by_role("link", name="megan@contoso.com")).to_be_visible()
            shot(page, "08-user-detail")
            page.get_by_role("link", name="Sales").click()
            shot(page, "08b-group-detail")
            expect(page.get_by_role("link", name="adele@contoso.com")).to_be_visible()

            step("change feeds: a webhook feed's secret shown once, paused and resumed, a pulled "
                 "feed of security events with its keys rotated, a refused URL, a removal")
            page.goto(f"{admin}/providers/contoso")
            page.get_by_label("Feed name").fill("hr-hooks")
            page.get_by_label("Receiver URL").fill("https://hr.contoso.test/hook")
            page.get_by_label("members", exact=True).uncheck()
            page.get_by_role("button", name="Add feed").click()
            secret = page.locator("#secret").input_value()
            assert re.fullmatch(r"whsec_[A-Za-z0-9+/=]{44}", secret), secret
            expect(page.get_by_role("alert")).to_contain_text("will not be shown again")
            shot(page, "08c-feed-secret")
            page.reload()
            expect(page.get_by_role("alert")).to_contain_text("cannot be shown again")
            assert secret not in page.content(), "the secret is never shown again"
            page.get_by_role("link", name="Back to the feed").click()
            expect(page.locator("dl.facts")).to_contain_text("create, replace, patch, delete, activate, deactivate")
            expect(page.locator("dl.facts")).not_to_contain_text("members")
            page.get_by_role("button", name="Pause").click()
            expect(page.locator(".notice")).to_contain_text("Feed hr-hooks paused")
            expect(page.locator("dl.facts")).to_contain_text("paused")
            page.get_by_role("button", name="Resume").click()
            expect(page.locator(".notice")).to_contain_text("resumed")
            page.goto(f"{admin}/providers/contoso")
            page.get_by_label("Feed name").fill("audit")
            page.get_by_label("Format", exact=True).select_option("set")
            page.get_by_role("button", name="Add feed").click()
            expect(page.locator(".notice")).to_contain_text("Feed audit added")
            expect(page.locator("dl.facts")).to_contain_text(scim_url + "/Feeds/audit")
            jwks = server.scim_base + "/feeds/audit/jwks.json"
            expect(page.locator("dl.facts")).to_contain_text(jwks)
            shot(page, "08d-feed-pulled")
            page.get_by_role("button", name="Rotate key").click()
            expect(page.locator(".notice")).to_contain_text("signs with a new key")
            with urllib.request.urlopen(jwks, timeout=10) as r:
                assert len(json.load(r)["keys"]) == 2, "the old key stays published"
            page.goto(f"{admin}/providers/contoso")
            page.get_by_label("Feed name").fill("lan")
            page.get_by_label("Receiver URL").fill("http://hr.contoso.test/hook")
            page.get_by_role("button", name="Add feed").click()
            expect(page.get_by_role("alert")).to_contain_text("feed_allow_http")
            expect(page.get_by_label("Feed name")).to_have_value("lan")
            expect(page.get_by_label("Receiver URL")).to_have_value("http://hr.contoso.test/hook")
            shot(page, "08e-feed-refused")
            page.get_by_role("link", name="Cancel").click()
            expect(page.get_by_role("row", name=re.compile("hr-hooks"))).to_contain_text("Standard Webhooks")
            expect(page.get_by_role("row", name=re.compile("audit"))).to_contain_text("waiting to be pulled")
            shot(page, "08f-provider-feeds")
            page.get_by_role("link", name="Manage feed hr-hooks").click()
            page.get_by_role("link", name="Remove this feed").click()
            page.get_by_role("button", name="Remove feed").click()
            expect(page.locator(".notice")).to_contain_text("Feed hr-hooks removed")
            expect(page.get_by_role("link", name="Manage feed hr-hooks")).to_have_count(0)

            step("rotate the token: the old one keeps working for the overlap")
            page.goto(f"{admin}/providers/contoso")
            page.get_by_role("link", name="Rotate").click()
            page.get_by_label("The old token keeps working for").select_option("1h")
            page.get_by_role("button", name="Rotate").click()
            rotated = token_in(page)
            assert rotated != token
            expect(page.get_by_role("dialog")).to_contain_text("keeps working until")
            shot(page, "09-token-rotated")
            assert server.scim("GET", scim_url + "/Users", token)[0] == 200
            assert server.scim("GET", scim_url + "/Users", rotated)[0] == 200

            step("revoke the new token after confirming; the next SCIM request gets 401")
            page.get_by_role("link", name="Done").click()
            rotated_id = rotated.split("_")[1]
            page.locator(f"a[href$='/tokens/{rotated_id}/revoke']").click()
            expect(page.get_by_role("alert")).to_contain_text("stops working at once")
            shot(page, "10-revoke-confirm")
            page.get_by_role("button", name="Revoke token").click()
            expect(page.locator(".notice")).to_contain_text(f"Token {rotated.split('_')[1]} revoked")
            # The new token's own row (the old one's says it was replaced by it).
            new_row = page.locator("tr", has=page.get_by_role("cell", name=rotated_id, exact=True))
            expect(new_row).to_contain_text("revoked")
            old_id = token.split("_")[1]
            old_row = page.locator("tr", has=page.get_by_role("cell", name=old_id, exact=True))
            expect(old_row).to_contain_text("rotated out")
            assert server.scim("GET", scim_url + "/Users", rotated)[0] == 401

            step("a form with a forged CSRF token is refused")
            page.goto(f"{admin}/providers/new")
            page.evaluate("document.querySelector('form[action=\"/providers\"] input[name=csrf]').value = 'f'.repeat(64)")
            page.get_by_label("Name (used in the SCIM URL)").fill("forged")
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_role("alert")).to_contain_text("did not come from the console")
            # An error page keeps the navigation.
            expect(page.get_by_role("navigation", name="Main")).to_contain_text("Identity providers")
            r = page.goto(f"{admin}/providers/nosuch")
            assert r.status == 404
            expect(page.get_by_role("navigation", name="Main")).to_be_visible()
            shot(page, "10b-not-found")
            page.goto(f"{admin}/providers")
            expect(page.get_by_role("link", name="forged")).to_have_count(0)

            step("remove a provider, after a confirmation that says what goes")
            page.goto(f"{admin}/providers/new")
            page.get_by_label("Name (used in the SCIM URL)").fill("scratch")
            page.get_by_role("button", name="Save").click()
            page.get_by_role("link", name="Remove…").click()
            expect(page.get_by_role("alert")).to_contain_text("0 users, 0 groups and 0 tokens")
            page.get_by_role("button", name=re.compile("Remove scratch")).click()
            expect(page.get_by_role("link", name="scratch")).to_have_count(0)
            expect(page.locator(".notice")).to_contain_text("Identity provider scratch removed")
            step("a provider name with a space: the rule is next to the field")
            page.goto(f"{admin}/providers/new")
            expect(page.locator("#name-rule")).to_contain_text("no spaces")
            shot(page, "03b-provider-name-rule")

            step("an extension schema: uploaded from a file, listed, removed after confirming")
            page.goto(f"{admin}/providers/contoso")
            schema_file = os.path.join(os.path.dirname(__file__), "..", "it", "schemas", "contoso.json")
            page.get_by_label("Schema file (JSON, RFC 7643 section 7)").set_input_files(schema_file)
            expect(page.get_by_label("…or paste it")).to_have_value(re.compile("Contoso"))
            page.get_by_label("Index these attributes (comma-separated, optional)").fill("costCenter")
            page.get_by_role("button", name="Add schema").click()
            urn = "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User"
            expect(page.locator(".notice")).to_contain_text(f"Extension schema {urn} added")
            row = page.get_by_role("row", name=re.compile("Contoso:2.0:User"))
            expect(row).to_contain_text("costCenter")
            shot(page, "11-schema-added")
            status, body = server.scim("GET", scim_url + "/Schemas/" + urn, token)
            assert status == 200, (status, body)
            page.get_by_label("…or paste it").fill("{ not json")
            page.get_by_role("button", name="Add schema").click()
            expect(page.get_by_role("alert")).to_be_visible()
            # What was pasted is still there to correct.
            expect(page.get_by_label("…or paste it")).to_have_value("{ not json")
            row.get_by_role("link", name="Remove…").click()
            expect(page.get_by_role("alert")).to_contain_text(urn)
            page.get_by_role("button", name="Remove schema").click()
            expect(page.get_by_role("row", name=re.compile("Contoso:2.0:User"))).to_have_count(0)
            assert server.scim("GET", scim_url + "/Schemas/" + urn, token)[0] == 404

            step("dashboard and settings")
            page.goto(admin + "/")
            expect(page.get_by_role("row", name=re.compile("contoso"))).to_contain_text("Entra ID")
            shot(page, "12-dashboard")
            page.get_by_role("link", name="Settings").click()
            expect(page.locator("pre.config")).to_contain_text("admin_session_idle")
            expect(page.get_by_role("cell", name="alice (you)")).to_be_visible()
            shot(page, "13-settings")

            step("admin accounts in the console: add one, it changes its own password, remove it")
            page.get_by_label("Account name").fill("bob")
            page.get_by_label("Password (at least 12 characters)", exact=True).fill("bob's first password")
            page.get_by_label("The same password again").fill("bob's first pasword")
            page.get_by_role("button", name="Add admin account").click()
            expect(page.get_by_role("alert")).to_contain_text("the two passwords differ")
            page.get_by_label("Account name").fill("bob")
            page.get_by_label("Password (at least 12 characters)", exact=True).fill("bob's first password")
            page.get_by_label("The same password again").fill("bob's first password")
            page.get_by_role("button", name="Add admin account").click()
            expect(page.locator(".notice")).to_contain_text("Admin account bob added")
            expect(page.get_by_role("link", name="Remove alice")).to_have_count(0)
            bobs = browser.new_context(viewport={"width": 1280, "height": 860})
            bp = bobs.new_page()

            def as_bob(secret):
                bp.goto(admin + "/login")
                bp.get_by_label("Admin account").fill("bob")
                bp.get_by_label("Password").fill(secret)
                bp.get_by_role("button", name="Log in").click()
                expect(bp.get_by_role("heading", name="Dashboard")).to_be_visible()

            as_bob("bob's first password")
            bp.goto(admin + "/settings")
            bp.get_by_label("Your current password").fill("bob's first password")
            bp.get_by_label("New password (at least 12 characters)").fill("bob's second password")
            bp.get_by_label("The new password again").fill("bob's second password")
            bp.get_by_role("button", name="Change password").click()
            expect(bp.get_by_role("alert")).to_contain_text("Your password was changed")
            as_bob("bob's second password")
            bobs.close()
            page.reload()
            page.get_by_role("link", name="Remove bob").click()
            expect(page.get_by_role("alert")).to_contain_text("can no longer log in")
            page.get_by_role("button", name="Remove admin account").click()
            expect(page.locator(".notice")).to_contain_text("Admin account bob removed")
            expect(page.get_by_role("cell", name="bob", exact=True)).to_have_count(0)

            step("the audit log shows what the admin did, with who and from where")
            page.get_by_role("link", name="Audit log").click()
            expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
            audit = page.locator("#audit tbody")
            expect(audit).to_contain_text("token created")
            expect(audit).to_contain_text("console:alice")
            expect(audit).to_contain_text("console login")
            shot(page, "06b-audit-log")

            step("the session expires (its last request moved an hour back)")
            server.sql("UPDATE admin_sessions SET last_seen = last_seen - 3600")
            page.goto(admin + "/providers")
            expect(page).to_have_url(re.compile(r"/login\?next=%2Fproviders"))
            expect(page.get_by_role("alert")).to_contain_text("Your session has ended")
            login(page, admin)

            step("log out")
            page.get_by_role("button", name="Log out").click()
            expect(page.get_by_role("heading", name="Log in")).to_be_visible()
            page.goto(admin + "/settings")
            expect(page.get_by_role("heading", name="Log in")).to_be_visible()

            assert not alerts, f"no script ran from data: {alerts}"
            assert not errors, f"console errors (CSP violations included): {errors}"

            step("a 360 px wide screen: nothing wider than the screen")
            narrow = browser.new_context(viewport={"width": 360, "height": 740})
            small = narrow.new_page()
            login(small, admin)
            for path, name in [("/", "14-narrow-dashboard"), ("/providers/contoso", "15-narrow-provider"),
                               (f"/providers/contoso/Users", "16-narrow-users"), ("/activity", "17-narrow-activity"),
                               ("/audit", "18-narrow-audit")]:
                small.goto(admin + path)
                width = small.evaluate("document.documentElement.scrollWidth")
                assert width <= 360, f"{path} is {width} px wide"
                shot(small, name)
            narrow.close()
            step("a dark screen: the dashboard as a screenshot")
            dark = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme="dark")
            shade = dark.new_page()
            login(shade, admin)
            shade.goto(admin + "/providers/contoso")
            shade.screenshot(path=os.path.join(ARTIFACTS, "19-dark-provider.png"), full_page=True)
            dark.close()
            browser.close()
            step(f"axe-core {axe_check.VERSION}: every page, light and dark")
            assert not VIOLATIONS, "axe found:\n" + "\n".join(VIOLATIONS)
    finally:
        server.stop()
    print("browser tests passed; screenshots in", ARTIFACTS)


if __name__ == "__main__":
    main()
