"""Stave: a self-hosted publishing node for independent musicians."""

__version__ = "0.1.0"
