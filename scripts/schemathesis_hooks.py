"""Lets schemathesis send generated strings as the CSV bodies of the upload endpoints, and notes the
status class of every answer per operation (SCHEMATHESIS_STATUS_LOG), so that the suite can tell an
operation reached with a 2xx from one that only ever refused its inputs."""
import json
import os
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


@schemathesis.hook
def after_call(context, case, response):
    if _log_path:
        with open(_log_path, "a", encoding="utf-8") as f:
            f.write(f"{case.operation.method.upper()} {case.operation.path} {response.status_code}\n")


# The run's own user (SCHEMATHESIS_KEEP_USER): a generated write to it (disable, password, role)
# would end the run's session and turn every later answer into a 401; such a write goes to a user
# that does not exist instead.
_keep_user = os.environ.get("SCHEMATHESIS_KEEP_USER")


@schemathesis.hook
def before_call(context, case):
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


def _api(method, path, body=None):
    req = urllib.request.Request(
        os.environ["SCHEMATHESIS_BASE_URL"] + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {os.environ['SCHEMATHESIS_TOKEN']}", "Content-Type": "application/json"},
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
