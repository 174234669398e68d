"""Reading what handlers print: JSON log lines and the metrics (CloudWatch EMF) among them."""

import json
from typing import Any


def json_lines(out: str) -> list[dict[str, Any]]:
    """The JSON objects among printed lines.

    Threads of one process may print a record before another's newline, so a line can hold two.
    """
    decoder = json.JSONDecoder()
    found = []
    for line in out.splitlines():
        start = line.find("{")
        while start != -1:
            try:
                value, end = decoder.raw_decode(line, start)
            except ValueError:
                start = line.find("{", start + 1)
                continue
            found.append(value)
            start = line.find("{", end)
    return found


def metrics_of(lines: list[dict[str, Any]], function: str) -> dict[str, float]:
    """Every metric value published for one function (EMF lines), by metric name."""
    found: dict[str, float] = {}
    for line in lines:
        if "_aws" in line and line.get("function_name") == function:
            for metric in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                found[metric["Name"]] = sum(line[metric["Name"]])
    return found
