"""One chat call to an OpenAI-compatible endpoint, with timeout and retries with backoff."""

from __future__ import annotations

import dataclasses
import os
import random
import time
from typing import Callable

import openai

# Local servers (vLLM, Ollama, llama.cpp) accept any key but the client insists on one.
DUMMY_KEY = "headcode-no-key"


@dataclasses.dataclass(frozen=True)
class ClientConfig:
    model: str
    base_url: str | None = None     # None: OpenAI's own endpoint
    timeout: float = 120.0          # seconds per attempt
    retries: int = 4                # further attempts after the first, on timeouts, 429 and 5xx
    backoff: float = 2.0            # seconds before the first retry, doubled each time
    max_backoff: float = 60.0
    max_reply_tokens: int = 4096    # completion tokens per call


@dataclasses.dataclass(frozen=True)
class Reply:
    text: str | None                # None when every attempt failed
    prompt_tokens: int
    completion_tokens: int
    latency: float                  # seconds, all attempts and waits included
    attempts: int
    error: str | None = None        # one line, when text is None
    finish_reason: str | None = None


def api_key(base_url: str | None) -> str | None:
    """Returns the key from $OPENAI_API_KEY; a dummy one for a non-OpenAI endpoint; else None."""
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    base_url = base_url or os.environ.get("OPENAI_BASE_URL")
    if base_url and "api.openai.com" not in base_url:
        return DUMMY_KEY
    return None


def _refused(err: Exception) -> bool:
    """Returns whether the error is a refused connection: nothing listens there, so waiting will not help."""
    seen, cause = set(), err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ConnectionRefusedError) or "Connection refused" in str(cause):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _retryable(err: Exception) -> bool:
    """Returns whether an API error is worth another attempt (a refused connection is not)."""
    if isinstance(err, openai.APIConnectionError) and not isinstance(err, openai.APITimeoutError) and _refused(err):
        return False
    if isinstance(err, (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError)):
        return True
    return isinstance(err, openai.APIStatusError) and (err.status_code >= 500 or err.status_code == 408)


def _describe(err: Exception) -> str:
    """Returns a one-line description of an API error."""
    if isinstance(err, openai.APITimeoutError):
        return "timeout"
    if isinstance(err, openai.APIStatusError):
        return f"HTTP {err.status_code}"
    if isinstance(err, openai.APIConnectionError):
        return f"connection error ({err.__cause__ or err})".replace("\n", " ")
    return f"{type(err).__name__}: {err}".replace("\n", " ")


def _retry_after(err: Exception) -> float | None:
    """Returns the server's Retry-After in seconds, when it sent one."""
    response = getattr(err, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class ChatClient:
    """Sends chat requests; the openai client's own retries are off so that ours are counted."""

    def __init__(self, config: ClientConfig, key: str, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self._sleep = sleep
        self._client = openai.OpenAI(base_url=config.base_url, api_key=key,
                                     timeout=config.timeout, max_retries=0)

    def check(self) -> str | None:
        """Returns why the endpoint cannot serve this run (nothing listening, key refused), or None.

        One quick request (list the models); an endpoint without that route still counts as up.
        """
        try:
            self._client.with_options(timeout=min(10.0, self.config.timeout), max_retries=0).models.list()
        except openai.AuthenticationError:
            return f"the endpoint {self._client.base_url} refused the API key (HTTP 401)"
        except openai.APIStatusError:
            return None  # it answered: the route may just not exist on a local server
        except openai.APITimeoutError:
            return None  # something listens but is busy (a one-slot local server mid-generation)
        except openai.APIConnectionError as err:
            return f"cannot reach the LLM endpoint {self._client.base_url}: {_describe(err)}"
        return None

    def context_window(self) -> int | None:
        """Returns the server's context window in tokens when it says (llama.cpp's /props, vLLM's models), or None."""
        base = str(self._client.base_url).rstrip("/")
        root = base[:-3] if base.endswith("/v1") else base
        for url in (f"{root}/props", f"{base}/models"):
            found = _context_of(_get_json(url))
            if found:
                return found
        return None

    def chat(self, messages: list[dict], temperature: float, seed: int, stop: list[str] | None = None) -> Reply:
        """Returns the reply to `messages`, after up to `retries` more attempts on transient errors.

        `stop`: strings at which the server ends the reply (at most 4), e.g. after a code block.
        """
        jitter = random.Random(seed)
        start = time.monotonic()
        errors: list[str] = []
        for attempt in range(self.config.retries + 1):
            try:
                response = self._client.chat.completions.create(
                    model=self.config.model, messages=messages, temperature=temperature,
                    seed=seed, max_tokens=self.config.max_reply_tokens, **({"stop": stop} if stop else {}))
            except openai.APIError as err:
                errors.append(_describe(err))
                if not _retryable(err) or attempt == self.config.retries:
                    break
                wait = min(self.config.max_backoff, self.config.backoff * 2 ** attempt)
                wait = _retry_after(err) or wait * (0.5 + jitter.random())
                self._sleep(min(wait, self.config.max_backoff))
                continue
            return _reply(response, time.monotonic() - start, attempt + 1)
        summary = ", ".join(errors)
        return Reply(None, 0, 0, time.monotonic() - start, len(errors),
                     error=f"LLM call failed after {len(errors)} attempt(s): {summary}")


def _get_json(url: str):
    """Returns the JSON at `url` (a quick GET), or None when there is none."""
    import json
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=5.0) as response:   # noqa: S310 - the user's own endpoint
            return json.loads(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


_CONTEXT_KEYS = ("n_ctx", "max_model_len", "context_length", "context_window", "max_context_length")


def _context_of(data) -> int | None:
    """Returns the first context size found in a server's JSON (any depth), or None."""
    if isinstance(data, dict):
        for key in _CONTEXT_KEYS:
            if isinstance(data.get(key), int) and data[key] > 0:
                return int(data[key])
        data = list(data.values())
    if isinstance(data, list):
        for item in data:
            found = _context_of(item)
            if found:
                return found
    return None


def _reply(response, latency: float, attempts: int) -> Reply:
    """Returns a Reply from a chat.completion response."""
    usage = response.usage
    prompt = usage.prompt_tokens if usage else 0
    completion = usage.completion_tokens if usage else 0
    if not response.choices:
        return Reply(None, prompt, completion, latency, attempts, error="reply has no choices")
    choice = response.choices[0]
    return Reply(choice.message.content or "", prompt, completion, latency, attempts,
                 finish_reason=choice.finish_reason)
