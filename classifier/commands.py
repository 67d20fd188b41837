"""Command functions behind ``newsmon classify``, ``newsmon eval`` and ``newsmon reclassify``.

Owns: reading JSON Lines items, writing results, printing evaluation reports, and walking
the store to re-publish items after a rules change. Must not: parse arguments (the runner's
CLI does) or decide labels (the engine does).
"""

from __future__ import annotations

import html
import json
import re
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from classifier.engine import Classifier
from classifier.evaluate import KINDS, Verdict, error_weight, errors, metrics
from classifier.lexicon import Lexicon, load_lexicon
from core import keys
from core.bus import Bus
from core.events import ItemUpdated
from core.models import Labels
from core.store import ItemQuery, ItemStore

_TAG = re.compile(r"<[^>]+>")
_BLOCK = re.compile(r"</?(p|div|br|li|h[1-6]|tr|blockquote)\b[^>]*>", re.IGNORECASE)
WORST = 10


def _text(value: object) -> str:
    """Plain text of a field given as text or HTML (tags dropped, entities decoded)."""
    if not isinstance(value, str):
        return ""
    if "<" in value and ">" in value:
        value = _TAG.sub("", _BLOCK.sub("\n", value))
        return html.unescape(value)
    return value


def read_items(stream: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line; a bad line raises ValueError naming it."""
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"line {number}: not JSON: {e}") from e
        if not isinstance(obj, dict):
            raise ValueError(f"line {number}: expected a JSON object")
        yield number, obj


def classify_item(classifier: Classifier, obj: dict[str, Any]) -> Labels:
    """Title, then ``content`` (text or HTML), else ``text``, else ``summary``."""
    body = _text(obj.get("content")) or _text(obj.get("text")) or _text(obj.get("summary"))
    return classifier.classify(_text(obj.get("title")), body)


def result(obj: dict[str, Any], labels: Labels) -> dict[str, Any]:
    return {"id": obj.get("id"), **labels.model_dump(mode="json")}


def classify_stream(infile: IO[str], outfile: IO[str], *, lexicon: Lexicon | None = None) -> int:
    """``newsmon classify FILE|-``: one JSON result per input line. Returns the exit code."""
    classifier = Classifier(lexicon or load_lexicon())
    try:
        for _number, obj in read_items(infile):
            outfile.write(json.dumps(result(obj, classify_item(classifier, obj))) + "\n")
    except ValueError as e:
        print(f"newsmon classify: {e}", file=sys.stderr)
        return 1
    return 0


def evaluate_file(path: Path, lexicon: Lexicon | None = None) -> tuple[dict[str, Any], list[str]]:
    """Metrics and the report lines of the worst errors for a gold-labelled JSONL file."""
    classifier = Classifier(lexicon or load_lexicon())
    gold: list[Verdict] = []
    pred: list[Verdict] = []
    worst: list[tuple[int, int, str]] = []
    with path.open(encoding="utf-8") as f:
        for number, obj in read_items(f):
            if not isinstance(obj.get("gold"), dict):
                raise ValueError(f"{path}:{number}: no 'gold' object")
            labels = classify_item(classifier, obj)
            g, p = Verdict.of(obj["gold"]), Verdict.of(labels.model_dump())
            gold.append(g)
            pred.append(p)
            if errors(g, p):
                worst.append((error_weight(g, p), number, _explain(obj, g, p, labels)))
    worst.sort(key=lambda w: (-w[0], w[1]))
    return metrics(gold, pred), [w[2] for w in worst[:WORST]]


def _explain(obj: dict[str, Any], gold: Verdict, pred: Verdict, labels: Labels) -> str:
    lines = [f"{obj.get('id')}: {' '.join(errors(gold, pred))}  ({_text(obj.get('title'))!r})"]
    wrong = {d[1:].split(":", 1)[1] for d in errors(gold, pred) if d.startswith("+") and ":" in d}
    for m in labels.matches:
        if m.label in wrong:
            lines.append(f"    {m.label} ← {m.rule} {m.field}[{m.start}:{m.end}] {m.text!r}")
    return "\n".join(lines)


def eval_file(path: Path, as_json: bool = False, *, out: IO[str] | None = None) -> int:
    """``newsmon eval FILE [--json]``: print the metrics. Exit code 0, or 1 on a bad file."""
    out = out or sys.stdout
    try:
        report, worst = evaluate_file(path)
    except (OSError, ValueError) as e:
        print(f"newsmon eval: {e}", file=sys.stderr)
        return 1
    if as_json:
        out.write(json.dumps(report, indent=None) + "\n")
        return 0
    out.write(format_report(report, worst))
    return 0


def format_report(report: dict[str, Any], worst: list[str]) -> str:
    lines = [f"items: {report['items']}"]
    for kind in KINDS:
        k = report[kind]
        lines.append("")
        lines.append(f"{kind}: micro P/R/F1 {_prf(k['micro'])}   macro {_prf(k['macro'])}")
        for label, m in k["per_label"].items():
            lines.append(f"  {label:<26} {_prf(m)}  support {m['support']}")
    r = report["relevant"]
    lines += ["", f"relevant: accuracy {r['accuracy']:.3f}  P/R/F1 {_prf(r)}"]
    if worst:
        lines += ["", f"worst errors ({len(worst)}):", *worst]
    return "\n".join(lines) + "\n"


def _prf(m: dict[str, float]) -> str:
    return f"{m['precision']:.3f} {m['recall']:.3f} {m['f1']:.3f}"


async def reclassify(
    store: ItemStore,
    bus: Bus,
    *,
    since: datetime | None = None,
    page: int = 200,
    progress: bool = True,
) -> int:
    """``newsmon reclassify [--since DATE]``: publish ``item.updated`` for every stored item
    (published at or after ``since``) so the classifiers re-tag it with the current rules.
    Returns how many were published."""
    from tqdm import tqdm

    total = await store.count()
    bar = tqdm(total=total, unit="item", disable=not progress, desc="reclassify")
    cursor: str | None = None
    sent = 0
    try:
        while True:
            found = await store.query(ItemQuery(since=since, limit=page, cursor=cursor))
            events = [ItemUpdated(item=stored.item) for stored in found.items]
            if events:
                await bus.publish_many(keys.STREAM_ITEMS, events)
                sent += len(events)
                bar.update(len(events))
            if found.next_cursor is None:
                break
            cursor = found.next_cursor
    finally:
        bar.close()
    return sent
