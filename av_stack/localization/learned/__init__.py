"""Learned localization: a small CNN matches the LiDAR sweep (as a BEV raster) against the map rendered at a
prior pose and predicts the pose correction with its uncertainty (:mod:`.model`); the ``learned`` stage fuses
it into the EKF (:mod:`.stage`); ``avsim train localization`` trains it (:mod:`.train`)."""
