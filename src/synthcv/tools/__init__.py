"""Dataset-side tools: inspect (summary + checksums), preview (contact sheet), report (one
offline HTML page per dataset or experiment run), COCO export.

Each tool takes an opened :class:`synthcv.format.Dataset` (or a path) and returns plain data,
so the CLI and Python users share one implementation.
"""
