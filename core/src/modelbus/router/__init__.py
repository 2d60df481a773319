"""The scheduler: virtual models routed by policy, constraints, task, health and cache affinity."""

from __future__ import annotations

from modelbus.router.config import Constraints, RouterConfig, VirtualModel
from modelbus.router.health import HealthBook
from modelbus.router.router import Router

__all__ = ["Constraints", "HealthBook", "Router", "RouterConfig", "VirtualModel"]
