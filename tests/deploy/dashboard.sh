#!/usr/bin/env bash
# The Grafana dashboard is valid JSON in export form, every metric it names is one dialerd
# documents, it covers the panels operators need, and its queries are valid PromQL.
#   dashboard.sh deploy/grafana/dialerd.json docs/operations.md
set -euo pipefail
dashboard=$1
operations=$2

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# python3 is a build dependency already (scripts/setup.sh); it does the JSON work.
timeout 20 python3 - "$dashboard" "$operations" "$dir/rules.yaml" <<'PY'
import json, re, sys

dashboard_path, operations_path, rules_path = sys.argv[1:4]
failures = []

def fail(msg):
    failures.append(msg)
    print("  FAIL: " + msg)

print("check: valid JSON")
with open(dashboard_path) as f:
    text = f.read()
d = json.loads(text)  # raises, and the test fails, on invalid JSON

# The family table of docs/operations.md: | `name` | type | labels | meaning |
documented = {}
with open(operations_path) as f:
    for line in f:
        m = re.match(r"\|\s*`(dialerd_[a-z0-9_]+)`\s*\|\s*(counter|gauge|histogram|summary)\s*\|", line)
        if m:
            documented[m.group(1)] = m.group(2)
print(f"check: every metric is documented ({len(documented)} families in {operations_path})")
if len(documented) < 10:
    fail("found fewer than 10 metric families in the table of docs/operations.md")

used = set(re.findall(r"\bdialerd_[a-z0-9_]+", text))
families = set()
for name in sorted(used):
    family = name
    if name not in documented:
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and documented.get(base) == "histogram":
                family = base
                break
        else:
            fail(f"{name} is not a metric family in docs/operations.md"
                 " (nor a _bucket/_sum/_count series of a documented histogram)")
            continue
    families.add(family)
print("  used: " + ", ".join(sorted(used)))

print("check: export form with a ${DS_PROMETHEUS} datasource input")
inputs = [i for i in d.get("__inputs", []) if i.get("name") == "DS_PROMETHEUS"]
if not inputs or inputs[0].get("pluginId") != "prometheus" or inputs[0].get("type") != "datasource":
    fail("no __inputs entry DS_PROMETHEUS of type datasource, plugin prometheus")
for key in ("title", "uid", "schemaVersion", "panels", "templating", "time"):
    if key not in d:
        fail(f"top-level key {key} missing")
if d.get("id") is not None:
    fail("an export has \"id\": null, so importing creates a dashboard instead of overwriting one")

panels = d.get("panels", [])
ids = [p.get("id") for p in panels]
if len(ids) != len(set(ids)) or None in ids:
    fail("panel ids must be present and unique")
exprs = []
for p in panels:
    if p.get("type") == "row":
        continue
    title = p.get("title", "?")
    if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
        fail(f"panel '{title}': datasource is not ${{DS_PROMETHEUS}}")
    g = p.get("gridPos", {})
    if not all(k in g for k in "hwxy") or g["x"] + g["w"] > 24:
        fail(f"panel '{title}': gridPos missing or wider than 24 columns")
    if not p.get("targets"):
        fail(f"panel '{title}': no queries")
    for t in p.get("targets", []):
        if t.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            fail(f"panel '{title}' query {t.get('refId')}: datasource is not ${{DS_PROMETHEUS}}")
        if not t.get("expr"):
            fail(f"panel '{title}' query {t.get('refId')}: empty expr")
        exprs.append((title, t.get("expr", "")))
for v in d.get("templating", {}).get("list", []):
    if v.get("type") == "query" and v.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
        fail(f"variable {v.get('name')}: datasource is not ${{DS_PROMETHEUS}}")
print(f"  {len(panels)} panels, {len(exprs)} queries")

print("check: the panels operators need are there")
all_exprs = "\n".join(e for _, e in exprs)
needed = {
    "call starts/s by campaign": r"rate\(dialerd_calls_started_total\b",
    "achieved rate": r"dialerd_rate_achieved_calls_per_second\b",
    "target rate": r"dialerd_rate_target_calls_per_second\b",
    "active per trunk": r"dialerd_calls_active\b",
    "capacity per trunk": r"dialerd_trunk_capacity\b",
    "tasks by state": r"by \(state\) \(dialerd_tasks\b",
    "failures by class": r"by \(class\) \(rate\(dialerd_calls_failed_total\b",
    "ended by reason": r"by \(reason\) \(rate\(dialerd_calls_ended_total\b",
    "request latency p50": r"histogram_quantile\(0\.5, [^\n]*dialerd_request_duration_seconds_bucket",
    "request latency p99": r"histogram_quantile\(0\.99, [^\n]*dialerd_request_duration_seconds_bucket",
    "webhooks by result": r"by \([^)]*result[^)]*\) \(rate\(dialerd_webhooks_total\b",
    "store commit latency": r"histogram_quantile\([^\n]*dialerd_store_commit_duration_seconds_bucket",
    "pool connections": r"dialerd_pool_connections\b",
    "Retry-After holds": r"dialerd_retry_after_holds_total\b",
}
for what, pattern in needed.items():
    if not re.search(pattern, all_exprs):
        fail(f"no query for {what} (/{pattern}/)")
for title, e in exprs:
    groupings = [g.replace(" ", "").split(",") for g in re.findall(r"by \(([^)]*)\)", e)]
    if "histogram_quantile" in e and not any("le" in g for g in groupings):
        fail(f"panel '{title}': histogram_quantile without `by (le, ...)`")

# Grafana's variables are not PromQL: give them values, then let promtool parse every query as
# the expression of a recording rule.
with open(rules_path, "w") as f:
    f.write("groups:\n- name: dialerd_dashboard\n  rules:\n")
    for i, (_, e) in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$__interval", "1m")
        e = re.sub(r"\$\{?(instance|campaign|trunk)\}?", ".*", e)
        f.write(f"  - record: dashboard:query_{i}\n    expr: {json.dumps(e)}\n")

if failures:
    print(f"FAIL: {len(failures)} problem(s)")
    sys.exit(1)
PY

if command -v promtool >/dev/null; then
  echo "check: every query parses as PromQL (promtool check rules)"
  if ! timeout 20 promtool check rules "$dir/rules.yaml" >"$dir/out" 2>&1; then
    cat "$dir/out"
    echo "FAIL: promtool refused a query"
    exit 1
  fi
  sed 's/^/  /' "$dir/out"
else
  echo "note: promtool not installed, PromQL syntax not checked (apt-get install prometheus)"
fi
echo "PASS"
