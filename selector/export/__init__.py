"""Writers that turn a selection (``assay select -o``) into files trainers read.

``jsonl`` / ``parquet`` shards, an HF ``datasets`` folder per group, Megatron-LM / NeMo
indexed datasets (``.bin`` + ``.idx``, with the blend files), MosaicML MDS shards,
OLMo-core numpy token files (``data/<group>/part-NNNNN.npy``, with the source mixture). The
entry point is :func:`selector.export.run.export_selection`; heavy libraries load inside
the writer that needs them.
"""
