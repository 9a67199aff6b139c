"""CARLA 0.9.16 protocol server for the embedded simulator (``avsim serve``); see ``server.CarlaServer``."""
