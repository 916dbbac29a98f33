"""Lets schemathesis send generated strings as the CSV bodies of the upload endpoints, and notes the
status class of every answer per operation (SCHEMATHESIS_STATUS_LOG), so that the suite can tell an
operation reached with a 2xx from one that only ever refused its inputs."""
import json
import os
import time
import urllib.error
import urllib.request

import schemathesis


@schemathesis.serializer("text/csv")
class CsvSerializer:
    def as_requests(self, context, value):
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
        return {"data": data, "headers": {"Content-Type": "text/csv"}}

    def as_werkzeug(self, context, value):
        return self.as_requests(context, value)


_log_path = os.environ.get("SCHEMATHESIS_STATUS_LOG")


# Operations answered with a 2xx in this run (the floor's set-up below stops for them).
_reached = set()


@schemathesis.hook
def after_call(context, case, response):
    if 200 <= response.status_code < 300:
        _reached.add(f"{case.operation.method.upper()} {case.operation.path}")
    if _log_path:
        with open(_log_path, "a", encoding="utf-8") as f:
            f.write(f"{case.operation.method.upper()} {case.operation.path} {response.status_code}\n")
        # Why each 4xx was refused (the error's code and field), to see what an operation lacks.
        if 400 <= response.status_code < 500:
            try:
                err = response.json().get("error") or {}
            except Exception:
                err = {}
            with open(_log_path + ".why", "a", encoding="utf-8") as f:
                f.write(f"{case.operation.method.upper()} {case.operation.path} {response.status_code} "
                        f"{err.get('code')} {err.get('field')}\n")


# The run's own user (SCHEMATHESIS_KEEP_USER): a generated write to it (disable, password, role)
# would end the run's session and turn every later answer into a 401; such a write goes to a user
# that does not exist instead.
_keep_user = os.environ.get("SCHEMATHESIS_KEEP_USER")


@schemathesis.hook
def before_call(context, case):
    _floor_ready_for(case)
    if not _keep_user or case.operation.method.upper() == "GET":
        return
    if case.operation.path.startswith("/users/{id}") and str((case.path_parameters or {}).get("id")) == _keep_user:
        case.path_parameters["id"] = 0


# Records seeded before the run (scripts/schemathesis_seed.py, SCHEMATHESIS_SEED): most generated
# ids of a path's `{id}` and of a body's reference fields become ids of records that exist, so
# that the handlers past the lookup run; every fourth value is left as generated (a missing record
# still gets its 404 or 422). A delete gets the collection's spare record, a read its kept one, any
# other write or action its record to edit; a seeded record that an earlier operation removed (a
# bulk delete) is made again from its body.
_seed_path = os.environ.get("SCHEMATHESIS_SEED")
_seed = json.load(open(_seed_path, encoding="utf-8")) if _seed_path else {}
# Paths whose `{id}` names a record of another collection.
_ALIAS = {"/agents": "/users", "/agent/leads": "/leads", "/agent/callbacks": "/callbacks", "/calls": "/call-records"}
# Reference fields of hand-written bodies that the document does not mark with x-collection.
_REF_FIELDS = {
    "call_job_id": "/call-jobs",
    "lead_id": "/leads",
    "recall_id": "/recalls",
    "reason_id": "/pause-reasons",
    "pause_reason_id": "/pause-reasons",
    "user_id": "/users",
    "user_ids": "/users",
    "assignee_user_id": "/users",
    "list_id": "/lists",
    "campaign_id": "/campaigns",
}


def _ids(collection):
    """The kept seeded ids of `collection` (what a body's reference names)."""
    return (_seed.get(_ALIAS.get(collection, collection)) or {}).get("keep") or []


def _api(method, path, body=None, token=None):
    req = urllib.request.Request(
        os.environ["SCHEMATHESIS_BASE_URL"] + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token or os.environ['SCHEMATHESIS_TOKEN']}",
                 "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


_KINDS = ("keep", "edit", "spare")


def _present(collection, kind):
    """The seeded ids of `collection` of that kind (or the kept ones), each made again if it is gone."""
    collection = _ALIAS.get(collection, collection)
    entry = _seed.get(collection) or {}
    kind = kind if entry.get(kind) else "keep"
    ids = entry.get(kind) or []
    bodies = entry.get("bodies")
    if bodies and os.environ.get("SCHEMATHESIS_BASE_URL"):
        for n, i in enumerate(ids):
            if _api("GET", f"{collection}/{i}")[0] == 404:
                status, made = _api("POST", collection, bodies[_KINDS.index(kind)])
                if status == 201:
                    ids[n] = made["id"]
    return ids


def _existing(value, ids):
    if isinstance(value, bool) or not isinstance(value, int) or not ids or value % 4 == 3:
        return value
    return ids[value % len(ids)]


@schemathesis.hook
def before_generate_path_parameters(context, strategy):
    path = context.operation.path
    if "/{id}" not in path:
        return strategy
    collection = path.split("/{id}")[0]
    method = context.operation.method.upper()
    if method == "DELETE" and path.endswith("/{id}"):
        kind = "spare"
    elif method == "GET":
        kind = "keep"
    else:
        kind = "edit"
    ids = _present(collection, kind)
    if not ids:
        return strategy
    return strategy.map(lambda p: {**p, "id": _existing(p.get("id"), ids)} if isinstance(p, dict) else p)


def _body_schema(operation):
    content = (operation.definition.raw.get("requestBody") or {}).get("content") or {}
    schema = (content.get("application/json") or {}).get("schema") or {}
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = operation.schema.raw_schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def _body_refs(operation):
    refs = {}
    for name, prop in (_body_schema(operation).get("properties") or {}).items():
        collection = prop.get("x-collection") or (prop.get("items") or {}).get("x-collection") or _REF_FIELDS.get(name)
        if collection and _ids(collection):
            refs[name] = _ids(collection)
    return refs


@schemathesis.hook
def before_generate_body(context, strategy):
    if not _seed:
        return strategy
    refs = _body_refs(context.operation)
    if not refs:
        return strategy
    return strategy.map(lambda body: _with_existing(body, refs))


def _with_existing(body, refs):
    if not isinstance(body, dict):
        return body
    body = dict(body)
    for name, ids in refs.items():
        value = body.get(name)
        if isinstance(value, list):
            body[name] = [_existing(v, ids) for v in value]
        elif name in body:
            body[name] = _existing(value, ids)
    return body


# The document's examples (sent first): their reference fields name seeded records too.
@schemathesis.hook
def before_add_examples(context, examples):
    refs = _body_refs(context.operation) if _seed else {}
    for case in examples:
        if refs and isinstance(case.body, dict):
            case.body = _with_existing(case.body, refs)
    # The seeded user's login, first: the one input the document cannot give.
    if _seed.get("login") and context.operation.method.upper() == "POST" and context.operation.path == "/auth/login":
        examples.insert(0, context.operation.make_case(body=dict(_seed["login"]), media_type="application/json"))


# The demo's floor (scripts/schemathesis_seed.py --calls: "floor"): the agent whose session the
# agent pass has, its campaign, a supervisor's token (SCHEMATHESIS_ADMIN_TOKEN). An operation that
# needs the floor in some state gets it set up just before it is sent, through the API, as the
# desktop and the console would (the campaign's mode; the agent hangs up, saves its record and
# goes 待機; a dial for a call to act on; a colleague ready to take a transfer; an agent talking to
# monitor), until the operation has answered a 2xx once, for at most _SETUP_SECONDS an operation.
# The operation itself still gets schemathesis' generated input, only its ids pointed at that
# state, as the seeded records' ids are above.
_floor = _seed.get("floor") or {}
_admin = os.environ.get("SCHEMATHESIS_ADMIN_TOKEN")
_SETUP_SECONDS = 40
_setup_spent = {}
_mode_now = [None]

_MODE_OF = {
    "POST /agent/leads": "dial",
    "POST /agent/dial": "dial",
    "POST /agent/preview": "preview",
    "POST /agent/preview/dial": "preview",
    "POST /agent/preview/skip": "preview",
    "POST /agents/{id}/monitor": "predictive",
}
# Operations that need the agent ready (a dial; the end of the session, which a call would defer),
# and those that name the lead held for it (プレビュー: a dial or a skip ends the hold).
_NEEDS_READY = {"POST /agent/dial", "POST /agent/preview/dial", "POST /agent/callbacks/{id}/dial", "DELETE /agent/session"}
_NEEDS_HELD = {"POST /agent/preview/dial", "POST /agent/preview/skip"}


def _mode(mode):
    """The floor's campaign in `mode` (ダイヤル for a typed number, プレビュー, or the pacer's)."""
    if _mode_now[0] != mode:
        _api("PATCH", f"/campaigns/{_floor['campaign_id']}", {"mode": mode}, token=_admin)
        _mode_now[0] = mode


def _desk():
    status, d = _api("GET", "/agent/desk")
    if status != 200 or not isinstance(d, dict):
        return None, None
    state = d.get("state")
    return (state.get("state") if isinstance(state, dict) else state), d.get("call_id")


def _ready(deadline):
    """The agent 待機 (ready): its call hung up, its wrap-up records saved, then POST /agent/ready."""
    while time.monotonic() < deadline:
        state, call = _desk()
        if state == "ready":
            return True
        if state in ("talking", "hold") and call:
            _api("POST", f"/agent/calls/{call}/hang-up", {})
        elif state != "ringing":  # wrap-up (後処理), paused: the record saved, then 待機
            _, records = _api("GET", f"/wrapup-records?agent_user_id={_floor['agent_id']}&saved=false")
            for r in (records or {}).get("items") or []:
                _api("POST", f"/wrapup-records/{r['id']}/save", {
                    "result": "no_entry", "interlocutor": "self", "memo": "", "state_after": "continue",
                    "next_action": "continue"})
            _api("POST", "/agent/ready", {})
        time.sleep(0.3)
    return False


def _on_call(deadline):
    """The agent's current call, talking: a dial of one of the job's leads when it has none."""
    leads = list(_floor.get("lead_ids") or [])
    dialled = 0.0
    while time.monotonic() < deadline:
        state, call = _desk()
        if call and state in ("talking", "hold"):
            return call
        # A dial rings the customer for up to some 15 s before the agent talks.
        if state != "ringing" and time.monotonic() - dialled > 20 and leads and _ready(deadline):
            _mode("dial")
            _api("POST", "/agent/dial", {"lead_id": leads.pop(0)})
            dialled = time.monotonic()
        time.sleep(0.3)
    return None


def _talking_agent(deadline):
    """An agent of the floor talking with a customer now (other than the run's user)."""
    while time.monotonic() < deadline:
        _, agents = _api("GET", "/agents?limit=50", token=_admin)
        for a in (agents or {}).get("items") or []:
            if a.get("state") == "talking":
                return a["id"]
        time.sleep(0.3)
    return None


def _floor_ready_for(case):
    if not _floor or not _admin:
        return
    op = f"{case.operation.method.upper()} {case.operation.path}"
    if op in _MODE_OF and (op not in _reached or _MODE_OF[op] != "predictive"):
        _mode(_MODE_OF[op])
    spent = _setup_spent.get(op, 0.0)
    if op in _reached or spent >= _SETUP_SECONDS:
        return
    needs_call = op.startswith("POST /agent/calls/{id}/")
    if op not in _NEEDS_READY | _NEEDS_HELD and not needs_call and op != "POST /agents/{id}/monitor":
        return
    started = time.monotonic()
    deadline = started + _SETUP_SECONDS - spent
    try:
        if op in _NEEDS_READY | _NEEDS_HELD:
            if op in _NEEDS_READY:
                _ready(deadline)
            if op in _NEEDS_HELD and isinstance(case.body, dict) and "lead_id" in case.body:
                _, held = _api("POST", "/agent/preview", {})
                if isinstance(held, dict) and held.get("lead"):
                    case.body["lead_id"] = held["lead"]["lead_id"]
        elif needs_call:
            call = _on_call(deadline)
            if call:
                case.path_parameters["id"] = call
            if op.endswith("/transfer") and isinstance(case.body, dict) and "agent_id" in case.body:
                _, presence = _api("GET", "/agent/presence")
                ready = [a["agent_id"] for a in (presence or {}).get("items") or []
                         if (a.get("state") or {}).get("state") == "ready" and a["agent_id"] != _floor["agent_id"]]
                if ready:
                    case.body["agent_id"] = ready[0]
        else:
            agent = _talking_agent(deadline)
            if agent:
                case.path_parameters["id"] = agent
    finally:
        _setup_spent[op] = spent + time.monotonic() - started
