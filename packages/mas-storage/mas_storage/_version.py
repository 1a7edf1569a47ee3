"""The version of every mas-memory package.

The one place it is written: each package's ``pyproject.toml`` reads it (hatch's ``regex``
version source), so all of them are released together under one number.
"""

__version__ = "0.1.0"
