"""Traffic rules and the events they raise, written once for every backend (red light, stop sign, off road, kerbs)."""
