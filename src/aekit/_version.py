"""The aekit release: a leaf module that imports nothing, so any layer can read it without importing the package."""

__version__ = "0.1.0"
