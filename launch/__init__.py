"""The command-line interface (`avsim`)."""
