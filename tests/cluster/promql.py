"""The metric names a PromQL expression reads, and the names a Prometheus registry exports:
enough to check a dashboard and alert rules against the code without a Prometheus (promtool
is not installed here).

An expression is tokenized (strings, numbers and durations, identifiers, punctuation); label
matchers ``{...}``, ranges ``[...]`` and the label lists of ``by``/``without``/``on``/
``ignoring``/``group_left``/``group_right`` are skipped; an identifier followed by ``(`` must
be a PromQL function or aggregation (a typo fails), any other identifier is a metric name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client import CollectorRegistry

AGGREGATIONS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio"})
FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp",
    "floor", "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile",
    "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters",
    "double_exponential_smoothing", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate",
    "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sort_by_label",
    "sort_by_label_desc", "sqrt", "time", "timestamp", "vector", "year", "avg_over_time",
    "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
    "present_over_time", "mad_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad", "pi", "info"}) | AGGREGATIONS
LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"bool", "and", "or", "unless", "offset", "atan2", "inf", "nan",
                      "start", "end"}) | LABEL_LISTS

_TOKEN = re.compile(r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)
  | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<space>\s+)
  | (?P<other>.)""", re.VERBOSE | re.DOTALL)
_CLOSING = {"{": "}", "[": "]", "(": ")"}


def tokens(expr: str) -> list[tuple[str, str]]:
    """(kind, text) of every token but blanks; ``$variables`` of Grafana are names too."""
    found = []
    for match in _TOKEN.finditer(expr.replace("$", "")):
        kind = match.lastgroup
        if kind != "space":
            found.append((kind or "other", match.group()))
    return found


def balanced(expr: str) -> bool:
    """Brackets of every kind close in order (outside strings)."""
    stack: list[str] = []
    for kind, text in tokens(expr):
        if kind != "other":
            continue
        if text in _CLOSING:
            stack.append(_CLOSING[text])
        elif text in _CLOSING.values() and (not stack or stack.pop() != text):
            return False
    return not stack


def _skip_group(toks: list[tuple[str, str]], at: int) -> int:
    """Index past the bracketed group opening at ``at``."""
    closing, depth = _CLOSING[toks[at][1]], 0
    for index in range(at, len(toks)):
        text = toks[index][1]
        if text == toks[at][1]:
            depth += 1
        elif text == closing:
            depth -= 1
            if depth == 0:
                return index + 1
    raise ValueError("unbalanced brackets")


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` reads; ``ValueError`` for a call of an unknown function."""
    toks, names, at = tokens(expr), set(), 0
    while at < len(toks):
        kind, text = toks[at]
        following = toks[at + 1][1] if at + 1 < len(toks) else ""
        if text in ("{", "["):
            at = _skip_group(toks, at)
            continue
        if kind == "name":
            if text in LABEL_LISTS and following == "(":
                at = _skip_group(toks, at + 1)
                continue
            if following == "(" and text not in KEYWORDS:
                if text not in FUNCTIONS:
                    raise ValueError(f"{text}(...) is no PromQL function, in {expr!r}")
            elif text not in KEYWORDS and text not in FUNCTIONS:
                names.add(text)
        at += 1
    return names


def exported_names(registry: CollectorRegistry) -> set[str]:
    """What Prometheus sees of a registry's families: counters as ``_total``, histograms as
    ``_bucket``/``_sum``/``_count`` (and ``_created`` for both, as prometheus_client
    renders), gauges as they are."""
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}
    return {family.name + suffix for family in registry.collect()
            for suffix in suffixes.get(family.type, ("",))}


def ray_exported_names(metrics: Iterable[tuple[str, str]]) -> set[str]:
    """What Ray's metrics agent (OpenTelemetry's Prometheus exporter, Ray 2.60) exports for
    ``(name, kind)`` recorded with ``ray.util.metrics``: ``ray_`` first, ``_total`` after a
    counter, ``_bucket``/``_sum``/``_count`` after a histogram."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum",
                                                                      "_count")}
    return {f"ray_{name}{suffix}" for name, kind in metrics for suffix in suffixes[kind]}
