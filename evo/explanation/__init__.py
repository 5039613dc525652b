"""What a head does, measured on text: shares of attention over named patterns, a family, an account.

    patterns     label every (query, key) cell of a sentence with the first named pattern
                 that claims it: the first token, the token itself, the previous token, ...
    shares       the head's and a program's attention mass on each pattern, on the same text
    families     one family per head from its shares, by documented thresholds
    attribution  for a fitted table, the IoU lost when each family of its terms is dropped
    accounts     the shares in words: at most three named, then the rest

docs/explanations.md documents the patterns, how a share is computed and the thresholds.
"""
