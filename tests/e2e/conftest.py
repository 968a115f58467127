"""Fixtures for the end-to-end tests: worlds of real processes, always cleaned up."""

import Pyro4
import pytest

from .e2e_world import World


@pytest.fixture
def make_process_world():
    """make_process_world(**World options) -> a World whose processes and folder go when the test ends,
    whatever happened in it."""
    Pyro4.config.SERIALIZER = 'serpent'  # as every rockit client
    worlds = []

    def make(**kwargs):
        world = World(**kwargs)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()
        # Shown by pytest only when the test failed.
        for process in world.processes():
            print(process.describe())
