"""Loaded before any test module: a Ray that a test starts in-process keeps its traffic on loopback.

Ray turns a node address of 127.0.0.1 into the machine's outward-facing one unless this variable (deepq's
ray_cluster.LOOPBACK_ONLY) is "0" when Ray is first imported; test modules import Ray at collection, in whatever order
pytest collects them, so it is set here, once, before any of them.
"""

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # deepq.training.ray_cluster.LOOPBACK_ONLY
