"""Step 3, training (03_train, `ftutils train`/`watch`).

connect: which backend, its key (masked) and a connectivity check. jobs: upload, launch, follow,
events and checkpoints as tables. metrics: the one reader of training metrics. diagnose: the fit
verdict from the curves. runs: run folders, the run manifest and the values notebooks record.
cli: `ftutils train` and `ftutils watch`.
"""
import os as _os
import sys as _sys

# A local server started from a notebook (`connect()` in a Jupyter kernel) keeps every epoch's
# checkpoint, as `ftutils run` asks for it, so 03/04 can judge the early epochs as well as the
# late ones when the notebooks run by hand too. The server reads FTUTILS_KEEP_CHECKPOINTS when it
# starts; set it (e.g. to 3, OpenAI's behaviour) to choose otherwise. Outside a kernel (scripts,
# `ftutils serve`, tests) the server's own default, 3 like OpenAI, stands.
if "ipykernel" in _sys.modules:
    _os.environ.setdefault("FTUTILS_KEEP_CHECKPOINTS", "all")
