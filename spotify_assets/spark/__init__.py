"""The Spark engine: Delta Lake's jars and the session every asset uses."""
