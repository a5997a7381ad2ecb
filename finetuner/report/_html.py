"""HTML pieces of the report. Every user-supplied string goes through `esc`; the page skeleton is `template.html`."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from string import Template
from typing import Any

from finetuner.evaluation.changes import Change
from finetuner.report._images import thumbnail_png
from finetuner.report.plots import is_number, label


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


def png_img(png: bytes, alt: str, css: str = "", width: int | None = None) -> str:
    data = base64.b64encode(png).decode("ascii")
    attributes = (f' class="{css}"' if css else "") + (f' width="{width}"' if width else "")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}"{attributes}>'


def plot_img(png: bytes, alt: str) -> str:
    """A plot from `to_png` (drawn at twice the display resolution), shown at half its pixel width or narrower."""
    return png_img(png, alt, "plot", width=_png_width(png) // 2)


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
        label = "untuned backbone" if candidate.get("untuned") else label
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


def preflight_block(preflight: Mapping[str, Any], png: bytes | None) -> str:
    """A pre-flight's verdict, its gain curve (plot and table: mean ± spread over seeds per share) and its cost."""
    keys = [part + metric for part in preflight.get("parts", [""]) for metric in ("recall@1", "map@r")]
    head = "".join(f'<th class="num">{esc(key)}</th>' for key in keys)
    rows = [
        f'<tr><td class="key">{point["share"]:.0%}</td><td class="num">{point["items"]}</td>'
        + "".join(f'<td class="num">{point["gain"][k]:+.4f} &plusmn;{point["spread"][k]:.4f}</td>' for k in keys)
        + "</tr>"
        for point in preflight.get("curve", [])
    ]
    table = f'<table>\n<tr><th>labels</th><th class="num">items</th>{head}</tr>\n' + "\n".join(rows) + "\n</table>"
    plot = plot_img(png, "pre-flight gain per share of the labels") if png else ""
    return f"<p>{esc(preflight.get('verdict', ''))}</p>\n{plot}\n{table}"


def format_value(value: Any) -> str:
    """Metric values with 4 decimals; a dash for a missing one."""
    return f"{float(value):.4f}" if is_number(value) else "&ndash;"


def examples_block(examples: Sequence[Mapping[str, Any]]) -> str:
    """One block per query: the query, then its top results framed green (relevant) or red (not); when an example
    also has ``results_before`` (with ``result_labels_before``, ``relevant_before``), the untuned model's results
    are shown in a row above the tuned ones."""
    legend = (
        '<p class="legend">each query, then its top results, framed '
        '<span class="hit">green: relevant</span>, <span class="miss">red: not relevant</span></p>'
    )
    blocks = []
    for example in examples:
        rows = [("after", "")]
        if example.get("results_before") is not None:
            rows = [("before", "_before"), ("after", "")]
        shown = []
        for stage, suffix in rows:
            results = list(example.get(f"results{suffix}") or [])
            relevant = list(example.get(f"relevant{suffix}") or [None] * len(results))
            labels = list(example.get(f"result_labels{suffix}") or [None] * len(results))
            items = "".join(
                _item(item, label, "" if hit is None else ("hit" if hit else "miss"))
                for item, hit, label in zip(results, relevant, labels)
            )
            tag = f'<div class="stage">{stage}</div>' if len(rows) > 1 else ""
            shown.append(f'<div class="results">{tag}{items}</div>')
        query = _item(example["query"], example.get("query_label"), "query")
        blocks.append(f'<div class="example">{query}<div class="rows">{"".join(shown)}</div></div>')
    return legend + "\n" + "\n".join(blocks)


def summary_card(
    where: str | None,
    headline: Sequence[Change],
    facts: Sequence[tuple[str, str]],
    held_out: Sequence[str],
    verdict: str | None,
) -> str:
    """The report's first section: a verdict line (a warning when any headline figure got worse), a tile per
    headline figure before → after, the selection's verdict, held-out classes and what was trained."""
    worse = [c for c in headline if c.worse]
    if not headline:
        line = "No before → after figures: the run had no evaluation data."
    elif worse:
        names = ", ".join(f"{c.name} {label(c.metric)} {c.before:.3f} → {c.after:.3f}" for c in worse)
        line = f"&#9888; Worse after training on {esc(where)}: {esc(names)}."
    else:
        line = f"&#10003; Every headline figure on {esc(where)} is as good or better after training."
    tiles = []
    for change in headline:
        css = "down" if change.worse else "up" if change.delta > 0 else "same"
        tiles.append(
            f'<div class="tile {css}"><div class="what">{esc(label(change.metric))} &middot; {esc(change.name)}</div>'
            f'<div class="figure">{change.before:.3f} &rarr; <b>{change.after:.3f}</b></div>'
            f'<div class="delta {css}">{change.delta:+.3f}</div></div>'
        )
    parts = [f'<p class="verdict">{line}</p>']
    if tiles:
        parts.append(f'<div class="tiles">{"".join(tiles)}</div>')
    notes = []
    if verdict:
        notes.append(f"<li><b>Selection.</b> {esc(verdict)}</li>")
    if held_out:
        notes.append(f"<li><b>Held-out classes</b> (never trained on): {esc(', '.join(held_out))}</li>")
    if notes:
        parts.append(f'<ul class="notes">{"".join(notes)}</ul>')
    if facts:
        rows = "".join(f"<dt>{esc(name)}</dt><dd>{esc(text)}</dd>" for name, text in facts)
        parts.append(f'<dl class="facts">{rows}</dl>')
    css = "summary worse" if worse else "summary"
    return f'<section class="{css}" id="summary">\n<h2>Summary</h2>\n' + "\n".join(parts) + "\n</section>"


def class_note(changes: Sequence[Change]) -> str:
    """One line under the per-class chart: how many classes gained and which lost."""
    gained = sum(c.delta > 0 for c in changes)
    lost = sorted((c for c in changes if c.worse), key=lambda c: c.delta)
    text = f"{gained} of {len(changes)} classes gained"
    if lost:
        text += "; lost: " + ", ".join(f"{c.name} ({c.delta:+.3f})" for c in lost)
    return f'<p class="note">{esc(text)}.</p>'


def folded(summary: str, body: str) -> str:
    """``body`` under a closed ``<details>`` whose visible line is ``summary`` (plain text)."""
    return f"<details>\n<summary>{esc(summary)}</summary>\n{body}\n</details>"


def _item(item: Any, label: Any, kind: str) -> str:
    png = thumbnail_png(item)
    alt = label if label is not None else kind or "result"
    content = png_img(png, alt) if png is not None else f'<div class="text">{esc(item)}</div>'
    caption = f'<div class="label" title="{esc(label)}">{esc(label)}</div>' if label is not None else ""
    return f'<div class="item {kind}"><div class="frame">{content}</div>{caption}</div>'


def _png_width(png: bytes) -> int:
    return int.from_bytes(png[16:20], "big")  # the IHDR chunk: width, then height, as 4-byte integers


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
