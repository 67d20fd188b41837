"""Evaluation: classifier results against gold labels → precision, recall, F1 (pure).

Owns: the metrics of ``newsmon eval`` and their JSON shape::

    {"topics"|"officials"|"countries": {"micro": {"precision", "recall", "f1"},
                                        "macro": {...},
                                        "per_label": {id: {..., "support"}}},
     "relevant": {"accuracy", "precision", "recall", "f1"}, "items": N}

Micro averages pool every (item, label) decision of a kind; macro averages the per-label
figures over the labels that occur in gold or in predictions. A ratio with a zero
denominator is 1.0 when nothing was expected or predicted (nothing to get wrong) for
precision/recall, and F1 follows from them.

Must not: read files or classify (commands.py does both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("topics", "officials", "countries")


@dataclass(frozen=True, slots=True)
class Verdict:
    """One item's gold or predicted labels."""

    relevant: bool
    topics: frozenset[str]
    officials: frozenset[str]
    countries: frozenset[str]

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(
            relevant=bool(data.get("relevant", False)),
            topics=frozenset(data.get("topics", ())),
            officials=frozenset(data.get("officials", ())),
            countries=frozenset(data.get("countries", ())),
        )

    def labels(self, kind: str) -> frozenset[str]:
        value: frozenset[str] = getattr(self, kind)
        return value


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def _kind(gold: Sequence[Verdict], pred: Sequence[Verdict], kind: str) -> dict[str, Any]:
    counts: dict[str, list[int]] = {}  # label → [tp, fp, fn]
    for g, p in zip(gold, pred, strict=True):
        gl, pl = g.labels(kind), p.labels(kind)
        for label in gl | pl:
            c = counts.setdefault(label, [0, 0, 0])
            c[0] += label in gl and label in pl
            c[1] += label in pl and label not in gl
            c[2] += label in gl and label not in pl
    per_label = {label: {**_prf(*c), "support": c[0] + c[2]} for label, c in sorted(counts.items())}
    tp, fp, fn = (sum(c[i] for c in counts.values()) for i in range(3))
    n = len(per_label)
    macro = {
        key: round(sum(m[key] for m in per_label.values()) / n, 4) if n else 1.0
        for key in ("precision", "recall", "f1")
    }
    return {"micro": _prf(tp, fp, fn), "macro": macro, "per_label": per_label}


def metrics(gold: Sequence[Verdict], pred: Sequence[Verdict]) -> dict[str, Any]:
    """All metrics for items given in the same order in ``gold`` and ``pred``."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold verdicts but {len(pred)} predictions")
    out: dict[str, Any] = {kind: _kind(gold, pred, kind) for kind in KINDS}
    tp = sum(g.relevant and p.relevant for g, p in zip(gold, pred, strict=True))
    fp = sum(p.relevant and not g.relevant for g, p in zip(gold, pred, strict=True))
    fn = sum(g.relevant and not p.relevant for g, p in zip(gold, pred, strict=True))
    right = sum(g.relevant == p.relevant for g, p in zip(gold, pred, strict=True))
    out["relevant"] = {
        "accuracy": round(right / len(gold), 4) if gold else 1.0,
        **_prf(tp, fp, fn),
    }
    out["items"] = len(gold)
    return out


def errors(gold: Verdict, pred: Verdict) -> list[str]:
    """Human-readable differences: ``+kind:label`` predicted wrongly, ``-kind:label`` missed."""
    out = []
    if gold.relevant != pred.relevant:
        out.append(f"{'+' if pred.relevant else '-'}relevant")
    for kind in KINDS:
        out += [f"+{kind}:{x}" for x in sorted(pred.labels(kind) - gold.labels(kind))]
        out += [f"-{kind}:{x}" for x in sorted(gold.labels(kind) - pred.labels(kind))]
    return out


def error_weight(gold: Verdict, pred: Verdict) -> int:
    """How bad an item's errors are: a relevance error counts 5, a topic or official 2."""
    diff = errors(gold, pred)
    return sum(
        5 if d.endswith("relevant") else 1 if ":" in d and d[1:].startswith("countries") else 2
        for d in diff
    )
