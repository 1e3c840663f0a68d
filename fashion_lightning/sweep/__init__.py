"""Hyperparameter sweeps with Optuna (the optional extra ``[sweep]``): ``fashion-lightning-sweep``."""
