"""Training of the colorization network (paper section 3.2) on our own matcher's outputs.

Steps, each run as ``python -m training.<step>`` from the repository root:

* ``training.registry_photos``: collect the registry photos into a folder (optional);
* ``training.pairs``: sample pairs, match them, cache shards (:mod:`training.pairs`);
* ``training.train``: train ``ExampleColorNet`` with both branches (:mod:`training.train`);
* ``training.export``: safetensors + manifest + model card, optional Hub push;
* ``training.evaluate``: held-out evaluation table.

The core (``deepexemplar_core``) never imports this package.
"""
