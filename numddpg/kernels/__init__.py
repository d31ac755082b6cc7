"""The jitted math: MLP forward/backward, Adam and polyak, the update's named steps, matrix
products, the replay and normalization kernels, the chunks' barrier and generator; the NumPy
twin and the gradient checks beside them.  Knows numpy and numba, no env, file or loop.
"""
