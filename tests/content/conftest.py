"""Content tests use the shared `content`, `api` and `environment` fixtures of tests/conftest.py."""
