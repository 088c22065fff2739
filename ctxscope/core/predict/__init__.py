"""Predictions from a config, never measured: the analytic model (bytes, FLOPs, roofline; KV bytes per
cache strategy), the fitted efficiency curve, the memory guard's lower bound, analytic memory beside old
runs in reports."""
