"""The whole walkthrough as one job: `ftutils run` executes the notebooks in order (cli.py)."""
