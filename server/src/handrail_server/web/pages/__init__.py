"""The UI's pages, one module each; each has a ``router`` (see the package docstring)."""
