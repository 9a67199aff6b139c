"""The car side: stages that turn sensor frames into controls."""
