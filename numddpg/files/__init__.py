"""What numddpg writes and reads: the checkpoint container (npz + JSON, atomic, checked), the
NumPy-only policy file, run directories (config.json, progress.csv, the run lock) and the logs
SB3 users read (monitor.csv, TensorBoard).
"""
