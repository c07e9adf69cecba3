"""The MATES influence model: an encoder regressor from a document to its z-scored influence.

A scikit-learn-style estimator (``fit`` returns self, learned state ends in ``_``,
``predict`` checks it, ``save``/``load``). The encoder (default the shipped MiniLM, any
HF encoder folder) reads a document in up to ``max_chunks`` windows of ``max_tokens``;
the windows' mean-pooled states go through one linear layer and the document's value is
the token-weighted mean over its windows, which for a linear head equals the head applied
to the mean of all the document's token states (MATES mean-pools across its 2 x 512
chunks the same way).

Training and prediction cut windows with the annotate engine itself
(:class:`raters.encoder.EncoderRater`), and ``save`` writes an ``assay-heads`` rater
folder (``rater.json`` + ``heads.safetensors`` + the fine-tuned ``backbone/``), so

    assay annotate CORPUS -o OUT --rater INFLUENCE_MODEL_DIR

adds the column ``influence.score`` like any other rater. ``method="full"`` fine-tunes
the encoder with the head (MATES: lr 5e-5, weight decay 0.01, best epoch by held-out
Spearman); ``method="head"`` keeps the encoder frozen and fits the head by ridge
regression (seconds on CPU), and can take the vectors instead of the texts
(``fit(..., features=)``, :meth:`InfluenceModel.predict_features`): the pipeline passes
its embed step's, so the pool is encoded once (:mod:`assay.pipeline_influence`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import AssayError, ConfigError

METHODS = ("full", "head")
CRITERION = "score"
SCALE = (-50.0, 50.0)  # z-scores; the engine clips regression outputs to the scale
INSTALL_HINT = "pip install 'assay[select]' (the influence model needs torch + transformers)"
PARAMS = (
    "backbone", "method", "max_tokens", "max_chunks", "epochs", "lr", "batch_size",
    "weight_decay", "val_fraction", "seed", "threads", "name",
)  # fmt: skip


class InfluenceModel:
    """Encoder + mean pooling + linear head, trained on (text, influence).

    Example::

        m = InfluenceModel(epochs=3).fit(texts, influence)
        m.val_spearman_, m.predict(["a new document"])
        m.save("out/influence-model")
    """

    def __init__(
        self,
        backbone: str = "all-minilm-l6-v2",
        *,
        method: str = "full",
        max_tokens: int = 256,
        max_chunks: int = 2,
        epochs: int = 5,
        lr: float = 5e-5,
        batch_size: int = 16,
        weight_decay: float = 0.01,
        val_fraction: float = 0.1,
        seed: int = 0,
        threads: int = 1,
        device: str = "cpu",
        name: str = "influence",
    ) -> None:
        self.backbone = backbone
        self.method = method
        self.max_tokens = max_tokens
        self.max_chunks = max_chunks
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.seed = seed
        self.threads = threads
        self.device = device
        self.name = name

    # ---- the engine ------------------------------------------------------------------

    def _check_params(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        for flag, v in (
            ("max-tokens", self.max_tokens),
            ("max-chunks", self.max_chunks),
            ("epochs", self.epochs),
            ("batch-size", self.batch_size),
        ):
            if v < 1:
                raise ConfigError(f"--{flag} must be >= 1, got {v}")

    def _engine(self, module: Any, tokenizer: Any) -> Any:
        """The annotate engine over ``module`` (windows, batching, aggregation)."""
        from raters.encoder import EncoderRater, Head

        return EncoderRater(
            module,
            tokenizer,
            [Head(CRITERION, "regression", 0, 1, scale=SCALE)],
            name=self.name,
            version="1",
            max_tokens=self.max_tokens,
            long_doc="chunks",
            max_chunks=self.max_chunks,
            max_chars=10 * self.max_tokens * self.max_chunks,
            device=self.device,
        )

    def _doc_values(self, engine: Any, texts: list[str]) -> Any:
        """Differentiable per-document predictions: windows through the module, then the
        token-weighted mean per document (what ``EncoderRater.score`` computes)."""
        import torch

        group = engine._prepare(texts, np.arange(len(texts)))
        outs = [
            engine.model(ids.to(self.device), mask.to(self.device)) for ids, mask in group.batches
        ]
        logits = torch.cat(outs)[torch.as_tensor(group.restore)][:, 0]
        weights = torch.as_tensor(group.weights, dtype=logits.dtype, device=logits.device)
        doc = torch.as_tensor(
            np.repeat(np.arange(len(texts)), np.diff(np.r_[group.starts, len(group.weights)]))
        )
        num = torch.zeros(len(texts), dtype=logits.dtype).index_add(0, doc, logits * weights)
        den = torch.zeros(len(texts), dtype=logits.dtype).index_add(0, doc, weights)
        values = num / den
        # _prepare handled docs in the order given: group.docs == arange(len(texts))
        return values

    def _doc_embeddings(self, engine: Any, texts: list[str], batch: int = 64) -> np.ndarray:
        """Per document, the token-weighted mean of its windows' pooled vectors."""
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch):
                chunk = texts[i : i + batch]
                group = engine._prepare(chunk, np.arange(len(chunk)))
                pooled = [
                    engine.model.embed(ids.to(self.device), mask.to(self.device)).float().cpu()
                    for ids, mask in group.batches
                ]
                x = torch.cat(pooled).numpy()[group.restore].astype(np.float64)
                w = group.weights[:, None]
                out.append(
                    np.add.reduceat(x * w, group.starts, axis=0)
                    / np.add.reduceat(w, group.starts, axis=0)
                )
        return np.concatenate(out)

    # ---- the estimator ---------------------------------------------------------------

    def fit(
        self,
        texts: Sequence[str],
        influence: Sequence[float],
        *,
        features: np.ndarray | None = None,
    ) -> InfluenceModel:
        """Fine-tune on (text, influence); influence is z-scored first (``mean_``,
        ``std_``). A held-out ``val_fraction`` picks the best epoch (Spearman).

        ``features`` (``method="head"`` only): the documents' vectors as the head reads
        them, already computed (``[len(texts), hidden]``, e.g. the pipeline's embed-step
        vectors, see :meth:`predict_features`); the texts are then not encoded."""
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as e:  # pragma: no cover
            raise AssayError(f"the influence model needs torch ({e})", hint=INSTALL_HINT) from e
        from raters.heads import heads_module
        from raters.hub import resolve_model
        from raters.metrics import spearman

        self._check_params()
        texts = list(texts)
        y = np.asarray(influence, dtype=np.float64)
        keep = np.isfinite(y)
        if len(texts) != len(y):
            raise ConfigError(f"{len(texts)} texts but {len(y)} influence values")
        texts, y = [t for t, k in zip(texts, keep, strict=True) if k], y[keep]
        if features is not None:
            if self.method != "head":
                raise ConfigError(
                    "features= needs method='head': 'full' fine-tunes the encoder, so its "
                    "vectors are not precomputable"
                )
            features = np.asarray(features, dtype=np.float64)
            if features.ndim != 2 or len(features) != len(keep):
                raise ConfigError(f"features must be [{len(keep)}, hidden], got {features.shape}")
            features = features[keep]
        if len(y) < 8:
            raise ConfigError(f"the influence model needs >= 8 probed documents, got {len(y)}")
        torch.set_num_threads(self.threads)
        torch.manual_seed(self.seed)
        self.mean_, self.std_ = float(y.mean()), float(y.std()) or 1.0
        z = (y - self.mean_) / self.std_
        perm = np.random.default_rng(self.seed).permutation(len(y))
        n_val = max(4, round(self.val_fraction * len(y)))
        val, train = perm[:n_val], perm[n_val:]
        path = resolve_model(self.backbone)
        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer.model_max_length = 1 << 40  # windows are cut by the engine, not here
        backbone = AutoModel.from_pretrained(path, dtype=torch.float32).to(self.device)
        head = torch.nn.Linear(backbone.config.hidden_size, 1).to(self.device)
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        module = heads_module(backbone, head, "mean")
        engine = self._engine(module, tokenizer)
        history: list[dict[str, float]] = []
        if features is not None and features.shape[1] != backbone.config.hidden_size:
            raise ConfigError(f"features must be {backbone.config.hidden_size}-d for {path}")
        if self.method == "head":
            x = self._doc_embeddings(engine, texts) if features is None else features
            best = self._fit_ridge(engine, x, z, train, val, history)
        else:
            best = self._fit_full(engine, texts, z, train, val, history)
        module.eval()
        self.backbone_, self.head_, self.tokenizer_ = backbone, head, tokenizer
        self.engine_ = engine
        self.history_ = history
        # Held-out Spearman of the final model (the split also chose its epoch / alpha,
        # as in MATES, so it is slightly optimistic).
        val_texts = [texts[i] for i in val]
        pred = self.predict(val_texts) if features is None else self.predict_features(features[val])
        self.val_spearman_ = float(spearman(z[val], pred))
        self.selection_spearman_ = best
        self.n_train_, self.n_val_ = int(train.size), int(val.size)
        return self

    def _fit_ridge(self, engine, x, z, train, val, history) -> float:
        import torch

        from raters.metrics import spearman

        for p in engine.model.backbone.parameters():
            p.requires_grad_(False)
        mu = x[train].mean(axis=0)
        xc = x - mu
        best = (-2.0, None)
        for alpha in (0.01, 0.1, 1.0, 10.0, 100.0):
            a = xc[train]
            w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ z[train])
            rho = float(spearman(z[val], xc[val] @ w))
            history.append({"alpha": alpha, "val_spearman": rho})
            if rho > best[0]:
                best = (rho, w)
        w = best[1]
        assert w is not None
        with torch.no_grad():
            engine.model.head.weight.copy_(torch.as_tensor(w[None, :], dtype=torch.float32))
            engine.model.head.bias.fill_(float(z[train].mean() - mu @ w))
        return best[0]

    def _fit_full(self, engine, texts, z, train, val, history) -> float:
        import torch

        from raters.metrics import spearman

        module = engine.model
        body = [p for n, p in module.named_parameters() if not n.startswith("head.")]
        # The head starts at zero; a larger step keeps it from being the bottleneck.
        groups = [
            {"params": body, "lr": self.lr},
            {"params": list(module.head.parameters()), "lr": self.lr * 20},
        ]
        opt = torch.optim.AdamW(groups, weight_decay=self.weight_decay)
        rng = np.random.default_rng(self.seed + 1)
        target = torch.as_tensor(z, dtype=torch.float32)
        best_rho, best_state = -2.0, None
        for epoch in range(self.epochs):
            module.train()
            order = rng.permutation(train)
            losses = []
            for i in range(0, len(order), self.batch_size):
                rows = order[i : i + self.batch_size]
                pred = self._doc_values(engine, [texts[j] for j in rows])
                loss = torch.nn.functional.mse_loss(pred, target[rows].to(pred.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
                opt.step()
                losses.append(float(loss.detach()))
            module.eval()
            pred = engine.score([texts[j] for j in val])[CRITERION]
            rho = float(spearman(z[val], pred))
            history.append(
                {"epoch": epoch + 1, "train_mse": float(np.mean(losses)), "val_spearman": rho}
            )
            if rho > best_rho:
                best_rho = rho
                best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        if best_state is not None:
            module.load_state_dict(best_state)
        return best_rho

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted z-scored influence of each text (negative: helps the reference)."""
        if not hasattr(self, "engine_"):
            raise AssayError("InfluenceModel is not fitted: call fit() or load() first")
        return np.asarray(self.engine_.score(list(texts))[CRITERION], dtype=np.float64)

    def predict_features(self, vectors: np.ndarray) -> np.ndarray:
        """:meth:`predict` from the documents' vectors instead of their texts: the head
        applied to ``[n, hidden]`` vectors, clipped to the scale as the engine clips.

        For a ``head`` model with ``max_chunks=1`` the vectors are the frozen backbone's
        raw (not unit-normalised) mean-pooled states of each document's first
        ``max_tokens``-token window: what ``clustering.embed.Embedder(backbone,
        max_tokens=max_tokens, normalize=False)`` stores. Then this equals
        ``predict(texts)`` up to the vectors' precision, without encoding the texts."""
        if not hasattr(self, "head_"):
            raise AssayError("InfluenceModel is not fitted: call fit() or load() first")
        x = np.asarray(vectors, dtype=np.float64)
        weight = self.head_.weight.detach().double().cpu().numpy()
        if x.ndim != 2 or x.shape[1] != weight.shape[1]:
            raise ConfigError(f"vectors must be [n, {weight.shape[1]}], got {x.shape}")
        bias = float(self.head_.bias.detach().double().cpu()[0])
        return np.clip(x @ weight[0] + bias, *SCALE)

    # ---- persistence -----------------------------------------------------------------

    def save(self, folder: str | os.PathLike) -> Path:
        """Write an ``assay-heads`` rater folder (see the module docstring)."""
        from raters.heads import save_heads
        from raters.hub import NAMED, weights_sha256
        from raters.spec import Criterion, RaterSpec

        if not hasattr(self, "engine_"):
            raise AssayError("InfluenceModel is not fitted: nothing to save")
        folder = Path(folder)
        staging = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        if self.method == "head" and self.backbone in NAMED:
            backbone_ref, backbone_dir = self.backbone, NAMED[self.backbone]()
        else:  # a fine-tuned encoder travels with its head
            backbone_ref, backbone_dir = "backbone", staging / "backbone"
            self.backbone_.save_pretrained(backbone_dir)
            self.tokenizer_.save_pretrained(backbone_dir)
        self.tokenizer_.save_pretrained(staging)
        save_heads(
            staging,
            self.head_,
            {
                "pooling": "mean",
                "hidden_size": int(self.head_.in_features),
                "num_labels": 1,
                "adapter": None,
                "backbone_sha256": weights_sha256(Path(backbone_dir)),
                "method": f"influence-{self.method}",
            },
        )
        spec = RaterSpec(
            name=self.name,
            version="1",
            model=".",
            format="assay-heads",
            criteria=(Criterion(CRITERION, "regression", (0, 1), SCALE),),
            max_tokens=self.max_tokens,
            long_doc="chunks",
            max_chunks=self.max_chunks,
            backbone=backbone_ref,
            description="MATES-style influence model: predicted z-scored change of the "
            "reference loss after one step on the document (negative helps).",
        )
        spec.save(staging / "rater.json")
        info = {
            "params": self.get_params(),
            "mean_": self.mean_,
            "std_": self.std_,
            "val_spearman_": self.val_spearman_,
            "n_train_": self.n_train_,
            "n_val_": self.n_val_,
            "history_": self.history_,
        }
        (staging / "influence_model.json").write_text(json.dumps(info, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, *, device: str = "cpu") -> InfluenceModel:
        from raters.encoder import load_rater_dir

        folder = Path(folder)
        meta_file = folder / "influence_model.json"
        if not meta_file.is_file():
            raise AssayError(
                f"{folder} is not an influence model (no influence_model.json)",
                hint="train one with: assay influence train",
            )
        info = json.loads(meta_file.read_text())
        model = cls(**{**info["params"], "device": device})
        rater = load_rater_dir(folder, device=device, dtype="float32")
        model.engine_ = rater
        model.backbone_, model.head_ = rater.model.backbone, rater.model.head
        model.tokenizer_ = rater.tokenizer
        for key in ("mean_", "std_", "val_spearman_", "n_train_", "n_val_", "history_"):
            setattr(model, key, info[key])
        return model

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PARAMS}


__all__ = ["InfluenceModel"]
