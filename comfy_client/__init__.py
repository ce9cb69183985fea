"""A small client for ComfyUI's HTTP API (standard library only).

* :mod:`comfy_client.workflow`: UI-format <-> API-format workflows and schema checks.
* :mod:`comfy_client.batch`: run a workflow once per image of a folder
  (``python -m comfy_client.batch --help``).
"""
