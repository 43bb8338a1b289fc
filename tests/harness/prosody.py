"""The tests' private Prosody is the quick start's: deploy/localprosody.py (one launcher)."""

from deploy.localprosody import (
    PROSODYCTL_BIN,
    Prosody,
    ProsodyError,
    free_port,
)
from deploy.localprosody import lua_string as _lua

__all__ = ["PROSODYCTL_BIN", "Prosody", "ProsodyError", "_lua", "free_port"]
