"""Helpers the tests import: servers, audio, harnesses. Conftest modules hold only fixtures."""
