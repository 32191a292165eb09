"""Sign-in with the identity provider, end to end, with real third-party software: a real
OpenID Connect provider (npm's oidc-provider, run by tests/oidc/issuer.mjs on 127.0.0.2, so it
is another site than the console on 127.0.0.1), Chromium through Playwright, and LDAP binds
with ldap3 against the real scimd binary.

Run by scripts/sign-in.sh, which installs what it needs. Usage:
    sign_in_test.py SCIMD_BINARY ISSUER_SCRIPT ARTIFACT_DIR
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import ldap3
from ldap3.core.exceptions import LDAPException
from playwright.sync_api import expect, sync_playwright

import axe_check

BIN, ISSUER_SCRIPT, ARTIFACTS = sys.argv[1], sys.argv[2], sys.argv[3]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
BASE = "dc=contoso,dc=scimd"
os.makedirs(ARTIFACTS, exist_ok=True)


def step(name):
    print(f"-- {name}", flush=True)


VIOLATIONS = []


def shot(page, name):
    page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=True)
    axe_check.check(page, name, VIOLATIONS)


class Process:
    """A child process whose output is read line by line until `patterns` have all matched."""

    def __init__(self, args, env, patterns):
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines, self.found = [], {}
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.lines.append(line)
                for key, pattern in patterns.items():
                    m = re.search(pattern, line)
                    if m and key not in self.found:
                        self.found[key] = m.group(1)
                if len(self.found) == len(patterns):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(60):
            self.stop()
            raise SystemExit("did not start:\n" + "".join(self.lines))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def scim(base, token, method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 headers={"Authorization": f"Bearer {token}"})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/scim+json")
    try:
        with urllib.request.urlopen(req, data, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def bind(ldap_addr, user, password):
    """An LDAP simple bind as `user` over a new connection: the connection, or None if refused."""
    host, port = ldap_addr.rsplit(":", 1)
    server = ldap3.Server(host, port=int(port), get_info=ldap3.NONE)
    conn = ldap3.Connection(server, user=f"uid={user},ou=people,{BASE}", password=password)
    try:
        return conn if conn.bind() else None
    except LDAPException:
        return None


def argon2_runs(console):
    """scimd's count of secrets checked with argon2 since start (from /metrics)."""
    with urllib.request.urlopen(console + "/metrics", timeout=30) as r:
        text = r.read().decode()
    return int(re.search(r"^scimd_argon2_verifications_total (\d+)$", text, re.M).group(1))


def new_password(page, name):
    """Makes an application password on /me; returns its secret, read from the page once."""
    page.fill("#description", name)
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/me/passwords/[0-9a-f]+/created\?reveal="))
    return page.locator("#app-password").input_value()


def sign_in(page, console, login, expect_path):
    """Signs in with the issuer from the console's login page, as `login`."""
    page.goto(console + "/login")
    page.get_by_role("link", name="Sign in with contoso").click()
    page.wait_for_url(re.compile(r"http://127\.0\.0\.2:\d+/interaction/"))
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "anything")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(re.escape(console) + expect_path))


def main():
    tmp = tempfile.TemporaryDirectory()
    db = os.path.join(tmp.name, "scimd.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIMD_")}
    env.update({"SCIMD_ADMIN_LISTEN": "127.0.0.1:0", "SCIMD_LOG_FORMAT": "text",
                "SCIMD_LDAP_LISTEN": "127.0.0.1:0", "SCIMD_LDAP_PLAINTEXT_LOOPBACK": "on"})

    def cli(*args, stdin=None):
        r = subprocess.run([BIN, "--database", db, *args], env=env, text=True,
                           capture_output=True, input=stdin)
        assert r.returncode == 0, f"scimd {' '.join(args)}: {r.stderr}"
        return r.stdout

    step("a provider, its token, and users provisioned over SCIM")
    cli("provider", "add", "contoso", "--type", "entra")
    token = re.search(r"(scimd_[0-9a-f]+_[0-9a-f]+)", cli("token", "create", "--provider", "contoso", "--valid-for", "1d")).group(1)
    scimd = Process([BIN, "--database", db, "serve"], env, {
        "http": r"listening on (\S+)",
        "console": r"admin console and /metrics on (\S+?)/?(?:\s|$)",
        "ldap": r"LDAP directory on ldap://(\S+)",
    })
    issuer = None
    try:
        scim_base, console, ldap_addr = (scimd.found[k] for k in ("http", "console", "ldap"))
        scim_base = scim_base.rstrip("/") + "/scim/v2/contoso"
        # The server took a free port for its console: the command line is told where it is.
        env["SCIMD_CONSOLE_URL"] = console
        ids = {}
        for name, active in [("ann@contoso.com", True), ("dan@contoso.com", False),
                             ("ada@contoso.com", True)]:
            status, body = scim(scim_base, token, "POST", "/Users",
                                {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                 "userName": name, "active": active})
            assert status == 201, body
            ids[name] = body["id"]
        # ada is in the admin group through a nested group.
        status, body = scim(scim_base, token, "POST", "/Groups",
                            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                             "displayName": "operations",
                             "members": [{"value": ids["ada@contoso.com"]}]})
        assert status == 201, body
        status, body = scim(scim_base, token, "POST", "/Groups",
                            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                             "displayName": "scimd admins",
                             "members": [{"value": body["id"]}]})
        assert status == 201, body
        # Entra never sends passwords: before sign-in, nobody can bind.
        assert bind(ldap_addr, "ann@contoso.com", "anything") is None

        step("a real OpenID Connect provider (oidc-provider) on 127.0.0.2")
        secret_file = os.path.join(tmp.name, "client-secret")
        with open(secret_file, "w") as f:
            f.write("a client secret of the test issuer\n")  # the trailing newline is ignored
        issuer = Process(["node", ISSUER_SCRIPT, "127.0.0.2", console + "/oidc/callback", secret_file],
                         env, {"issuer": r"^issuer (\S+)"})
        out = cli("provider", "oidc", "set", "contoso", "--issuer", issuer.found["issuer"],
                  "--client-id", "scimd", "--client-secret-file", secret_file,
                  "--admin-group", "scimd admins")
        assert "the issuer answered discovery" in out, out
        assert console + "/oidc/callback" in out, out
        shown = cli("provider", "oidc", "show", "contoso")
        assert "a client secret" not in shown and "never shown" in shown, shown

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            page = browser.new_context().new_page()

            step("a provisioned user signs in and lands on /me")
            page.goto(console + "/login")
            shot(page, "01-login-with-sign-in")
            callbacks = []
            page.on("request", lambda r: callbacks.append(r.url) if "/oidc/callback" in r.url else None)
            sign_in(page, console, "ann@contoso.com", "/me$")
            expect(page.locator(".me-bar")).to_contain_text("ann@contoso.com")
            expect(page.get_by_role("link", name="Admin pages")).to_have_count(0)
            shot(page, "02-me")

            step("the same return from the identity provider, replayed, is refused")
            replay = page.context.new_page()
            r = replay.goto(callbacks[-1])
            assert r.status == 400, r.status
            expect(replay.get_by_role("alert")).to_contain_text("already used")
            replay.close()

            step("the admin pages are for the admin group only")
            r = page.goto(console + "/")
            assert r.status == 403, r.status
            expect(page.get_by_role("alert")).to_contain_text("/me")
            page.goto(console + "/me")

            step("an application password: made, shown once, binds over LDAP with one argon2 run")
            secret = new_password(page, "grafana on laptop")
            assert len(secret) >= 20 and " " not in secret, secret
            shot(page, "03-app-password-once")
            page.reload()
            expect(page.locator("#app-password")).to_have_count(0)
            expect(page.get_by_role("alert")).to_contain_text("shown once")
            page.goto(console + "/me")
            for spare in ("spare 1", "spare 2"):
                new_password(page, spare)
            before = argon2_runs(console)
            conn = bind(ldap_addr, "ann@contoso.com", secret)
            assert conn is not None, "bind with the application password"
            first = argon2_runs(console) - before
            assert conn.search(BASE, "(uid=ann@contoso.com)", attributes=["uid"]), conn.result
            assert bind(ldap_addr, "ann@contoso.com", secret) is not None
            again = argon2_runs(console) - before - first
            print(f"   argon2 runs: {first} for the first bind (of 3 passwords), {again} for the next")
            assert first == 1 and again == 0, (first, again)

            step("wrong application passwords, a flood from the holder's own address, lock nobody out")
            password_id = secret.split("_")[1]
            before = argon2_runs(console)
            for i in range(100):
                wrong = f"scimd_{password_id}_{i:064x}"
                assert bind(ldap_addr, "ann@contoso.com", wrong) is None
            flood = argon2_runs(console) - before
            print(f"   argon2 runs for 100 wrong application passwords: {flood}")
            assert flood == 0, flood
            assert bind(ldap_addr, "ann@contoso.com", secret) is not None, "the holder after the flood"
            # Another user's password does not open this user.
            assert bind(ldap_addr, "ada@contoso.com", secret) is None

            step("revoked on /me: the next bind fails, and the open connection stops reading")
            page.goto(console + "/me")
            page.get_by_role("button", name="Revoke grafana on laptop", exact=True).click()
            page.wait_for_url(re.compile(r"/me\?done=password-revoked"))
            expect(page.locator(".notice")).to_contain_text(f"Application password {password_id} revoked")
            expect(page.get_by_role("row", name=re.compile("grafana on laptop"))).to_contain_text("revoked")
            shot(page, "04-revoked")
            assert bind(ldap_addr, "ann@contoso.com", secret) is None, "bind after revoke"
            ok = conn.search(BASE, "(uid=ann@contoso.com)", attributes=["uid"])
            assert not ok and conn.result["result"] != 0, conn.result

            step("deactivating the user over SCIM ends their console session and their binds")
            nas = new_password(page, "nas")
            assert bind(ldap_addr, "ann@contoso.com", nas) is not None
            status, _ = scim(scim_base, token, "PATCH", f"/Users/{ids['ann@contoso.com']}",
                             {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                              "Operations": [{"op": "replace", "path": "active", "value": False}]})
            assert status in (200, 204), status
            assert bind(ldap_addr, "ann@contoso.com", nas) is None, "bind of a deactivated user"
            page.goto(console + "/me")
            page.wait_for_url(re.compile(r"/login"))

            step("a deactivated user and an unprovisioned one are refused")
            fresh = browser.new_context().new_page()
            sign_in(fresh, console, "dan@contoso.com", "/oidc/callback")
            expect(fresh.get_by_role("alert")).to_contain_text("deactivated")
            shot(fresh, "05-deactivated")
            fresh.context.close()
            fresh = browser.new_context().new_page()
            sign_in(fresh, console, "zed@contoso.com", "/oidc/callback")
            expect(fresh.get_by_role("alert")).to_contain_text("not provisioned")
            shot(fresh, "06-not-provisioned")
            fresh.context.close()

            step("a member of the admin group (through a nested group) reaches the admin pages")
            admin = browser.new_context().new_page()
            sign_in(admin, console, "ada@contoso.com", "/me$")
            admin.get_by_role("link", name="Admin pages").click()
            expect(admin.get_by_role("heading", level=1)).to_have_text("Dashboard")
            expect(admin.locator(".who")).to_contain_text("ada@contoso.com (contoso)")
            shot(admin, "07-admin-by-group")

            step("an admin sees users' application passwords (never a secret) and revokes one")
            admin.goto(console + "/providers/contoso")
            section = admin.locator("section", has=admin.locator("#sign-in"))
            expect(section).to_contain_text(issuer.found["issuer"])
            row = section.get_by_role("row", name=re.compile("spare 1"))
            expect(row).to_contain_text("ann@contoso.com")
            assert "scimd_" not in section.inner_text()
            row.get_by_role("link", name="Revoke spare 1").click()
            admin.get_by_role("button", name="Revoke application password").click()
            admin.wait_for_url(re.compile(r"/providers/contoso\?done=password-revoked.*#sign-in$"))
            expect(admin.locator(".notice")).to_contain_text("revoked")
            expect(section.get_by_role("row", name=re.compile("spare 1"))).to_contain_text("revoked")
            shot(admin, "08-provider-sign-in-section")
            admin.context.close()
            browser.close()
            step(f"axe-core {axe_check.VERSION}: every page above, light and dark")
            assert not VIOLATIONS, "axe found:\n" + "\n".join(VIOLATIONS)

        step("the command line lists and revokes users' application passwords")
        listed = cli("app-password", "list", "--provider", "contoso", "--user", "ann@contoso.com")
        assert "grafana on laptop" in listed and "nas" in listed, listed
        nas_id = nas.split("_")[1]
        assert "revoked application password" in cli("app-password", "revoke", nas_id)
        activity = cli("activity", "--provider", "contoso", "--limit", "50")
        for action in ["signed in", "sign-in refused", "application password created",
                       "application password revoked"]:
            assert action in activity, (action, activity)
        audit = cli("audit", "--provider", "contoso")
        assert "application password revoked" in audit and "ada@contoso.com (contoso)" in audit, audit
        print("sign-in tests passed")
    finally:
        if issuer:
            issuer.stop()
        scimd.stop()


if __name__ == "__main__":
    main()
