"""Jobs: what a worker runs (Job), where it runs (launchers), the matrix of cells, the sweep generator and its ETA."""
