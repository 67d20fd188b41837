"""The evaluator on a hand-computed case, the commands, and the dev set's figures."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from classifier.commands import classify_stream, eval_file, evaluate_file
from classifier.evaluate import Verdict, metrics

DEV = Path(__file__).resolve().parents[1] / "data" / "dev.jsonl"
HOLDOUT = DEV.with_name("holdout.jsonl")
BLIND = DEV.with_name("blind.jsonl")


def _v(relevant: bool, topics: set[str], officials: set[str] = frozenset()) -> Verdict:  # type: ignore[assignment]
    return Verdict(relevant, frozenset(topics), frozenset(officials), frozenset())


def test_metrics_by_hand() -> None:
    gold = [_v(True, {"a", "b"}, {"x"}), _v(False, {"a"}), _v(True, set())]
    pred = [_v(True, {"a"}, {"x"}), _v(True, {"a", "c"}), _v(False, set())]
    m = metrics(gold, pred)
    # topics: a tp=2; b fn=1; c fp=1 → micro P=2/3, R=2/3
    assert m["topics"]["micro"] == {"precision": 0.6667, "recall": 0.6667, "f1": 0.6667}
    assert m["topics"]["per_label"]["a"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "support": 2,
    }
    assert m["topics"]["per_label"]["b"] == {
        "precision": 1.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
    }
    assert m["topics"]["per_label"]["c"] == {
        "precision": 0.0,
        "recall": 1.0,
        "f1": 0.0,
        "support": 0,
    }
    assert m["topics"]["macro"] == {"precision": 0.6667, "recall": 0.6667, "f1": 0.3333}
    assert m["officials"]["micro"]["f1"] == 1.0
    # relevance: tp=1, fp=1, fn=1, right=1/3
    assert m["relevant"] == {"accuracy": 0.3333, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert m["items"] == 3
    assert set(m) == {"topics", "officials", "countries", "relevant", "items"}


def test_classify_stream_reads_text_or_html() -> None:
    lines = [
        {"id": "1", "title": "Border security", "content": "<p>Cambodia &amp; Laos</p>"},
        {"id": "2", "title": "", "summary": "Nothing here."},
    ]
    out = io.StringIO()
    assert classify_stream(io.StringIO("\n".join(json.dumps(x) for x in lines)), out) == 0
    first, second = (json.loads(x) for x in out.getvalue().splitlines())
    assert first["id"] == "1" and first["relevant"] is True
    assert {"topics", "officials", "countries", "organisations", "score", "matches"} <= set(first)
    assert second["topics"] == []


def test_eval_json_shape() -> None:
    out = io.StringIO()
    assert eval_file(DEV, as_json=True, out=out) == 0
    report = json.loads(out.getvalue())
    assert set(report["relevant"]) == {"accuracy", "precision", "recall", "f1"}
    assert set(report["topics"]) == {"micro", "macro", "per_label"}


def test_dev_set_shape() -> None:
    rows = [json.loads(x) for x in DEV.read_text().splitlines() if x.strip()]
    assert len(rows) >= 150
    relevant = sum(r["gold"]["relevant"] for r in rows)
    assert relevant >= len(rows) / 3
    assert len({r["id"] for r in rows}) == len(rows)


# Targets of issue #4 on the dev set, and a floor on the separately written held-out set
# (tests/data/holdout.jsonl, written before the rules were tuned) that shows the rules
# generalise rather than memorise the dev set.
@pytest.fixture(scope="module")
def dev_report() -> dict[str, Any]:
    report, _ = evaluate_file(DEV)
    return report


@pytest.fixture(scope="module")
def holdout_report() -> dict[str, Any]:
    report, _ = evaluate_file(HOLDOUT)
    return report


def test_dev_set_officials_and_relevance_meet_targets(dev_report: dict[str, Any]) -> None:
    assert dev_report["officials"]["micro"]["f1"] >= 0.98
    assert dev_report["relevant"]["f1"] >= 0.95


def test_dev_set_topics_meet_target(dev_report: dict[str, Any]) -> None:
    assert dev_report["topics"]["micro"]["f1"] >= 0.95


def test_holdout_set_shape() -> None:
    rows = [json.loads(x) for x in HOLDOUT.read_text().splitlines() if x.strip()]
    assert len(rows) >= 40
    assert sum(r["gold"]["relevant"] for r in rows) >= len(rows) / 3
    assert len({r["id"] for r in rows}) == len(rows)


def test_holdout_set_floors(holdout_report: dict[str, Any]) -> None:
    assert holdout_report["topics"]["micro"]["f1"] >= 0.95
    assert holdout_report["officials"]["micro"]["f1"] >= 0.98
    assert holdout_report["relevant"]["f1"] >= 0.95


# tests/data/blind.jsonl: 60 items (22 relevant) written on 2026-11-22 from taxonomy.md and
# the seeds alone, by an author who never saw the rules, the dev set or the other held-out
# set. Its first evaluation, before anyone looked at its errors: topics micro-F1 0.898,
# officials 1.0, countries 1.0, relevance F1 0.978. The rules were not tuned on it; these
# floors catch a regression. (Once rules are tuned on its errors it is no longer blind.)
def test_blind_set_floors() -> None:
    report, _ = evaluate_file(BLIND)
    assert report["items"] == 60
    assert report["topics"]["micro"]["f1"] >= 0.89
    assert report["officials"]["micro"]["f1"] >= 0.98
    assert report["countries"]["micro"]["f1"] >= 0.98
    assert report["relevant"]["f1"] >= 0.95
