"""A plugin module that fails to import (as a plugin with a missing dependency would)."""

from __future__ import annotations

import a_dependency_that_is_not_installed  # noqa: F401
