"""Routes and traffic scenarios: route files and the route planner (:mod:`sim.scenarios.routes`), and the
scenario events placed along a route (:mod:`sim.scenarios.library`)."""
