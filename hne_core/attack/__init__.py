"""Targeted L2 PGD attacks on the ESPnet models (paper §3.2, §4.3).

- ``targets``: lorem-ipsum target transcriptions and their closest-length assignment;
- ``loss``: Eq. 4 per utterance; ``batching``: STFT hooks that make padded batches exact;
- ``pgd``: the native torch engine (ART's PGD semantics); ``art_engine``: ART's own PGD around our model;
- ``run``: ``run_attack`` over both engines; ``decode``: Speech2Text-equivalent greedy decoding;
- ``job``: ``attack_job``, the entry point of one workflow attack job (one model, λC(i), milestone).
"""
