"""The headless core: no Qt, ever (a contract). Grouped by what it touches:

- at the top, the records and their schema — ``errors``, ``results``, ``blocks``,
  ``events`` (the one event vocabulary), ``spec``, ``units``, ``stats``, ``limits``,
  ``files``, ``paths``, ``lengths``, ``serialize``, ``wire``, ``wire_arrays`` — plain
  data that imports no torch, psutil or NVML (a contract): the app, the reports and the
  history read them without loading either;
- ``model/``: loading a model and what its config says; ``measure/``: measuring one
  point; ``machine/``: the machine it runs on; ``predict/``: predictions from a config;
  ``maxctx/``: the longest context that runs; ``jobs/``: jobs, launchers, the matrix
  and the sweep generator; ``attention/``, ``quality/``, ``breakdown/``: the untimed
  passes after a length's timed points.
"""
