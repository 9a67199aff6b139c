"""Traffic: NPC vehicles (IDM + lane following), traffic lights and pedestrians, vectorised over actors."""
