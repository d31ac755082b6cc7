"""What an update needs, as objects: the agents (their arrays handed to the kernels as bundles),
the replay buffer, exploration noise, observation normalization, the hyperparameter table and
the presets.
"""
