"""The LLM operator: prompts built from what a head does, replies parsed into programs, the chat
client with retries, and the budgets that stop a search."""
