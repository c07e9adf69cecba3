"""What every assay job on Ray shares: joining the cluster, the Ray Data settings, one
remote call with an actor's resources, and Ray's errors turned back into assay's.

Used by the annotate engine (``assay.ray_engine``) and by whole-file jobs
(``assay.ray_files``), so both fail, retry and keep order the same way:

- **Order**: ``preserve_order`` is on, so the driver commits shards in input order and
  resume stays a prefix.
- **Retries**: a block whose map function raised is retried ``max_retries`` times (on a
  live or restarted actor); a block that still fails stops the run.
- **No dropped blocks**: ``max_errored_blocks`` stays 0, since a dropped block would
  lose documents silently, which assay never does.
- **Errors**: Ray wraps worker exceptions in its own; ``as_assay_error`` finds ours again
  (a reader's ``AssayError``, a rater actor's message) so the user sees one clear line
  with a hint, not a Ray traceback dump.

Ray itself is imported only inside these functions (it is the ``ray`` extra).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from assay.errors import AssayError, ConfigError
from assay.ray_config import RayConfig

INSTALL_HINT = "pip install 'assay[ray]'"


def import_ray() -> Any:
    """``ray`` with Ray Data, or an AssayError with the install hint."""
    try:
        import ray
        import ray.data
    except ImportError as e:  # pragma: no cover - the extra is installed in CI
        raise AssayError("--engine ray needs Ray Data", hint=INSTALL_HINT) from e
    return ray


def init_ray(config: RayConfig) -> Any:
    """Join ``config.address``, or start a local instance, unless Ray is already up."""
    import logging

    ray = import_ray()
    # assay prints one progress line; Ray Data's per-dataset INFO lines are noise there.
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if not ray.is_initialized():
        if config.address:
            ray.init(
                address=config.address,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        else:
            ray.init(
                num_cpus=config.local_num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
    return ray


def configure_data(ctx: Any, config: RayConfig) -> None:
    """Ray Data settings every assay pipeline needs."""
    ctx.execution_options.preserve_order = True  # shards follow input order
    ctx.retried_map_errors = config.max_retries > 0  # task retries of rater exceptions
    ctx.max_map_retries = config.max_retries
    ctx.max_errored_blocks = 0  # a dropped block would lose documents silently
    ctx.enable_progress_bars = False  # assay prints its own progress line


def run_like_an_actor(config: RayConfig, fn: Callable[[], Any]) -> Any:
    """``fn()`` in one Ray task with an actor's resources (its GPU, its node kind), e.g.
    to describe a model as the actors will load it. An AssayError inside comes back
    as itself (its message and hint), not as a Ray traceback."""
    config.validate()
    ray = init_ray(config)

    def call() -> tuple[bool, Any]:
        try:
            return True, fn()
        except AssayError as e:
            return False, (type(e).__name__, e.args[0] if e.args else str(e), e.hint)

    task = ray.remote(call).options(
        num_cpus=config.num_cpus, num_gpus=config.num_gpus or None, max_retries=0
    )
    try:
        ok, value = ray.get(task.remote())
    except Exception as e:
        raise as_assay_error(e) from e
    if not ok:
        kind, message, hint = value
        raise (ConfigError if kind == "ConfigError" else AssayError)(message, hint=hint)
    return value


def as_assay_error(error: BaseException) -> AssayError:
    """Ray wraps worker exceptions; surface ours (a reader's AssayError, a rater's
    message) instead of Ray's traceback dump."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, AssayError):
            return seen
        seen = seen.__cause__ or getattr(seen, "cause", None)
    text = str(error)
    for line in text.splitlines():
        # The line assay.ray_actors.RaterActor raises: "rater 'name' failed on ...".
        if "rater '" in line and "failed on" in line:
            start = line.index("rater '")
            return AssayError(
                f"Ray run stopped: {line[start:].strip()}",
                hint="committed shards are kept; fix the rater and rerun the same command",
            )
    first = text.strip().splitlines()[-1] if text.strip() else type(error).__name__
    return AssayError(
        f"Ray run stopped: {type(error).__name__}: {first}",
        hint="committed shards are kept; rerun the same command to resume",
    )


__all__ = [
    "INSTALL_HINT",
    "as_assay_error",
    "configure_data",
    "import_ray",
    "init_ray",
    "run_like_an_actor",
]
