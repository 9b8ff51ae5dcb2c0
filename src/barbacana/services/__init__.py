"""The reference system: ``auth``, ``orders`` and ``chat``, built from the public library."""
