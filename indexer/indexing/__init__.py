"""Getting images into an index.

- ``pipeline``: one image: read, check, vectorize, check the pin, upsert (the blob trigger);
- ``bulk``: many images concurrently, in batches, with the content-hash skip;
- ``sync``: make an index match a folder or a container (``index``, ``reconcile``);
- ``backfill``: index a whole container, resumably (checkpoints);
- ``failures``: the record of images that cannot be indexed, and why.
"""
