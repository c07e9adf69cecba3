"""One module per trainer: ``render(rows, fmt=..., **options) -> {file name: text}`` and
``check(files, fmt=...)``, which applies the trainer's format rules to what was rendered
(mixing.md section 5 quotes them from each project's code)."""
