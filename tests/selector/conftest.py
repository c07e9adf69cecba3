"""Fixtures of the selector tests: a small annotated corpus of real demo text."""

from __future__ import annotations

from pathlib import Path

import pytest

TOKENIZER = "all-minilm-l6-v2"  # ships in a package; cheap to load


@pytest.fixture(scope="session")
def annotated_sample(tmp_path_factory, demo_sample) -> Path:
    """``demo_sample`` annotated with the heuristics rater and ``n_tokens`` (MiniLM)."""
    import gzip
    import json

    from assay.annotate import annotate
    from raters.heuristics import HeuristicRater
    from raters.tokens import TokenCounter

    root = tmp_path_factory.mktemp("annotated")
    src = root / "sample.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as f:
        for r in demo_sample:
            f.write(json.dumps(r) + "\n")
    out = root / "annotated"
    annotate(
        [src],
        out,
        [HeuristicRater()],
        shard_size=17,  # several shards, so selection crosses shard boundaries
        count_tokens=TokenCounter(TOKENIZER),
        tokenizer_name=TOKENIZER,
    )
    return out


@pytest.fixture(scope="session")
def proxy_ckpt(tmp_path_factory, demo_records) -> Path:
    """A real proxy checkpoint (HF files): a 2-layer Llama trained for 32k tokens on demo
    text with a 1k byte-level BPE, by the proxy trainer itself."""
    from selector.bpe import train_bpe
    from selector.proxy_lm import ProxyConfig, train_proxy

    root = tmp_path_factory.mktemp("proxy")
    pool = [r["text"] for r in demo_records[::20]]
    tok = train_bpe(pool, root / "bpe", vocab_size=1024)
    cfg = ProxyConfig(hidden=64, layers=2, heads=4, seq_len=128, tokens=32768, batch_size=8)
    train_proxy(pool, {"demo": pool[:20]}, cfg, tokenizer_dir=tok, save_dir=root / "ckpt")
    return root / "ckpt"


# The trainers' own readers, installed by `make venv` into .verify/ with --no-deps (their
# dependencies would downgrade the venv's torch / huggingface_hub); appended to sys.path
# after the venv, so .verify only adds what the venv lacks. A test skips, naming the
# import error, only when the library cannot be imported from there.
VERIFY = Path(__file__).resolve().parents[2] / ".verify"


def _use_verify() -> None:
    import sys

    if str(VERIFY) not in sys.path:
        sys.path.append(str(VERIFY))


def _skip(library: str, error: Exception) -> None:
    pytest.skip(
        f"{library} cannot be imported from {VERIFY} ({error}); `make venv` installs it "
        "with pip install --no-deps --target .verify"
    )


@pytest.fixture(scope="session")
def megatron():
    """megatron-core 0.16's dataset classes (CPU: its C++ helpers ship compiled)."""
    import warnings
    from types import SimpleNamespace

    _use_verify()
    try:
        with warnings.catch_warnings():  # "Transformer Engine and Apex are not installed"
            warnings.simplefilter("ignore")
            from megatron.core.datasets.blended_megatron_dataset_builder import (
                BlendedMegatronDatasetBuilder,
            )
            from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
            from megatron.core.datasets.indexed_dataset import IndexedDataset
            from megatron.core.datasets.utils import get_blend_from_list
            from megatron.core.tokenizers import MegatronTokenizer
    except ImportError as e:
        _skip("megatron-core", e)
    return SimpleNamespace(
        BlendedMegatronDatasetBuilder=BlendedMegatronDatasetBuilder,
        GPTDataset=GPTDataset,
        GPTDatasetConfig=GPTDatasetConfig,
        IndexedDataset=IndexedDataset,
        get_blend_from_list=get_blend_from_list,
        MegatronTokenizer=MegatronTokenizer,
    )


@pytest.fixture(scope="session")
def streaming():
    """mosaicml-streaming's ``streaming`` package, its text readers and writers.

    Its ``__init__`` imports ``streaming.vision``, which needs torchvision; the only
    torchvision wheels for this torch are CUDA builds that break the venv's CPU torch.
    When torchvision is what is missing, the package is loaded without running its
    ``__init__`` and ``streaming.base`` (MDSWriter, StreamingDataset, Stream: the
    library's own classes, unchanged) is imported into it.
    """
    import importlib
    import importlib.util
    import sys

    _use_verify()
    try:
        import streaming

        return streaming
    except ModuleNotFoundError as e:
        if e.name != "torchvision":
            _skip("mosaicml-streaming", e)
    except ImportError as e:
        _skip("mosaicml-streaming", e)
    for name in [m for m in sys.modules if m == "streaming" or m.startswith("streaming.")]:
        del sys.modules[name]  # what the failed import left half-done
    spec = importlib.util.find_spec("streaming")
    module = importlib.util.module_from_spec(spec)
    sys.modules["streaming"] = module
    try:
        base = importlib.import_module("streaming.base")
    except ImportError as e:
        del sys.modules["streaming"]
        _skip("mosaicml-streaming", e)
    for name in ("MDSWriter", "StreamingDataset", "Stream"):
        setattr(module, name, getattr(base, name))
    return module


class _FlashAttnStandIn:
    """An import hook that answers ``import flash_attn...`` with empty modules whose every
    function raises; ``__version__`` "0" makes nanotron take its no-flash-attn branches."""

    def find_spec(self, name, path, target=None):
        import importlib.machinery

        if name == "flash_attn" or name.startswith("flash_attn."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        import types

        class Missing(types.ModuleType):
            def __getattr__(self, attr):
                if attr.startswith("__"):
                    raise AttributeError(attr)

                def missing(*args, **kwargs):
                    raise RuntimeError(f"{self.__name__}.{attr}: flash-attn is not installed")

                return missing

        return Missing(spec.name)

    def exec_module(self, module) -> None:
        module.__path__ = []
        module.__version__ = "0"


@pytest.fixture(scope="session")
def nanotron():
    """nanotron's config classes and loader (``nanotron.config``), from the GitHub commit
    ``make venv`` installs (PyPI's only release, 0.4, predates Nanosets).

    ``nanotron.config`` imports nanotron's attention and model modules, which import
    flash-attn (CUDA only, no CPU wheel) at module level and read its ``__version__``; no
    config class calls it. When flash-attn is missing, :class:`_FlashAttnStandIn` answers
    those imports while ``nanotron.config`` is imported, then leaves ``sys.meta_path`` and
    ``sys.modules``, so no other test sees a flash-attn.
    """
    import sys
    from types import SimpleNamespace

    _use_verify()
    stand_in = None
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        stand_in = _FlashAttnStandIn()
        # what nanotron.config takes from the venv, imported before the stand-in is there
        from datasets.download.streaming_download_manager import xPath  # noqa: F401
        from transformers import AutoTokenizer  # noqa: F401

        sys.meta_path.insert(0, stand_in)
    try:
        from nanotron.config import DatasetStageArgs, NanosetDatasetsArgs, get_config_from_dict
    except ImportError as e:
        _skip("nanotron (a GitHub commit: PyPI's 0.4 has no Nanosets)", e)
    finally:
        if stand_in is not None:
            sys.meta_path.remove(stand_in)
            for name in [m for m in sys.modules if m.split(".")[0] == "flash_attn"]:
                del sys.modules[name]
    return SimpleNamespace(
        DatasetStageArgs=DatasetStageArgs,
        NanosetDatasetsArgs=NanosetDatasetsArgs,
        get_config_from_dict=get_config_from_dict,
    )


@pytest.fixture(scope="session")
def selection(annotated_sample, tmp_path_factory) -> Path:
    """A selection of the demo sample by domain (5,000 MiniLM tokens), for export tests."""
    from selector.select import SelectConfig, select

    out = tmp_path_factory.mktemp("sel") / "selected"
    cfg = SelectConfig(
        budget_tokens=5000, score="heuristics.rps_doc_frac_unique_words", group_by="domain",
        tokenizer="all-minilm-l6-v2",
    )  # fmt: skip
    select(annotated_sample, out, cfg)
    return out


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory) -> Path:
    """MiniLM with [SEP] as its EOS (BERT has none): Megatron gets an EOD token and
    OLMo-core a document separator."""
    from transformers import AutoTokenizer

    from raters.hub import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("all-minilm-l6-v2"))
    tok.eos_token = "[SEP]"
    path = tmp_path_factory.mktemp("tok") / "minilm-eos"
    tok.save_pretrained(path)
    return path
