"""SB3's logger interface as callbacks use it (``record``, ``record_mean``, ``dump``).
"""


def _excluded(exclude):
    """SB3's ``exclude`` argument (None, a format name, or a tuple of them) as a tuple."""
    return () if exclude is None else (exclude,) if isinstance(exclude, str) else tuple(exclude)


class Logger:
    """SB3's logger interface as callbacks use it: ``record(key, value)``,
    ``record_mean(key, value)``, ``dump(step)`` (prints the table when the model is verbose,
    then forgets the values), ``name_to_value``.

    ``dump`` also writes the recorded numbers (but those excluded from "tensorboard") into the
    model's TensorBoard files when it has them (``tensorboard_log``; numddpg.runlog), as SB3's
    logger does.
    """

    def __init__(self, verbose=0, native=None):
        self.verbose = verbose
        self.native = native          # the numddpg model whose run log takes the values
        self.name_to_value, self.name_to_count, self.name_to_excluded = {}, {}, {}

    def record(self, key, value, exclude=None):
        self.name_to_value[key] = value
        self.name_to_excluded[key] = exclude

    def record_mean(self, key, value, exclude=None):
        n = self.name_to_count.get(key, 0)
        old = self.name_to_value.get(key, 0.0)
        self.name_to_value[key] = old * n / (n + 1) + value / (n + 1)
        self.name_to_count[key] = n + 1
        self.name_to_excluded[key] = exclude

    def dump(self, step=0):
        runlog = getattr(self.native, "runlog", None)
        if runlog is not None:
            runlog.add_scalars({k: v for k, v in self.name_to_value.items()
                                if "tensorboard" not in _excluded(self.name_to_excluded.get(k))},
                               step)
        if self.verbose >= 1 and self.name_to_value:
            rows = [(k, f"{v:.3g}" if isinstance(v, float) else str(v))
                    for k, v in sorted(self.name_to_value.items())]
            w = max(len(k) for k, _ in rows), max(len(v) for _, v in rows)
            line = "-" * (w[0] + w[1] + 7)
            print("\n".join([line, *(f"| {k:<{w[0]}} | {v:<{w[1]}} |" for k, v in rows), line]))
        self.name_to_value.clear()
        self.name_to_count.clear()
        self.name_to_excluded.clear()

    def get_dir(self):
        return None


