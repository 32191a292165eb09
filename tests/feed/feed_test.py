"""The change feed end to end, against the real scimd binary: a receiver on loopback checks
every message with the Standard Webhooks library from PyPI (standardwebhooks), as a
receiver's own code would, and the test provisions over SCIM and manages the feed with the
command line. Covered: delivery in commit order with signatures the library accepts, a
filter of operations, a receiver that is down and then back (it catches up in order), 429
with Retry-After honoured, pause and resume, replay from an event, a rotated secret (both
sign during the overlap), and SIGKILL in the middle of a burst of creates (after a restart
every acknowledged create arrives, each event names a committed change, per-resource order
holds).

Run by scripts/feed.sh, which installs the library itself. Usage:
    feed_test.py SCIMD_BINARY
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

BIN = sys.argv[1]


def step(name):
    print(f"-- {name}", flush=True)


def wait_for(what, check, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Receiver:
    """A webhook receiver on loopback: verifies each message with the library and keeps the
    events of those it takes. `answers` queues statuses (and Retry-After values) to give
    before taking messages again."""

    def __init__(self, secret, port=0):
        self.secrets = [secret]
        self.events = []
        self.messages = []
        self.refused = []
        self.answers = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    verified = None
                    for s in receiver.secrets:
                        try:
                            verified = Webhook(s).verify(body, headers)
                            break
                        except WebhookVerificationError:
                            continue
                    if verified is None:
                        receiver.refused.append(("bad signature", time.monotonic()))
                        self.send_response(400)
                        self.end_headers()
                        return
                    if receiver.answers:
                        status, retry_after = receiver.answers.pop(0)
                        receiver.refused.append((status, time.monotonic()))
                        self.send_response(status)
                        if retry_after is not None:
                            self.send_header("Retry-After", str(retry_after))
                        self.end_headers()
                        return
                    receiver.messages.append((headers["webhook-id"], time.monotonic()))
                    assert verified["type"] == "scim.events", verified
                    receiver.events.extend(verified["data"]["events"])
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def seqs(self):
        with self.lock:
            return [e["seq"] for e in self.events]

    def count(self):
        with self.lock:
            return len(self.events)


class Scimd:
    def __init__(self, db, env):
        self.db, self.env = db, env
        self.proc = None

    def cli(self, *args, ok=True):
        out = subprocess.run([BIN, "--database", self.db, *args], env=self.env,
                             capture_output=True, text=True)
        if ok:
            assert out.returncode == 0, out.stderr
        return out

    def start(self):
        self.proc = subprocess.Popen([BIN, "--database", self.db, "serve", "--listen", "127.0.0.1:0"],
                                     env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        found = {}
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                for key, pattern in [("url", r"listening on (\S+)"),
                                     ("admin", r"admin console and /metrics on (http://[0-9.:]+)")]:
                    m = re.search(pattern, line)
                    if m:
                        found[key] = m.group(1)
                if len(found) == 2:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        assert ready.wait(30), "the server did not start"
        self.url, self.admin = found["url"], found["admin"]

    def metric(self, name, feed):
        with urllib.request.urlopen(f"{self.admin}/metrics", timeout=10) as r:
            text = r.read().decode()
        m = re.search(rf'^{name}{{feed="{feed}"}} (\S+)$', text, re.M)
        return float(m.group(1)) if m else None

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(30)


def main():
    work = tempfile.TemporaryDirectory()
    db = os.path.join(work.name, "scimd.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIMD_")}
    # Failing at the first failed delivery, so `feed show` says so at once.
    env.update({"SCIMD_ADMIN_LISTEN": "127.0.0.1:0", "SCIMD_FEED_FAILING_AFTER": "0s"})
    scimd = Scimd(db, env)
    scimd.cli("provider", "add", "p", "--type", "generic")
    token = re.search(r"^scimd_\S+$", scimd.cli("token", "create", "--provider", "p",
                                                 "--valid-for", "1d").stdout, re.M).group(0)
    scimd.start()

    def send(method, path, body=None):
        req = urllib.request.Request(f"{scimd.url}/scim/v2/p{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/scim+json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return json.loads(text) if text else None

    def user(name):
        return send("POST", "/Users", {"userName": name, "externalId": f"ext-{name}"})["id"]

    try:
        step("a feed added from the command line prints its secret once")
        receiver = Receiver("")
        out = scimd.cli("feed", "add", "hooks", "--provider", "p",
                        "--url", f"http://127.0.0.1:{receiver.port}/hook")
        secret = re.search(r"^whsec_\S+$", out.stdout, re.M).group(0)
        receiver.secrets = [secret]
        bad = scimd.cli("feed", "add", "x", "--provider", "p", "--url", "http://example.com/", ok=False)
        assert bad.returncode != 0 and "HTTPS" in bad.stderr, bad.stderr
        bad = scimd.cli("feed", "add", "x", "--provider", "p", "--url", "https://example.com/",
                        "--events", "update", ok=False)
        assert "not an operation" in bad.stderr, bad.stderr

        step("changes arrive in commit order, signed as the library checks")
        ids = [user(f"u{i}") for i in range(20)]
        send("PATCH", f"/Users/{ids[0]}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                            "Operations": [{"op": "replace", "path": "active", "value": False}]})
        send("PATCH", f"/Users/{ids[1]}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                            "Operations": [{"op": "replace", "path": "displayName", "value": "One"}]})
        send("DELETE", f"/Users/{ids[2]}")
        wait_for("23 events", lambda: receiver.count() >= 23)
        assert receiver.seqs() == list(range(1, 24)), receiver.seqs()
        ev = receiver.events
        assert [e["operation"] for e in ev[:20]] == ["create"] * 20
        assert ev[0]["id"] == ids[0] and ev[0]["externalId"] == "ext-u0" and ev[0]["resourceType"] == "User"
        assert ev[20]["operation"] == "deactivate" and ev[20]["id"] == ids[0], ev[20]
        assert ev[21]["operation"] == "patch" and "displayName" in ev[21]["changed"], ev[21]
        assert ev[22]["operation"] == "delete" and ev[22]["id"] == ids[2], ev[22]
        assert not receiver.refused, receiver.refused

        step("a receiver that is down, then back, gets what it missed, in order")
        port = receiver.port
        receiver.stop()
        more = [user(f"down{i}") for i in range(10)]
        wait_for("a lag of 10 events in /metrics",
                 lambda: (scimd.metric("scimd_feed_lag_events", "hooks") or 0) >= 10)
        show = scimd.cli("feed", "show", "hooks").stdout
        assert "failing since" in show and "last error" in show and "10 behind" in show, show
        back = Receiver(secret, port)
        back.events = list(receiver.events)
        receiver = back
        wait_for("33 events", lambda: receiver.count() >= 33, timeout=60)
        assert receiver.seqs() == list(range(1, 34)), receiver.seqs()
        assert [e["id"] for e in receiver.events[23:]] == more
        wait_for("the feed delivering again",
                 lambda: "delivering" in scimd.cli("feed", "show", "hooks").stdout)
        wait_for("no lag in /metrics", lambda: scimd.metric("scimd_feed_lag_events", "hooks") == 0)

        step("429 with Retry-After: the next try waits as long")
        with receiver.lock:
            receiver.answers = [(429, 2)]
        user("throttled")
        wait_for("34 events", lambda: receiver.count() >= 34)
        refused_at = receiver.refused[-1][1]
        taken_at = receiver.messages[-1][1]
        assert taken_at - refused_at >= 1.9, (refused_at, taken_at)

        step("pause: nothing is sent; resume: it all arrives")
        scimd.cli("feed", "pause", "hooks")
        time.sleep(0.6)
        paused = [user(f"paused{i}") for i in range(3)]
        time.sleep(1.5)
        assert receiver.count() == 34, receiver.count()
        scimd.cli("feed", "resume", "hooks")
        wait_for("37 events", lambda: receiver.count() >= 37)
        assert [e["id"] for e in receiver.events[34:]] == paused

        step("replay from an event delivers the same events again")
        bad = scimd.cli("feed", "replay", "hooks", "--from", "999", ok=False)
        assert bad.returncode != 0 and "events 1 to 37 are kept" in bad.stderr, bad.stderr
        scimd.cli("feed", "replay", "hooks", "--from", "30")
        wait_for("45 events", lambda: receiver.count() >= 45)
        assert receiver.seqs()[37:] == list(range(30, 38)), receiver.seqs()[37:]
        assert receiver.events[37] == receiver.events[29], (receiver.events[37], receiver.events[29])

        step("a rotated secret: both sign during the overlap")
        out = scimd.cli("feed", "rotate-secret", "hooks", "--overlap", "1h")
        new_secret = re.search(r"^whsec_\S+$", out.stdout, re.M).group(0)
        assert new_secret != secret
        user("rotated-old")
        wait_for("46 events", lambda: receiver.count() >= 46)
        with receiver.lock:
            receiver.secrets = [new_secret]
        user("rotated-new")
        wait_for("47 events", lambda: receiver.count() >= 47)
        assert not any(r[0] == "bad signature" for r in receiver.refused), receiver.refused

        step("only the operations asked for")
        filtered = Receiver("")
        out = scimd.cli("feed", "add", "deletes", "--provider", "p", "--events", "delete",
                        "--url", f"http://127.0.0.1:{filtered.port}/hook")
        filtered.secrets = [re.search(r"^whsec_\S+$", out.stdout, re.M).group(0)]
        gone = user("to-delete")
        send("DELETE", f"/Users/{gone}")
        wait_for("the delete", lambda: filtered.count() >= 1)
        time.sleep(0.5)
        assert [(e["operation"], e["id"]) for e in filtered.events] == [("delete", gone)], filtered.events
        scimd.cli("feed", "remove", "deletes")
        filtered.stop()

        step("SIGKILL in a burst of creates: every acknowledged create arrives after a restart")
        wait_for("the feed caught up", lambda: receiver.count() >= 49)
        acked = []
        stop = threading.Event()

        def burst(w):
            n = 0
            while not stop.is_set():
                try:
                    acked.append(user(f"burst{w}-{n}"))
                except (urllib.error.URLError, ConnectionError, OSError):
                    return
                n += 1

        threads = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        wait_for("some creates", lambda: len(acked) >= 40)
        scimd.stop(signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join()
        scimd.start()
        with sqlite3.connect(db) as c:
            # The provider's last event number: its newest event kept (the counter row holds
            # it only as of the last pruning).
            # Events are the activity records of changes while they carry a number.
            last = c.execute("SELECT max(feed_seq) FROM activity").fetchone()[0]
            stored = {r[0] for r in c.execute("SELECT id FROM resources")}
        wait_for(f"events up to {last}", lambda: receiver.seqs() and max(receiver.seqs()) >= last, timeout=60)
        seen = {e["id"] for e in receiver.events}
        missing = [i for i in acked if i not in seen]
        assert not missing, f"{len(missing)} acknowledged creates never arrived"
        deleted = {e["id"] for e in receiver.events if e["operation"] == "delete"}
        assert all(e["id"] in stored or e["id"] in deleted for e in receiver.events), "an event of no committed change"
        # At least once: a message may come again after the kill, never out of order for one
        # resource.
        for rid in acked:
            versions = [int(e["version"].strip('W/"')) for e in receiver.events if e["id"] == rid]
            assert versions == sorted(versions), (rid, versions)
        firsts = {}
        for e in receiver.events:
            firsts.setdefault(e["seq"], e)
            assert firsts[e["seq"]] == e, "one event number, two events"
        print(f"   {len(acked)} creates acknowledged before the kill, all delivered; "
              f"{receiver.count() - len(firsts)} delivered twice")
        print("feed: all passed", flush=True)
    finally:
        if scimd.proc and scimd.proc.poll() is None:
            scimd.stop()


if __name__ == "__main__":
    main()
