"""Fitted programs: weighted mixes and scored programs (a row softmax of additive score terms) fitted
to a head, wide tables, sparse fits, and the offline operator's edits that make them."""
