"""``RayConfig``: how assay's Ray runs are placed and sized (``--engine ray`` flags).

One typed dataclass, validated early with messages that name the flag, shared by every
assay job on Ray (``assay annotate``, ``assay embed``). It is kept apart from the engine
so commands can build and check it without reading any Ray code. Field order is part of
the interface: ``assay.cli`` builds it positionally.
"""

from __future__ import annotations

from dataclasses import dataclass

from assay.errors import ConfigError


@dataclass
class RayConfig:
    """How the rater calls run on Ray (``assay annotate --engine ray``)."""

    address: str | None = None
    """Cluster to join (``--address``): ``auto``, ``ray://host:10001``, or None to start a
    local Ray instance (the laptop case)."""
    concurrency: int = 1
    """Rater actors (``--concurrency``); each loads the models once."""
    num_cpus: float = 1.0
    """CPUs reserved per rater actor (``--num-cpus``)."""
    num_gpus: float = 0.0
    """GPUs per rater actor (``--num-gpus``); 1 puts one actor on each GPU."""
    batch_size: int = 256
    """Documents per ``map_batches`` call (``--ray-batch-size``); also the read block size,
    so it bounds what one failed block costs to retry."""
    max_retries: int = 2
    """Attempts after the first for a block whose rater raised (task retries)."""
    token_actors: int = 0
    """CPU actors counting ``n_tokens`` as a stage of their own, overlapped with the rater
    actors (0: the rater actors count). Worth it when raters hold GPUs: tokenising on a
    GPU actor leaves the GPU idle."""
    local_num_cpus: int = 4
    """Logical CPUs of a local instance started for you (Ray Data needs > 2 to schedule
    read tasks beside the actors)."""

    def validate(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ConfigError(
                f"--num-cpus/--num-gpus must be >= 0, got {self.num_cpus}/{self.num_gpus}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"--ray-batch-size must be >= 1, got {self.batch_size}")
        if self.token_actors < 0:
            raise ConfigError(f"token_actors must be >= 0, got {self.token_actors}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {self.max_retries}")


__all__ = ["RayConfig"]
