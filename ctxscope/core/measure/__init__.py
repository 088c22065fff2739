"""Measuring one point: the timed passes (prefill, decode at depth) with their cache rollback, CUDA-event
and CPU timing, memory accounting (allocator, CPU allocator peak, cache storage), the KV-cache
strategies and the offload meter, inputs."""
