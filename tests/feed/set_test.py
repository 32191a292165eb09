"""Security Event Token feeds (RFC 9967) end to end, against the real scimd binary: every token
is verified with PyJWT from PyPI against the keys scimd publishes at /feeds/NAME/jwks.json, as a
receiver's own code would. Covered: tokens pushed per RFC 8935 (content type, claims, the
events of a create, a patch that deactivates, a replace that activates, a membership change,
a delete, a full feed's data), a receiver's RFC 8935 error shown to the operator, a receiver
down past feed_failing_after (activity records, scimd_feed_failing) and back, key rotation
(both keys published, new tokens under the new key), a feed the receiver pulls (RFC 8936:
maxEvents, moreAvailable, ack, setErrs, long poll, read-only tokens, another provider's token
refused), feed_allow_http, and ServiceProviderConfig's securityEvents.

Run by scripts/feed.sh. Usage:
    set_test.py SCIMD_BINARY
"""

import json
import os
import re
import sqlite3
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

from feed_test import Scimd, step, wait_for

PROV = "urn:ietf:params:scim:event:prov:"


class Keys:
    """The feed's published keys, fetched again when a token names a key not seen yet."""

    def __init__(self, url):
        self.url, self.keys = url, {}

    def fetch(self):
        with urllib.request.urlopen(self.url, timeout=10) as r:
            assert r.headers["content-type"] == "application/jwk-set+json", r.headers
            body = json.load(r)
        self.keys = {k["kid"]: jwt.PyJWK.from_dict(k) for k in body["keys"]}
        return body

    def verify(self, token, audience, issuer):
        header = jwt.get_unverified_header(token)
        assert header["typ"] == "secevent+jwt" and header["alg"] == "ES256", header
        if header["kid"] not in self.keys:
            self.fetch()
        key = self.keys[header["kid"]]
        claims = jwt.decode(token, key, algorithms=["ES256"], audience=audience, issuer=issuer,
                            options={"require": ["iss", "iat", "jti", "aud", "events"]})
        assert "sub" not in claims and "exp" not in claims, claims
        assert claims["sub_id"]["format"] == "scim", claims
        return header, claims


class SetReceiver:
    """An RFC 8935 push receiver on loopback: keeps each token it is sent (verified later by
    the test) and answers 202, or what `answers` queues first."""

    def __init__(self, port=0):
        self.tokens, self.answers, self.types = [], [], set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                with receiver.lock:
                    receiver.types.add(self.headers["content-type"])
                    if receiver.answers:
                        status, err = receiver.answers.pop(0)
                        payload = json.dumps({"err": err, "description": "refused by the test"})
                        self.send_response(status)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload.encode())
                        return
                    receiver.tokens.append(body)
                self.send_response(202)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def count(self):
        with self.lock:
            return len(self.tokens)


def main():
    work = tempfile.TemporaryDirectory()
    db = os.path.join(work.name, "scimd.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIMD_")}
    env.update({"SCIMD_ADMIN_LISTEN": "127.0.0.1:0", "SCIMD_FEED_FAILING_AFTER": "1s"})
    scimd = Scimd(db, env)
    for p in ["p", "other"]:
        scimd.cli("provider", "add", p, "--type", "generic")

    def token(provider, *extra):
        out = scimd.cli("token", "create", "--provider", provider, "--valid-for", "1d", *extra)
        return re.search(r"^scimd_\S+$", out.stdout, re.M).group(0)

    writer, reader, stranger = token("p"), token("p", "--read-only"), token("other")
    scimd.start()
    base = f"{scimd.url}/scim/v2/p"

    def send(method, path, body=None, bearer=writer, url=None):
        req = urllib.request.Request(url or f"{base}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {bearer}",
                                              "Content-Type": "application/scim+json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
            return json.loads(text) if text else None

    def patch(rid, path, value, kind="Users"):
        return send("PATCH", f"/{kind}/{rid}", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": path, "value": value}]})

    def feed_records():
        with sqlite3.connect(db) as c:
            return [r[0] for r in c.execute(
                "SELECT action FROM activity WHERE method = 'FEED' ORDER BY seq")]

    try:
        step("a pushed feed of SETs: each change is one token, verified with the published key")
        spc = send("GET", "/ServiceProviderConfig")
        assert "securityEvents" not in spc, "advertised before the provider has a feed of SETs"
        rx = SetReceiver()
        out = scimd.cli("feed", "add", "sets", "--provider", "p", "--format", "set", "--url", rx.url)
        # ServiceProviderConfig now advertises the events of RFC 9967, and no asynchronous
        # requests.
        spc = send("GET", "/ServiceProviderConfig")
        uris = spc["securityEvents"]["eventUris"]
        assert spc["securityEvents"]["asyncRequest"] == "none", spc
        for e in ["create:notice", "create:full", "patch:notice", "put:full", "delete", "deactivate"]:
            assert PROV + e in uris, uris
        assert "whsec_" not in out.stdout, out.stdout
        jwks_url = re.search(r"^(http\S+/feeds/sets/jwks\.json)$", out.stdout, re.M).group(1)
        keys = Keys(jwks_url.replace(re.match(r"http://[^/]+", jwks_url).group(0), scimd.url))
        first = keys.fetch()
        assert len(first["keys"]) == 1 and first["keys"][0]["kty"] == "EC", first

        ann = send("POST", "/Users", {"userName": "ann", "externalId": "e-ann"})["id"]
        patch(ann, "active", False)
        send("PUT", f"/Users/{ann}", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                      "userName": "ann", "externalId": "e-ann", "active": True})
        group = send("POST", "/Groups", {"displayName": "staff", "members": []})["id"]
        send("PATCH", f"/Groups/{group}", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": ann}]}]})
        send("DELETE", f"/Users/{ann}")
        wait_for("6 tokens", lambda: rx.count() >= 6)
        assert rx.types == {"application/secevent+jwt"}, rx.types
        got = [keys.verify(t, rx.url, base)[1] for t in rx.tokens]
        kinds = [sorted(c["events"]) for c in got]
        assert kinds == [
            [PROV + "create:notice"],
            [PROV + "deactivate", PROV + "patch:notice"],
            [PROV + "activate", PROV + "put:notice"],
            [PROV + "create:notice"],
            [PROV + "patch:notice"],
            [PROV + "delete"],
        ], kinds
        assert got[0]["sub_id"] == {"format": "scim", "uri": f"/Users/{ann}", "externalId": "e-ann"}
        assert "userName" in got[0]["events"][PROV + "create:notice"]["attributes"], got[0]
        assert got[0]["events"][PROV + "create:notice"]["version"] == 'W/"1"', got[0]
        assert got[1]["events"][PROV + "patch:notice"]["attributes"] == ["active"], got[1]
        assert got[4]["sub_id"]["uri"] == f"/Groups/{group}", got[4]
        assert got[4]["events"][PROV + "patch:notice"]["attributes"] == ["members"], got[4]
        assert len({c["jti"] for c in got}) == 6 and all(c["txn"] for c in got), got

        step("a receiver refusing tokens (RFC 8935 errors) past feed_failing_after: marked failing "
             "with its error, then it recovers and the token arrives")
        with rx.lock:
            rx.answers = [(400, "jwtAud")] * 4
        send("POST", "/Users", {"userName": "bob"})
        wait_for("7 tokens", lambda: rx.count() >= 7, timeout=60)
        wait_for("the feed recovered", lambda: feed_records() == ["feed failing", "feed recovered"])
        with sqlite3.connect(db) as c:
            detail = c.execute("SELECT detail FROM activity WHERE action = 'feed failing'").fetchone()[0]
        assert "answered 400: jwtAud refused by the test" in detail, detail
        assert keys.verify(rx.tokens[6], rx.url, base)[1]["events"][PROV + "create:notice"]

        step("a receiver down past feed_failing_after: the feed is marked failing, then recovers")
        port = rx.port
        rx.stop()
        send("POST", "/Users", {"userName": "carol"})
        wait_for("a 'feed failing' record", lambda: feed_records().count("feed failing") == 2, timeout=60)
        assert scimd.metric("scimd_feed_failing", "sets") == 1
        assert "failing since" in scimd.cli("feed", "show", "sets").stdout
        back = SetReceiver(port)
        back.tokens = list(rx.tokens)
        rx = back
        wait_for("8 tokens", lambda: rx.count() >= 8, timeout=60)
        wait_for("a 'feed recovered' record", lambda: feed_records() == ["feed failing", "feed recovered"] * 2)
        assert scimd.metric("scimd_feed_failing", "sets") == 0
        with sqlite3.connect(db) as c:
            detail = c.execute("SELECT detail FROM activity WHERE action = 'feed failing' "
                               "ORDER BY seq DESC").fetchone()[0]
        assert "no answer from" in detail, detail

        step("a rotated key: both are published during the overlap, new tokens use the new one")
        old_kid = jwt.get_unverified_header(rx.tokens[-1])["kid"]
        out = scimd.cli("feed", "rotate-secret", "sets", "--overlap", "1h")
        assert "new key" in out.stdout, out.stdout
        published = [k["kid"] for k in keys.fetch()["keys"]]
        assert len(published) == 2 and published[1] == old_kid, published
        send("POST", "/Users", {"userName": "dave"})
        wait_for("9 tokens", lambda: rx.count() >= 9)
        header, claims = keys.verify(rx.tokens[-1], rx.url, base)
        assert header["kid"] == published[0] != old_kid, (header, published)

        step("a full feed sends the resource in data")
        full = SetReceiver()
        scimd.cli("feed", "add", "full", "--provider", "p", "--format", "set", "--full",
                  "--audience", "hr-system", "--url", full.url)
        eve = send("POST", "/Users", {"userName": "eve", "displayName": "Eve"})["id"]
        wait_for("a token", lambda: full.count() >= 1)
        full_keys = Keys(f"{scimd.url}/feeds/full/jwks.json")
        _, claims = full_keys.verify(full.tokens[0], "hr-system", base)
        data = claims["events"][PROV + "create:full"]["data"]
        assert data["id"] == eve and data["displayName"] == "Eve", claims
        scimd.cli("feed", "remove", "full")
        full.stop()

        step("a pulled feed (RFC 8936): maxEvents, moreAvailable, ack, setErrs")
        out = scimd.cli("feed", "add", "pulled", "--provider", "p", "--pull", "--events", "create,delete")
        assert "POST " in out.stdout and "/Feeds/pulled" in out.stdout, out.stdout
        poll_url = f"{base}/Feeds/pulled"
        pull_keys = Keys(f"{scimd.url}/feeds/pulled/jwks.json")

        def poll(body, bearer=reader):
            return send("POST", "", body, bearer=bearer, url=poll_url)

        made = [send("POST", "/Users", {"userName": f"pull{i}"})["id"] for i in range(3)]
        patch(made[0], "displayName", "not wanted")
        first = poll({"maxEvents": 2, "returnImmediately": True})
        assert len(first["sets"]) == 2 and first["moreAvailable"] is True, first
        again = poll({"maxEvents": 2, "returnImmediately": True})
        assert again["sets"].keys() == first["sets"].keys(), "unacknowledged tokens are sent again"
        uris = [pull_keys.verify(t, "pulled", base)[1]["sub_id"]["uri"] for t in first["sets"].values()]
        assert uris == [f"/Users/{m}" for m in made[:2]], uris
        jtis = list(first["sets"])
        second = poll({"ack": jtis[:1], "setErrs": {jtis[1]: {"err": "jwtClaims", "description": "x"}},
                       "returnImmediately": True})
        assert len(second["sets"]) == 1 and second["moreAvailable"] is False, second
        (last_jti, last_token), = second["sets"].items()
        assert pull_keys.verify(last_token, "pulled", base)[1]["sub_id"]["uri"] == f"/Users/{made[2]}"
        done = poll({"ack": [last_jti], "returnImmediately": True})
        assert done == {"sets": {}, "moreAvailable": False}, done

        step("a long poll waits for the next event and answers with it")
        answered = {}

        def wait_poll():
            answered["body"] = poll({"maxEvents": 5})

        t = threading.Thread(target=wait_poll)
        t.start()
        time.sleep(1)
        assert "body" not in answered, "a long poll with nothing to send answered at once"
        late = send("POST", "/Users", {"userName": "late"})["id"]
        t.join(30)
        sets = answered["body"]["sets"]
        assert [pull_keys.verify(v, "pulled", base)[1]["sub_id"]["uri"] for v in sets.values()] == [f"/Users/{late}"]
        poll({"ack": list(sets), "maxEvents": 0})
        assert "0 behind" in scimd.cli("feed", "show", "pulled").stdout

        step("polling needs a token of the feed's provider; bad requests are RFC 8936 errors")
        other_url = f"{scimd.url}/scim/v2/other/Feeds/pulled"
        for bearer, url, status in [(stranger, poll_url, 401), ("scimd_nope_x", poll_url, 401),
                                    (stranger, other_url, 404)]:
            try:
                send("POST", "", {"returnImmediately": True}, bearer=bearer, url=url)
                raise AssertionError("a poll with a wrong token was answered")
            except urllib.error.HTTPError as e:
                assert e.code == status, (bearer, e.code)
        try:
            poll({"maxEvents": -1})
            raise AssertionError("a bad poll was answered")
        except urllib.error.HTTPError as e:
            assert e.code == 400 and json.load(e)["err"] == "invalid_request"
        assert poll({"returnImmediately": True}, bearer=writer)["sets"] == {}

        step("plain http:// to a host beyond loopback only with feed_allow_http")
        bad = scimd.cli("feed", "add", "lan", "--provider", "p", "--url", "http://192.0.2.1/x", ok=False)
        assert bad.returncode != 0 and "feed_allow_http" in bad.stderr, bad.stderr
        env_http = dict(env, SCIMD_FEED_ALLOW_HTTP="on")
        out = Scimd(db, env_http).cli("feed", "add", "lan", "--provider", "p", "--url", "http://192.0.2.1/x")
        assert "added feed lan" in out.stdout, out.stdout
        scimd.cli("feed", "remove", "lan")

        step("once its last feed is removed, a provider's changes write no events")
        for f in ["sets", "pulled"]:
            scimd.cli("feed", "remove", f)
        send("POST", "/Users", {"userName": "after-the-feeds"})
        with sqlite3.connect(db) as c:
            left = c.execute("SELECT (SELECT count(*) FROM activity WHERE feed_seq IS NOT NULL), "
                             "(SELECT count(*) FROM feed_counters)").fetchone()
        assert left == (0, 0), left
        print("sets: all passed", flush=True)
    finally:
        if scimd.proc and scimd.proc.poll() is None:
            scimd.stop()


if __name__ == "__main__":
    main()
