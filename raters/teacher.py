"""``assay label``: a teacher LLM labels documents with a rubric, over an OpenAI-compatible
chat endpoint (vLLM, SGLang, llama.cpp's server, a hosted API).

Per document: one chat request with the rubric prompt; the answer is parsed strictly
(:mod:`raters.answers`); a malformed answer is asked again (at ``retry_temperature``, since
a greedy teacher repeats itself) and, after ``parse_retries`` more tries, recorded as a
failure with every raw answer and the reason. Where the response has logprobs, the
expected score of each criterion is kept beside the parsed one.

Files (for ``-o labels.jsonl``):

- ``labels.jsonl``: one label record per document (format: :mod:`raters.labels`);
- ``labels.failures.jsonl``: ``{"id", "kind", "reason", "attempts": [{"raw", "reason",
  "finish_reason"}], ...}`` for documents the teacher could not label (``malformed``
  answers, or a ``rejected`` request: HTTP 400/413/422, e.g. a prompt over the
  context length);
- ``labels.manifest.json``: teacher, rubric version and prompt hash, request settings,
  inputs, counts (labelled, failed, skipped duplicate ids, requests, retries, tokens) and
  timings; written at the start (``status: running``) and at the end.

HTTP 429, 408, 5xx and transport errors are retried with exponential backoff and jitter
(``Retry-After`` is honoured). A document whose retries run out is not written anywhere:
the run finishes the others and then fails, and rerunning the same command labels it.
``max_consecutive_errors`` such documents in a row stop the run early (the endpoint is
down). 401/403/404 stop it at once (wrong key, model or URL), and so does a first
``GET /v1/models`` that cannot connect or does not list ``--model``.

Resume: lines are appended whole and fsynced every ``flush_every`` records; a rerun
skips every id already in the labels or failures file (``retry_failed`` asks the
failures again; a later success supersedes the failure), after cutting a torn last line
left by a crash. A rerun with another rubric, prompt, teacher or sampling setting is
refused: one file, one teacher.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assay import manifest as mf
from assay.errors import AssayError, ConfigError, ManifestMismatchError
from assay.records import Fields, doc_id
from raters.answers import AnswerError, expected_scores, parse_answer
from raters.rubrics import Rubric

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
REJECT_STATUS = {400, 413, 422}


@dataclass(frozen=True)
class TeacherSettings:
    """How to call the teacher. Validated by :meth:`validate` (errors name the flag)."""

    endpoint: str
    """Base URL of an OpenAI-compatible server (``http://127.0.0.1:8000/v1``), or its full
    ``.../chat/completions`` URL."""
    model: str
    """Model name the server knows (``--model``); recorded as the teacher."""
    concurrency: int = 8
    """Requests in flight at once."""
    max_retries: int = 5
    """Retries of one request after 429 / 5xx / timeouts / connection errors."""
    parse_retries: int = 2
    """Further requests after a malformed answer, before recording a failure."""
    timeout: float = 300.0
    """Seconds per request."""
    temperature: float = 0.0
    """Sampling temperature of the first request (greedy by default, as DataMan)."""
    retry_temperature: float = 0.7
    """Temperature of requests after a malformed answer (a greedy retry repeats itself)."""
    max_tokens: int | None = None
    """Generation budget; ``None``: the rubric's ``max_tokens``."""
    logprobs: bool = True
    """Ask for logprobs and keep expected scores (off for servers that reject it)."""
    top_logprobs: int = 10
    """Alternatives per token for the expected score (OpenAI allows up to 20)."""
    backoff: float = 1.0
    """First retry delay in seconds; doubles each retry, with jitter."""
    backoff_max: float = 60.0
    """Longest delay between retries (also caps ``Retry-After``)."""
    max_consecutive_errors: int = 20
    """Documents in a row lost to endpoint errors before the run stops."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding a bearer token (unset: no Authorization header)."""
    flush_every: int = 16
    """Records buffered before an append + fsync (a crash re-asks at most these)."""

    def validate(self) -> TeacherSettings:
        if not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"--endpoint must be an http(s) URL, got {self.endpoint!r}")
        if not self.model:
            raise ConfigError("--model must name the teacher model the server serves")
        for flag, value, low in (
            ("concurrency", self.concurrency, 1),
            ("max-retries", self.max_retries, 0),
            ("parse-retries", self.parse_retries, 0),
            ("top-logprobs", self.top_logprobs, 1),
            ("max-consecutive-errors", self.max_consecutive_errors, 1),
            ("flush-every", self.flush_every, 1),
        ):
            if value < low:
                raise ConfigError(f"--{flag} must be >= {low}, got {value}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"--max-tokens must be > 0, got {self.max_tokens}")
        if self.timeout <= 0 or self.backoff < 0 or self.backoff_max < self.backoff:
            raise ConfigError("--timeout must be > 0 and 0 <= backoff <= backoff-max")
        if not 0 <= self.temperature <= 2 or not 0 <= self.retry_temperature <= 2:
            raise ConfigError("--temperature / --retry-temperature must be within [0, 2]")
        return self

    @property
    def url(self) -> str:
        url = self.endpoint.rstrip("/")
        if url.endswith("/chat/completions"):
            return url
        return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


@dataclass
class LabelStats:
    """Counters of one run (also handed to the progress callback)."""

    seen: int = 0
    skipped_done: int = 0
    labelled: int = 0
    failed: int = 0
    endpoint_errors: int = 0
    duplicate_ids: int = 0
    requests: int = 0
    http_retries: int = 0
    parse_retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    with_expected: int = 0
    started: float = field(default_factory=time.perf_counter)


def companion_paths(out: Path) -> tuple[Path, Path]:
    """``labels.jsonl`` -> (``labels.failures.jsonl``, ``labels.manifest.json``)."""
    stem = out.name.removesuffix(".jsonl")
    return out.with_name(f"{stem}.failures.jsonl"), out.with_name(f"{stem}.manifest.json")


class _EndpointError(Exception):
    """Retries ran out (429, 5xx, timeouts, connection errors)."""


class _Rejected(Exception):
    """The server refused this document's request (400/413/422)."""


class _Fatal(Exception):
    """Every request would fail (401/403/404): stop the run."""


class _Appender:
    """Appends whole JSON lines: one write + fsync per ``every`` records, or when the
    oldest buffered record is ``seconds`` old (slow teachers), and at close."""

    def __init__(self, path: Path, every: int, seconds: float = 5.0) -> None:
        self.path, self.every, self.seconds = path, every, seconds
        self.buffer: list[str] = []
        self.since = 0.0
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def add(self, record: dict[str, Any]) -> None:
        if not self.buffer:
            self.since = time.monotonic()
        self.buffer.append(json.dumps(record, ensure_ascii=False) + "\n")
        if len(self.buffer) >= self.every or time.monotonic() - self.since > self.seconds:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.file.write("".join(self.buffer))
            self.buffer.clear()
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.flush()
        self.file.close()


def _repair_and_read_ids(path: Path) -> set[str]:
    """Ids already in a JSONL file, after cutting a torn last line (a crash mid-write).
    Streams the file: memory holds the ids, not the texts."""
    if not path.exists():
        return set()
    with open(path, "rb+") as f:
        end = f.seek(0, os.SEEK_END)
        if end:
            f.seek(end - 1)
            if f.read(1) != b"\n":
                cut = end
                while cut > 0:  # back to the last complete line, in 64 KiB steps
                    start = max(0, cut - (1 << 16))
                    f.seek(start)
                    chunk = f.read(cut - start)
                    newline = chunk.rfind(b"\n")
                    if newline >= 0:
                        cut = start + newline + 1
                        break
                    cut = start
                f.truncate(cut)
    ids = set()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                ids.add(str(json.loads(line)["id"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise AssayError(
                    f"{path}:{number}: not a record written by assay label",
                    hint="fix or remove the line, or pass --overwrite to start over",
                ) from None
    return ids


class Teacher:
    """Labels documents with a rubric over an OpenAI-compatible chat endpoint."""

    def __init__(self, rubric: Rubric, settings: TeacherSettings) -> None:
        self.rubric = rubric
        self.settings = settings.validate()
        self.stats = LabelStats()
        self._consecutive_errors = 0
        self._last_error = ""

    def request_body(self, text: str, temperature: float) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {
            "model": s.model,
            "messages": self.rubric.messages(text),
            "temperature": temperature,
            "max_tokens": s.max_tokens or self.rubric.max_tokens,
        }
        if s.logprobs:
            body |= {"logprobs": True, "top_logprobs": s.top_logprobs}
        return body

    async def _post(self, client: Any, body: dict[str, Any]) -> dict[str, Any]:
        """One request with retries; the parsed JSON of a 200 response."""
        import httpx

        s = self.settings
        last = ""
        for attempt in range(s.max_retries + 1):
            if attempt:
                self.stats.http_retries += 1
            self.stats.requests += 1
            delay = None
            try:
                response = await client.post(s.url, json=body)
            except httpx.HTTPError as e:  # connection refused/reset, timeouts, protocol errors
                last = f"{type(e).__name__}: {e}"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        data = response.json()
                        if isinstance(data["choices"][0]["message"], dict):
                            return data
                        last = "HTTP 200 without a message"
                    except (ValueError, KeyError, IndexError, TypeError):
                        last = f"HTTP 200 with an unreadable body: {response.text[:200]!r}"
                elif status in REJECT_STATUS:
                    raise _Rejected(f"HTTP {status}: {response.text[:500]}")
                elif status in RETRY_STATUS:
                    last = f"HTTP {status}: {response.text[:200]}"
                    delay = _retry_after(response.headers.get("retry-after"))
                else:
                    raise _Fatal(f"HTTP {status} from {s.url}: {response.text[:500]}")
            if attempt < s.max_retries:
                wait = s.backoff * 2**attempt * (0.5 + random.random())
                await asyncio.sleep(min(s.backoff_max, delay if delay is not None else wait))
        raise _EndpointError(f"{s.max_retries + 1} attempts failed; last: {last}")

    async def preflight(self, client: Any) -> None:
        """Fail fast on an endpoint that is down or does not serve ``model``: ask
        ``GET .../v1/models`` once (servers without that route are not judged)."""
        import httpx

        s = self.settings
        url = s.url.removesuffix("/chat/completions") + "/models"
        try:
            response = await client.get(url)
        except httpx.ConnectError as e:
            raise AssayError(
                f"cannot reach the teacher endpoint {s.endpoint}: {e}",
                hint="start the server (e.g. python -m vllm.entrypoints.openai.api_server "
                "--host 127.0.0.1 --model ...) or fix --endpoint",
            ) from None
        except httpx.HTTPError:
            return
        try:
            served = [m["id"] for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            return
        if response.status_code == 200 and served and s.model not in served:
            raise AssayError(
                f"--model {s.model!r} is not served by {s.endpoint}",
                hint=f"it serves: {', '.join(map(str, served[:10]))}",
            )

    async def label_one(self, client: Any, doc_id_: str, text: str) -> tuple[str, dict]:
        """``("label", record)`` or ``("failure", record)``; endpoint errors raise."""
        s = self.settings
        attempts: list[dict[str, Any]] = []
        for attempt in range(s.parse_retries + 1):
            if attempt:
                self.stats.parse_retries += 1
            temperature = s.temperature if attempt == 0 else s.retry_temperature
            try:
                data = await self._post(client, self.request_body(text, temperature))
            except _Rejected as e:
                return "failure", self._failure(doc_id_, "rejected", str(e), attempts)
            usage = data.get("usage") or {}
            self.stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.stats.completion_tokens += int(usage.get("completion_tokens") or 0)
            choice = data["choices"][0]
            content = choice["message"].get("content")
            finish = choice.get("finish_reason")
            try:
                parsed = parse_answer(self.rubric, content)
            except AnswerError as e:
                reason = str(e) + (" (answer cut at max_tokens)" if finish == "length" else "")
                attempts.append({"raw": content, "reason": reason, "finish_reason": finish})
                continue
            record: dict[str, Any] = {
                "id": doc_id_,
                "text": text,
                "labels": parsed.labels,
                "domain": parsed.domain,
            }
            tokens = ((choice.get("logprobs") or {}).get("content")) if s.logprobs else None
            expected = expected_scores(self.rubric, parsed, content, tokens)
            if expected:
                record["expected"] = {k: round(v, 6) for k, v in expected.items()}
                self.stats.with_expected += 1
            record |= {
                "teacher": {"model": s.model},
                "rubric": self.rubric.describe(),
                "answer": content,
                "attempts": attempt + 1,
            }
            return "label", record
        return "failure", self._failure(doc_id_, "malformed", attempts[-1]["reason"], attempts)

    def _failure(self, id_: str, kind: str, reason: str, attempts: list[dict]) -> dict[str, Any]:
        return {
            "id": id_,
            "kind": kind,
            "reason": reason,
            "attempts": attempts,
            "teacher": {"model": self.settings.model},
            "rubric": self.rubric.describe(),
        }

    async def run(
        self,
        docs: Any,
        labels: _Appender,
        failures: _Appender,
        on_progress: Callable[[LabelStats], None] | None = None,
    ) -> None:
        """Label every ``(id, text, meta)`` of the iterable ``docs``, ``concurrency`` at once."""
        import httpx

        s = self.settings
        headers = {}
        key = os.environ.get(s.api_key_env) if s.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        limits = httpx.Limits(
            max_connections=s.concurrency, max_keepalive_connections=s.concurrency
        )
        queue: asyncio.Queue = asyncio.Queue(maxsize=2 * s.concurrency)
        fatal: list[BaseException] = []

        async def worker(client: Any) -> None:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if fatal:
                    continue  # drain: the run is stopping
                id_, text, meta = item
                try:
                    kind, record = await self.label_one(client, id_, text)
                except _EndpointError as e:
                    self.stats.endpoint_errors += 1
                    self._consecutive_errors += 1
                    self._last_error = str(e)
                    if self._consecutive_errors >= s.max_consecutive_errors:
                        fatal.append(
                            AssayError(
                                f"the teacher endpoint failed for {self._consecutive_errors} "
                                f"documents in a row; last error: {e}",
                                hint="check that the server is up (--endpoint); rerun the "
                                "same command to resume",
                            )
                        )
                    continue
                except _Fatal as e:
                    fatal.append(
                        AssayError(
                            f"the teacher endpoint refused the request: {e}",
                            hint=f"check --endpoint, --model and the API key (${s.api_key_env})",
                        )
                    )
                    continue
                self._consecutive_errors = 0
                if meta:
                    record["meta"] = meta
                if kind == "label":
                    labels.add(record)
                    self.stats.labelled += 1
                else:
                    failures.add(record)
                    self.stats.failed += 1
                if on_progress is not None:
                    on_progress(self.stats)

        timeout = httpx.Timeout(s.timeout, connect=min(s.timeout, 30.0))
        async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers) as client:
            await self.preflight(client)
            workers = [asyncio.create_task(worker(client)) for _ in range(s.concurrency)]
            try:
                for item in docs:
                    if fatal:
                        break
                    await queue.put(item)
            finally:
                for _ in workers:
                    await queue.put(None)
                await asyncio.gather(*workers)
        if fatal:
            raise fatal[0]


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def label_corpus(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    rubric: Rubric,
    settings: TeacherSettings,
    *,
    fields: Fields = Fields(),
    limit: int | None = None,
    retry_failed: bool = False,
    overwrite: bool = False,
    on_progress: Callable[[LabelStats], None] | None = None,
) -> dict[str, Any]:
    """Label the documents of ``inputs`` into ``out`` (a ``.jsonl`` path); resumable.

    Args:
        inputs: corpus files, globs or folders (:func:`assay.corpus.read_documents`).
        limit: label only the first ``limit`` documents of the input (a rerun with the
            same limit finishes the same documents).
        retry_failed: ask the teacher again for documents in the failures file.
        overwrite: delete earlier labels, failures and manifest of ``out`` first.

    Returns the manifest. Example::

        label_corpus(["data/demo"], "labels.jsonl", load_rubric("dataman"),
                     TeacherSettings("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-72B-Instruct"))
    """
    from assay.corpus import expand_inputs, read_documents

    settings.validate()
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be > 0, got {limit}")
    out = Path(out)
    if out.suffix != ".jsonl":
        raise ConfigError(f"-o/--out must be a .jsonl file, got {out}")
    failures_path, manifest_path = companion_paths(out)
    fingerprint = {
        "teacher": {"model": settings.model},
        "rubric": rubric.describe(),
        "sampling": {
            "temperature": settings.temperature,
            "retry_temperature": settings.retry_temperature,
            "max_tokens": settings.max_tokens or rubric.max_tokens,
        },
    }
    if overwrite:
        for p in (out, failures_path, manifest_path):
            p.unlink(missing_ok=True)
    _check_resume(out, manifest_path, fingerprint)
    out.parent.mkdir(parents=True, exist_ok=True)
    sources = expand_inputs(inputs)
    manifest = mf.new_manifest(
        "labels",
        status="running",
        run=fingerprint,
        rubric={
            **rubric.describe(),
            "source": rubric.source,
            "scales": rubric.scales(),
            "domains": [d.name for d in rubric.domains],
        },
        settings={k: v for k, v in asdict(settings).items() if k != "api_key_env"},
        inputs=mf.describe_inputs([s.path for s in sources], hash_files=False),
        files={"labels": out.name, "failures": failures_path.name},
    )
    mf.write_json_atomic(manifest_path, manifest)

    done = _repair_and_read_ids(out)
    failed_before = _repair_and_read_ids(failures_path)
    skip = done if retry_failed else done | failed_before
    teacher = Teacher(rubric, settings)
    stats = teacher.stats
    duplicates: list[str] = []

    def documents() -> Any:
        seen: set[str] = set()
        for record in read_documents([str(s.path) for s in sources], fields):
            text = record[fields.text]
            id_ = record.get(fields.id)
            id_ = doc_id(text) if id_ is None else str(id_)
            if id_ in seen:
                stats.duplicate_ids += 1
                if len(duplicates) < 10:
                    duplicates.append(id_)
                continue
            seen.add(id_)
            stats.seen += 1
            if id_ in skip:
                stats.skipped_done += 1
            else:
                meta = {k: v for k, v in record.items() if k not in (fields.id, fields.text)}
                yield id_, text, meta
            if limit is not None and stats.seen >= limit:
                return

    labels_file = _Appender(out, settings.flush_every)
    failures_file = _Appender(failures_path, settings.flush_every)
    error: BaseException | None = None
    try:
        asyncio.run(teacher.run(documents(), labels_file, failures_file, on_progress))
    except AssayError as e:
        error = e
    finally:
        labels_file.close()
        failures_file.close()

    labelled = _repair_and_read_ids(out)
    failed = _repair_and_read_ids(failures_path) - labelled
    complete = error is None and stats.endpoint_errors == 0
    manifest |= {
        "status": "complete" if complete else "incomplete",
        "counts": {
            "labelled": len(labelled),
            "failed": len(failed),
            "duplicate_ids_skipped": stats.duplicate_ids,
            "this_run": {
                k: v for k, v in asdict(stats).items() if k not in ("started", "duplicate_ids")
            },
        },
        "duplicate_id_examples": duplicates,
        "timings": {"wall_seconds_this_run": round(time.perf_counter() - stats.started, 3)},
    }
    mf.write_json_atomic(manifest_path, manifest)
    if error is not None:
        raise error
    if stats.endpoint_errors:
        raise AssayError(
            f"{stats.endpoint_errors} document(s) were not labelled because the endpoint kept "
            f"failing (last error: {teacher._last_error})",
            hint="rerun the same command: labelled documents are skipped, these are asked again",
        )
    return manifest


def _check_resume(out: Path, manifest_path: Path, fingerprint: dict[str, Any]) -> None:
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text()).get("run")
        if previous != fingerprint:
            changed = ", ".join(mf.diff_keys(previous or {}, fingerprint))
            raise ManifestMismatchError(
                f"{out} holds labels from another teacher, rubric or sampling setting "
                f"(differs in: {changed})",
                hint="write to another -o, or pass --overwrite to discard the earlier labels",
            )
    elif out.exists() and out.stat().st_size > 0:
        raise ManifestMismatchError(
            f"{out} exists but has no {manifest_path.name}: it was not written by assay label",
            hint="write to another -o, or pass --overwrite to replace it",
        )
