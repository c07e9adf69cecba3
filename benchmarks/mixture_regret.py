"""Search regret: how close does each mixture search get to the best mixture, and is it safe?

Ground truth is known (``benchmarks/regret_worlds.py``): four simulated families over 8
and 16 groups, with per-run noise set to the seed-to-seed std of the project's own micro
proxies (measured on the real table), and the real table of recorded micro-proxy runs on
the demo corpus (16 groups, four targets). Per trial a fresh world (simulated) or a fresh
run order (table), and every method gets the same budget of proxy runs:

- ``prior``: the size prior (regret 1 by definition); ``uniform``: uniform, clipped to caps;
- ``best-sampled``: RegMix's sampler, ``N`` runs, keep the lowest *measured*;
- ``climb``: today's search before this benchmark (CLIMB 4:2:1, LightGBM, top-k average,
  then the guard: predicted optimum vs best measured, one rerun each);
- ``trust``: the trust-region search (``selector.trust_search``) with ``N`` runs, then its
  verification: proposal and prior at 3 seeds each (6 runs beyond ``N``), keep the
  proposal only when it wins by more than the noise.

Metric: normalised regret = (true loss of the chosen mixture - best) / (prior - best);
``worse``: share of trials whose choice is worse than the prior by more than one noise std.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/mixture_regret.py [--trials 50] \
        [--workers 2] [--out out/bench/regret.jsonl]

Results are appended per trial to ``--out`` (JSON lines) and reused on a rerun; the table
is printed from whatever is there (``--report`` only prints).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from regret_worlds import FAMILIES, World, simulated, table_world  # noqa: E402

from selector.sampling import sample_mixtures  # noqa: E402
from selector.trust_search.design import clip_to_caps  # noqa: E402

TABLE = REPO / "benchmarks" / "data" / "mixture_regret_demo16.csv"
METHODS = ("prior", "uniform", "best-sampled", "climb", "trust")
MULTIPLES = (1, 2, 4, 8)


def run_climb(world: World, n: int, rng: np.random.Generator) -> np.ndarray:
    from selector.climb import climb, split_budget

    def run(X: np.ndarray, r: int, p: np.ndarray) -> np.ndarray:
        return world.measure(X, rng)

    res = climb(
        run, world.prior, split_budget(n), rng, caps=world.caps, n_candidates=5000, top_k=64
    )
    best = res.X[int(np.argmin(res.y))]
    a, b = world.measure(res.weights, rng)[0], world.measure(best, rng)[0]
    return res.weights if a <= b else best


def run_trust(
    world: World, n: int, rng: np.random.Generator, table: bool
) -> tuple[np.ndarray, dict]:
    from selector.trust_search.loop import trust_search
    from selector.trust_search.verify import verify_against_prior

    def run(X: np.ndarray, r: int, p: np.ndarray):
        return world.snap(X) if table else world.measure(X, rng)

    res = trust_search(run, world.prior, n, rng, caps=world.caps)
    # verification: fresh seeds of the proposal and the prior (simulated in the table too);
    # none when the proposal is the prior (as selector.trust_search.run does)
    fresh = lambda w: list(world.true(w)[0] + rng.normal(0, world.noise, 3))  # noqa: E731
    v = {"chosen": "prior"}
    if res.proposal.kl > 1e-9:
        v = verify_against_prior(fresh(res.weights), fresh(world.prior))
    chosen = res.weights if v["chosen"] == "proposal" else world.prior
    info = {"predictor": res.choice.chosen, "skill": res.choice.skill, "step": res.proposal.step,
            "kl": res.proposal.kl, "kept": v["chosen"]}  # fmt: skip
    return chosen, info


def trial(cell: dict) -> dict:
    import warnings

    warnings.filterwarnings("ignore")  # lightgbm's eval_set deprecation, sklearn GP bounds
    rng = np.random.default_rng(cell["seed"])
    table = cell["family"].startswith("table-")
    if table:
        world = table_world(TABLE, cell["family"].removeprefix("table-"))
        world.reset()
    else:
        world = simulated(cell["family"], cell["k"], cell["noise"], rng)
    n = cell["multiple"] * cell["k"]
    t0 = time.perf_counter()
    out: dict = {}
    chosen = {"prior": world.prior, "uniform": clip_to_caps(world.prior > 0, world.caps)}
    if table:  # best measured among n table rows drawn as RegMix would (nearest rows)
        world.reset()
        Xs, ys = world.snap(sample_mixtures(world.prior, n, rng, caps=world.caps))
    else:
        Xs = sample_mixtures(world.prior, n, rng, caps=world.caps)
        ys = world.measure(Xs, rng)
    chosen["best-sampled"] = Xs[int(np.argmin(ys))]
    if not table:  # climb proposes mixtures anywhere; the table can only return its rows
        chosen["climb"] = run_climb(world, n, rng)
    world.reset() if table else None
    chosen["trust"], out["trust_info"] = run_trust(world, n, rng, table)
    gap = world.true(world.prior)[0] - world.best
    for m, w in chosen.items():
        v = float(world.true(w)[0])
        out[m] = {"regret": (v - world.best) / gap if gap > 0 else float("nan"),
                  "worse": bool(v > world.true(world.prior)[0] + world.noise)}  # fmt: skip
    return {
        **cell,
        "gap": float(gap),
        "noise": world.noise,
        "seconds": time.perf_counter() - t0,
        **out,
    }


def _pct(rs: list[dict], method: str) -> str:
    vals = [r[method]["worse"] for r in rs if method in r]
    return f"{np.mean(vals):.0%}" if vals else "–"


def report(path: Path) -> None:
    """Per cell: median normalised regret of each method, and how often trust / climb /
    best-sampled chose worse than the prior by more than one noise std; then the same
    pooled over the three simulated families that have a gain to find (in ``flat`` the
    regret's denominator is below the noise, so only its safety figure means anything)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["family"], r["k"], r["multiple"]), []).append(r)
        if not r["family"].startswith("table-") and r["family"] != "flat":
            cells.setdefault(("simulated with a gain", r["k"], r["multiple"]), []).append(r)
    head = " | ".join(f"{m} regret" for m in METHODS)
    print(f"| world | groups | proxies | trials | {head} | worse than prior: trust / climb / "
          "best-sampled | trust kept proposal | trust < climb |")  # fmt: skip
    print("|---|---|---|---|" + "---|" * (len(METHODS) + 3))
    order = sorted(cells, key=lambda c: (c[0] == "simulated with a gain", c[0], c[1], c[2]))
    for fam, k, mult in order:
        rs = cells[(fam, k, mult)]
        med = []
        for m in METHODS:
            vals = [r[m]["regret"] for r in rs if m in r]
            med.append(f"{np.nanmedian(vals):.2f}" if vals else "–")
        kept = np.mean([r["trust_info"]["kept"] == "proposal" for r in rs])
        pair = [r["trust"]["regret"] < r["climb"]["regret"] for r in rs if "climb" in r]
        beats = f"{np.mean(pair):.0%}" if pair else "–"
        worse = f"{_pct(rs, 'trust')} / {_pct(rs, 'climb')} / {_pct(rs, 'best-sampled')}"
        print(f"| {fam} | {k} | {mult}x = {mult * k} | {len(rs)} | " + " | ".join(med)
              + f" | {worse} | {kept:.0%} | {beats} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--groups", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--multiples", type=int, nargs="+", default=list(MULTIPLES))
    ap.add_argument("--families", nargs="+", default=[*FAMILIES, "table"])
    ap.add_argument(
        "--targets", nargs="+", default=["encyclopedic", "general", "recipe", "dictionary"]
    )
    ap.add_argument("--noise", type=float, default=None, help="default: the real table's seed std")
    ap.add_argument("--out", default=str(REPO / "out" / "bench" / "regret.jsonl"))
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    if args.report:
        return report(out)
    noise = args.noise
    if noise is None:
        from regret_worlds import load_table, seed_noise

        rows, side = load_table(TABLE)
        noise = float(np.median(list(seed_noise(rows, args.targets, side["groups"]).values())))
    print(f"per-run noise {noise:.4f} nats", flush=True)
    cells = []  # seed-major: every cell gains trials at the same pace, so a cut run is even
    for fam in args.families:
        for mult in args.multiples:
            if fam == "table":
                for t in args.targets:
                    cells += [dict(family=f"table-{t}", k=16, multiple=mult, noise=noise, seed=s)
                              for s in range(args.trials)]  # fmt: skip
                continue
            for k in args.groups:
                cells += [dict(family=fam, k=k, multiple=mult, noise=noise, seed=s)
                          for s in range(args.trials)]  # fmt: skip
    cells.sort(key=lambda c: c["seed"])
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["family"], r["k"], r["multiple"], r["seed"]))
    todo = [c for c in cells if (c["family"], c["k"], c["multiple"], c["seed"]) not in done]
    print(f"{len(cells)} trials, {len(todo)} to run", flush=True)
    with ProcessPoolExecutor(args.workers) as pool, out.open("a") as f:
        for i, r in enumerate(pool.map(trial, todo, chunksize=1)):
            f.write(json.dumps(r) + "\n")
            f.flush()
            if i % 20 == 0:
                msg = f"{i}/{len(todo)} {r['family']} k={r['k']} x{r['multiple']}"
                print(f"{msg} trust {r['trust']['regret']:.2f} ({r['seconds']:.1f} s)", flush=True)
    report(out)


if __name__ == "__main__":
    main()
