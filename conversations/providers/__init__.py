"""Upstream LLM wire protocols: a registry of protocol modules by name."""
