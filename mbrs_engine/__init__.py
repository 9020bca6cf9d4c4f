"""MBRS Studio engine: networks, noise layers, metrics and (soon) the watermarking API.

No Qt here: the engine is usable as a library and from the ``mbrs`` command line.
"""
__version__ = "0.1.0"
