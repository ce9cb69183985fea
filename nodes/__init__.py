"""ComfyUI nodes of the pack: plain logic in :mod:`.logic`, V3 classes in :mod:`.v3_nodes`.

Importing this package imports nothing; :mod:`.v3_nodes` needs ComfyUI, :mod:`.logic` does not.
"""
