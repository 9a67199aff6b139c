"""Sensors of the embedded simulator, named and parameterised like CARLA blueprints; only modules that raycast import Open3D."""
