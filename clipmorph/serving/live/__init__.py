"""Live camera: a browser streams camera frames over a WebSocket (``/live/ws``) and gets them
back painted, through the same batchable model method as images and video jobs.

``protocol`` is the wire format, ``sessions`` the per-viewer loop (newest frame wins) and the
session limit, ``app`` the Starlette route the API service mounts.
"""
