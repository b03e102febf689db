"""The web UI with images: the Data tab previews a dataset's pictures (only files inside the work folder),
and the Chat tab's upload reaches a vision model through the API's engine, answering what the terminal
chat answers."""

from __future__ import annotations

import json
from pathlib import Path

from tiny_vlm import draw_image
from tunesmith.model.generate import GenerationSettings
from tunesmith.serve.chat import ChatSession
from tunesmith.webui import chat
from tunesmith.webui.jobs import JobManager
from tunesmith.webui.tab_data import DataTab
from tunesmith.webui.ui import Context


def test_data_preview_shows_the_records_images_inside_the_work_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    data = work / "data"
    draw_image(data / "pics" / "red.png", "red")
    outside = draw_image(tmp_path / "secret.png", "blue")
    rows = [{"image": "pics/red.png", "conversations": [{"from": "human", "value": "<image>\nColour?"},
                                                         {"from": "gpt", "value": "red"}]},
            {"image": str(outside), "conversations": [{"from": "human", "value": "<image>\nColour?"},
                                                       {"from": "gpt", "value": "blue"}]}]
    (data / "pics.json").write_text(json.dumps(rows))
    tab = DataTab(Context(JobManager(work / "jobs"), work))
    update = tab._images("pics.json", str(data), None)
    assert update["visible"] is True
    assert [caption for _, caption in update["value"]] == [f"{data / 'pics.json'}:1: red.png"]  # not secret.png
    table, message = tab._preview("pics.json", str(data), "en")
    assert list(table["value"][table["value"].columns[-1]]) == [1, 1]  # the images column


def test_chat_tab_image_upload_goes_through_the_engine(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    loaded = chat.load(str(tiny_vlm_dir), None, "auto")
    engine = chat.engine_for(loaded)
    settings = GenerationSettings(max_new_tokens=4)
    image = str(draw_image(tmp_path / "green.png", "green"))
    before = engine.stats.requests
    tab = list(chat.stream_reply(loaded, [], "<image>\nWhat colour is this?", settings=settings,
                                 images=[image]))[-1]
    assert engine.stats.requests == before + 1, "the image request went through the engine"
    terminal = "".join(ChatSession(loaded, settings, processor=chat.processor_for(loaded),
                                   images=[image]).send("What colour is this?"))
    assert tab == terminal
    # A second turn keeps the first picture (its placeholder is in the history).
    again = list(chat.stream_reply(loaded, [("<image>\nWhat colour is this?", tab)], "Sure?", settings=settings,
                                   earlier_images=[image]))[-1]
    assert isinstance(again, str) and engine.stats.requests == before + 2
