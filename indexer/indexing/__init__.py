"""Getting images into an index.

- ``pipeline``: one image: read, check, vectorize, check the pin, upsert (the blob trigger);
- ``bulk``: many images concurrently, in batches, with the content-hash skip;
- ``run``: one run over a folder or a container (``index``, ``backfill``, ``reconcile``),
  resumable with a ``checkpoint``, or removing the documents of images that are gone;
- ``checkpoint``: the blobs a resumable run has finished;
- ``failures``: the record of images that cannot be indexed, and why.
"""
