"""A learned model as kaquan evaluates it: gradient-boosted trees kept as plain JSON, walked in Python.

`risk.learning` trains with LightGBM and converts its trees (`Booster.dump_model()`) into this form;
the decision point never loads LightGBM, a pickle or any code: a model is numbers and lists read from
kaquan's own `risk_models` table, checked here node by node before use. A tree node is either a leaf
value (a float) or `[feature index, threshold, missing, default_left, left, right]`, LightGBM's
numerical split: `x <= threshold` goes left; a missing value (null feature) goes the default way
when `missing` is `nan` or `zero` (a zero, too, goes the default way under `zero`), and counts as 0
when `missing` is `none`.
"""

import math
from collections.abc import Sequence
from typing import Any

from kaquan.risk.expressions import Value

MISSING = {"none": 0, "zero": 1, "nan": 2}
ZERO = 1e-35
MAX_DEPTH = 64
MAX_NODES = 200_000

Node = float | list[Any]


class UnloadableModel(ValueError):
    """A stored model that is not the shape kaquan writes: the decision falls back to the rules alone."""


def encode(features: dict[str, Value], names: Sequence[str]) -> list[float]:
    """The model's input row: each name a feature (`ip.orders_1m`) or a one-hot `feature=value`; null → NaN."""
    row: list[float] = []
    for name in names:
        key, one_hot, wanted = name.partition("=")
        value = features.get(key)
        if one_hot:
            row.append(1.0 if value == wanted else 0.0)
        elif isinstance(value, bool | int | float):
            row.append(float(value))
        else:
            row.append(math.nan)
    return row


def _leaf_value(node: Node, row: list[float]) -> float:
    while type(node) is list:
        feature, threshold, missing, default_left, left, right = node
        x = row[feature]
        if x != x:  # NaN: a null feature
            if missing == 0:
                node = left if threshold >= 0.0 else right
                continue
            node = left if default_left else right
            continue
        if missing == 1 and -ZERO <= x <= ZERO:
            node = left if default_left else right
            continue
        node = left if x <= threshold else right
    return node  # type: ignore[return-value]


def _checked(node: Any, width: int, depth: int, seen: list[int]) -> Node:
    seen[0] += 1
    if seen[0] > MAX_NODES or depth > MAX_DEPTH:
        raise UnloadableModel("the trees are larger than any model kaquan trains")
    if isinstance(node, int | float) and not isinstance(node, bool):
        if not math.isfinite(node):
            raise UnloadableModel("a leaf is not a finite number")
        return float(node)
    if not isinstance(node, list) or len(node) != 6:
        raise UnloadableModel("a node is neither a leaf nor a split")
    feature, threshold, missing, default_left, left, right = node
    if type(feature) is not int or not 0 <= feature < width:
        raise UnloadableModel("a split reads a feature the model does not have")
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or math.isnan(threshold):
        raise UnloadableModel("a split's threshold is not a number")
    if missing not in (0, 1, 2) or not isinstance(default_left, bool):
        raise UnloadableModel("a split's missing-value rule is unknown")
    return [
        feature,
        float(threshold),
        missing,
        default_left,
        _checked(left, width, depth + 1, seen),
        _checked(right, width, depth + 1, seen),
    ]


class TreeModel:
    """One stored model, ready to score a decision's features (a few µs per tree)."""

    def __init__(self, version: int, feature_names: Sequence[str], trees: Sequence[Any]) -> None:
        if not feature_names or not all(isinstance(name, str) for name in feature_names):
            raise UnloadableModel("the model names no features")
        if not isinstance(trees, list) or not trees:
            raise UnloadableModel("the model has no trees")
        seen = [0]
        self.version = version
        self.feature_names = tuple(feature_names)
        self._trees = [_checked(tree, len(self.feature_names), 0, seen) for tree in trees]

    def raw(self, row: list[float]) -> float:
        return sum(_leaf_value(tree, row) for tree in self._trees)

    def probability_of_row(self, row: list[float]) -> float:
        raw = self.raw(row)
        return 1.0 / (1.0 + math.exp(-raw)) if raw > -700 else 0.0

    def probability(self, features: dict[str, Value]) -> float:
        """The model's belief, 0–1, that the request is abuse."""
        return self.probability_of_row(encode(features, self.feature_names))
