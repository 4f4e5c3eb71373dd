"""The job descriptions, by part of the workflow: data, training, evaluation, analysis (and the
machinery they share in `base`). Name them through `lmscale.jobs`, which gathers them."""
