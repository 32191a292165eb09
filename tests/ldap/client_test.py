"""The LDAP directory through the Python LDAP clients from PyPI, the way an application's code
reads it. ldap3 (schema-checked): provision over SCIM, bind as a service account, search with
paged results, read the mapped attributes, verify a user's own password, and see writes
refused. python-ldap (the OpenLDAP library's binding): parse the schema subentry, check that
every attribute an entry shows is defined with its matching rules, compare, and page.

Run by scripts/ldap-client.sh, which installs both itself. Usage:
    client_test.py SCIMD_BINARY
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request

import ldap
import ldap.schema
from ldap.controls import SimplePagedResultsControl
import ldap3
from ldap3.core.exceptions import LDAPException

BIN = sys.argv[1]
BASE = "dc=contoso,dc=scimd"


def step(name):
    print(f"-- {name}", flush=True)


def main():
    work = tempfile.TemporaryDirectory()
    db = os.path.join(work.name, "scimd.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIMD_")}
    env.update({"SCIMD_ADMIN_LISTEN": "", "SCIMD_LDAP_LISTEN": "127.0.0.1:0",
                "SCIMD_LDAP_PLAINTEXT_LOOPBACK": "on"})

    def cli(*args):
        out = subprocess.run([BIN, "--database", db, *args], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    cli("provider", "add", "contoso", "--type", "generic")
    # User zero's password arrives in its create: kept only with --scim-passwords all.
    cli("provider", "set", "contoso", "--scim-passwords", "all")
    token = re.search(r"^scimd_\S+$", cli("token", "create", "--provider", "contoso", "--valid-for", "1d"), re.M).group(0)
    secret = re.search(r"^[0-9a-f]{64}$", cli("ldap", "account", "add", "app", "--provider", "contoso"), re.M).group(0)
    server = subprocess.Popen([BIN, "--database", db, "serve", "--listen", "127.0.0.1:0"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found = {}
    ready = threading.Event()

    def read():
        for line in server.stdout:
            for key, pattern in [("http", r"listening on (\S+)"), ("ldap", r"LDAP directory on ldap://(\S+)")]:
                m = re.search(pattern, line)
                if m:
                    found[key] = m.group(1)
            if len(found) == 2:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    assert ready.wait(30), "the server did not start"
    scim = f"{found['http']}/scim/v2/contoso"
    try:
        def post(path, body):
            req = urllib.request.Request(scim + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/scim+json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 201
                return json.loads(r.read())

        step("provision 120 users and a group over SCIM")
        ids = [post("/Users", {"userName": f"user{i:03}@contoso.com", "displayName": f"User {i}",
                               "name": {"givenName": "User", "familyName": f"N{i}"},
                               "emails": [{"value": f"user{i:03}@contoso.com", "type": "work", "primary": True}],
                               **({"password": "user zero's password"} if i == 0 else {})})["id"]
               for i in range(120)]
        post("/Groups", {"displayName": "Staff", "members": [{"value": i} for i in ids[:5]]})

        host, port = found["ldap"].rsplit(":", 1)
        directory = ldap3.Server(host, port=int(port), get_info=ldap3.ALL)

        step("bind as the service account; the root DSE names the tree")
        conn = ldap3.Connection(directory, user=f"cn=app,ou=services,{BASE}", password=secret, auto_bind=True)
        assert BASE in directory.info.naming_contexts, directory.info
        assert "1.2.840.113556.1.4.319" in [c[0] for c in directory.info.supported_controls]

        step("paged search over every user")
        entries = list(conn.extend.standard.paged_search(
            f"ou=people,{BASE}", "(objectClass=inetOrgPerson)", attributes=["uid", "mail"],
            paged_size=25, generator=True))
        users = [e for e in entries if e["type"] == "searchResEntry"]
        assert len(users) == 120, len(users)
        assert len({e["dn"] for e in users}) == 120

        step("one user, its attributes and groups")
        conn.search(BASE, "(mail=USER003@contoso.com)", attributes=["*", "+"])
        assert len(conn.entries) == 1, conn.entries
        e = conn.entries[0]
        assert e.entry_dn == f"uid=user003@contoso.com,ou=people,{BASE}", e.entry_dn
        assert str(e.cn) == "User 3" and str(e.sn) == "N3" and str(e.mail) == "user003@contoso.com"
        assert f"cn=Staff,ou=groups,{BASE}" in e.memberOf.values
        assert str(e.entryUUID) == ids[3]
        conn.search(f"ou=groups,{BASE}", f"(member=uid=user004@contoso.com,ou=people,{BASE})", attributes=["cn"])
        assert [str(x.cn) for x in conn.entries] == ["Staff"]

        step("a user's own password, as an application's login checks it")
        user = ldap3.Connection(directory, user=f"uid=user000@contoso.com,ou=people,{BASE}",
                                password="user zero's password")
        assert user.bind(), user.result
        wrong = ldap3.Connection(directory, user=f"uid=user000@contoso.com,ou=people,{BASE}", password="nope")
        assert not wrong.bind() and wrong.result["result"] == 49, wrong.result

        step("python-ldap: the schema subentry parses and defines what entries show")
        url = f"ldap://{host}:{port}"
        _, schema = ldap.schema.urlfetch(url)
        assert schema is not None, "no schema subentry"
        plain = ldap.initialize(url)
        plain.simple_bind_s(f"cn=app,ou=services,{BASE}", secret)
        shown = set()
        for _, attrs in plain.search_s(BASE, ldap.SCOPE_SUBTREE, "(|(uid=user003@contoso.com)(cn=Staff))", ["*", "+"]):
            shown.update(attrs)
        for name in sorted(shown):
            at = schema.get_obj(ldap.schema.AttributeType, name)
            assert at is not None, f"{name} is not defined in the schema subentry"
            assert at.equality, f"{name} has no EQUALITY rule"
        mail = schema.get_obj(ldap.schema.AttributeType, "mail")
        assert (mail.equality, mail.substr) == ("caseIgnoreIA5Match", "caseIgnoreIA5SubstringsMatch"), mail
        must, may = schema.attribute_types(["inetOrgPerson"])
        assert any("uid" in a.names for a in may.values()), may

        step("python-ldap: compare and a paged search")
        dn = f"uid=user003@contoso.com,ou=people,{BASE}"
        assert plain.compare_s(dn, "mail", b"USER003@contoso.com") is True
        assert plain.compare_s(dn, "mail", b"someone@contoso.com") is False
        assert plain.compare_s(f"cn=Staff,ou=groups,{BASE}", "member", dn.encode()) is True
        page = SimplePagedResultsControl(True, size=50, cookie=b"")
        seen = 0
        while True:
            msgid = plain.search_ext(f"ou=people,{BASE}", ldap.SCOPE_ONELEVEL, "(objectClass=person)",
                                     ["uid"], serverctrls=[page])
            _, data, _, controls = plain.result3(msgid)
            seen += len(data)
            cookie = next(c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType)
            if not cookie:
                break
            page.cookie = cookie
        assert seen == 120, seen
        plain.unbind_s()

        step("writes are refused")
        ok = conn.modify(f"uid=user001@contoso.com,ou=people,{BASE}", {"title": [(ldap3.MODIFY_REPLACE, ["x"])]})
        assert not ok and conn.result["result"] == 53, conn.result
        assert "read-only" in conn.result["message"], conn.result
        conn.unbind()
    except LDAPException as e:
        raise SystemExit(f"LDAP error: {e}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        work.cleanup()
    print("LDAP client tests passed")


if __name__ == "__main__":
    main()
