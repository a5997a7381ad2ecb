"""HTML pieces of the report. Every user-supplied string goes through `esc`; the page skeleton is `template.html`."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from string import Template
from typing import Any

from finetuner.report._images import thumbnail_png
from finetuner.report.plots import is_number


def esc(value: Any) -> str:
    """``str(value)``, HTML-escaped (quotes too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def page(title: str, subtitle: str, sections: Sequence[str], footer: str) -> str:
    """The whole document; ``sections`` and ``footer`` are HTML already, ``title`` and ``subtitle`` are plain text."""
    template = Template(resources.files("finetuner.report").joinpath("template.html").read_text(encoding="utf-8"))
    return template.substitute(title=esc(title), subtitle=esc(subtitle), sections="\n".join(sections), footer=footer)


def section(heading: str, body: str) -> str:
    return f"<section>\n<h2>{esc(heading)}</h2>\n{body}\n</section>"


def empty(text: str) -> str:
    return f'<p class="empty">{esc(text)}</p>'


def png_img(png: bytes, alt: str, css: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}"' + (f' class="{css}">' if css else ">")


def config_table(config: Mapping[str, Any]) -> str:
    """Key / value rows; nested mappings become dotted keys, other containers are shown as JSON."""
    rows = "".join(
        f'<tr><td class="key">{esc(k)}</td><td class="value">{esc(_show(v))}</td></tr>' for k, v in _flatten(config)
    )
    return f"<table>\n<tr><th>setting</th><th>value</th></tr>\n{rows}\n</table>"


def metrics_table(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per metric, one column per stage (``before``, ``after``, ...) and the change from the first stage to
    the last, green when it went up and red when it went down."""
    stages = [s for s in metrics if any(is_number(v) for v in metrics[s].values())]
    names = list(dict.fromkeys(k for s in stages for k, v in metrics[s].items() if is_number(v)))
    head = "".join(f'<th class="num">{esc(s)}</th>' for s in stages)
    head += '<th class="num">change</th>' if len(stages) > 1 else ""
    rows = []
    for name in names:
        values = [metrics[s].get(name) for s in stages]
        cells = "".join(f'<td class="num">{format_value(v)}</td>' for v in values)
        if len(stages) > 1:
            cells += _change_cell(values[0], values[-1])
        rows.append(f'<tr><td class="key">{esc(name)}</td>{cells}</tr>')
    return f"<table>\n<tr><th>metric</th>{head}</tr>\n" + "\n".join(rows) + "\n</table>"


def selection_block(selection: Mapping[str, Any]) -> str:
    """Which candidate `fit` kept and why, then every candidate: epoch (or mixing factor), score, guard."""
    reason = f"<p>{esc(selection.get('reason', ''))}</p>"
    rows = []
    for candidate in selection.get("candidates", []):
        label = f"epoch {candidate['epoch']}" if candidate["epoch"] is not None else f"mix alpha={candidate['alpha']}"
        kept = (candidate["epoch"], candidate["alpha"]) == (selection.get("epoch"), selection.get("alpha"))
        cells = "".join(f'<td class="num">{format_value(candidate[k])}</td>' for k in ("score", "guard"))
        status = "kept" if kept else ("passes" if candidate["passed"] else "fails guard")
        rows.append(f'<tr><td class="key">{esc(label)}</td>{cells}<td>{esc(status)}</td></tr>')
    keys = "".join(f'<th class="num">{esc(selection.get(k))}</th>' for k in ("selection_key", "guard_key"))
    return reason + f"<table>\n<tr><th>candidate</th>{keys}<th></th></tr>\n" + "\n".join(rows) + "\n</table>"


def probe_block(probed: Mapping[str, Any]) -> str:
    """The probe's leaderboard: layer, head, size and score, best (the one `fit` continued with) first."""
    rows = [
        f'<tr><td class="key">{esc(r["layer"])}</td><td>{esc(r["head"])}</td><td class="num">{esc(r["output_dim"])}'
        f'</td><td class="num">{format_value(r["score"])}</td></tr>'
        for r in probed.get("rows", [])
    ]
    metric = esc(probed.get("primary_metric", "score"))
    head = f'<tr><th>layer</th><th>head</th><th class="num">dim</th><th class="num">{metric}</th></tr>'
    note = "<p>fit continued with the first row.</p>"
    return note + f"<table>\n{head}\n" + "\n".join(rows) + "\n</table>"


def format_value(value: Any) -> str:
    """Metric values with 4 decimals; a dash for a missing one."""
    return f"{float(value):.4f}" if is_number(value) else "&ndash;"


def examples_block(examples: Sequence[Mapping[str, Any]]) -> str:
    """One row per query: the query, an arrow, then its results framed green (relevant) or red (not)."""
    legend = (
        '<p class="legend">query &rarr; top results, framed '
        '<span class="hit">green: relevant</span>, <span class="miss">red: not relevant</span></p>'
    )
    rows = []
    for example in examples:
        results = list(example.get("results", []))
        relevant = list(example.get("relevant") or [None] * len(results))
        labels = list(example.get("result_labels") or [None] * len(results))
        cells = [_item(example["query"], example.get("query_label"), "query")]
        cells.append('<div class="arrow">&rarr;</div>')
        for item, hit, label in zip(results, relevant, labels):
            cells.append(_item(item, label, "" if hit is None else ("hit" if hit else "miss")))
        rows.append('<div class="example">' + "".join(cells) + "</div>")
    return legend + "\n" + "\n".join(rows)


def _item(item: Any, label: Any, kind: str) -> str:
    png = thumbnail_png(item)
    alt = label if label is not None else kind or "result"
    content = png_img(png, alt) if png is not None else f'<div class="text">{esc(item)}</div>'
    caption = f'<div class="label" title="{esc(label)}">{esc(label)}</div>' if label is not None else ""
    return f'<div class="item {kind}"><div class="frame">{content}</div>{caption}</div>'


def _change_cell(first: Any, last: Any) -> str:
    if not (is_number(first) and is_number(last)):
        return '<td class="num same">&ndash;</td>'
    delta = float(last) - float(first)
    css = "up" if delta > 0 else "down" if delta < 0 else "same"
    arrow = {"up": "&#9650; ", "down": "&#9660; ", "same": ""}[css]
    return f'<td class="num {css}">{arrow}{delta:+.4f}</td>'


def _flatten(config: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            rows.extend(_flatten(value, f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)
