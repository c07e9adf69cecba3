"""Teacher labelling against a fake OpenAI-compatible server: a real HTTP server on
127.0.0.1 that answers each document as the test tells it to (good, malformed, 429/500
then good, rejected, down), with logprobs; plus the rubrics and the strict parser."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from assay.errors import AssayError, ConfigError, ManifestMismatchError
from raters.answers import AnswerError, expected_scores, parse_answer
from raters.rubrics import cut_text, load_rubric, rubric_from_dict
from raters.teacher import TeacherSettings, companion_paths, label_corpus

pytest.importorskip("httpx")

DATAMAN_FIELDS = [
    "accuracy",
    "coherence",
    "language_consistency",
    "semantic_density",
    "knowledge_novelty",
    "topic_focus",
    "creativity",
    "professionalism",
    "style_consistency",
    "grammatical_diversity",
    "structural_standardization",
    "originality",
    "sensitivity",
    "overall_score",
]
REPO = Path(__file__).resolve().parents[2]


def answer_block(rubric, scores: dict[str, int], domain: str | None = None) -> str:
    lines = ["Let me think step by step. The text is clear and on topic.", ""]
    if domain:
        lines.append(f"{rubric.domain_label}: {domain}")
    lines += [f"{c.label}: {scores[c.name]}" for c in rubric.criteria]
    return "\n".join(lines)


def logprob_tokens(answer: str, dist) -> list[dict]:
    """Split an answer into tokens like a BPE would (" 4" is one token); the token of
    score k gets the alternatives ``dist(k)`` (score -> probability) and a non-score."""
    tokens = re.findall(r" \d+|\n|[^\s\d]+| ", answer)
    assert "".join(tokens) == answer
    out = []
    for tok in tokens:
        entry = {"token": tok, "logprob": -0.01, "top_logprobs": []}
        if re.fullmatch(r" \d", tok):
            alternatives = dist(int(tok))
            top = [{"token": f" {k}", "logprob": math.log(p)} for k, p in alternatives.items()]
            top.append({"token": " maybe", "logprob": math.log(0.001)})
            entry |= {"logprob": math.log(alternatives[int(tok)]), "top_logprobs": top}
        out.append(entry)
    return out


class FakeTeacher:
    """OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1 (random port).

    ``plan[text]`` says how to answer a document: ``good`` (parsed answer), ``bad``
    (always malformed), ``fix`` (malformed once, then good), ``flaky`` (429, 500, then
    good), ``reject`` (HTTP 400), ``down`` (HTTP 503 always).
    """

    def __init__(self, rubric, plan: dict[str, str], *, delay: float = 0.0) -> None:
        self.rubric, self.plan, self.delay = rubric, plan, delay
        self.no_models_route = False  # True: a server without GET /v1/models
        self.requests: dict[str, int] = {}
        self.bodies: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        teacher = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                if self.path != "/v1/models" or teacher.no_models_route:
                    self.send_error(404)
                    return
                data = json.dumps({"object": "list", "data": [{"id": "teacher-7b"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with teacher.lock:
                    teacher.in_flight += 1
                    teacher.max_in_flight = max(teacher.max_in_flight, teacher.in_flight)
                try:
                    time.sleep(teacher.delay)
                    status, payload, headers = teacher.respond(self.path, body)
                finally:
                    with teacher.lock:
                        teacher.in_flight -= 1
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def scores(self, text: str) -> dict[str, int]:
        lo, hi = self.rubric.criteria[0].scale
        base = lo + len(text) % (hi - lo + 1)
        return {c.name: min(hi, base + (i % 2)) for i, c in enumerate(self.rubric.criteria)}

    def respond(self, path: str, body: dict) -> tuple[int, dict, dict]:
        if path != "/v1/chat/completions":
            return 404, {"error": "no such route"}, {}
        if body["model"] != "teacher-7b":
            return 404, {"error": {"message": f"model {body['model']} does not exist"}}, {}
        self.bodies.append(body)
        user = body["messages"][-1]["content"]
        m = re.search(r"<<<\n(.*)\n>>>", user, re.S)
        text = m.group(1) if m else user
        with self.lock:
            n = self.requests[text] = self.requests.get(text, 0) + 1
        kind = self.plan.get(text, "good")
        if kind == "down":
            return 503, {"error": "overloaded"}, {}
        if kind == "reject":
            return 400, {"error": {"message": "prompt is longer than the context"}}, {}
        if kind == "flaky" and n == 1:
            return 429, {"error": "slow down"}, {"Retry-After": "0"}
        if kind == "flaky" and n == 2:
            return 500, {"error": "oops"}, {}
        domain = self.rubric.domains[2].key if self.rubric.domains else None
        answer = answer_block(self.rubric, self.scores(text), domain)
        if kind == "bad" or (kind == "fix" and n == 1):
            answer = answer.replace(f"{self.rubric.criteria[0].label}: ", "Score: ", 1)
        choice = {"index": 0, "message": {"role": "assistant", "content": answer}}
        choice["finish_reason"] = "stop"
        if body.get("logprobs"):
            # Each score token: 60% on the chosen score, 30% one above, 10% one below.
            tokens = logprob_tokens(answer, lambda k: {k: 0.6, k + 1: 0.3, k - 1: 0.1})
            choice["logprobs"] = {"content": tokens}
        usage = {"prompt_tokens": len(user) // 4, "completion_tokens": len(answer) // 4}
        return (
            200,
            {"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage},
            {},
        )


def expected_of(k: int, lo: int, hi: int) -> float:
    alts = {v: p for v, p in {k: 0.6, k + 1: 0.3, k - 1: 0.1}.items() if lo <= v <= hi}
    return sum(v * p for v, p in alts.items()) / sum(alts.values())


@pytest.fixture
def corpus(tmp_path, demo_sample):
    """20 real demo documents (distinct texts) as a JSONL input."""
    seen, docs = set(), []
    for d in demo_sample:
        if d["text"] not in seen and len(d["text"]) < 4000:
            seen.add(d["text"])
            docs.append(d)
    docs = docs[:20]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path, docs


def settings(url: str, **kw) -> TeacherSettings:
    base = {"concurrency": 4, "backoff": 0.01, "backoff_max": 0.05, "flush_every": 2}
    return TeacherSettings(url, "teacher-7b", **(base | kw))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- rubrics and the parser --------------------------------------------------------------


def test_builtin_rubrics_have_the_published_criteria():
    dataman = load_rubric("dataman")
    assert [c.name for c in dataman.criteria] == DATAMAN_FIELDS
    assert all(c.scale == (1, 5) for c in dataman.criteria)
    assert "".join(d.key for d in dataman.domains) == "ABCDEFGHIJKLMNO"
    assert dataman.domains[2].name == "law" and dataman.domains[-1].name == "other"
    prrc = load_rubric("prrc")
    assert [c.name for c in prrc.criteria] == [
        "professionalism",
        "readability",
        "reasoning",
        "cleanliness",
    ]
    assert all(c.scale == (0, 5) for c in prrc.criteria) and not prrc.domains
    assert dataman.prompt_sha256 != prrc.prompt_sha256
    assert load_rubric("dataman").prompt_sha256 == dataman.prompt_sha256


def test_prompt_shows_text_verbatim_and_the_answer_block():
    rubric = load_rubric("dataman")
    text = "A text with {criteria} and {answer_format} in it."
    system, user = rubric.messages(text)
    assert system["role"] == "system" and "full range" not in user["content"]
    assert text in user["content"]  # braces in a document are never substituted
    assert "Overall Score: <1-5>" in user["content"] and "C. Law" in user["content"]
    long = ("word " * 5000).strip()
    cut = cut_text(long, 1000)
    assert len(cut) <= 1000 and "[...]" in cut and cut.startswith("word") and cut.endswith("word")


def test_rubric_hash_follows_the_prompt(tmp_path):
    data = {
        "name": "mine",
        "version": 1,
        "prompt": "Rate:\n{text}\n{answer_format}",
        "criteria": [{"name": "clarity", "scale": [1, 5]}],
    }
    a = rubric_from_dict(data)
    b = rubric_from_dict(data | {"prompt": "Rate this:\n{text}\n{answer_format}"})
    assert a.prompt_sha256 != b.prompt_sha256 and a.version == "1"
    with pytest.raises(ConfigError, match=r"answer_format"):
        rubric_from_dict(data | {"prompt": "Rate {text}"})
    with pytest.raises(ConfigError, match=r"criteria\[0\].scale"):
        rubric_from_dict(data | {"criteria": [{"name": "clarity", "scale": [5, 1]}]})
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nversion: '2'\nprompt: '{text} {answer_format}'\ncriteria: 3\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: criteria"):
        load_rubric(path)
    with pytest.raises(ConfigError, match="neither a built-in rubric"):
        load_rubric("no-such-rubric")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda a: a.replace("Coherence: 4", ""), "no answer line for Coherence"),
        (lambda a: a.replace("Coherence: 4", "Coherence: 4.5"), "not a whole number"),
        (lambda a: a.replace("Coherence: 4", "Coherence: 6"), "outside the scale"),
        (lambda a: a.replace("Coherence: 4", "Coherence: N/A"), "not a score"),
        (lambda a: a + "\nCoherence: 2", "conflicting scores"),
        (lambda a: a.replace("Domain: C", "Domain: Z"), "not one of the letters"),
        (lambda a: a.replace("Domain: C", "Domain: C. Finance"), "names another domain"),
        (lambda a: a.replace("Domain: C", ""), "no answer line for Domain"),
        (lambda a: "", "empty answer"),
    ],
)
def test_malformed_answers_are_rejected_with_a_reason(change, reason):
    rubric = load_rubric("dataman")
    good = answer_block(rubric, dict.fromkeys(DATAMAN_FIELDS, 4), "C")
    assert parse_answer(rubric, good).labels["coherence"] == 4
    with pytest.raises(AnswerError, match=reason):
        parse_answer(rubric, change(good))


def test_accepted_answer_variants():
    rubric = load_rubric("dataman")
    lines = [f"[{i}] **{c.label}:** {i % 5 + 1}/5" for i, c in enumerate(rubric.criteria, 1)]
    answer = "Coherence: the text flows well.\n- Domain: C (Law)\n" + "\n".join(lines)
    parsed = parse_answer(rubric, answer + "\n\n" + answer)  # a repeated, agreeing block
    assert parsed.domain == "law"
    assert parsed.labels["accuracy"] == 2 and parsed.labels["overall_score"] == 5


def test_expected_scores_from_logprobs():
    rubric = load_rubric("prrc")
    answer = answer_block(
        rubric, {"professionalism": 2, "readability": 5, "reasoning": 0, "cleanliness": 3}
    )
    parsed = parse_answer(rubric, answer)
    by_score = {2: {2: 0.6, 3: 0.3, 1: 0.1}, 5: {5: 0.7, 4: 0.3}, 0: {0: 0.5, 1: 0.5}}
    by_score[3] = {3: 0.2, 4: 0.2, 9: 0.6}  # 9 is off the 0-5 scale: dropped, renormalised
    tokens = logprob_tokens(answer, by_score.__getitem__)
    got = expected_scores(rubric, parsed, answer, tokens)
    assert got["professionalism"] == pytest.approx(2 * 0.6 + 3 * 0.3 + 1 * 0.1)
    assert got["readability"] == pytest.approx(5 * 0.7 + 4 * 0.3)
    assert got["reasoning"] == pytest.approx(0.5)
    assert got["cleanliness"] == pytest.approx(3.5)
    # Tokens that do not spell the answer (a server dropping tokens) give nothing.
    assert expected_scores(rubric, parsed, answer, tokens[1:]) == {}
    # A score sharing its token with other characters is left out.
    assert tokens[-2]["token"] == "Cleanliness:" and tokens[-1]["token"] == " 3"
    joined = [*tokens[:-2], {"token": "Cleanliness: 3", "logprob": 0.0}]
    assert set(expected_scores(rubric, parsed, answer, joined)) == set(got) - {"cleanliness"}


# ---- the labelling protocol against a live server ----------------------------------------


def test_label_end_to_end(tmp_path, corpus):
    path, docs = corpus
    rubric = load_rubric("dataman")
    texts = [d["text"] for d in docs]
    plan = {texts[0]: "bad", texts[1]: "fix", texts[2]: "flaky", texts[3]: "reject"}
    server = FakeTeacher(rubric, plan, delay=0.02)
    out = tmp_path / "labels.jsonl"
    try:
        manifest = label_corpus([path], out, rubric, settings(server.url))
    finally:
        server.close()
    labels = {r["id"]: r for r in read_jsonl(out)}
    failures_path, manifest_path = companion_paths(out)
    failures = {r["id"]: r for r in read_jsonl(failures_path)}
    ids = [d["id"] for d in docs]
    assert set(labels) == set(ids) - {ids[0], ids[3]}
    assert set(failures) == {ids[0], ids[3]}
    # Malformed: asked 1 + 2 times, every raw answer kept, reason given, never guessed.
    bad = failures[ids[0]]
    assert bad["kind"] == "malformed" and len(bad["attempts"]) == 3
    assert "no answer line for Accuracy" in bad["reason"]
    assert all("Score: " in a["raw"] for a in bad["attempts"])
    assert server.requests[texts[0]] == 3
    # Re-asks run warmer: a greedy teacher would repeat its malformed answer.
    temps = [b["temperature"] for b in server.bodies if texts[0] in b["messages"][-1]["content"]]
    assert temps == [0.0, 0.7, 0.7]
    assert failures[ids[3]]["kind"] == "rejected" and "HTTP 400" in failures[ids[3]]["reason"]
    assert labels[ids[1]]["attempts"] == 2 and server.requests[texts[1]] == 2
    assert server.requests[texts[2]] == 3  # 429, 500, then the answer
    # Every record: the parsed scores, the domain name, expected scores from logprobs.
    for d in docs[4:]:
        record = labels[d["id"]]
        scores = FakeTeacher(rubric, {}).scores(d["text"])
        assert record["labels"] == scores and record["domain"] == "law"
        assert record["text"] == d["text"] and record["meta"]["domain"] == d["domain"]
        for name, k in scores.items():
            assert record["expected"][name] == pytest.approx(expected_of(k, 1, 5), abs=1e-6)
        assert record["rubric"] == rubric.describe()
        assert record["teacher"] == {"model": "teacher-7b"}
    assert 1 < server.max_in_flight <= 4  # concurrent, and bounded
    written = json.loads(manifest_path.read_text())
    assert written == json.loads(json.dumps(manifest))
    assert written["status"] == "complete"
    assert written["run"]["teacher"]["model"] == "teacher-7b"
    assert written["rubric"]["version"] == "1"
    assert written["rubric"]["prompt_sha256"] == rubric.prompt_sha256
    assert written["counts"]["labelled"] == 18 and written["counts"]["failed"] == 2
    this_run = written["counts"]["this_run"]
    assert this_run["http_retries"] == 2 and this_run["parse_retries"] == 3
    assert this_run["with_expected"] == 18 and this_run["prompt_tokens"] > 0


def test_resume_skips_done_ids_and_cuts_a_torn_line(tmp_path, corpus):
    path, docs = corpus
    rubric = load_rubric("prrc")
    server = FakeTeacher(rubric, {docs[5]["text"]: "bad"})
    out = tmp_path / "labels.jsonl"
    try:
        first = label_corpus([path], out, rubric, settings(server.url), limit=8)
        assert first["counts"]["labelled"] == 7 and first["counts"]["failed"] == 1
        with open(out, "a") as f:  # a crash mid-write leaves half a line
            f.write('{"id": "' + docs[9]["id"] + '", "text": "half a rec')
        before = dict(server.requests)
        second = label_corpus([path], out, rubric, settings(server.url))
        assert second["counts"]["this_run"]["skipped_done"] == 8
        # Nothing labelled or failed before was asked again; the rest once each.
        for d in docs[:8]:
            assert server.requests[d["text"]] == before[d["text"]]
        for d in docs[8:]:
            assert server.requests[d["text"]] == 1
        ids = [r["id"] for r in read_jsonl(out)]
        assert len(ids) == len(set(ids)) == 19
        assert second["counts"] == second["counts"] | {"labelled": 19, "failed": 1}
        # --retry-failed asks the failure again; a success supersedes it.
        server.plan.clear()
        third = label_corpus([path], out, rubric, settings(server.url), retry_failed=True)
        assert third["counts"]["labelled"] == 20 and third["counts"]["failed"] == 0
    finally:
        server.close()


def test_endpoint_down_is_not_recorded_and_a_rerun_finishes(tmp_path, corpus):
    path, docs = corpus
    rubric = load_rubric("prrc")
    down = {docs[1]["text"]: "down", docs[4]["text"]: "down"}
    server = FakeTeacher(rubric, down)
    out = tmp_path / "labels.jsonl"
    try:
        with pytest.raises(AssayError, match=r"2 document\(s\) were not labelled.*HTTP 503"):
            label_corpus([path], out, rubric, settings(server.url, max_retries=2))
        manifest = json.loads(companion_paths(out)[1].read_text())
        assert manifest["status"] == "incomplete" and manifest["counts"]["labelled"] == 18
        assert not companion_paths(out)[0].read_text()  # infrastructure errors are no failures
        assert server.requests[docs[1]["text"]] == 3
        server.plan.clear()
        label_corpus([path], out, rubric, settings(server.url))
        assert len(read_jsonl(out)) == 20
    finally:
        server.close()


def test_a_dead_endpoint_stops_the_run_early(tmp_path, corpus):
    path, docs = corpus
    rubric = load_rubric("prrc")
    server = FakeTeacher(rubric, {d["text"]: "down" for d in docs})
    out = tmp_path / "labels.jsonl"
    try:
        s = settings(server.url, max_retries=0, max_consecutive_errors=3, concurrency=1)
        with pytest.raises(AssayError, match="failed for 3 documents in a row"):
            label_corpus([path], out, rubric, s)
        assert sum(server.requests.values()) == 3
    finally:
        server.close()


def test_refusals(tmp_path, corpus):
    path, _ = corpus
    dataman, prrc = load_rubric("dataman"), load_rubric("prrc")
    server = FakeTeacher(dataman, {})
    out = tmp_path / "labels.jsonl"
    try:
        label_corpus([path], out, dataman, settings(server.url), limit=2)
        with pytest.raises(ManifestMismatchError, match="another teacher, rubric"):
            label_corpus([path], out, prrc, settings(server.url))
        wrong = TeacherSettings(server.url, "nosuch", backoff=0.01)
        with pytest.raises(
            AssayError, match=r"(?s)--model 'nosuch' is not served.*it serves: teacher-7b"
        ):
            label_corpus([path], tmp_path / "other.jsonl", dataman, wrong)
        server.no_models_route = True  # then the chat request's own 404 stops the run
        with pytest.raises(AssayError, match="model nosuch does not exist"):
            label_corpus([path], tmp_path / "other.jsonl", dataman, wrong)
        with pytest.raises(AssayError, match="cannot reach the teacher endpoint"):
            dead = TeacherSettings("http://127.0.0.1:9/v1", "teacher-7b")
            label_corpus([path], tmp_path / "dead.jsonl", dataman, dead)
        foreign = tmp_path / "foreign.jsonl"
        foreign.write_text('{"id": "x"}\n')
        with pytest.raises(ManifestMismatchError, match="not written by assay label"):
            label_corpus([path], foreign, dataman, settings(server.url))
    finally:
        server.close()
    with pytest.raises(ConfigError, match="--concurrency must be >= 1"):
        settings("http://127.0.0.1:1/v1", concurrency=0).validate()
    with pytest.raises(ConfigError, match="--endpoint"):
        TeacherSettings("localhost:8000", "m").validate()
    assert TeacherSettings("http://h:1", "m").url == "http://h:1/v1/chat/completions"
    assert TeacherSettings("http://h:1/v1/", "m").url == "http://h:1/v1/chat/completions"


def test_killed_run_resumes_without_loss_or_repeats(tmp_path, corpus):
    """SIGKILL a labelling process mid-run; the rerun ends with every id exactly once."""
    path, docs = corpus
    rubric = load_rubric("prrc")
    server = FakeTeacher(rubric, {}, delay=0.05)
    out = tmp_path / "labels.jsonl"
    code = (
        "import sys; sys.path.insert(0, sys.argv[3])\n"
        "from raters.rubrics import load_rubric\n"
        "from raters.teacher import TeacherSettings, label_corpus\n"
        "label_corpus([sys.argv[1]], sys.argv[2], load_rubric('prrc'),\n"
        "             TeacherSettings(sys.argv[4], 'teacher-7b', concurrency=2, flush_every=1))\n"
    )
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(path), str(out), str(REPO), server.url],
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if out.exists() and len(out.read_text().splitlines()) >= 4:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = len(read_jsonl(out))
        assert 4 <= done < 20, "the process finished before it could be killed"
        label_corpus([path], out, rubric, settings(server.url))
        ids = [r["id"] for r in read_jsonl(out)]
        assert sorted(ids) == sorted(d["id"] for d in docs)
    finally:
        server.close()


def test_cli_label(tmp_path, corpus):
    import typer
    from typer.testing import CliRunner

    from assay.cli_raters import label

    path, _ = corpus
    app = typer.Typer()
    app.command()(label)
    app.command("noop")(lambda: None)  # two commands: typer then expects the name
    server = FakeTeacher(load_rubric("prrc"), {})
    out = tmp_path / "labels.jsonl"
    runner = CliRunner()
    try:
        args = ["label", str(path), "-o", str(out), "--endpoint", server.url]
        result = runner.invoke(app, [*args, "--model", "teacher-7b", "--rubric", "prrc"])
        assert result.exit_code == 0, result.output
        assert "20 documents labelled, 0 failed" in result.output
        result = runner.invoke(app, [*args, "--model", "teacher-7b", "--rubric", "nope"])
        assert result.exit_code == 2
        assert "error: --rubric: 'nope' is neither a built-in rubric" in result.output
    finally:
        server.close()


def test_torn_line_repair_scans_back_over_long_lines(tmp_path):
    from raters.teacher import _repair_and_read_ids

    path = tmp_path / "labels.jsonl"
    full = [json.dumps({"id": f"d{i}", "text": "x" * 70_000}) + "\n" for i in range(2)]
    path.write_text("".join(full) + '{"id": "d2", "text": "' + "y" * 150_000)
    assert _repair_and_read_ids(path) == {"d0", "d1"}
    assert path.read_text() == "".join(full)
    path.write_text('{"id": "d0", "te')  # nothing complete at all
    assert _repair_and_read_ids(path) == set() and path.read_text() == ""
    path.write_text('{"id": "d0"}\nnot json\n')
    with pytest.raises(AssayError, match=r"labels.jsonl:2: not a record written by assay label"):
        _repair_and_read_ids(path)
