"""digits-mlp: a small, deterministic PyTorch experiment used as repropack's example recipe.

Modules: ``config`` (hyper-parameters), ``data`` (load and split the digits CSV), ``model`` (the MLP),
``device`` (device choice and determinism switches), ``metrics`` (the evaluation shared by
``train`` and ``evaluate``), and the two command-line entry points ``train`` and ``evaluate``.
"""
