"""``report.html``: one self-contained page (inline CSS, inline SVG, a few lines of inline
script for sorting and highlighting; nothing fetched), readable with scripts off too.
Every value from the data is HTML-escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

PALETTE = (  # noqa: SIM905
    "#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #7f7f7f #bcbd22 #17becf "
    "#aec7e8 #ffbb78 #98df8a #ff9896 #c5b0d5 #c49c94 #f7b6d2 #dbdb8d #9edae5 #393b79"
).split()
PRUNED = "#c8c8c8"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
  background:#fafafa}
header,section,footer{max-width:1280px;margin:0 auto;padding:12px 24px}
h1{margin:8px 0 4px;font-size:24px}
h2{font-size:18px;margin:18px 0 8px;border-bottom:1px solid #ddd}
.sub{color:#555;margin:0}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:8px 12px;min-width:120px}
.card b{display:block;font-size:20px}
.card span{color:#666;font-size:12px}
table{border-collapse:collapse;background:#fff;font-size:13px;width:100%}
th,td{border:1px solid #e4e4e4;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0;cursor:pointer;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bar{background:#e8eef6;height:10px;position:relative;min-width:80px}
.bar i{position:absolute;left:0;top:0;bottom:0;background:#4c78a8}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;
  vertical-align:-1px}
.terms{color:#333} .labels{color:#555;font-size:12px}
.scroll{overflow-x:auto;max-width:100%}
.heat td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap;font-size:12px}
.heat th.col{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:normal;font-size:11px;
  max-height:170px}
.mapwrap{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}
svg.map{background:#fff;border:1px solid #ddd;width:760px;max-width:100%;height:auto}
svg.map circle{stroke:none}
svg.map.focus circle{opacity:.08} svg.map.focus circle.on{opacity:1}
ul.legend{list-style:none;padding:0;margin:0;max-width:440px;font-size:12px}
ul.legend li{cursor:pointer;padding:1px 4px;border-radius:3px}
ul.legend li:hover{background:#eee}
details{background:#fff;border:1px solid #e2e2e2;border-radius:6px;margin:6px 0;
  padding:4px 10px}
summary{cursor:pointer;font-weight:600}
.doc{border-left:3px solid #ccc;padding:2px 8px;margin:6px 0;color:#333;font-size:12.5px}
.doc .meta{color:#777;font-size:11px}
.note{color:#666;font-size:12px}
pre{background:#fff;border:1px solid #e2e2e2;padding:8px;overflow:auto;font-size:12px}
"""

SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function(th){
  th.addEventListener('click',function(){
    var table=th.closest('table'),body=table.tBodies[0],i=th.cellIndex,asc=th.dataset.asc!=='1';
    th.dataset.asc=asc?'1':'0';
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){
      var x=a.cells[i].dataset.v||a.cells[i].textContent;
      var y=b.cells[i].dataset.v||b.cells[i].textContent;
      var nx=parseFloat(x),ny=parseFloat(y);
      var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);
      return asc?c:-c;});
    rows.forEach(function(r){body.appendChild(r);});
  });
});
var svg=document.querySelector('svg.map')||document.createElement('svg'),active=null;
document.querySelectorAll('ul.legend li').forEach(function(li){
  li.addEventListener('click',function(){
    var t=li.dataset.t;
    svg.querySelectorAll('circle').forEach(function(c){c.classList.toggle('on',c.dataset.t===t);});
    if(active===t){svg.classList.remove('focus');active=null;}
    else{svg.classList.add('focus');active=t;}
  });
});
document.body.dataset.ready='1';
"""


def topic_colour(topic: int) -> str:
    if topic < 0:
        return PRUNED
    if topic < len(PALETTE):
        return PALETTE[topic]
    return f"hsl({(topic * 137.508) % 360:.0f},55%,45%)"


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.2e}"
    return f"{v:,.3g}" if a < 1000 else f"{v:,.0f}"


def _short(column: str) -> str:
    name = column.split(".", 1)[-1]
    for prefix in ("rps_doc_", "rps_lines_", "rps_"):
        name = name.removeprefix(prefix)
    return name.replace("_", " ")


def _terms(terms: list[list[Any]], n: int = 8) -> str:
    return escape(", ".join(t for t, _ in terms[:n])) or "–"


def _labels(labels: dict[str, list[list[Any]]]) -> str:
    parts = []
    for column, values in labels.items():
        inner = ", ".join(f"{escape(str(v))} {share:.0%}" for v, share in values)
        parts.append(f"{escape(column)}: {inner}")
    return "<br>".join(parts) or "–"


def _bar(share: float) -> str:
    width = min(share, 1) * 100
    return f'<div class="bar" title="{share:.2%}"><i style="width:{width:.2f}%"></i></div>'


def _swatch(topic: int) -> str:
    return f'<span class="sw" style="background:{topic_colour(topic)}"></span>'


def _num(value: Any) -> str:
    text = f"{value:,}" if isinstance(value, int) else str(value)
    return f'<td class="num">{text}</td>'


def _heat_cell(q: dict[str, Any], corpus: dict[str, Any]) -> str:
    mean, std, n = q.get("mean"), q.get("std"), q.get("n", 0)
    cm, cs = corpus.get("mean"), corpus.get("std")
    style = ""
    if mean is not None and cm is not None and cs:
        z = max(-2.0, min(2.0, (mean - cm) / cs))
        rgb = "214,96,77" if z > 0 else "67,147,195"
        style = f' style="background:rgba({rgb},{abs(z) / 2 * 0.85:.2f})"'
    title = escape(f"mean {_fmt(mean)} ± {_fmt(std)} (n={n})")
    value = "" if mean is None else mean
    return f'<td{style} title="{title}" data-v="{value}">{_fmt(mean)}</td>'


def _docs(reps: list[dict[str, Any]], labels: list[str]) -> str:
    out = []
    for d in reps:
        meta = [f"id {d.get('id')}"]
        meta += [f"{c}: {d.get(c)}" for c in labels if d.get(c) is not None]
        if d.get("distance") is not None:
            meta.append(f"distance {d['distance']:.3f}")
        out.append(
            f'<div class="doc"><div class="meta">{escape(" · ".join(meta))}</div>'
            f"{escape(d.get('snippet', ''))}</div>"
        )
    return "".join(out)


def _map(report: dict[str, Any], topics: list[dict[str, Any]]) -> str:
    m = report.get("map")
    if not m or not m.get("points"):
        return '<p class="note">No map (no documents sampled).</p>'
    w, h, pad = 1000, 720, 12
    labels = m.get("labels", {})
    circles = []
    for i in range(m["points"]):
        t, c = m["topic"][i], m["cluster"][i]
        x = pad + m["x"][i] * (w - 2 * pad)
        y = pad + (1 - m["y"][i]) * (h - 2 * pad)
        tip = [f"topic {t}" if t >= 0 else "pruned", f"cluster {c}", f"id {m['id'][i]}"]
        tip += [f"{col}: {vals[i]}" for col, vals in labels.items() if vals[i] is not None]
        circles.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{topic_colour(t)}" '
            f'fill-opacity="0.8" data-t="{t}"><title>{escape(" · ".join(tip))}</title></circle>'
        )
    legend = [
        f'<li data-t="{t["topic"]}">{_swatch(t["topic"])}topic {t["topic"]} '
        f"({t['token_share']:.1%}): {_terms(t['terms'], 4)}</li>"
        for t in topics
    ]
    if any(v < 0 for v in m["topic"]):
        legend.append(f'<li data-t="-1">{_swatch(-1)}pruned</li>')
    method = "t-SNE" if m.get("method") == "tsne" else "PCA"
    return (
        f'<p class="note">{method} of {m["points"]:,} documents sampled uniformly; colour = '
        "topic. Hover a point for its document; click a legend entry to highlight a topic.</p>"
        f'<div class="mapwrap"><svg class="map" viewBox="0 0 {w} {h}" role="img" '
        'aria-label="2-D map of document embeddings coloured by topic">'
        f"{''.join(circles)}</svg>"
        f'<ul class="legend">{"".join(legend)}</ul></div>'
    )


def render_html(report: dict[str, Any]) -> str:
    """The page for a report dict (as written to ``report.json``)."""
    s = report["summary"]
    topics, clusters = report["topics"], report["clusters"]
    columns = s["quality_columns"]
    corpus = s["corpus_quality"]
    label_cols = s.get("label_columns", [])
    km = s.get("kmeans", {})
    cards = [
        (f"{s['docs']:,}", "documents"),
        (f"{s['tokens']:,}", "tokens"),
        (f"{s['clusters']:,}", f"clusters (k-means, {km.get('n_iter', '?')} iterations)"),
        (f"{s['clusters_pruned']:,}", f"pruned ({s['docs_pruned']:,} docs)"),
        (f"{s['topics']:,}", "topics (merged kept clusters)"),
    ]
    for column, a in s.get("agreement", {}).items():
        cards.append((f"{a['topics_nmi']:.2f}", f"NMI topics vs {column}"))
        cards.append((f"{a['clusters_nmi']:.2f}", f"NMI clusters vs {column}"))
    head = "".join(
        f'<div class="card"><b>{escape(v)}</b><span>{escape(t)}</span></div>' for v, t in cards
    )

    topic_rows = "".join(
        f'<tr><td data-v="{t["topic"]}">{_swatch(t["topic"])}{t["topic"]}</td>'
        f'<td class="num" data-v="{t["token_share"]}">{t["token_share"]:.1%}'
        f"{_bar(t['token_share'])}</td>"
        f"{_num(t['docs'])}{_num(t['tokens'])}{_num(len(t['clusters']))}"
        f'<td class="terms">{_terms(t["terms"])}</td><td class="labels">{_labels(t["labels"])}</td>'
        "</tr>"
        for t in topics
    )
    col_heads = "".join(
        f'<th class="col" title="{escape(c)}">{escape(_short(c))}</th>' for c in columns
    )

    def heat(quality: dict[str, Any]) -> str:
        return "".join(_heat_cell(quality[c], corpus[c]) for c in columns)

    heat_rows = "".join(
        f'<tr><td data-v="{t["topic"]}">{_swatch(t["topic"])}{t["topic"]}</td>'
        f"{heat(t['quality'])}</tr>"
        for t in topics
    )
    corpus_row = f"<tr><td><b>corpus</b></td>{heat(corpus)}</tr>"

    by_id = {c["cluster"]: c for c in clusters}
    cluster_head = (
        '<div class="scroll"><table class="sortable heat"><thead><tr><th>cluster</th>'
        '<th class="num">docs</th><th class="num">tokens</th><th class="num">token share</th>'
        f"<th>terms</th><th>labels</th>{col_heads}</tr></thead>"
    )
    details = []
    for t in topics:
        rows = "".join(
            f"<tr>{_num(c['cluster'])}{_num(c['docs'])}{_num(c['tokens'])}"
            f"{_num(format(c['token_share'], '.2%'))}"
            f'<td class="terms">{_terms(c["terms"])}</td>'
            f'<td class="labels">{_labels(c["labels"])}</td>{heat(c["quality"])}</tr>'
            for c in (by_id[i] for i in t["clusters"])
        )
        nearest = "".join(
            f'<p class="note">Cluster {c}: documents nearest its centroid</p>'
            f"{_docs(by_id[c]['representatives'], label_cols)}"
            for c in t["clusters"][:5]
        )
        details.append(
            f"<details><summary>{_swatch(t['topic'])}Topic {t['topic']} — "
            f"{t['token_share']:.1%} of tokens, {len(t['clusters'])} clusters: "
            f"{_terms(t['terms'], 6)}</summary>"
            '<p class="note">Most central document of its largest clusters:</p>'
            f"{_docs(t['representatives'], label_cols)}"
            f"{cluster_head}<tbody>{rows}</tbody></table></div>{nearest}</details>"
        )
    pruned = [c for c in clusters if not c["kept"]]
    if pruned:
        pruned_rows = "".join(
            f"<tr>{_num(c['cluster'])}{_num(c['docs'])}{_num(c['tokens'])}"
            f"<td>{escape('; '.join(c['pruned_reasons']))}</td>"
            f'<td class="terms">{_terms(c["terms"])}</td>'
            f'<td class="labels">{_labels(c["labels"])}</td></tr>'
            for c in sorted(pruned, key=lambda c: -c["tokens"])
        )
        pruned_html = (
            '<table class="sortable"><thead><tr><th class="num">cluster</th>'
            '<th class="num">docs</th><th class="num">tokens</th><th>why pruned</th>'
            f"<th>terms</th><th>labels</th></tr></thead><tbody>{pruned_rows}</tbody></table>"
        )
    else:
        rules = s.get("prune", {}).get("rules") or []
        pruned_html = (
            f'<p class="note">No cluster pruned (rules: {escape(", ".join(rules) or "none")}).</p>'
        )
    settings = json.dumps(report.get("config", {}), indent=1)
    title = (
        f"assay clusters: {s['docs']:,} documents, {s['clusters']} clusters, {s['topics']} topics"
    )
    source = escape(str(s.get("annotations", "")))
    model = escape(str(s.get("model", "")))
    kind = "spherical" if km.get("spherical") else "Euclidean"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body>
<header><h1>Clusters and topics</h1>
<p class="sub">{source} · embeddings {model} ·
{kind} k-means trained on {km.get("train_rows", 0):,} documents</p>
<div class="cards">{head}</div></header>
<section id="map"><h2>Map of the embeddings</h2>{_map(report, topics)}</section>
<section id="topics"><h2>Topics</h2>
<p class="note">Shares are of all tokens (pruned ones included). Click a header to sort.</p>
<table class="sortable"><thead><tr><th>topic</th><th class="num">token share</th>
<th class="num">docs</th><th class="num">tokens</th><th class="num">clusters</th>
<th>top terms (c-TF-IDF)</th><th>labels</th></tr></thead>
<tbody>{topic_rows}</tbody></table></section>
<section id="quality"><h2>Quality by topic</h2>
<p class="note">Mean per topic; colour = distance from the corpus mean in corpus standard
deviations (red above, blue below); hover for mean ± std.</p>
<div class="scroll"><table class="sortable heat">
<thead><tr><th>topic</th>{col_heads}</tr></thead><tbody>{corpus_row}{heat_rows}</tbody></table></div></section>
<section id="clusters"><h2>Topics and their clusters</h2>{"".join(details)}</section>
<section id="pruned"><h2>Pruned clusters</h2>{pruned_html}</section>
<footer><h2>Settings</h2><pre>{escape(settings)}</pre></footer>
<script>{SCRIPT}</script>
</body></html>
"""
