"""Data stage: the self-made espeak-ng corpus, Common Voice, and the one output format both share."""
