"""ctxscope: what context length costs a transformer model on your hardware."""

__version__ = "0.1.0"
