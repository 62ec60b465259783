"""Simulated LLM providers over real HTTP, with the exact truth of what was sent.

See `Simulator` for routes and scenarios, `PROFILES` for the built-in providers.
"""

from speed_kings.simulator.profiles import FAULTS, PROFILES, Profile
from speed_kings.simulator.server import Simulator
from speed_kings.simulator.truth import RequestTruth

__all__ = ["FAULTS", "PROFILES", "Profile", "RequestTruth", "Simulator"]
