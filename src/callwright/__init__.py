"""Callwright: a self-hostable, stream-first conversational voice-AI platform."""

__version__ = "0.1.0"
