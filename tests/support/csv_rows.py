"""Downloads a CSV export and reads it with Python's csv module, as a spreadsheet import would.

Usage: csv_rows.py URL BEARER
Prints {"status", "contentType", "columns", "rows"} as JSON.
"""

import csv
import io
import json
import sys
import urllib.request

url, bearer = sys.argv[1:3]
request = urllib.request.Request(url, headers={"accept": "text/csv", "authorization": "Bearer " + bearer})
with urllib.request.urlopen(request) as response:
    status, content_type = response.status, response.headers["content-type"]
    text = response.read().decode("utf-8")
reader = csv.DictReader(io.StringIO(text, newline=""))
rows = list(reader)
print(json.dumps({"status": status, "contentType": content_type, "columns": reader.fieldnames or [], "rows": rows}))
