"""Where the items come from: data sources (``SOURCES``), image decoding, and the query/database/train split."""
