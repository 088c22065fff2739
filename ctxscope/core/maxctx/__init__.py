"""The longest context that runs: the bracketing search over measured trials and its driver."""
