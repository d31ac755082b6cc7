"""The command line and what it runs: sweeps (processes, Ray), Optuna tuning, learning-curve
plots, preset and search-space files.
"""
