"""``ponder serve``: an OpenAI-compatible reasoning server that applies any controller to any engine,
with a live page that shows the samples race.

    ponder serve -c ffs -n 8                       # then any OpenAI client, or http://127.0.0.1:8000/

    from ponder.engines import open_engine
    from ponder.serve import ServeConfig, create_app
    app = create_app(ServeConfig(controller="ffs", options=(("n", 8),)), lambda: open_engine("hf"))

Modules: config.py (settings, the reasoning-effort table), requests.py (the request bodies, as
pydantic models), protocol.py (requests -> `Job`s, the server's limits), run.py (a controller run
per choice), lanes.py (watching each sample stream), text.py (thinking vs answer), shapes.py
(response bodies), stream.py (server-sent events, disconnects), prometheus.py (``/metrics``),
app.py (the routes), page/ (the race page: plain HTML and JavaScript).
"""

from ponder.serve.app import PAGE_DIR, create_app
from ponder.serve.config import EFFORT_BUDGETS, ServeConfig

__all__ = ["create_app", "ServeConfig", "EFFORT_BUDGETS", "PAGE_DIR"]
