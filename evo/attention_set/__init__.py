"""The on-disk attention set: per-sentence tokens and every head's attention matrices.

A set is a directory holding `meta.json` and `attention.safetensors`; the latter has one
float16 tensor per sentence, key `s{i}`, shape `(n_layers * n_heads, n, n)`, head index
`k = layer * n_heads + head`. `Writer` streams tensors to disk as they are computed (in
any order), so neither writing nor reading needs the whole set in memory.

Every sentence's tensor has a CRC-32 in `meta.json`, checked when first read in a process
(`verify`: all of them); sets made before checksums get a finiteness check only (evo.derived
keeps the arrays computed from a set).

    layout   the file names, the schema version, reading a safetensors header
    stored   AttentionSet: a stored set, read lazily one sentence at a time, checked as it is read
    writer   Writer: streams a new set to disk, then renames it into place; write(): a small set at once
"""

from evo.attention_set.layout import (DERIVED_PREFIX, META_FILE, SCHEMA_VERSION, TENSOR_FILE,  # noqa: F401
                                      read_header)
from evo.attention_set.stored import AttentionSet  # noqa: F401
from evo.attention_set.writer import Writer, write  # noqa: F401
from evo.errors import UserError  # noqa: F401   (the set's errors, as callers have caught them here)
