"""stadsnav: the common data platform of a smart city."""

__version__ = "0.1.0"
