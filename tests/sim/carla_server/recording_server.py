"""A CarlaServer on a free port that also pickles every embedded measurement it serializes (a test helper).

Run as ``python tests/sim/carla_server/recording_server.py OUT_DIR``: prints
``avsim serve: Town01 on 127.0.0.1:PORT ...`` when ready (as ``avsim serve``)
and writes ``OUT_DIR/<sensor actor id>_<frame>.pkl`` (the ``SensorMeasurement``)
before each measurement is serialized, until SIGTERM.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from sim.carla_server.process import wait_for_stop_signal
from sim.carla_server.server import CarlaServer
from sim.sensors.measurements import SensorMeasurement


def main(out_dir: Path) -> None:
    """Serve Town01 until SIGTERM, recording measurements under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def record(actor_id: int, measurement: SensorMeasurement) -> None:
        path = out_dir / f"{actor_id}_{measurement.frame}.pkl"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(measurement))
        tmp.replace(path)  # whole files only: the test reads them while the server runs

    with CarlaServer("Town01", "127.0.0.1", 0, measurement_hook=record) as server:
        print(f"avsim serve: Town01 on 127.0.0.1:{server.port} (streams on {server.stream_port})", flush=True)
        wait_for_stop_signal()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
