"""Which operations of the OpenAPI document schemathesis reached with a 2xx, from the status log its
hook wrote (`METHOD PATH STATUS` a line). Exits 1 when an operation answered only 4xx (its handler
past validation never ran) or was never called, unless scripts/schemathesis_unreached.txt lists it
(the operations still waiting for examples or seeded data). A listed one now reached is named,
to be taken off the list.

usage: schemathesis_reach.py OPENAPI_JSON STATUS_LOG UNREACHED_LIST
"""
import json
import sys
from collections import defaultdict


def main(openapi_path, log_path, list_path):
    doc = json.load(open(openapi_path, encoding="utf-8"))
    ops = sorted(
        f"{method.upper()} {path}"
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )
    seen = defaultdict(set)
    for line in open(log_path, encoding="utf-8"):
        method, path, status = line.split()
        seen[f"{method} {path}"].add(int(status) // 100)
    listed = {
        l.split("#")[0].strip()
        for l in open(list_path, encoding="utf-8")
        if l.split("#")[0].strip()
    }
    excluded = {"POST /auth/logout"}  # logs the run's own token out: not run (see schemathesis.sh)
    bad, fixed = [], []
    reached = 0
    for op in ops:
        if op in excluded:
            continue
        ok = 2 in seen.get(op, set())
        reached += ok
        if not ok and op not in listed:
            what = "never called" if op not in seen else "only " + "/".join(f"{c}xx" for c in sorted(seen[op]))
            bad.append(f"{op}: {what}")
        if ok and op in listed:
            fixed.append(op)
    print(f"schemathesis: {reached} of {len(ops) - len(excluded)} operations answered a 2xx; {len(listed)} listed as not yet reached")
    for b in bad:
        print(f"  not reached with a 2xx: {b}")
    for f in fixed:
        print(f"  reached now, take it off scripts/schemathesis_unreached.txt: {f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
