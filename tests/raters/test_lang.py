"""The lang rater: py3langid's answers on real text, batched; bad input; annotate resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assay.annotate import annotate, read_annotations
from assay.errors import AssayError, ConfigError
from raters.lang import LangRater
from raters.registry import build_rater

# Article 1 of the Universal Declaration of Human Rights, in the UN's own translations.
UDHR = {
    "en": "All human beings are born free and equal in dignity and rights. They are endowed "
    "with reason and conscience and should act towards one another in a spirit of brotherhood.",
    "fr": "Tous les êtres humains naissent libres et égaux en dignité et en droits. Ils sont "
    "doués de raison et de conscience et doivent agir les uns envers les autres dans un "
    "esprit de fraternité.",
    "de": "Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit "
    "Vernunft und Gewissen begabt und sollen einander im Geist der Brüderlichkeit begegnen.",
    "es": "Todos los seres humanos nacen libres e iguales en dignidad y derechos y, dotados "
    "como están de razón y conciencia, deben comportarse fraternalmente los unos con los otros.",
    "ru": "Все люди рождаются свободными и равными в своем достоинстве и правах. Они наделены "
    "разумом и совестью и должны поступать в отношении друг друга в духе братства.",
    "zh": "人人生而自由,在尊严和权利上一律平等。他们赋有理性和良心,并应以兄弟关系的精神相对待。",
}


@pytest.fixture(scope="module")
def rater():
    return LangRater()


def test_udhr_translations_get_their_language(rater):
    cols = rater.score(list(UDHR.values()))
    assert list(cols["lang"]) == list(UDHR)
    assert cols["score"].dtype == np.float32
    assert (cols["score"] > 0.5).all()


def test_batched_walk_is_py3langids_classify_on_demo_text(rater, demo_records):
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    reference = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    texts = [r["text"] for r in demo_records[::7]] + list(UDHR.values())
    cols = rater.score(texts)
    expected = [reference.classify(t[: rater.max_chars]) for t in texts]
    assert list(cols["lang"]) == [lang for lang, _ in expected]
    np.testing.assert_allclose(cols["score"], [p for _, p in expected], atol=1e-4)
    # the demo corpus is English text: nearly every document says so
    demo = cols["lang"][: len(texts) - len(UDHR)]
    assert (demo == "en").mean() > 0.95


def test_bad_input_is_answered_or_refused_never_dropped(rater):
    huge = UDHR["de"] * 20_000  # 3.4M characters: only the first max_chars are read
    texts = ["", "   \n\t", "\x00\x01\x02\x7f" * 40, "\ud800 broken surrogate", huge]
    cols = rater.score(texts)
    assert len(cols["lang"]) == len(texts) == len(cols["score"])
    assert list(cols["lang"][:3]) == ["und", "und", "und"]
    assert np.isnan(cols["score"][:3]).all()
    assert cols["lang"][4] == "de"
    assert len(rater.score([])["lang"]) == 0
    with pytest.raises(AssayError, match="text 1 is NoneType, not str"):
        rater.score(["fine", None])


def test_options_are_checked_and_languages_restrict_the_answer():
    with pytest.raises(ConfigError, match="max_chars must be an integer > 0"):
        build_rater("lang", max_chars=0)
    with pytest.raises(ConfigError, match="Unknown language"):
        LangRater(languages=["en", "xx-nope"]).score(["text"])
    only = build_rater("lang", languages="en,de", device="cpu")  # model options ignored
    cols = only.score([UDHR["fr"], UDHR["de"]])
    assert set(cols["lang"]) <= {"en", "de"} and cols["lang"][1] == "de"


def test_columns_are_lang_and_lang_score_and_an_input_lang_field_is_refused(rater):
    out = rater({"text": [UDHR["en"], UDHR["fr"]]})
    assert list(out["lang"]) == ["en", "fr"] and "lang.score" in out
    with pytest.raises(AssayError, match="already has a field 'lang'"):
        rater({"text": [UDHR["en"]], "lang": ["en"]})


class Crash(Exception):
    pass


def test_interrupted_annotate_resumes_to_the_clean_rows(tmp_path, demo_records):
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in demo_records[:700]))
    clean = tmp_path / "clean"
    annotate([str(src)], clean, [LangRater()], shard_size=200)
    calls = {"n": 0}

    def crash_after_two(progress):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash

    out = tmp_path / "resumed"
    with pytest.raises(Crash):
        annotate([str(src)], out, [LangRater()], shard_size=200, on_progress=crash_after_two)
    assert len(list(out.glob("part-*.parquet"))) == 2
    annotate([str(src)], out, [LangRater()], shard_size=200)
    a, b = read_annotations(clean), read_annotations(out)
    assert b.num_rows == a.num_rows == 700
    assert b.column("id").to_pylist() == a.column("id").to_pylist()
    assert b.column("lang").to_pylist() == a.column("lang").to_pylist()
    assert b.column("lang.score").to_pylist() == a.column("lang.score").to_pylist()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"][0]["model"].startswith("py3langid")
    assert len(manifest["models"][0]["weights_sha256"]) == 64
