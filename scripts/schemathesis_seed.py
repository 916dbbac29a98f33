"""Seeds the records the schemathesis run addresses, through the API itself: two records of every
collection that can be created (`keep`, for reads, updates and actions; `spare`, for the delete,
so that a delete run before the reads of its path leaves them something to read), and an import.
Prints {collection path: {"keep": [ids], "spare": [ids], "bodies": [keep's, spare's]}} as JSON for
scripts/schemathesis_hooks.py (which makes a record again from its body when the run deleted it).

usage: schemathesis_seed.py BASE_URL TOKEN
"""
import json
import sys
import urllib.error
import urllib.request


class Api:
    def __init__(self, base, token):
        self.base, self.token = base.rstrip("/"), token

    def call(self, method, path, body=None, ctype="application/json"):
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read().decode()
        except urllib.error.HTTPError as e:
            raise SystemExit(f"schemathesis seed: {method} {path} answered {e.code}: {e.read().decode()[:300]}")
        return json.loads(text) if text else None


def main(base, token):
    api = Api(base, token)
    out = {}

    def pair(path, make):
        """Creates two records of `path` from make(n) (n = 0 keep, 1 spare); returns the keep id."""
        bodies = [make(n) for n in range(2)]
        ids = [api.call("POST", path, b)["id"] for b in bodies]
        out[path] = {"keep": [ids[0]], "spare": [ids[1]], "bodies": bodies}
        return ids[0]

    reason = pair("/pause-reasons", lambda n: {"name": f"seed-reason-{n}"})
    campaign = pair("/campaigns", lambda n: {"name": f"seed-campaign-{n}", "mode": "preview"})
    pair("/result-codes", lambda n: {"campaign_id": campaign, "number": 90 + n, "label": f"seed-{n}"})
    group = pair("/dialing-groups", lambda n: {"name": f"seed-group-{n}", "no_answer_pause_reason_id": reason})
    pair("/closed-days", lambda n: {"day": f"2031-01-0{n + 2}", "name": f"seed-{n}"})
    user = pair(
        "/users",
        lambda n: {"login": f"seedop{n}", "display_name": f"Seed {n}", "role": "OP", "password": "seed-Passw0rd-long"},
    )
    pair("/phones", lambda n: {"sip_username": f"seed{n}", "password": "seed-sip-password", "user_id": None})
    pair("/caller-ids", lambda n: {"number": f"0312340{n}00", "label": f"seed-{n}"})
    pair("/custom-fields", lambda n: {"key": f"seed_{n}", "label": f"Seed {n}", "kind": "text"})
    pair("/dnc-numbers", lambda n: {"number": f"0900001000{n}"})
    pair("/inbound-blocks", lambda n: {"number": f"0900002000{n}"})
    pair("/phone-book", lambda n: {"number": f"0900003000{n}", "name": f"Seed {n}"})
    batch = pair("/batches", lambda n: {"campaign_id": campaign, "name": f"seed-batch-{n}", "start_date": "2026-01-01"})
    lst = pair("/lists", lambda n: {"batch_id": batch, "name": f"seed-list-{n}", "allow_duplicates": True})
    pair("/grants", lambda n: {"resource_kind": "list", "resource_id": lst, "user_id": user} if n == 0
         else {"resource_kind": "campaign", "resource_id": campaign, "user_id": user})
    lead = pair("/leads", lambda n: {"list_id": lst, "name": f"Seed {n}", "kana": "シード", "tel": f"0900004000{n}"})
    pair("/lead-numbers", lambda n: {"lead_id": lead, "tel": f"0900005000{n}"})
    pair("/recalls", lambda n: {"lead_id": lead, "due_at": "2031-01-10T10:00:00Z", "note": f"seed-{n}"})
    pair("/call-jobs", lambda n: {"campaign_id": campaign, "dialing_group_id": group, "name": f"seed-job-{n}",
                                  "list_ids": [lst]})
    csv = "name,kana,tel\nSeed Import,シード,09000060001\n"
    imp = api.call("POST", f"/lists/{lst}/imports", csv, "text/csv")
    out["/imports"] = {"keep": [imp["id"]], "spare": []}
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main(*sys.argv[1:3])
