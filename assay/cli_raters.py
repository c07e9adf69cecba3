"""``assay label``, ``assay train-rater``, ``assay eval-rater``: thin typed commands over
``raters.teacher``, ``raters.train`` and ``raters.evaluate``.

Registered in ``assay.cli`` with ``app.command()(label)``,
``app.command("train-rater")(train_rater)`` and ``app.command("eval-rater")(eval_rater)``;
httpx, torch and peft are imported only when a command runs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from assay.cli_common import fail as _fail
from assay.errors import AssayError, ConfigError


def _pairs(values: list[str], flag: str, convert: Any = str) -> dict[str, Any]:
    """``["a=1", "b=2"]`` -> ``{"a": convert("1"), ...}``; errors name the flag."""
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"{flag} must look like NAME=VALUE, got {item!r}")
        try:
            out[key] = convert(value)
        except ValueError:
            raise ConfigError(f"{flag} {item!r}: {value!r} is not valid") from None
    return out


def label(
    inputs: list[str] = typer.Argument(..., help="JSONL(.gz/.zst)/Parquet files, globs, folders"),
    out: Path = typer.Option(..., "-o", "--out", help="Labels file (.jsonl); resumable"),
    endpoint: str = typer.Option(
        ..., help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"
    ),
    model: str = typer.Option(..., help="Teacher model name, as the server knows it"),
    rubric: str = typer.Option("dataman", help="dataman | prrc | a rubric YAML file"),
    concurrency: int = typer.Option(8, help="Requests in flight"),
    max_retries: int = typer.Option(5, help="Retries per request on 429/5xx/timeouts"),
    parse_retries: int = typer.Option(2, help="Re-asks after a malformed answer"),
    timeout: float = typer.Option(300.0, help="Seconds per request"),
    temperature: float = typer.Option(0.0, help="Temperature of the first request"),
    retry_temperature: float = typer.Option(0.7, help="Temperature of re-asks"),
    max_tokens: int | None = typer.Option(None, help="Generation budget (default: rubric's)"),
    logprobs: bool = typer.Option(True, help="Ask for logprobs; keep expected scores"),
    top_logprobs: int = typer.Option(10, help="Alternatives per token for expected scores"),
    limit: int | None = typer.Option(None, help="Label only the first N documents"),
    retry_failed: bool = typer.Option(False, help="Ask again for recorded failures"),
    overwrite: bool = typer.Option(False, help="Discard earlier labels in OUT and start over"),
    text_field: str = typer.Option("text", help="Field holding the document text"),
    id_field: str = typer.Option("id", help="Field holding the id (sha1(text) if absent)"),
    api_key_env: str = typer.Option(
        "OPENAI_API_KEY", help="Environment variable with the bearer token, if any"
    ),
) -> None:
    """Label documents with a teacher LLM and a rubric (DataMan, PRRC, or your own)."""
    try:
        from assay.records import Fields
        from raters.rubrics import load_rubric
        from raters.teacher import TeacherSettings, label_corpus

        settings = TeacherSettings(
            endpoint=endpoint,
            model=model,
            concurrency=concurrency,
            max_retries=max_retries,
            parse_retries=parse_retries,
            timeout=timeout,
            temperature=temperature,
            retry_temperature=retry_temperature,
            max_tokens=max_tokens,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            api_key_env=api_key_env,
        )
        last = [0.0]

        def progress(stats: Any) -> None:
            now = time.perf_counter()
            if now - last[0] >= 10:
                last[0] = now
                rate = (stats.labelled + stats.failed) / max(now - stats.started, 1e-9)
                print(
                    f"label: {stats.labelled:,} labelled, {stats.failed:,} failed, "
                    f"{stats.skipped_done:,} done earlier, {rate:.2f} docs/s, "
                    f"{stats.http_retries} HTTP retries",
                    file=sys.stderr,
                    flush=True,
                )

        manifest = label_corpus(
            inputs,
            out,
            load_rubric(rubric),
            settings,
            fields=Fields(text=text_field, id=id_field),
            limit=limit,
            retry_failed=retry_failed,
            overwrite=overwrite,
            on_progress=progress,
        )
    except AssayError as e:
        _fail(e)
        return
    counts = manifest["counts"]
    typer.echo(
        f"{counts['labelled']:,} documents labelled, {counts['failed']:,} failed "
        f"(see {Path(manifest['files']['failures']).name}): {out}"
    )


def train_rater(
    labels: Path = typer.Argument(..., help="Labels JSONL (assay label -o)"),
    out: Path = typer.Option(..., "-o", "--out", help="Rater folder to write"),
    base: str = typer.Option("all-minilm-l6-v2", help="Named model or a model folder"),
    kind: str = typer.Option("encoder", help="encoder | decoder"),
    method: str | None = typer.Option(
        None, help="head | lora | full (default: head for encoders, lora for decoders)"
    ),
    name: str | None = typer.Option(None, help="Rater name / column prefix (default: folder)"),
    head: list[str] = typer.Option(
        [], "--head", help="CRITERION=classification|regression|auto (repeatable)"
    ),
    criteria: list[str] = typer.Option([], "--criterion", help="Train only these (repeatable)"),
    domain: bool = typer.Option(True, help="Train a domain head when the labels have domains"),
    max_tokens: int | None = typer.Option(
        None, help="Tokens per example (default: 256 encoder, 1024 decoder)"
    ),
    pooling: str = typer.Option("mean", help="Encoder pooling: mean | cls | mean_cls"),
    epochs: int | None = typer.Option(None, help="Maximum epochs (default per method)"),
    batch_size: int | None = typer.Option(None, help="Examples per step (default per method)"),
    lr: float | None = typer.Option(None, help="Learning rate (default per method)"),
    head_lr: float = typer.Option(5e-3, help="Heads' learning rate under lora/full"),
    patience: int | None = typer.Option(None, help="Validations without improvement to stop"),
    eval_every: int | None = typer.Option(None, help="Steps between validations (default: epoch)"),
    val_frac: float = typer.Option(0.1, help="Share of label groups for validation"),
    test_frac: float = typer.Option(0.1, help="Share of label groups held out for metrics"),
    seed: int = typer.Option(0, help="Seed of the split, the init and the batch order"),
    class_balance: float = typer.Option(1.0, help="Class-balancing power (0: off, 0.5: mild)"),
    use_expected: bool = typer.Option(False, help="Regression heads learn expected scores"),
    lora_r: int = typer.Option(16, help="LoRA rank"),
    lora_alpha: int = typer.Option(32, help="LoRA alpha"),
    adapter: str | None = typer.Option(
        None, help="LoRA output: merge | keep (default: merge encoder, keep decoder)"
    ),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]"),
    threads: int | None = typer.Option(None, help="torch threads (1 is fastest on busy CPUs)"),
    overwrite: bool = typer.Option(False, help="Replace a rater folder written earlier"),
) -> None:
    """Train one model with many heads (criteria + domain) on teacher labels."""
    try:
        from raters.train import train_rater as run
        from raters.train_config import TrainConfig

        config = TrainConfig(
            base=base,
            kind=kind,
            method=method,
            name=name,
            heads=_pairs(head, "--head"),
            criteria=tuple(criteria) or None,
            domain=domain,
            max_tokens=max_tokens,
            pooling=pooling,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            head_lr=head_lr,
            patience=patience,
            eval_every=eval_every,
            val_frac=val_frac,
            test_frac=test_frac,
            seed=seed,
            class_balance=class_balance,
            use_expected=use_expected,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            adapter=adapter,
            device=device,
            threads=threads,
        )
        metrics = run(
            labels, out, config, overwrite=overwrite, log=lambda m: print(m, file=sys.stderr)
        )
    except AssayError as e:
        _fail(e)
        return
    held = metrics.get("test") or metrics.get("val") or {}
    split = "test" if "test" in metrics else "val"
    for head_name, r in held.items():
        if isinstance(r, dict) and "accuracy" in r:
            base_acc = (r.get("baseline") or {}).get("accuracy")
            extra = f" (majority {base_acc:.3f})" if base_acc is not None else ""
            typer.echo(f"{split} {head_name}: accuracy {r['accuracy']:.3f}{extra}")
    typer.echo(f"rater written: {out}  (use --rater {out})")


def eval_rater(
    rater: str = typer.Argument(..., help="Rater folder, released name, or NAME=MODEL_DIR"),
    labels: Path = typer.Argument(..., help="Labels JSONL to compare with"),
    out: Path | None = typer.Option(
        None, "-o", "--out", help="Report JSON (default: <labels>.eval-<split>.json)"
    ),
    split: str = typer.Option("all", help="all | train | val | test (the rater's training split)"),
    threshold: list[str] = typer.Option(
        [], "--threshold", help="CRITERION=VALUE for binary F1 (default: middle of the scale)"
    ),
    bins: int = typer.Option(10, help="Calibration bins"),
    limit: int | None = typer.Option(None, help="Evaluate the first N examples only"),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]"),
    dtype: str = typer.Option("auto", help="auto | float32 | bfloat16"),
) -> None:
    """Agreement of a rater with labels: accuracy, macro-F1, Spearman, MAE, F1, calibration."""
    try:
        from assay.manifest import write_json_atomic
        from raters.evaluate import evaluate_rater, format_report

        report = evaluate_rater(
            rater,
            labels,
            split=split,
            thresholds=_pairs(threshold, "--threshold", float),
            bins=bins,
            device=device,
            dtype=dtype,
            limit=limit,
        )
        target = out or labels.with_name(f"{labels.name.removesuffix('.jsonl')}.eval-{split}.json")
        write_json_atomic(target, report)
    except AssayError as e:
        _fail(e)
        return
    typer.echo(format_report(report))
    typer.echo(f"\nreport: {target}")
