"""The ambient home simulator: simulated people living with the real runtime, plus the truth (gold) behind it."""

from selflearn.sim.homes import generate_homes
from selflearn.sim.simulation import DayLog, SimConfig, Simulation, TeachingBehaviour

__all__ = ["DayLog", "SimConfig", "Simulation", "TeachingBehaviour", "generate_homes"]
