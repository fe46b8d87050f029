"""Maintenance tools: ``python -m tinyc.tools.<name>`` regenerates data files tinyc ships."""
