"""Seeds the Python peer of bench/run.sh --peer (PyPI scim2-server, in memory) over SCIM.

The peer gets the same data as scimd's seeder writes straight into its database: N Entra-like
users (benches/common/users.rs builds the same bodies), G groups of S of them and one big group
of users of its own, sent as SCIM Bulk requests of 1,000 operations. Writes what bench/load.lua
reads into --out: token, token_id, user_ids (one id per line, all lines the same width),
small_group, big_group.

    python bench/peer.py --url http://127.0.0.1:8080/bench --token T --out DIR --users 10000
"""

import argparse
import json
import os
import urllib.request

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def entra_like_user(i):
    return {
        "schemas": [CORE, ENTERPRISE],
        "externalId": f"{i:08x}-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": f"user{i}@contoso.com",
        "active": i % 10 != 0,
        "displayName": f"User {i} Smith",
        "emails": [
            {"primary": True, "type": "work", "value": f"user{i}@contoso.com"},
            {"type": "home", "value": f"u{i}@home.example"},
        ],
        "name": {"givenName": "User", "familyName": f"Smith{i}"},
        "phoneNumbers": [{"type": "mobile", "value": f"+31 6 {i:08}"}],
        ENTERPRISE: {"department": f"Dept {i % 50}", "employeeNumber": f"{i}"},
    }


def send(url, token, method, body):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.load(response)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the peer's SCIM base URL")
    parser.add_argument("--token", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--group-size", type=int, default=100)
    parser.add_argument("--big-group", type=int, default=0)
    args = parser.parse_args()

    # As scimd's seeder: the big group has users of its own beyond the N that are picked from.
    total = args.users + args.big_group
    ids = []
    for start in range(0, total, 1000):
        operations = [
            {"method": "POST", "path": "/Users", "bulkId": f"u{i}", "data": entra_like_user(i)}
            for i in range(start, min(start + 1000, total))
        ]
        answer = send(f"{args.url}/Bulk", args.token, "POST", {"schemas": [BULK], "Operations": operations})
        for op in answer["Operations"]:
            if str(op.get("status")) != "201":
                raise SystemExit(f"peer refused a user: {op}")
            ids.append(op["location"].rsplit("/", 1)[1])

    specs = [(f"Group {g}", args.group_size) for g in range(args.groups)]
    if args.big_group > 0:
        specs.append(("Big group", args.big_group))
    group_ids = []
    for g, (name, size) in enumerate(specs):
        if g == args.groups:
            members = [{"value": i} for i in ids[args.users:]]
        else:
            members = [{"value": ids[(g * size + k) % args.users]} for k in range(size)]
        made = send(f"{args.url}/Groups", args.token, "POST",
                    {"schemas": [GROUP], "displayName": name, "members": members})
        group_ids.append(made["id"])

    width = max(len(i) for i in ids)
    if any(len(i) != width for i in ids):
        raise SystemExit("the peer's ids differ in length; bench/load.lua needs one width")
    files = {
        "token": args.token,
        "token_id": "peer",
        "user_ids": "".join(f"{i}\n" for i in ids[: args.users]),
        "small_group": group_ids[0] if group_ids else "",
        "big_group": group_ids[-1] if args.big_group > 0 else "",
    }
    for name, text in files.items():
        with open(os.path.join(args.out, name), "w") as f:
            f.write(text)
    print(f"peer seeded: {total} users, {len(group_ids)} groups")


if __name__ == "__main__":
    main()
