"""The machine a run measures on: its environment, hardware peaks, NVML and process telemetry, what else
ran beside a point, the devices a user can pick."""
