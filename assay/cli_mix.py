"""``assay mix search`` and ``assay mix export``: thin typed commands over ``selector``.

Registered in ``assay.cli`` with ``app.add_typer(mix_app, name="mix")``; torch, transformers
and LightGBM are imported only when a command runs.
"""

from __future__ import annotations

from pathlib import Path

import typer

from assay.cli_common import fail as _fail
from assay.errors import AssayError

mix_app = typer.Typer(
    no_args_is_help=True,
    help="Search a data mixture with proxy models (trust region, CLIMB, RegMix) and export it.",
)


@mix_app.command("search")
def search(
    groups: Path = typer.Argument(
        ..., help="Clusters folder, annotated folder, or corpus files with a group field"
    ),
    target: list[str] = typer.Option(
        ..., "--target", "-t", help="Validation corpus to optimise for (repeatable; averaged)"
    ),
    out: Path = typer.Option(Path("mixture.json"), "-o", "--out", help="mixture.json to write"),
    group_by: str = typer.Option("cluster.topic", help="Column whose values are the groups"),
    method: str = typer.Option(
        "trust", help="trust (trust region, verified vs the prior) | climb | regmix"
    ),
    proxies: int | None = typer.Option(
        None, help="Proxy runs, verification aside (default: 4 per group, at least 8)"
    ),
    rounds: str = typer.Option("4:2:1", help="climb: split of --proxies over rounds"),
    objective: str = typer.Option("loss", help="loss (nats/token) | bpb (bits per byte)"),
    predictor: str = typer.Option("lightgbm", help="climb / regmix: lightgbm | linear"),
    predictors: str = typer.Option(
        "loglinear,gp,lightgbm", help="trust: surrogates to cross-validate (the best predicts)"
    ),
    trust_kl: float = typer.Option(2.0, help="trust: radius (KL to the prior) at CV skill 1"),
    kappa: float = typer.Option(1.0, help="trust: std devs in the confidence bounds"),
    min_group_share: float = typer.Option(
        1e-3, help="Groups under this share of the tokens get weight 0"
    ),
    budget_tokens: int | None = typer.Option(
        None, help="Training tokens the mixture is for (default: the pool's size)"
    ),
    max_epochs: float = typer.Option(15.0, help="Most passes over any group in the budget"),
    prior_temperature: float = typer.Option(0.5, help="Prior = token share ** this"),
    min_weight: float = typer.Option(2e-4, help="Smaller weights are set to 0"),
    candidates: int = typer.Option(20_000, help="Mixtures the predictor scores per round"),
    top_k: int = typer.Option(128, help="Best predicted mixtures averaged into the answer"),
    explore: float = typer.Option(0.25, help="Share of later CLIMB rounds spent at random"),
    seed: int = typer.Option(0, help="Seed of sampling, predictor and proxies"),
    verify: int = typer.Option(
        3, help="trust: seeds of the proposal-vs-prior check; climb/regmix: of the answer"
    ),
    guard: bool = typer.Option(
        True, help="climb/regmix: rerun the best measured mixture at the verify seeds too"
    ),
    holdout: float = typer.Option(
        0.5, help="trust: share of the target documents only the verification reads"
    ),
    proxy_hidden: int = typer.Option(64, help="Proxy width"),
    proxy_layers: int = typer.Option(2, help="Proxy layers"),
    proxy_heads: int = typer.Option(4, help="Proxy attention heads"),
    proxy_seq_len: int = typer.Option(256, help="Proxy sequence length"),
    proxy_tokens: int = typer.Option(30_000, help="Training tokens per proxy"),
    proxy_batch_size: int = typer.Option(8, help="Blocks per proxy step"),
    proxy_lr: float = typer.Option(1e-2, help="Proxy peak learning rate"),
    proxy_init: str = typer.Option(
        "scratch", help="scratch | smollm2-135m | an HF model folder to continue from"
    ),
    proxy_dtype: str = typer.Option("float32", help="float32 | bfloat16"),
    proxy_threads: int = typer.Option(1, help="CPU threads per proxy"),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]"),
    tokenizer: str | None = typer.Option(None, help="HF tokenizer folder for the proxies"),
    proxy_cmd: str | None = typer.Option(
        None, help="Your trainer instead: 'train.sh {mixture_json} {out}' printing JSON metrics"
    ),
    runs_csv: str | None = typer.Option(
        None, help="Offline runs (w:<group> columns + objective) to fit instead of / besides"
    ),
    annotated: Path | None = typer.Option(
        None, help="Annotated folder of a clusters folder (default: from its manifest)"
    ),
    text_field: str = typer.Option("text", help="Field holding the document text"),
    id_field: str = typer.Option("id", help="Field holding the document id"),
    resume: bool = typer.Option(
        False, help="Reuse finished runs of an interrupted search with the same flags"
    ),
) -> None:
    """Train proxies on sampled mixtures, fit a predictor, write the best mixture."""
    try:
        from selector.proxy_lm import ProxyConfig
        from selector.search import SearchConfig, run_search

        config = SearchConfig(
            group_by=group_by, method=method, proxies=proxies, rounds=rounds,
            prior_temperature=prior_temperature, max_epochs=max_epochs,
            budget_tokens=budget_tokens, min_weight=min_weight, predictor=predictor,
            n_candidates=candidates, top_k=top_k, explore=explore, objective=objective,
            seed=seed, verify=verify, guard=guard, text_field=text_field, id_field=id_field,
            predictors=predictors, trust_kl=trust_kl, kappa=kappa,
            min_group_share=min_group_share, holdout=holdout,
        )  # fmt: skip
        proxy = ProxyConfig(
            hidden=proxy_hidden, layers=proxy_layers, heads=proxy_heads, seq_len=proxy_seq_len,
            tokens=proxy_tokens, batch_size=proxy_batch_size, lr=proxy_lr, seed=seed,
            init=proxy_init, threads=proxy_threads, dtype=proxy_dtype, device=device,
        )  # fmt: skip
        mixture = run_search(
            groups, target, out, config, proxy, proxy_cmd=proxy_cmd, runs_csv=runs_csv,
            tokenizer_dir=tokenizer, annotated=str(annotated) if annotated else None,
            resume=resume,
        )  # fmt: skip
    except AssayError as e:
        _fail(e)
        return
    m = mixture.method
    typer.echo(
        f"{m['name']}: {m['proxy_runs']} proxy runs, rounds {m['rounds']}, "
        f"held-out Spearman per round {m['heldout_spearman']}"
    )
    for g in sorted(mixture.groups, key=lambda g: -g.weight):
        ep = g.epochs(mixture.budget_tokens)
        typer.echo(f"  {g.name:24s} {g.weight:.4f}" + ("" if ep is None else f"  {ep:.2f} ep"))
    typer.echo(
        f"predicted {m['objective']['metric']} {m['predicted_objective']:.4f}; "
        f"verified {m['verified_objective']}"
    )
    v = m.get("verification")
    if v:
        p = m["predictor"]
        typer.echo(
            f"predictor {p['chosen']} (CV skill {p['skill']:.2f}); KL to prior "
            f"{m['proposal']['kl_to_prior']:.3f} of {m['trust_region']['radius_kl']:.3f}; "
            + (
                f"proposal vs prior {v['difference']:+.4f} (noise {v['noise']:.4f}): "
                if "difference" in v
                else ""
            )
            + f"kept the {v['chosen']}"
        )
    if m.get("guard"):
        g = m["guard"]
        typer.echo(
            f"guard: best measured mixture rerun {g['best_measured_rerun']:.4f} vs predicted "
            f"optimum {g['predicted_optimum']:.4f}: kept the {g['chosen'].replace('_', ' ')}"
        )
    typer.echo(f"wrote {out} (runs, plot: {out.parent / (out.stem + '.search')})")


@mix_app.command("export")
def export(
    mixture: Path = typer.Argument(..., help="mixture.json (assay mix search -o)"),
    fmt: str = typer.Option(
        ..., "--format", "-f", help="megatron | nemo | olmo-core | hf | mds | nanotron"
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the trainer's files"),
    path_template: str | None = typer.Option(
        None, help="Data path per group, with {group}: '/data/{group}_text_document'"
    ),
    budget_tokens: int | None = typer.Option(
        None, help="Training tokens (default: the mixture's); sets the implied epochs"
    ),
    seed: int = typer.Option(42, help="Seed written for hf / nanotron"),
    mds_scheme: str = typer.Option("proportion", help="mds: proportion | repeat | choose"),
    mds_packed: bool = typer.Option(False, help="mds: samples are fixed-length sequences"),
    mds_remote: bool = typer.Option(False, help="mds: paths are remote (else local)"),
    seq_len: int = typer.Option(2048, help="mds --mds-packed: tokens per sample"),
    root: str | None = typer.Option(
        None,
        help="olmo-core: folder (or URL) of `assay export -f olmo-core`; paths become "
        "absolute under it (default: relative to it)",
    ),
) -> None:
    """Write MIXTURE in a trainer's syntax and unit; print the implied epochs per group."""
    try:
        from selector.mix_export import epochs_table, export_mixture
        from selector.mixture import Mixture

        mix = Mixture.read(mixture)
        options: dict = {}
        if fmt in ("hf", "nanotron"):
            options["seed"] = seed
        if fmt == "mds":
            options.update(
                scheme=mds_scheme,
                packed=mds_packed,
                remote=mds_remote,
                seq_len=seq_len,
                budget_tokens=budget_tokens or mix.budget_tokens,
            )
        if root is not None:
            options["root"] = root
        manifest = export_mixture(
            mix, fmt, out, path_template=path_template, budget_tokens=budget_tokens, options=options
        )
    except AssayError as e:
        _fail(e)
        return
    typer.echo(epochs_table(manifest))
    if manifest["repeated_groups"]:
        typer.echo(
            f"warning: {len(manifest['repeated_groups'])} group(s) read more than once "
            f"at {manifest['budget_tokens']:,} tokens"
        )
    typer.echo(f"wrote {', '.join(manifest['files'])} to {out}")
