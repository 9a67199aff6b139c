"""The world side: everything that would exist without an AV stack (backends, embedded simulator, env).

Importing ``sim`` registers the Gymnasium environment ``avsim/Driving-v0``.
"""

from sim import env as _env  # noqa: F401  (registers avsim/Driving-v0)
