"""A multi-turn chat session and the terminal loop around it (``tunesmith chat``).

The session renders the history with the training template, streams the reply as text pieces, and
keeps the history; the loop reads lines through a function it is given, so a test (or another
front end) drives it exactly as a person at the terminal would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from tunesmith.data.media import IMAGE_PLACEHOLDER
from tunesmith.data.records import Message
from tunesmith.data.tokenize import encode_prompt
from tunesmith.model.generate import GenerationSettings, stream_ids
from tunesmith.serve.detok import IncrementalText

COMMANDS_HELP = "/reset clears the history · /system TEXT sets the system prompt · /exit quits"


def text_deltas(tokenizer: Any, id_stream: Iterator[list[int]]) -> Iterator[str]:
    """Turn a stream of growing id lists into the new text of each step (see ``serve.detok``)."""
    text = IncrementalText(tokenizer)
    last: list[int] = []
    for ids in id_stream:
        last = ids
        if piece := text.add(ids):
            yield piece
    if piece := text.add(last, final=True):  # an answer that ended inside a multi-byte character
        yield piece


class ChatSession:
    """History, system prompt and generation settings for one conversation with a loaded model."""

    def __init__(self, loaded: Any, settings: GenerationSettings, system: str | None = None, *,
                 processor: Any = None, images: list[str] | None = None, engine: Any = None) -> None:
        self.loaded = loaded
        self.engine = engine  # a started serve.engine.Engine on loaded.model: replies go through it, as the API's do
        self.settings = settings
        self.system = system
        self.history: list[Message] = []
        self.processor = processor  # a vision model's (tunesmith.model.vision.VisionProcessor)
        self.images: list[str] = []  # every image in the conversation so far, in order
        self.pending = list(images or [])  # shown with the next question ('tunesmith chat --image')

    def reset(self) -> None:
        self.history = []
        self.images = []

    def set_system(self, text: str | None) -> None:
        self.system = text or None
        self.history = []

    def send(self, text: str, images: list[str] | None = None) -> Iterator[str]:
        """Add a user turn (with ``images`` shown with it, each an ``<image>`` placeholder at its start unless
        the text places them) and stream the reply as text pieces; the reply joins the history at the end."""
        tok = self.loaded.tokenizer
        attach, self.pending = [*self.pending, *(images or [])], []
        if attach and IMAGE_PLACEHOLDER not in text:
            text = IMAGE_PLACEHOLDER * len(attach) + "\n" + text
        messages = [*self.history, Message("user", text)]
        pictures = [*self.images, *attach]
        if pictures:
            reply = yield from self._reply_with_images(messages, pictures)
            self.images = pictures
            self.history = [*messages, Message("assistant", reply)]
            return
        prompt = encode_prompt(messages, self.system, self.loaded.template, tok)
        last: list[int] = []

        def ids() -> Iterator[list[int]]:
            nonlocal last
            steps = self.engine.stream(prompt, self.settings) if self.engine is not None else stream_ids(
                self.loaded.model, prompt, stop_ids=self.loaded.stop_ids, pad_id=tok.pad_token_id,
                settings=self.settings)
            for step in steps:
                last = step
                yield step

        yield from text_deltas(tok, ids())
        self.history = [*messages, Message("assistant", tok.decode(last, skip_special_tokens=True))]


    def _reply_with_images(self, messages: list[Message], paths: list[str]) -> Iterator[str]:
        """Stream the reply to a conversation with images (through the engine when there is one; else the
        whole reply at once); returns the reply."""
        from PIL import Image

        from tunesmith.data.vision import encode_vision_prompt
        from tunesmith.model.vision import generate_with_images, media_inputs

        if self.processor is None:
            from tunesmith.utils.errors import ModelLoadError

            raise ModelLoadError("--image needs a vision-language model (e.g. Qwen/Qwen2-VL-2B-Instruct); this one "
                                 "reads text only")
        images = []
        for path in paths:
            with Image.open(path) as img:
                images.append(img.convert("RGB"))
        ids = encode_vision_prompt(messages, self.system, [im.size for im in images], self.loaded.template,
                                   self.processor)
        tok = self.loaded.tokenizer
        if self.engine is not None:
            media = {k: v for k, v in media_inputs(self.processor, ids, images).items()
                     if k not in ("input_ids", "attention_mask")}
            last: list[int] = []

            def steps() -> Iterator[list[int]]:
                nonlocal last
                for step in self.engine.stream(ids, self.settings, media=media):
                    last = step
                    yield step

            yield from text_deltas(tok, steps())
            return tok.decode([i for i in last if i not in self.loaded.stop_ids], skip_special_tokens=True)
        answer = generate_with_images(self.loaded.model, self.processor, ids, images,
                                      stop_ids=self.loaded.stop_ids, settings=self.settings)
        reply = tok.decode(answer, skip_special_tokens=True)
        yield reply
        return reply


def run_chat(session: ChatSession, read_line: Callable[[], str | None], write: Callable[[str], None]) -> int:
    """Read lines until /exit or end of input; returns the number of replies given."""
    replies = 0
    while True:
        write("You: ")
        line = read_line()
        if line is None or line == "":  # end of input
            write("\n")
            return replies
        text = line.rstrip("\n").strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return replies
        if text == "/reset":
            session.reset()
            write("(history cleared)\n")
            continue
        if text == "/system" or text.startswith("/system "):
            session.set_system(text[len("/system"):].strip())
            write(f"(system prompt {'set' if session.system else 'cleared'}; history cleared)\n")
            continue
        if text.startswith("/"):
            write(f"(unknown command {text.split()[0]}; {COMMANDS_HELP})\n")
            continue
        write("Model: ")
        for piece in session.send(text):
            write(piece)
        write("\n")
        replies += 1
