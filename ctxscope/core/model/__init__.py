"""Models: loading (sources, dtypes, kernels, RoPE scaling), what a config says (layer kinds, experts,
positions), presets and demo checkpoints, random weights."""
