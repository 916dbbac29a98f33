"""Lets schemathesis send generated strings as the CSV bodies of the upload endpoints."""
import schemathesis


@schemathesis.serializer("text/csv")
class CsvSerializer:
    def as_requests(self, context, value):
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
        return {"data": data, "headers": {"Content-Type": "text/csv"}}

    def as_werkzeug(self, context, value):
        return self.as_requests(context, value)
