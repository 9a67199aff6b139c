"""The sensor specification every backend shares: CARLA blueprints and attributes, suite YAML, measurement types."""
