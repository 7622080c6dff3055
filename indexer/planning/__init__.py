"""Capacity and cost planning for ``imgsearch plan``: which Azure AI Search tier and how many
partitions hold N images, how long the Vision backfill takes, and what it costs a month.

Pure arithmetic over figures with their sources (``service_limits``, ``prices``); it calls no
service. (design: docs/design.md#capacity-planning)
"""
