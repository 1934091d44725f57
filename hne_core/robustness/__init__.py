"""Is the robustness real? Adaptive-attack and gradient-masking checks (Carlini et al. 2019, Tramèr et
al. 2020): transfer of final perturbations between models, an ε budget sweep, AdvTWER across milestones, a
random-noise floor and an untargeted attack, each judged by a stated rule (``verdicts.py``)."""
