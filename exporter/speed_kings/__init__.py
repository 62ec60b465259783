"""Speed Kings: a Prometheus exporter that probes LLM inference providers."""

__version__ = "0.1.0"
