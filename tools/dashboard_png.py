#!/usr/bin/env python3
"""Draw a Grafana dashboard's panels from a Prometheus server into a PNG.

Each panel's targets are run as range queries over the last --seconds (the
same PromQL as in the JSON, with Grafana's variables replaced: $job by .*,
$__rate_interval by --rate), and drawn where the panel's gridPos puts it.
A query Prometheus refuses makes the run fail, so the dashboard's queries
are checked against a real parser on the way. Needs python3-matplotlib.
Used by tools/dashboard-png.sh.
"""

import argparse
import json
import re
import sys
import time
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from datetime import datetime, timezone  # noqa: E402


def query_range(prom, expr, start, end, step):
    qs = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    try:
        with urllib.request.urlopen(f"{prom}/api/v1/query_range?{qs}", timeout=30) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        raise SystemExit(f"dashboard_png: Prometheus refused {expr!r}: {body.get('error')}")
    return body["data"]["result"]


def legend(fmt, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()


UNITS = {"s": "seconds", "reqps": "requests/s", "short": ""}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--rate", default="10s", help="what $__rate_interval becomes")
    ap.add_argument("--out", required=True)
    opts = ap.parse_args()
    with open(opts.dashboard, encoding="utf-8") as f:
        dash = json.load(f)
    end = time.time()
    start = end - opts.seconds
    step = max(2, opts.seconds // 120)
    panels = dash["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(16, rows * 0.42 + 1.2), dpi=100, facecolor="#181b1f")
    fig.suptitle(f"{dash['title']} - local demo, last {opts.seconds} s "
                 f"(Prometheus, the dashboard's queries)", color="#d8d9da", fontsize=14)
    grid = fig.add_gridspec(rows, 24, hspace=2.4, wspace=1.2, top=1 - 0.9 / (rows * 0.42 + 1.2))
    total = 0
    for p in panels:
        g = p["gridPos"]
        ax = fig.add_subplot(grid[g["y"]:g["y"] + g["h"], g["x"]:g["x"] + g["w"]])
        ax.set_facecolor("#111217")
        ax.set_title(p["title"], color="#d8d9da", fontsize=11, loc="left")
        ax.tick_params(colors="#9fa7b3", labelsize=8)
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        ax.grid(color="#2c3235", linewidth=0.6)
        unit = UNITS.get(get_unit(p), get_unit(p))
        if unit:
            ax.set_ylabel(unit, color="#9fa7b3", fontsize=8)
        for t in p["targets"]:
            expr = t["expr"].replace("$__rate_interval", opts.rate).replace("$job", ".*")
            for series in query_range(opts.prometheus, expr, start, end, step):
                xs = [datetime.fromtimestamp(float(v[0]), tz=timezone.utc) for v in series["values"]]
                ys = [float(v[1]) for v in series["values"]]
                ax.plot(xs, ys, linewidth=1.4, label=legend(t.get("legendFormat", ""),
                                                              series["metric"]))
                total += 1
        top = max((max(line.get_ydata(), default=0) for line in ax.lines), default=0)
        if top > 200:  # rates of very different sizes: keep the small ones visible
            ax.set_yscale("symlog", linthresh=1)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        if ax.lines:
            ax.legend(fontsize=7, loc="upper left", facecolor="#181b1f", edgecolor="#2c3235",
                      labelcolor="#d8d9da", ncol=2)
        else:
            ax.text(0.5, 0.5, "no data", color="#9fa7b3", ha="center", va="center",
                    transform=ax.transAxes)
    fig.savefig(opts.out, facecolor=fig.get_facecolor())
    print(f"dashboard_png: {len(panels)} panels, {total} series")
    return 0


def get_unit(panel):
    return panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")


if __name__ == "__main__":
    sys.exit(main())
