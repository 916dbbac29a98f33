"""Lets schemathesis send generated strings as the CSV bodies of the upload endpoints, and notes the
status class of every answer per operation (SCHEMATHESIS_STATUS_LOG), so that the suite can tell an
operation reached with a 2xx from one that only ever refused its inputs."""
import os

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
