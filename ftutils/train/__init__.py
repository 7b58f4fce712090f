"""Step 3, training (03_train, `ftutils train`/`watch`).

connect: which backend, its key (masked) and a connectivity check. jobs: upload, launch, follow,
events and checkpoints as tables. metrics: the one reader of training metrics. diagnose: the fit
verdict from the curves. runs: run folders, the run manifest and the values notebooks record.
cli: `ftutils train` and `ftutils watch`.
"""
