"""Data stage: the data sources (``sources/``: the self-made espeak-ng corpus, Common Voice, a folder of your own
recordings), the one output format they share (``corpus``), and how later stages read it back (``utterances``)."""
