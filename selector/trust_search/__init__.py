"""The trust-region mixture search (``assay mix search --method trust``, the default).

Modules, in the order the search uses them:

- ``design``: round 0, a space-filling set of mixtures from near-prior to sparse, with the
  size prior and uniform always among them;
- ``trust``: the trust region (KL to the prior), candidate pools, and the proposal that
  minimises an upper confidence bound and shrinks toward the prior;
- ``loop``: the rounds (fit every surrogate, pick by cross-validation, propose, measure);
- ``holdout``: each target split once into the documents the rounds fit on and those
  only the verification reads;
- ``verify``: the final check of the proposal against the prior at several seeds, on the
  held-out documents.
"""
