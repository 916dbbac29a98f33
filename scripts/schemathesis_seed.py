"""Seeds the records the schemathesis run addresses, through the API itself: three records of every
collection that can be created (`keep`, for reads and the run's references; `edit`, for updates and
actions; `spare`, for the delete, so that a delete or an update run before the reads of its path
leaves them their record), an import with a refused row, and a running call job the run's user may
join (its dialing group, the browser phone, business hours all day, holidays open), and a login.
Prints {collection path: {"keep": [id], "edit": [id], "spare": [id], "bodies": [keep's, edit's, spare's]}}
as JSON for scripts/schemathesis_hooks.py (which makes a record again from its body when the run
deleted it).

With --calls, seeds nothing: against `kakeru demo` (a dialer, a simulated carrier and agents) it waits
until calls have left their records and prints the ids of those records, of the demo's leads, pause
reasons, jobs and recalls, of the agents working, and a token of one of them ("agent_token"), whose
campaign it then turns to preview mode (a lead held for that agent is the kept lead).

usage: schemathesis_seed.py [--calls] BASE_URL TOKEN
"""
import datetime
import time
import json
import sys
import urllib.error
import urllib.request


class Api:
    def __init__(self, base, token):
        self.base, self.token = base.rstrip("/"), token

    def call(self, method, path, body=None, ctype="application/json", refused_ok=False):
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
            if refused_ok and e.code == 409:
                print(f"schemathesis seed: {method} {path} refused: {e.read().decode()[:300]}", file=sys.stderr)
                return None
            raise SystemExit(f"schemathesis seed: {method} {path} answered {e.code}: {e.read().decode()[:300]}")
        return json.loads(text) if text else None


KINDS = ("keep", "edit", "spare")


def wait_for_tenant_day(zone):
    """Sleeps past the tenant's midnight when it is after 23:54 there."""
    try:
        from zoneinfo import ZoneInfo

        now = datetime.datetime.now(ZoneInfo(zone))
    except Exception:  # no tz database: the demo tenant's zone is Asia/Tokyo
        now = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=9)))
    if (now.hour, now.minute) >= (23, 54):
        midnight = (now + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
        seconds = (midnight - now).total_seconds()
        print(f"schemathesis seed: waiting {seconds:.0f} s for the tenant's next day", file=sys.stderr)
        time.sleep(seconds)


def main(base, token):
    api = Api(base, token)
    out = {}
    me = api.call("GET", "/me")["id"]

    def seed(path, make):
        """Creates a keep, an edit and a spare record of `path` from make(n); returns the keep id."""
        bodies = [make(n) for n in range(len(KINDS))]
        ids = [api.call("POST", path, b)["id"] for b in bodies]
        out[path] = {kind: [i] for kind, i in zip(KINDS, ids)}
        out[path]["bodies"] = bodies
        return ids[0]

    # Dates in the tenant's zone (Asia/Tokyo) are at most a day ahead of UTC.
    today = datetime.datetime.now(datetime.timezone.utc).date()
    reason = seed("/pause-reasons", lambda n: {"name": f"seed-reason-{n}"})
    campaign = seed("/campaigns", lambda n: {"name": f"seed-campaign-{n}", "mode": "preview",
                                             "business_start": "00:00", "business_end": "23:59"})
    seed("/result-codes", lambda n: {"campaign_id": campaign, "number": 90 + n, "label": f"seed-{n}"})
    group = seed("/dialing-groups", lambda n: {"name": f"seed-group-{n}", "no_answer_pause_reason_id": reason})
    seed("/closed-days", lambda n: {"day": f"2031-01-0{n + 2}", "name": f"seed-{n}"})
    user = seed(
        "/users",
        lambda n: {"login": f"seedop{n}", "display_name": f"Seed {n}", "role": "OP", "password": "seed-Passw0rd-long"},
    )
    seed("/phones", lambda n: {"sip_username": f"seed{n}", "password": "seed-sip-password", "user_id": None})
    seed("/caller-ids", lambda n: {"number": f"0312340{n}00", "label": f"seed-{n}"})
    seed("/custom-fields", lambda n: {"key": f"seed_{n}", "label": f"Seed {n}", "kind": "text"})
    seed("/dnc-numbers", lambda n: {"number": f"0900001000{n}"})
    seed("/inbound-blocks", lambda n: {"number": f"0900002000{n}"})
    seed("/phone-book", lambda n: {"number": f"0900003000{n}", "name": f"Seed {n}"})
    seed("/outside-transfers", lambda n: {"name": f"seed-outside-{n}", "number": f"0900004000{n}"})
    batch = seed("/batches", lambda n: {"campaign_id": campaign, "name": f"seed-batch-{n}",
                                        "start_date": (today - datetime.timedelta(days=1)).isoformat()})
    lst = seed("/lists", lambda n: {"batch_id": batch, "name": f"seed-list-{n}", "allow_duplicates": True})
    seed("/grants", lambda n: [{"resource_kind": "list", "resource_id": lst, "user_id": user},
                               {"resource_kind": "campaign", "resource_id": campaign, "user_id": user},
                               {"resource_kind": "list", "resource_id": lst, "group_id": group}][n])
    lead = seed("/leads", lambda n: {"list_id": lst, "name": f"Seed {n}", "kana": "シード", "tel": f"0900004000{n}"})
    seed("/lead-numbers", lambda n: {"lead_id": lead, "tel": f"0900005000{n}"})
    seed("/recalls", lambda n: {"lead_id": lead, "due_at": "2031-01-10T10:00:00Z", "note": f"seed-{n}"})
    job = seed("/call-jobs", lambda n: {"campaign_id": campaign, "dialing_group_id": group, "name": f"seed-job-{n}",
                                        "list_ids": [lst]})
    # The run's user may join the kept job (POST /agent/session): an agent of its group, with the
    # browser phone (POST /agent/phone), on any day.
    api.call("PUT", f"/dialing-groups/{group}/agents", {"user_ids": [me, user]})
    api.call("PATCH", f"/users/{me}", {"phone_kind": "browser"})
    api.call("PATCH", "/tenant", {"closed_on_national_holidays": False})
    # Business hours end at 23:59 at the latest: a run that would reach the call jobs in the tenant's
    # last minutes of the day waits for the next one (the run reaches them within about 2 minutes).
    wait_for_tenant_day(api.call("GET", "/tenant")["time_zone"])
    api.call("POST", f"/call-jobs/{job}/start", refused_ok=True)
    csv = "name,kana,tel\nSeed Import,シード,09000060001\nSeed Refused,シード,12\n"
    imp = api.call("POST", f"/lists/{lst}/imports", csv, "text/csv")
    out["/imports"] = {"keep": [imp["id"]]}
    # A login the run may make (POST /auth/login): the kept user's, whom the run never edits.
    tenant = api.call("GET", "/tenant")["code"]
    out["login"] = {"tenant": tenant, "login": out["/users"]["bodies"][0]["login"],
                    "password": out["/users"]["bodies"][0]["password"]}
    json.dump(out, sys.stdout)
    print()


def calls(base, token):
    """The records the demo floor's calls left, once there are some (at most 90 s)."""
    api = Api(base, token)
    wanted = ("/call-records", "/recordings", "/wrapup-records")
    deadline = time.monotonic() + 90
    while True:
        found = {path: [r["id"] for r in api.call("GET", f"{path}?limit=20")["items"]] for path in wanted}
        if all(found.values()):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"schemathesis seed: the demo floor left no records in 90 s: {found}")
        time.sleep(1)
    out = {path: {"keep": ids} for path, ids in found.items()}
    for path in ("/leads", "/pause-reasons", "/call-jobs", "/recalls"):
        out[path] = {"keep": [r["id"] for r in api.call("GET", f"{path}?limit=20")["items"]]}
    working = [a for a in api.call("GET", "/agents?limit=50")["items"] if a.get("call_job_id")]
    out["/users"] = {"keep": [a["id"] for a in working]}
    if working:
        out.update(floor(api, base, working))
    json.dump(out, sys.stdout)
    print()


def floor(api, base, working):
    """One simulated agent working the job lends the run its session (a new password, which ends
    the simulated agent's own API session, not its place in the job), taken while it is ready, its
    campaign first turned to preview mode so that no paced call reaches it meanwhile: the agent's
    operations then find it ready (a call it is left on would never end: the simulated customers
    wait for the agent to hang up). The agent holds a lead (the kept lead of the preview
    operations), has a callback assigned (from a recorded call: its audio is served), and the
    run's supervisor a phone account to monitor with. The hooks (scripts/schemathesis_hooks.py)
    set the floor up per operation from what this returns as "floor"."""
    out = {}
    campaign = working[0]["campaign_id"]
    api.call("PATCH", f"/campaigns/{campaign}", {"mode": "preview"})
    deadline = time.monotonic() + 60
    while True:
        ready = [a for a in api.call("GET", "/agents?limit=50")["items"]
                 if a.get("campaign_id") == campaign and a.get("state") == "ready"]
        if ready:
            agent = ready[0]
            break
        if time.monotonic() > deadline:
            raise SystemExit("schemathesis seed: no agent of the demo's campaign got ready within 60 s")
        time.sleep(0.5)
    password = "Seed-Agent-Passw0rd"
    api.call("PATCH", f"/users/{agent['id']}", {"password": password})
    tenant = api.call("GET", "/tenant")["code"]
    token = Api(base, "").call("POST", "/auth/login", {"tenant": tenant, "login": agent["login"], "password": password})["token"]
    out["agent_token"] = token
    held = Api(base, token).call("POST", "/agent/preview", refused_ok=True)
    if held and held.get("lead"):
        out["/leads"] = {"keep": [held["lead"]["lead_id"]]}
    job = api.call("GET", f"/call-jobs/{agent['call_job_id']}")
    leads = api.call("GET", f"/leads?list_id={job['list_ids'][0]}&state=open&limit=40")["items"]
    # A callback from a recorded call, assigned to the agent.
    recorded = [r for r in api.call("GET", "/recordings?limit=50")["items"] if r.get("call_record_id")]
    if recorded:
        cb = api.call("POST", "/callbacks", {"call_id": recorded[0]["call_record_id"],
                                             "assignee_user_id": agent["id"], "memo": "seed"})
        out["/callbacks"] = {"keep": [cb["id"]]}
    me = api.call("GET", "/me")["id"]
    api.call("POST", "/phones", {"sip_username": "seed-supervisor", "password": "seed-sip-password", "user_id": me})
    out["floor"] = {"agent_id": agent["id"], "campaign_id": campaign,
                    "lead_ids": [l["id"] for l in leads if l["id"] not in out.get("/leads", {}).get("keep", [])]}
    return out


if __name__ == "__main__":
    if sys.argv[1] == "--calls":
        calls(*sys.argv[2:4])
    else:
        main(*sys.argv[1:3])
