"""The embedded local stack: faithful emulators of ComfyUI and the RunPod platform, served on loopback.

Nothing here is imported by the worker or the dispatch Lambdas; it needs the ``local`` extra (aiohttp, moto).
"""
