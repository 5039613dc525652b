"""Variation operators: what the search asks for, and the offline and LLM operators that answer.

    base        the interface: a Request in, a Child out
    registry    builds the operator a run asks for ("offline", "llm" or "mixed")
    shared/     what both sides share: the vocabulary (basis patterns, score terms), a mix's
                form, the canonical form a program is written in, and accounts in words
    fitting/    fitted programs: weighted mixes, scored programs (row softmax of score terms),
                wide tables and sparse fits, and the fitting edits that make them
    edits/      the offline operator: AST mutations and crossovers, and the edits it draws from
    llm/        the LLM operator: prompts, parsing replies, the chat client and its budgets

Layering: shared <- fitting <- edits; llm uses shared; registry sits on top of both.
"""
