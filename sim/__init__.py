"""The world side: everything that would exist without an AV stack (backends, embedded simulator, env)."""
