"""carelens: an open-source clinical AI platform a health system runs on its own data."""

__version__ = "0.1.0"
