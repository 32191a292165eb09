"""The LDAP recipes of docs/ldap/ as the test command runs them: each page's configuration block,
read from the page itself (scripts/recipe.py) with this test's host, ports, CA and secrets in
place of the page's, used against the real scimd over StartTLS or LDAPS with a verified
certificate.

- python.md: both blocks run as they are (ldap3 and python-ldap) and their output is checked.
- grafana.md, gitea.md, jenkins.md, nextcloud.md: those applications are not packaged for
  Debian, so this test does over the wire what each does with the configuration shown (the
  connection and TLS it asks for, its service bind, its user search with the login put in
  its filter, the person's own bind, how it finds groups and roles), and checks what the
  application would conclude: who may log in, with which name, email and role.

Run by scripts/ldap-client.sh (ldap3, python-ldap and PyYAML in .venv-ldap). Usage:
    apps_test.py SCIMD_BINARY
"""

import json
import os
import re
import shlex
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import tomllib
import urllib.request

import ldap3
from ldap3.utils.conv import escape_filter_chars
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import recipe  # noqa: E402  (scripts/recipe.py: the block as the page shows it)

BIN = sys.argv[1]
BASE = "dc=contoso,dc=scimd"
PAGES = os.path.join(ROOT, "docs", "ldap")
PASSWORDS = {"alice@contoso.com": "Alice-Pass-1", "bob@contoso.com": "Bob-Pass-1"}


def step(name):
    print(f"-- {name}", flush=True)


def check(condition, what):
    if not condition:
        raise SystemExit(f"LDAP recipe check failed: {what}")


class Site:
    """The test's scimd: where it listens, its CA, and a secret per service account."""

    def __init__(self, work, ports, secrets):
        self.work, self.ca = work, os.path.join(work, "tls.crt")
        self.ldap_port, self.ldaps_port = ports
        self.secrets = secrets

    def page(self, name, block, account):
        """The page's block with this site in place of the page's host, ports, CA and secret
        (a page names only those it needs)."""
        return recipe.fill(os.path.join(PAGES, name), block,
                           [("scimd.example.com", "127.0.0.1"), ("3389", str(self.ldap_port)),
                            ("6636", str(self.ldaps_port)), ("/etc/ssl/certs/scimd.pem", self.ca),
                            ("<the account's secret>", self.secrets[account])], every=False)

    def connect(self, host, port, tls, start_tls):
        """A connection as an application opens it: plain, LDAPS, or plain then StartTLS."""
        if not tls:
            return ldap3.Connection(ldap3.Server(host, port=port))
        context = ldap3.Tls(ca_certs_file=self.ca, validate=ssl.CERT_REQUIRED)
        server = ldap3.Server(host, port=port, use_ssl=not start_tls, tls=context)
        conn = ldap3.Connection(server)
        conn.open()
        if start_tls:
            check(conn.start_tls(), f"StartTLS to {host}:{port}: {conn.result}")
        return conn


def bind(conn, dn, password):
    """A simple bind on a connection already open (and secured), as applications do it."""
    conn.authentication, conn.user, conn.password = ldap3.SIMPLE, dn, password
    return conn.bind()


def grafana(site, username, password):
    """What Grafana's LDAP login concludes for these credentials, or None for no login."""
    server = tomllib.loads(site.page("grafana.md", "ldap.toml", "grafana"))["servers"][0]
    tls, start_tls = server.get("use_ssl", False), server.get("use_ssl", False) and server.get("start_tls", False)

    def dial():
        return site.connect(server["host"], server["port"], tls, start_tls)

    attributes = server["attributes"]
    conn = dial()
    check(bind(conn, server["bind_dn"], server["bind_password"]), f"Grafana's service bind: {conn.result}")
    found = []
    for base in server["search_base_dns"]:
        conn.search(base, server["search_filter"].replace("%s", escape_filter_chars(username)),
                    attributes=sorted(set(attributes.values())))
        found += conn.entries
    if len(found) != 1:
        return None
    entry = found[0]
    if not bind(dial(), entry.entry_dn, password):
        return None
    groups = [g.lower() for g in entry[attributes["member_of"]].values] if attributes["member_of"] in entry else []
    role = next((m["org_role"] for m in server.get("group_mappings", [])
                 if m["group_dn"] == "*" or m["group_dn"].lower() in groups), None)
    return {"login": str(entry[attributes["username"]]), "email": str(entry[attributes["email"]]),
            "name": str(entry[attributes["name"]]), "role": role}


def gitea_flags(site):
    words = shlex.split(site.page("gitea.md", "gitea-add-ldap", "gitea"))
    check(words[:4] == ["gitea", "admin", "auth", "add-ldap"], f"gitea.md: {words[:4]}")
    flags, i = {}, 4
    while i < len(words):
        name = words[i].removeprefix("--")
        if i + 1 < len(words) and not words[i + 1].startswith("--"):
            flags[name], i = words[i + 1], i + 2
        else:
            flags[name], i = True, i + 1
    return flags


def gitea(site, username, password):
    """What Gitea's LDAP (via BindDN) source concludes, or None for no login."""
    f = gitea_flags(site)
    protocol = f["security-protocol"].lower()
    check(protocol in ("unencrypted", "ldaps", "starttls"), f"gitea.md: security protocol {protocol}")

    def dial():
        return site.connect(f["host"], int(f["port"]), protocol != "unencrypted", protocol == "starttls")

    conn = dial()
    check(bind(conn, f["bind-dn"], f["bind-password"]), f"Gitea's service bind: {conn.result}")
    wanted = [f[k] for k in ("username-attribute", "firstname-attribute", "surname-attribute", "email-attribute")]
    conn.search(f["user-search-base"], f["user-filter"].replace("%[1]s", escape_filter_chars(username)),
                attributes=wanted)
    if len(conn.entries) != 1:
        return None
    entry = conn.entries[0]
    if not bind(dial(), entry.entry_dn, password):
        return None
    admin = False
    if f.get("admin-filter"):
        conn.search(entry.entry_dn, f["admin-filter"], search_scope=ldap3.BASE, attributes=["1.1"])
        admin = len(conn.entries) == 1
    return {"login": str(entry[f["username-attribute"]]), "email": str(entry[f["email-attribute"]]),
            "name": str(entry[f["firstname-attribute"]]), "admin": admin}


def gitea_sync(site):
    """The user names Gitea's user synchronisation finds (its filter with * for the login)."""
    f = gitea_flags(site)
    conn = site.connect(f["host"], int(f["port"]), True, f["security-protocol"].lower() == "starttls")
    check(bind(conn, f["bind-dn"], f["bind-password"]), f"Gitea's service bind: {conn.result}")
    conn.search(f["user-search-base"], f["user-filter"].replace("%[1]s", "*"),
                attributes=[f["username-attribute"]])
    return sorted(str(e[f["username-attribute"]]) for e in conn.entries)


def jenkins(site, username, password):
    """What Jenkins' LDAP security realm concludes, or None for no login."""
    conf = yaml.safe_load(site.page("jenkins.md", "jenkins.yaml", "jenkins"))
    ldap_conf = conf["jenkins"]["securityRealm"]["ldap"]["configurations"][0]
    m = re.fullmatch(r"(ldaps?)://([^:/]+):(\d+)", ldap_conf["server"])
    check(m, f"jenkins.md: server {ldap_conf['server']}")
    scheme, host, port = m.group(1), m.group(2), int(m.group(3))

    def dial():
        return site.connect(host, port, scheme == "ldaps", False)

    root = ldap_conf["rootDN"]
    conn = dial()
    check(bind(conn, ldap_conf["managerDN"], ldap_conf["managerPasswordSecret"]),
          f"Jenkins' manager bind: {conn.result}")
    member_of = ldap_conf["groupMembershipStrategy"]["fromUserRecord"]["attributeName"]
    # Java's directory API (JNDI) takes a filter without its outer parentheses, as `uid={0}`.
    user_filter = ldap_conf["userSearch"].replace("{0}", escape_filter_chars(username))
    if not user_filter.startswith("("):
        user_filter = f"({user_filter})"
    conn.search(f"{ldap_conf['userSearchBase']},{root}", user_filter,
                attributes=[ldap_conf["displayNameAttributeName"], ldap_conf["mailAddressAttributeName"], member_of])
    if len(conn.entries) != 1:
        return None
    entry = conn.entries[0]
    if not bind(dial(), entry.entry_dn, password):
        return None
    groups = sorted(re.match(r"cn=([^,]+),", dn, re.I).group(1) for dn in entry[member_of].values)
    for group in groups:  # a permission given to a group makes the plugin look the group up
        conn.search(f"{ldap_conf['groupSearchBase']},{root}",
                    ldap_conf["groupSearchFilter"].replace("{0}", escape_filter_chars(group)), attributes=["cn"])
        check(len(conn.entries) == 1, f"Jenkins' group search for {group}: {conn.entries}")
    admins = {e["group"]["name"] for e in conf["jenkins"]["authorizationStrategy"]["globalMatrix"]["entries"]
              if "Overall/Administer" in e["group"]["permissions"]}
    return {"name": str(entry[ldap_conf["displayNameAttributeName"]]),
            "email": str(entry[ldap_conf["mailAddressAttributeName"]]),
            "groups": groups, "admin": bool(admins & set(groups))}


def nextcloud_settings(site):
    settings = {}
    for line in site.page("nextcloud.md", "nextcloud-occ", "nextcloud").strip().split("\n"):
        words = shlex.split(line)
        check(words[:7] == ["sudo", "-u", "www-data", "php", "occ", "ldap:set-config", "s01"], line)
        settings[words[7]] = words[8]
    return settings


class Nextcloud:
    """What Nextcloud's LDAP backend sees with the page's settings."""

    def __init__(self, site):
        s = self.s = nextcloud_settings(site)
        m = re.fullmatch(r"ldap://([^:/]+)", s["ldapHost"])
        check(m, f"nextcloud.md: ldapHost {s['ldapHost']}")
        self.dial = lambda: site.connect(m.group(1), int(s["ldapPort"]), s["ldapTLS"] == "1", s["ldapTLS"] == "1")
        self.conn = self.dial()
        check(bind(self.conn, s["ldapAgentName"], s["ldapAgentPassword"]), f"Nextcloud's agent bind: {self.conn.result}")

    def users(self):
        s = self.s
        pages = self.conn.extend.standard.paged_search(
            s["ldapBaseUsers"], s["ldapUserFilter"], paged_size=int(s["ldapPagingSize"]), generator=True,
            attributes=[s["ldapExpertUsernameAttr"], s["ldapUserDisplayName"], s["ldapEmailAttribute"],
                        s["ldapExpertUUIDUserAttr"]])
        return {r["attributes"][s["ldapExpertUsernameAttr"]][0]: r for r in pages if r["type"] == "searchResEntry"}

    def login(self, username, password):
        s = self.s
        self.conn.search(s["ldapBaseUsers"], s["ldapLoginFilter"].replace("%uid", escape_filter_chars(username)),
                         attributes=[s["ldapExpertUsernameAttr"], s["ldapExpertUUIDUserAttr"]])
        if len(self.conn.entries) != 1:
            return None
        entry = self.conn.entries[0]
        if not bind(self.dial(), entry.entry_dn, password):
            return None
        return {"dn": entry.entry_dn, "login": str(entry[s["ldapExpertUsernameAttr"]]),
                "uuid": str(entry[s["ldapExpertUUIDUserAttr"]])}

    def groups_of(self, dn):
        """The groups a user is in, through nested groups when ldapNestedGroups is on."""
        s = self.s
        self.conn.search(s["ldapBaseGroups"], s["ldapGroupFilter"],
                         attributes=[s["ldapGroupDisplayName"], s["ldapGroupMemberAssocAttr"]])
        members = {e.entry_dn.lower(): (str(e[s["ldapGroupDisplayName"]]),
                                        {m.lower() for m in e[s["ldapGroupMemberAssocAttr"]].values})
                   for e in self.conn.entries}
        found, todo = set(), [dn.lower()]
        while todo:
            inner = todo.pop()
            for group_dn, (_, held) in members.items():
                if inner in held and group_dn not in found:
                    found.add(group_dn)
                    if s.get("ldapNestedGroups") == "1":
                        todo.append(group_dn)
        return sorted(members[g][0] for g in found)


def start(work):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", os.path.join(work, "tls.key"), "-out", os.path.join(work, "tls.crt")],
                   check=True, capture_output=True)
    db = os.path.join(work, "scimd.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIMD_")}
    env.update({"SCIMD_ADMIN_LISTEN": "", "SCIMD_LDAP_LISTEN": "127.0.0.1:0", "SCIMD_LDAPS_LISTEN": "127.0.0.1:0",
                "SCIMD_TLS_CERT": os.path.join(work, "tls.crt"), "SCIMD_TLS_KEY": os.path.join(work, "tls.key")})

    def cli(*args):
        out = subprocess.run([BIN, "--database", db, *args], env=env, capture_output=True, text=True)
        check(out.returncode == 0, f"scimd {' '.join(args)}: {out.stderr}")
        return out.stdout

    cli("provider", "add", "contoso")
    cli("provider", "set", "contoso", "--scim-passwords", "all")
    token = re.search(r"^scimd_\S+$", cli("token", "create", "--provider", "contoso", "--valid-for", "1d"), re.M).group(0)
    secrets = {name: re.search(r"^[0-9a-f]{64}$", cli("ldap", "account", "add", name, "--provider", "contoso"),
                               re.M).group(0)
               for name in ("app", "grafana", "gitea", "jenkins", "nextcloud")}
    server = subprocess.Popen([BIN, "--database", db, "serve", "--listen", "127.0.0.1:0"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found, ready = {}, threading.Event()

    def read():
        for line in server.stdout:
            for key, pattern in [("http", r"listening on (https://\S+)"), ("ldap", r"LDAP directory on ldap://\S+:(\d+)"),
                                 ("ldaps", r"LDAP directory on ldaps://\S+:(\d+)")]:
                m = re.search(pattern, line)
                if m:
                    found[key] = m.group(1)
            if len(found) == 3:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    check(ready.wait(30), f"the server did not start: {found}")
    site = Site(work, (int(found["ldap"]), int(found["ldaps"])), secrets)
    scim = f"{found['http']}/scim/v2/contoso"
    context = ssl.create_default_context(cafile=site.ca)

    def send(method, path, body):
        req = urllib.request.Request(scim + path, data=json.dumps(body).encode(), method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"})
        with urllib.request.urlopen(req, timeout=30, context=context) as r:
            text = r.read()
            return json.loads(text) if text else {}

    return server, site, send


def provision(send):
    people = {}
    for user, given, family, title in [("alice@contoso.com", "Alice", "Adams", "Engineer"),
                                       ("bob@contoso.com", "Bob", "Boss", "Sales"),
                                       ("carol@contoso.com", "Carol", "Cole", "Engineer")]:
        body = {"userName": user, "displayName": f"{given} {family}", "title": title,
                "name": {"givenName": given, "familyName": family},
                "emails": [{"value": user, "type": "work", "primary": True}]}
        if user in PASSWORDS:
            body["password"] = PASSWORDS[user]
        people[user] = send("POST", "/Users", body)["id"]
    eng = send("POST", "/Groups", {"displayName": "Engineering", "members": [{"value": people["alice@contoso.com"]}]})["id"]
    send("POST", "/Groups", {"displayName": "Everyone", "members": [{"value": eng}, {"value": people["bob@contoso.com"]}]})
    send("POST", "/Groups", {"displayName": "Admins", "members": [{"value": eng}]})
    return people


def run_python_blocks(site):
    step("python.md: the ldap3 and python-ldap blocks, as shown")
    for block, wanted in [("ldap3-example.py", ["alice@contoso.com Alice Adams", "cn=Engineering,ou=groups,",
                                                "user bob@contoso.com", "user carol@contoso.com"]),
                          ("python-ldap-example.py", ["members ['uid=alice@contoso.com,ou=people,", "alice is a member: True"])]:
        out = subprocess.run([sys.executable, "-c", site.page("python.md", block, "app")],
                             capture_output=True, text=True, timeout=60)
        check(out.returncode == 0, f"python.md {block}: {out.stderr}")
        for text in wanted:
            check(text in out.stdout, f"python.md {block}: '{text}' not in its output:\n{out.stdout}")
        print(out.stdout.rstrip())


def main():
    work = tempfile.TemporaryDirectory()
    server, site, send = start(work.name)
    try:
        step("provision three users and nested groups over SCIM")
        people = provision(send)
        run_python_blocks(site)

        step("grafana.md: logins, roles from memberOf")
        alice = grafana(site, "alice@contoso.com", PASSWORDS["alice@contoso.com"])
        check(alice == {"login": "alice@contoso.com", "email": "alice@contoso.com", "name": "Alice", "role": "Admin"},
              f"Grafana, alice: {alice}")
        check(grafana(site, "ALICE@contoso.com", "wrong") is None, "Grafana let a wrong password in")
        bob = grafana(site, "bob@contoso.com", PASSWORDS["bob@contoso.com"])
        check(bob and bob["role"] == "Viewer", f"Grafana, bob: {bob}")
        check(grafana(site, "nobody@contoso.com", "x") is None, "Grafana found a user nobody has")

        step("gitea.md: logins, the admin filter, user synchronisation")
        alice = gitea(site, "alice@contoso.com", PASSWORDS["alice@contoso.com"])
        check(alice == {"login": "alice@contoso.com", "email": "alice@contoso.com", "name": "Alice", "admin": True},
              f"Gitea, alice: {alice}")
        bob = gitea(site, "bob@contoso.com", PASSWORDS["bob@contoso.com"])
        check(bob and bob["admin"] is False, f"Gitea, bob: {bob}")
        check(gitea(site, "bob@contoso.com", "wrong") is None, "Gitea let a wrong password in")
        check(gitea_sync(site) == sorted(people), f"Gitea's synchronisation: {gitea_sync(site)}")

        step("jenkins.md: logins over LDAPS, groups from memberOf, group search")
        alice = jenkins(site, "alice@contoso.com", PASSWORDS["alice@contoso.com"])
        check(alice == {"name": "Alice Adams", "email": "alice@contoso.com",
                        "groups": ["Admins", "Engineering", "Everyone"], "admin": True}, f"Jenkins, alice: {alice}")
        bob = jenkins(site, "bob@contoso.com", PASSWORDS["bob@contoso.com"])
        check(bob and bob["groups"] == ["Everyone"] and not bob["admin"], f"Jenkins, bob: {bob}")
        check(jenkins(site, "bob@contoso.com", "wrong") is None, "Jenkins let a wrong password in")

        step("nextcloud.md: the user list, logins, nested group memberships")
        cloud = Nextcloud(site)
        users = cloud.users()
        check(sorted(users) == sorted(people), f"Nextcloud's user list: {sorted(users)}")
        check(users["carol@contoso.com"]["attributes"]["entryUUID"] == people["carol@contoso.com"],
              f"Nextcloud's UUID attribute: {users['carol@contoso.com']}")
        login = cloud.login("alice@contoso.com", PASSWORDS["alice@contoso.com"])
        check(login and login["uuid"] == people["alice@contoso.com"], f"Nextcloud, alice: {login}")
        check(cloud.groups_of(login["dn"]) == ["Admins", "Engineering", "Everyone"],
              f"Nextcloud, alice's groups: {cloud.groups_of(login['dn'])}")
        check(cloud.login("BOB@contoso.com", "wrong") is None, "Nextcloud let a wrong password in")

        step("a deactivated person logs in to none of them")
        send("PATCH", f"/Users/{people['alice@contoso.com']}",
             {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
              "Operations": [{"op": "replace", "path": "active", "value": False}]})
        password = PASSWORDS["alice@contoso.com"]
        for name, attempt in [("Grafana", grafana), ("Gitea", gitea), ("Jenkins", jenkins),
                              ("Nextcloud", lambda s, u, p: Nextcloud(s).login(u, p))]:
            check(attempt(site, "alice@contoso.com", password) is None, f"{name} let a deactivated user in")
        check("alice@contoso.com" not in gitea_sync(site), "Gitea's synchronisation still finds alice")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        work.cleanup()
    print("LDAP recipe checks passed (python, Grafana, Gitea, Jenkins, Nextcloud)")


if __name__ == "__main__":
    main()
