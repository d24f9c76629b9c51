"""Transformations as small pure functions DataFrame -> DataFrame; I/O stays in the assets."""
