"""OpenDRIVE maps: safe loading, shipped CARLA towns, procedural towns, lane graph and map geometry."""
