"""Downloads a CSV export and reads it with Python's csv module, as a spreadsheet import would.

Usage: csv_rows.py URL BEARER, or csv_rows.py URL "cookie:NAME=VALUE; …" (a browser's session),
or csv_rows.py --file PATH (a file a browser downloaded).
Prints {"status", "contentType", "columns", "rows"} as JSON (status and type null for a file).
"""

import csv
import io
import json
import sys
import urllib.request

if sys.argv[1] == "--file":
    status, content_type = None, None
    with open(sys.argv[2], encoding="utf-8", newline="") as downloaded:
        text = downloaded.read()
else:
    url, credential = sys.argv[1:3]
    headers = {"accept": "text/csv"}
    if credential.startswith("cookie:"):
        headers["cookie"] = credential[len("cookie:"):]
    else:
        headers["authorization"] = "Bearer " + credential
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request) as response:
        status, content_type = response.status, response.headers["content-type"]
        text = response.read().decode("utf-8")
reader = csv.DictReader(io.StringIO(text, newline=""))
rows = list(reader)
print(json.dumps({"status": status, "contentType": content_type, "columns": reader.fieldnames or [], "rows": rows}))
