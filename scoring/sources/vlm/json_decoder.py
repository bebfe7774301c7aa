"""Schema-shaped greedy JSON decoding for a transformers VLM (keys fed, integers read digit
by digit, strings closed at the quote), so a small or stubborn model still yields a card."""

from __future__ import annotations

import json
from typing import Any


class JsonDecoder:
    """Greedy decoding of one JSON object shaped by a schema: the keys and punctuation are
    fed, integer values are read digit by digit (snapped to the schema's `enum`), string
    values run until the model closes the quote or reaches `maxLength`."""

    def __init__(self, vlm: Any, inputs: dict[str, Any]) -> None:
        self.vlm, self.model = vlm, vlm._model
        self.tok = vlm._processor.tokenizer
        out = self.model(**inputs, use_cache=True, logits_to_keep=1)
        self.cache, self.logits = out.past_key_values, out.logits[0, -1]
        self.stops = {i for i in (self.tok.eos_token_id, self.tok.pad_token_id) if i is not None}
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        self.stops |= set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.budget = 0

    def feed(self, ids: list[int]) -> None:
        import torch

        if not ids:
            return
        out = self.model(input_ids=torch.tensor([ids], device=self.model.device),
                         past_key_values=self.cache, use_cache=True)
        self.cache, self.logits = out.past_key_values, out.logits[0, -1]
        self.budget -= len(ids)

    def text(self, s: str) -> None:
        self.feed(self.tok.encode(s, add_special_tokens=False))

    def run(self, schema: dict, max_tokens: int) -> str:
        self.budget = max_tokens
        parts = []
        for n, (key, spec) in enumerate(schema["properties"].items()):
            lead = ("{" if n == 0 else ", ") + json.dumps(key, ensure_ascii=False) + ":"
            if spec.get("type") in ("integer", "number"):
                self.text(lead)  # the model picks " 70" or "70" itself
                parts.append(f"{lead} {self.integer(spec)}")
            else:
                self.text(lead + ' "')
                parts.append(f"{lead} {json.dumps(self.string(spec), ensure_ascii=False)}")
        return "".join(parts) + "}"

    def integer(self, spec: dict) -> int:
        digits = self.vlm._digits
        ids = list(digits)  # the first token may carry a leading space, the rest may not
        tight = [i for i, t in digits.items() if t == t.strip()]
        text = ""
        while len(text) < 3 and self.budget > 0:
            if text and int(self.logits.argmax()) not in tight:
                break  # the model would end the number here
            pool = tight if text else ids
            best = pool[int(self.logits[pool].argmax())]
            text += digits[best].strip()
            self.feed([best])
        value = int(text[:3] or 0)
        allowed = spec.get("enum")
        if allowed:
            return min(allowed, key=lambda a: (abs(a - value), a))
        return max(int(spec.get("minimum", 0)), min(int(spec.get("maximum", 100)), value))

    def string(self, spec: dict) -> str:
        limit = int(spec.get("maxLength", 200))
        got: list[int] = []
        text = ""
        while self.budget > 0:
            best = int(self.logits.argmax())
            if best in self.stops:
                break
            got.append(best)
            text = self.tok.decode(got, skip_special_tokens=True)
            if '"' in text or "\n" in text or len(text) >= limit:
                break
            self.feed([best])
        text = text.split('"')[0].split("\n")[0][:limit]
        return "".join(c for c in text if c.isprintable() and c != "\ufffd").strip()
