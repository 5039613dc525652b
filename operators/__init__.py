"""Variation operators: offline symbolic ones and LLM-driven ones."""
