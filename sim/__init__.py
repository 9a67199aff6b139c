"""The world side: everything that would exist without an AV stack (world interface, maps, sensors, rules, backends, env).

Importing ``sim`` (or ``sim.api``) loads nothing heavy. The Gymnasium
environment ``avsim/Driving-v0`` is registered by ``import sim.env``, or by
naming its module in the id: ``gymnasium.make("sim.env:avsim/Driving-v0")``.
"""
