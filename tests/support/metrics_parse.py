"""Parses an OpenMetrics text file with the reference parser (prometheus_client) and prints
every sample as one JSON object: {"name{k=v,...}": value}. A malformed exposition fails."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
out = {}
for family in text_string_to_metric_families(text):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
