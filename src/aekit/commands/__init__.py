"""The jobs behind `aekit <command>`: each takes plain arguments, drives the library and writes its outputs.

`aekit.cli` parses flags and prints; everything it runs lives here, so the same jobs are callable from Python.
The library packages (nn, data, models, train, metrics, worlds, analysis, report, interop) never import this one.
"""
