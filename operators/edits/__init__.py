"""The offline operator: point mutations and crossovers on a program's AST, and the operator that
draws among them and the fitting edits."""
