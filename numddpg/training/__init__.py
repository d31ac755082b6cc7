"""The training loop over n envs, its run state (what a run checkpoint holds), acting and
evaluation, env handling and env records.
"""
