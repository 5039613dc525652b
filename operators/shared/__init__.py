"""What the offline and LLM operators share: the vocabulary (the basis of patterns, the score terms),
the form of a weighted mix, the canonical form a program is written in, and accounts in words."""
