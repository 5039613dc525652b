"""headcode: explain transformer attention heads as short Python programs."""

__version__ = "0.1.0"
