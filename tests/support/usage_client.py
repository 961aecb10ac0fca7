"""A billing integration as an application would write it: usage events built and serialised by the
CloudEvents Python SDK (structured mode, one event and a batch), posted to Gatehouse, then the
tenant's events read back as CSV with Python's csv module, as a spreadsheet import would.

Usage: usage_client.py BASE WRITE_KEY READ_KEY TENANT
Prints one JSON object with every answer, for the Rust test to check.
"""

import csv
import io
import json
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

from cloudevents.conversion import to_dict, to_structured
from cloudevents.http import CloudEvent

base, write_key, read_key, tenant = sys.argv[1:5]
now = datetime.now(timezone.utc)


def event(event_id, quantity, when=now, kind="api.call"):
    attributes = {
        "id": event_id,
        "source": "//billing-app/api",
        "type": kind,
        "subject": tenant,
        "time": when.isoformat(),
    }
    return CloudEvent(attributes, {"quantity": quantity, "endpoint": "=cmd|' /C calc'!A0"})


def post(body, content_type, key=write_key):
    request = urllib.request.Request(
        base + "/v1/usage/events",
        data=body,
        method="POST",
        headers={"content-type": content_type, "authorization": "Bearer " + key},
    )
    try:
        with urllib.request.urlopen(request) as response:
            return {"status": response.status, "body": json.loads(response.read())}
    except urllib.error.HTTPError as error:
        return {"status": error.code, "body": json.loads(error.read())}


answers = {}
headers, body = to_structured(event("single-1", 5))
answers["single"] = post(body, headers["content-type"])
answers["again"] = post(body, headers["content-type"])

batch = [
    event("batch-1", 1),
    event("batch-2", 2, kind="storage.gb"),
    event("batch-3", 3, kind="=1+1"),
    event("batch-bad", 0),
    event("batch-old", 7, when=now - timedelta(days=40)),
    event("batch-ahead", 7, when=now + timedelta(minutes=10)),
]
answers["batch"] = post(json.dumps([to_dict(e) for e in batch]).encode(), "application/cloudevents-batch+json")

# The export serves an event once every transaction older than it has finished (milliseconds,
# unless a long transaction runs elsewhere in the database): poll, as a billing system would.
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    page = urllib.request.Request(
        base + "/v1/usage/events?tenant=" + tenant, headers={"authorization": "Bearer " + read_key}
    )
    with urllib.request.urlopen(page) as response:
        if len(json.loads(response.read())["events"]) >= 4:
            break
    time.sleep(0.05)

request = urllib.request.Request(
    base + "/v1/usage/events?tenant=" + tenant,
    headers={"accept": "text/csv", "authorization": "Bearer " + read_key},
)
with urllib.request.urlopen(request) as response:
    content_type = response.headers["content-type"]
    text = response.read().decode("utf-8")
rows = list(csv.DictReader(io.StringIO(text, newline="")))
answers["csv"] = {"contentType": content_type, "columns": list(rows[0].keys()) if rows else [], "rows": rows}
print(json.dumps(answers))
