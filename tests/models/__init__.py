"""Model definitions used by the tests (PyTorch modules for the shared weight files)."""
